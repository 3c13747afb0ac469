"""Where every file of the pipeline lives under one data root.

The root is ``EXPHIL_HOME`` (default ``./data``). Everything below it is plain files in
hive-style folders, so DuckDB and Polars read them directly and a cluster only needs the root
on shared storage.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "EXPHIL_HOME"
REPLAYS_ENV = "EXPHIL_REPLAYS"
DEFAULT_HOME = "data"


@dataclass(frozen=True)
class DataLayout:
    """Paths of the pipeline's tables and bookkeeping under ``home``."""

    home: Path

    @classmethod
    def from_env(cls) -> DataLayout:
        """The layout rooted at ``$EXPHIL_HOME`` (or ``./data``), as an absolute path."""
        return cls(Path(os.environ.get(HOME_ENV, DEFAULT_HOME)).resolve())

    @property
    def games_dir(self) -> Path:
        return self.home / "games"

    @property
    def frames_dir(self) -> Path:
        return self.home / "frames"

    @property
    def items_dir(self) -> Path:
        return self.home / "items"

    @property
    def batches_dir(self) -> Path:
        """One JSON file per registered replay batch: its name and source folder."""
        return self.home / "batches"

    @property
    def claims_dir(self) -> Path:
        """One file per game id naming the batch that owns it (cross-batch dedup)."""
        return self.home / "claims"

    @property
    def duckdb_path(self) -> Path:
        return self.home / "exphil.duckdb"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    def table_partition(self, table: str, batch: str) -> Path:
        """The hive partition folder of ``table`` (games, frames or items) for ``batch``."""
        return self.home / table / f"batch={batch}"


def replay_root_from_env() -> Path | None:
    """The folder whose subfolders are replay batches (``$EXPHIL_REPLAYS``), if set."""
    value = os.environ.get(REPLAYS_ENV)
    return Path(value).resolve() if value else None
