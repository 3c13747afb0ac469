"""The Dagster side: code location, partitioned run with its checks, sensor, UI, CLI."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from dagster import DagsterInstance, SensorResult, build_sensor_context

from exphil_pipeline.definitions import build_definitions
from exphil_pipeline.orchestration.jobs import INGEST_JOB_NAME
from exphil_pipeline.orchestration.partitions import replay_batches
from exphil_pipeline.orchestration.resources import ExphilStorage, ReplayLibrary
from exphil_pipeline.orchestration.sensors import replay_batch_sensor
from exphil_pipeline.replays.batches import BatchRegistry
from exphil_pipeline.storage.layout import DataLayout

REPO = Path(__file__).resolve().parents[2]


def _env(home: Path, **extra: str) -> dict[str, str]:
    # The suite may run as `.venv/bin/python -m pytest` without an activated venv, so the
    # console scripts are found next to the interpreter rather than on the caller's PATH.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {
        **os.environ,
        "PATH": path,
        "EXPHIL_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
    }
    env.pop("EXPHIL_REPLAYS", None)
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    return {**env, **extra}


def test_code_location_validates(tmp_path: Path) -> None:
    result = subprocess.run(
        ["dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Validation successful" in result.stderr + result.stdout


def _copy_into(folder: Path, files: list[Path]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for path in files:
        shutil.copy(path, folder)


def test_partition_run_materializes_tables_and_passes_checks(
    sample_replays: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "replays" / "small"
    _copy_into(folder, sample_replays)
    monkeypatch.setenv("EXPHIL_HOME", str(tmp_path / "home"))
    layout = DataLayout.from_env()
    BatchRegistry(layout).register("small", folder)
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(replay_batches.name, ["small"])
    job = build_definitions().resolve_job_def(INGEST_JOB_NAME)
    result = job.execute_in_process(instance=instance, partition_key="small")
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {
        "frames_schema": True,
        "frame_ids_contiguous": True,
        "rows_per_game": True,
        "positions_in_bounds": True,
        "quarantined_share": True,
    }
    metadata = {
        tuple(e.asset_key.path): e.event_specific_data.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    assert metadata[("games",)]["games_ok"].value == 3
    assert metadata[("frames",)]["rows"].value > 0
    assert metadata[("frames",)]["frames_per_s"].value > 0
    assert f"| {sample_replays[0].name} | ok |" in metadata[("games",)]["files"].value
    assert len(list(layout.table_partition("frames", "small").glob("*.parquet"))) == 3


def test_sensor_registers_new_folders_once_per_content(
    sample_replays: list[Path], tmp_path: Path
) -> None:
    root = tmp_path / "replays"
    _copy_into(root / "week-1", sample_replays[:1])
    (root / "empty-folder").mkdir()
    storage = ExphilStorage(home=str(tmp_path / "home"))
    library = ReplayLibrary(root=str(root), settle_seconds=0)
    with DagsterInstance.ephemeral() as instance:
        context = build_sensor_context(
            instance=instance, resources={"storage": storage, "replay_library": library}
        )
        first = replay_batch_sensor(context)
        assert isinstance(first, SensorResult)
        assert first.dynamic_partitions_requests[0].partition_keys == ["week-1"]
        assert [r.partition_key for r in first.run_requests] == ["week-1"]
        assert storage.registry.resolve("week-1").folder == (root / "week-1").resolve()

        instance.add_dynamic_partitions(replay_batches.name, ["week-1"])
        same = replay_batch_sensor(context)
        assert same.dynamic_partitions_requests == []
        assert same.run_requests[0].run_key == first.run_requests[0].run_key

        shutil.copy(sample_replays[1], root / "week-1")
        grown = replay_batch_sensor(context)
        assert grown.run_requests[0].run_key != first.run_requests[0].run_key


def test_sensor_waits_for_a_folder_to_settle(sample_replays: list[Path], tmp_path: Path) -> None:
    root = tmp_path / "replays"
    _copy_into(root / "copying", sample_replays[:1])
    library = ReplayLibrary(root=str(root), settle_seconds=3600)
    with DagsterInstance.ephemeral() as instance:
        context = build_sensor_context(
            instance=instance,
            resources={
                "storage": ExphilStorage(home=str(tmp_path / "h")),
                "replay_library": library,
            },
        )
        assert replay_batch_sensor(context).run_requests == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.timeout(180)
def test_webserver_answers_graphql_listing_the_assets(tmp_path: Path) -> None:
    port = _free_port()
    server = subprocess.Popen(
        ["dagster-webserver", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO,
        env=_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    query = json.dumps({"query": "{ assetNodes { assetKey { path } } }"}).encode()
    try:
        deadline = time.monotonic() + 150
        while True:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/graphql", query, {"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(request, timeout=5) as response:
                    payload = json.load(response)
                nodes = payload["data"]["assetNodes"]
                if nodes:
                    break
            except (OSError, KeyError, TypeError):
                pass
            assert time.monotonic() < deadline, "webserver did not answer"
            time.sleep(1)
    finally:
        server.terminate()
        server.wait(timeout=30)
    keys = {"/".join(n["assetKey"]["path"]) for n in nodes}
    assert {"raw_replays", "games", "frames", "items"} <= keys


@pytest.mark.timeout(300)
def test_cli_ingest_prints_summary_and_sql_reads_it(
    sample_replays: list[Path], tmp_path: Path
) -> None:
    folder = tmp_path / "cli-batch"
    _copy_into(folder, sample_replays)
    env = _env(tmp_path / "home")
    run = subprocess.run(
        ["exphil", "ingest", str(folder), "--batch", "cli"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert summary["batch"] == "cli" and summary["games"] == 3 and summary["ok"] == 3
    assert all(summary["checks"].values())
    # The run is recorded in the instance the UI reads.
    with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        assert instance.get_run_by_id(summary["run_id"]) is not None

    query = "SELECT count(*) AS n FROM games"
    as_json = subprocess.run(
        ["exphil", "sql", query, "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(as_json.stdout) == [{"n": 3}]
    as_csv = subprocess.run(
        ["exphil", "sql", query, "--format", "csv"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert as_csv.stdout.splitlines() == ["n", "3"]
    bad = subprocess.run(
        ["exphil", "sql", "SELECT * FROM nope"], env=env, capture_output=True, text=True
    )
    assert bad.returncode == 2 and "nope" in bad.stderr


@pytest.mark.timeout(600)
def test_demo_runs_the_whole_chain_on_generated_replays(tmp_path: Path) -> None:
    env = _env(tmp_path / "home")
    run = subprocess.run(
        ["exphil", "demo", "--games", "12", "--frames", "1800"],
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert run.returncode == 0, run.stderr[-3000:] + run.stdout[-3000:]
    home = tmp_path / "home"
    for path in (
        "artifacts/demo/policy_int8.onnx",
        "artifacts/demo/policy_int8.json",
        "artifacts/demo/evaluation.md",
        "teachers/demo/best.pt",
        "students/demo/student.pt",
    ):
        assert (home / path).is_file(), path
    assert "pipe         well-formed" in run.stdout
    assert "| student INT8 |" in run.stdout
    assert '"int8_agrees_with_fp32": true' in run.stdout
