"""Processes that open the shared Dagster instance of a fresh home at the same moment."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

from exphil_pipeline.orchestration.instance import shared_instance
from exphil_pipeline.storage.layout import DataLayout

OPENERS = 4


def _open_at(home: str, start: float) -> None:
    os.environ["DAGSTER_HOME"] = home
    while time.time() < start:  # line the processes up so their storage setups overlap
        time.sleep(0.001)
    shared_instance(DataLayout(Path(home))).get_runs_count()


def test_processes_opening_a_fresh_instance_at_once_all_succeed(tmp_path: Path) -> None:
    # Unserialized, SQLite storage setup races: most of four openers die with
    # "table alembic_version already exists".
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    context = multiprocessing.get_context("fork")
    start = time.time() + 1
    openers = [context.Process(target=_open_at, args=(str(home), start)) for _ in range(OPENERS)]
    for opener in openers:
        opener.start()
    for opener in openers:
        opener.join(timeout=120)
    assert [opener.exitcode for opener in openers] == [0] * OPENERS
