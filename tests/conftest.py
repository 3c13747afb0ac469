"""Shared fixtures: the real replay corpus (opt-in through EXPHIL_REAL_REPLAYS)."""

from __future__ import annotations

import csv
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REAL_REPLAYS_ENV = "EXPHIL_REAL_REPLAYS"


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (`-n 2` in pyproject's addopts) two workers share CI's 2 cores: one
    torch thread each, for the subprocesses they start too (CLI runs, torchrun ranks). A
    second thread per worker only oversubscribes the cores, and the models here are so small
    that a busy thread pool costs more than the ops it takes over."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(1)


@dataclass(frozen=True)
class CatalogEntry:
    """One row of the corpus' CATALOG.tsv."""

    file: str
    sha256: str
    bytes: int
    parses: bool
    players: str
    error: str


def real_replay_dir() -> Path | None:
    """The real replay folder, None when not configured; fails loudly when misconfigured."""
    value = os.environ.get(REAL_REPLAYS_ENV)
    if not value:
        return None
    folder = Path(value)
    if not (folder / "CATALOG.tsv").is_file():
        pytest.fail(f"{REAL_REPLAYS_ENV}={value} is set but holds no CATALOG.tsv", pytrace=False)
    return folder.resolve()


@pytest.fixture(scope="session")
def sample_replays(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three short generated games (no real replays needed): copy them where a test needs."""
    from exphil_pipeline.simulator.sample_replays import write_sample_replays

    return write_sample_replays(tmp_path_factory.mktemp("samples"), games=3, frames=600, seed=7)


@pytest.fixture(scope="session")
def real_replays() -> Path:
    folder = real_replay_dir()
    if folder is None:
        pytest.skip(f"set {REAL_REPLAYS_ENV} to the real replay folder to run this test")
    return folder


@pytest.fixture(scope="session")
def catalog(real_replays: Path) -> list[CatalogEntry]:
    with open(real_replays / "CATALOG.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [
        CatalogEntry(
            r["file"],
            r["sha256"],
            int(r["bytes"]),
            r["parses"] == "yes",
            r["players(port:character:type)"],
            r["error"],
        )
        for r in rows
    ]


@dataclass(frozen=True)
class IngestedStore:
    """A data root holding one ingested batch, with its per-game records."""

    home: Path
    batch: str
    games: list


def _ingest_into(home: Path, folder: Path, batch: str) -> IngestedStore:
    from exphil_pipeline.replays.batches import ReplayBatch
    from exphil_pipeline.replays.ingest import IngestSettings, ingest_batch
    from exphil_pipeline.storage.layout import DataLayout

    result = ingest_batch(ReplayBatch(batch, folder), DataLayout(home), IngestSettings(workers=2))
    return IngestedStore(home, batch, result.games)


@pytest.fixture(scope="session")
def real_store(real_replays: Path, tmp_path_factory: pytest.TempPathFactory) -> IngestedStore:
    """The whole real corpus ingested once per session into a scratch data root."""
    return _ingest_into(tmp_path_factory.mktemp("real-home"), real_replays, "real")


@pytest.fixture(scope="session")
def sample_store(
    sample_replays: list[Path], tmp_path_factory: pytest.TempPathFactory
) -> IngestedStore:
    """The generated sample games ingested once per session into a scratch data root."""
    return _ingest_into(tmp_path_factory.mktemp("sample-home"), sample_replays[0].parent, "samples")
