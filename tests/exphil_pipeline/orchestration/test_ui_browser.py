"""The Dagster UI in a real headless browser: the whole asset chain and an ingest run's metadata.

Needs Debian's ``chromium`` and ``chromium-driver`` (``make browser``). Without them the test is
skipped, unless ``EXPHIL_REQUIRE_BROWSER=1`` (set by CI), which turns the skip into a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REQUIRE_BROWSER_ENV = "EXPHIL_REQUIRE_BROWSER"
# The asset chain, replays to evaluation, as the lineage graph must show it.
CHAIN = (
    "games",
    "frames",
    "items",
    "training_set",
    "teacher",
    "soft_labels",
    "student",
    "policy_onnx",
    "policy_int8",
    "evaluation",
)
SERVER_START_S = 120
PAGE_WAIT_S = 60
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _require_browser() -> None:
    """Skip (or, when CI demands the browser, fail) unless Chromium and selenium are usable."""
    problems = [
        f"{path} is missing (apt-get install chromium chromium-driver, or `make browser`)"
        for path in (CHROMIUM, CHROMEDRIVER)
        if not os.access(path, os.X_OK)
    ]
    try:
        import selenium  # noqa: F401
    except ImportError:
        problems.append("the selenium package is missing (pip install -e '.[dev]')")
    if not problems:
        return
    reason = "headless browser test: " + "; ".join(problems)
    if os.environ.get(REQUIRE_BROWSER_ENV) == "1":
        pytest.fail(f"{REQUIRE_BROWSER_ENV}=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def _env(home: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
        "EXPHIL_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
    }
    env.pop("EXPHIL_REPLAYS", None)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, chars: int = 4000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else "(no log)"


@contextmanager
def _webserver(env: dict[str, str], log: Path) -> Iterator[str]:
    """``dagster-webserver`` on a free port until the block ends; yields its base URL."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [
                str(BIN / "dagster-webserver"),
                *("-w", str(REPO / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)),
            ],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"dagster-webserver exited ({server.returncode}):\n{_tail(log)}")
            try:
                with urllib.request.urlopen(f"{base}/server_info", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"no /server_info within {SERVER_START_S} s:\n{_tail(log)}")
            time.sleep(0.5)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            # Its own session: the group is the webserver and the code server it spawned.
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)


@contextmanager
def _chromium(profile: Path, log: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1600,1000",
    ):
        options.add_argument(flag)
    # An explicit driver path: Selenium Manager never looks for (or downloads) one.
    service = Service(executable_path=str(CHROMEDRIVER), log_output=str(log))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


def _lines(driver: Any) -> set[str]:
    """The visible text of the page, one entry per rendered line."""
    from selenium.webdriver.common.by import By

    return {line.strip() for line in driver.find_element(By.TAG_NAME, "body").text.splitlines()}


def _wait(driver: Any, condition: Callable[[Any], Any], what: str, server_log: Path) -> Any:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, PAGE_WAIT_S, poll_frequency=0.25).until(condition)
    except TimeoutException:
        page = "\n".join(sorted(_lines(driver)))[:3000]
        pytest.fail(
            f"{driver.current_url}: {what} did not show within {PAGE_WAIT_S} s.\n"
            f"page text:\n{page}\nwebserver log:\n{_tail(server_log)}",
            pytrace=False,
        )


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width >= 800 and height >= 600, (path, width, height)
    assert len(data) > 20_000, f"{path} is suspiciously small ({len(data)} bytes)"


@pytest.mark.timeout(300)
def test_ui_shows_the_asset_chain_and_the_ingest_metadata(
    sample_replays: list[Path], tmp_path: Path
) -> None:
    _require_browser()
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    home = tmp_path / "home"
    env = _env(home)
    dagster_home = Path(env["DAGSTER_HOME"])
    dagster_home.mkdir(parents=True)
    # What the UI's "Join the Dagster community" dialog records once dismissed: without it the
    # dialog covers both screenshots (it only ever shows on 127.0.0.1 / localhost).
    (dagster_home / ".nux").mkdir()
    (dagster_home / ".nux" / "nux.yaml").write_text("seen: 1\n")

    folder = tmp_path / "replays" / "ui"
    folder.mkdir(parents=True)
    for path in sample_replays:
        shutil.copy(path, folder)
    ingest = subprocess.run(
        [str(BIN / "exphil"), "ingest", str(folder), "--batch", "ui"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert ingest.returncode == 0, ingest.stderr[-3000:] + ingest.stdout[-1000:]
    summary = json.loads(ingest.stdout.strip().splitlines()[-1])
    assert summary["success"] and summary["games"] == len(sample_replays), summary
    run_id = summary["run_id"]

    server_log = tmp_path / "webserver.log"
    lineage_png = tmp_path / "lineage.png"
    games_png = tmp_path / "games_metadata.png"
    with (
        _webserver(env, server_log) as base,
        _chromium(tmp_path / "chromium-profile", tmp_path / "chromedriver.log") as driver,
    ):
        # 1. The global asset lineage. With several asset groups the graph starts with every
        # group collapsed; Alt+E is the UI's own "Expand all groups" hotkey, and the expanded
        # groups land in the URL (?expanded=...), which tells whether the key press took.
        driver.get(f"{base}/asset-groups")
        _wait(driver, lambda d: "ingestion" in _lines(d), "the asset groups", server_log)

        pressed_at = [-1e9]

        def chain_listed(d: Any) -> bool:
            if set(CHAIN) <= _lines(d):
                return True
            # At most one press per 2 s, so a slow URL update cannot toggle the groups back.
            if "expanded=" not in d.current_url and time.monotonic() - pressed_at[0] > 2:
                ActionChains(d).key_down(Keys.ALT).send_keys("e").key_up(Keys.ALT).perform()
                pressed_at[0] = time.monotonic()
            return False

        _wait(driver, chain_listed, f"every asset of the chain {CHAIN}", server_log)
        nodes = driver.find_elements(By.XPATH, "//*[normalize-space()='policy_int8']")
        assert any(node.is_displayed() for node in nodes), "policy_int8 node is not visible"
        driver.save_screenshot(str(lineage_png))

        # 2. The games asset's page: its latest materialization's metadata, where the per-file
        # Markdown report renders as an HTML table: one <td> per replay name and the status
        # next to it (raw Markdown would show "| name | ok |" in one text node instead).
        driver.get(f"{base}/assets/games")
        names = [path.name for path in sample_replays]

        def file_table(d: Any) -> Any:
            cells = [
                d.find_elements(By.XPATH, f"//table//td[normalize-space()='{name}']")
                for name in names
            ]
            return all(cells) and cells[0][0]

        first_cell = _wait(driver, file_table, f"the per-file table with {names}", server_log)
        table = first_cell.find_element(By.XPATH, "ancestor::table[1]")
        headers = [th.text.strip() for th in table.find_elements(By.TAG_NAME, "th")]
        assert headers[:3] == ["file", "status", "frames"], headers
        for name in names:
            row = table.find_element(By.XPATH, f".//tr[td[normalize-space()='{name}']]")
            status = row.find_elements(By.TAG_NAME, "td")[1].text.strip()
            assert status == "ok", (name, status)
        # The "latest materialization" tag links to the very run `exphil ingest` made.
        _wait(
            driver,
            lambda d: d.find_elements(By.XPATH, f"//a[contains(@href, '/runs/{run_id}')]"),
            f"a link to run {run_id}",
            server_log,
        )
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", table)
        driver.save_screenshot(str(games_png))

    for png in (lineage_png, games_png):
        _assert_png(png)
