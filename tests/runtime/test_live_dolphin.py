"""Opt-in: a real Slippi Dolphin game (set EXPHIL_DOLPHIN and EXPHIL_ISO to run it).

The player goes through the menus against a level-1 CPU, must report the game's start (which
includes the in-game character check), and must shut Dolphin down cleanly on Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.runtime.conftest import ExportedPolicy

PLAY_SCRIPT = Path(sys.executable).parent / "exphil-play"
GAME_START_TIMEOUT_S = 120


@pytest.fixture
def dolphin_and_iso() -> tuple[str, str]:
    dolphin, iso = os.environ.get("EXPHIL_DOLPHIN"), os.environ.get("EXPHIL_ISO")
    if not dolphin or not iso:
        pytest.skip("set EXPHIL_DOLPHIN and EXPHIL_ISO to play a real game in Dolphin")
    return dolphin, iso


@pytest.mark.timeout(GAME_START_TIMEOUT_S + 60)
def test_plays_a_cpu_and_stops_on_ctrl_c(
    dolphin_and_iso: tuple[str, str], mlp_artifact: ExportedPolicy
) -> None:
    dolphin, iso = dolphin_and_iso
    command = [
        str(PLAY_SCRIPT),
        "--artifact", str(mlp_artifact.path),
        "--dolphin", dolphin,
        "--iso", iso,
        "--opponent", "cpu:1",
        "--seed", "0",
    ]  # fmt: skip
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    log: list[str] = []
    deadline = time.monotonic() + GAME_START_TIMEOUT_S
    try:
        assert process.stderr is not None
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            log.append(line)
            if "game 1 started" in line:
                break
        assert any("game 1 started" in line for line in log), "".join(log)
        time.sleep(5)  # a few seconds of play
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0, "".join(log)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
