"""Where every file of the pipeline lives under one data root.

The root is ``EXPHIL_HOME`` (default ``./data``). Everything below it is plain files in
hive-style folders, so DuckDB and Polars read them directly and a cluster only needs the root
on shared storage. No other module builds a path under the root by hand: they all ask
:class:`DataLayout` (ingest tables, bookkeeping) or :class:`ExperimentPaths` (one named
training run, from its training set to its artifacts).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

HOME_ENV = "EXPHIL_HOME"
REPLAYS_ENV = "EXPHIL_REPLAYS"
DEFAULT_HOME = "data"
DEFAULT_EXPERIMENT = "default"
# The ingest tables, each hive-partitioned by batch.
TABLES = ("games", "frames", "items")

# Batch and experiment names become folder names and Dagster partition keys.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_name(name: str, what: str, example: str) -> str:
    """``name`` if it can name folders and a partition, else a ValueError saying the rule."""
    if not SAFE_NAME.match(name):
        raise ValueError(
            f"invalid {what} {name!r}: use 1-128 letters, digits, '_', '.' or '-', starting "
            f"with a letter or digit ({example})"
        )
    return name


def check_experiment_name(name: str) -> str:
    return check_name(name, "experiment name", "e.g. 'mewtwo-gru-d18'")


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

    @property
    def sample_replays_dir(self) -> Path:
        """Where ``exphil demo`` writes generated sample replays (one batch folder)."""
        return self.home / "sample_replays" / "sample"

    @property
    def matches_dir(self) -> Path:
        """The ``matches`` table: one Parquet file per ``exphil arena`` run."""
        return self.home / "matches"

    def matches_file(self, run_id: str) -> Path:
        """One arena run's file (``run_id`` as ``exphil_pipeline.evaluation.matches`` makes it)."""
        check_name(run_id, "arena run id", "e.g. '20260101T120000Z-1a2b3c4d'")
        return self.matches_dir / f"{run_id}.parquet"

    @property
    def artifacts_dir(self) -> Path:
        """One folder per experiment (:attr:`ExperimentPaths.artifacts`), scanned by the ladder."""
        return self.home / "artifacts"

    def table_partition(self, table: str, batch: str) -> Path:
        """The hive partition folder of ``table`` (games, frames or items) for ``batch``."""
        return self.home / table / f"batch={batch}"

    def games_file(self, batch: str) -> Path:
        """The ``games`` table of ``batch`` (one file per batch)."""
        return self.table_partition("games", batch) / "games.parquet"

    def game_file(self, table: str, batch: str, game_id: str) -> Path:
        """One game's Parquet file of ``table`` (frames or items) in ``batch``."""
        return self.table_partition(table, batch) / f"{game_id}.parquet"

    def experiment(self, name: str) -> ExperimentPaths:
        return ExperimentPaths(self.home, check_experiment_name(name))


@dataclass(frozen=True)
class ExperimentPaths:
    """Every folder and file of one experiment (a named training run); each stage's folder
    is named after the experiment, so its lineage reads straight off the tree."""

    home: Path
    name: str

    @property
    def training_set(self) -> Path:
        return self.home / "training_sets" / self.name

    @property
    def teacher(self) -> Path:
        """``last.pt``, ``best.pt``, ``history.json``, ``curves.png``, ``tensorboard/``."""
        return self.home / "teachers" / self.name

    @property
    def teacher_best(self) -> Path:
        return self.teacher / "best.pt"

    @property
    def teacher_last(self) -> Path:
        return self.teacher / "last.pt"

    @property
    def teacher_history(self) -> Path:
        return self.teacher / "history.json"

    @property
    def teacher_curves(self) -> Path:
        return self.teacher / "curves.png"

    @property
    def teacher_tensorboard(self) -> Path:
        return self.teacher / "tensorboard"

    @property
    def rl_teacher(self) -> Path:
        """The reinforcement-learned teacher: ``best.pt``, ``last.pt`` (teacher format),
        ``history.json``, ``curves.png``, ``snapshots/`` (self-play opponents)."""
        return self.home / "rl_teachers" / self.name

    @property
    def rl_teacher_best(self) -> Path:
        return self.rl_teacher / "best.pt"

    @property
    def rl_teacher_last(self) -> Path:
        return self.rl_teacher / "last.pt"

    @property
    def rl_teacher_history(self) -> Path:
        return self.rl_teacher / "history.json"

    @property
    def rl_teacher_curves(self) -> Path:
        return self.rl_teacher / "curves.png"

    def rl_snapshot(self, version: int) -> Path:
        return self.rl_teacher / "snapshots" / f"v{version:06d}.pt"

    def teacher_checkpoint(self, kind: str) -> Path:
        """The best checkpoint of the ``imitation`` or the ``rl`` teacher."""
        paths = {"imitation": self.teacher_best, "rl": self.rl_teacher_best}
        if kind not in paths:
            raise ValueError(f"teacher {kind!r}: use one of {sorted(paths)}")
        return paths[kind]

    @property
    def soft_labels(self) -> Path:
        return self.home / "soft_labels" / self.name

    @property
    def student(self) -> Path:
        return self.home / "students" / self.name

    @property
    def student_checkpoint(self) -> Path:
        return self.student / "student.pt"

    @property
    def artifacts(self) -> Path:
        return self.home / "artifacts" / self.name

    @property
    def policy_fp32(self) -> Path:
        return self.artifacts / "policy_fp32.onnx"

    @property
    def policy_int8(self) -> Path:
        return self.artifacts / "policy_int8.onnx"

    @property
    def teacher_onnx(self) -> Path:
        return self.artifacts / "teacher_fp32.onnx"

    def int8_candidate(self, method: str) -> Path:
        """The INT8 candidate quantized by ``method`` (one of
        ``exphil_pipeline.artifacts.quantization.METHODS``)."""
        suffix = {"static_qdq": "qdq"}.get(method, method)
        return self.artifacts / f"policy_int8_{suffix}.onnx"

    @property
    def evaluation_table(self) -> Path:
        return self.artifacts / "evaluation.md"

    @property
    def main_stick_confusion(self) -> Path:
        return self.artifacts / "main_stick_confusion.png"


def replay_root_from_env() -> Path | None:
    """The folder whose subfolders are replay batches (``$EXPHIL_REPLAYS``), if set."""
    value = os.environ.get(REPLAYS_ENV)
    return Path(value).resolve() if value else None
