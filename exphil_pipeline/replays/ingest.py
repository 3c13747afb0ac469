"""Ingesting a replay batch: each ``.slp`` file becomes a ``games`` row and its frames/items.

Files are parsed in a process pool (one worker per core by default); each worker streams one
file at a time and writes that game's Parquet itself, so memory stays flat whatever the batch
size. Every file lands atomically under a name derived from the game's content hash, which
makes re-running a batch idempotent and keeps readers from ever seeing a partial file.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dagster import Config
from pydantic import Field

from exphil_pipeline.replays.batches import ReplayBatch, list_replay_files
from exphil_pipeline.replays.claims import GameClaims
from exphil_pipeline.replays.frame_tables import (
    FRAMES_SCHEMA,
    ITEMS_SCHEMA,
    frames_table,
    items_table,
)
from exphil_pipeline.replays.games_table import (
    GameRecord,
    describe_end,
    describe_start,
    games_table,
)
from exphil_pipeline.replays.reader import ReplayRejectedError, read_replay
from exphil_pipeline.storage.atomic import remove_stale_temp_files, write_parquet_atomic
from exphil_pipeline.storage.layout import DataLayout

# Continuous floats compress best split into byte planes; everything else is low-cardinality
# (dictionary + RLE) except the frame counter, which delta-encodes to almost nothing.
_BYTE_SPLIT = {
    "x",
    "y",
    "action_frame",
    "hitlag",
    "hitstun_misc",
    "vel_self_x_air",
    "vel_self_y",
    "vel_knockback_x",
    "vel_knockback_y",
    "vel_self_x_ground",
}
_KEY_STATS = ["game_id", "frame", "port", "is_follower"]


def parquet_options(schema: pa.Schema, compression_level: int) -> dict[str, object]:
    """Writer options for a per-game table: encodings per column, stats on keys only."""
    names = schema.names
    encodings = {"frame": "DELTA_BINARY_PACKED"}
    encodings.update({n: "BYTE_STREAM_SPLIT" for n in names if n in _BYTE_SPLIT})
    return {
        "compression": "zstd",
        "compression_level": compression_level,
        "use_dictionary": [n for n in names if n not in encodings],
        "column_encoding": encodings,
        "write_statistics": [n for n in _KEY_STATS if n in names],
    }


class IngestSettings(Config):
    """How a batch is parsed and written: the one config of the ingestion stage."""

    workers: int = Field(
        default=0, ge=0, description="Parser processes; 0 = one per core, 1 = in-process."
    )
    compression_level: int = Field(
        default=3,
        ge=1,
        le=22,
        description="zstd level of the Parquet files (3 is the measured speed/size sweet spot).",
    )
    max_quarantine_share: float = Field(
        default=0.10, ge=0.0, le=1.0, description="Warn when more files than this are quarantined."
    )

    def worker_count(self, files: int) -> int:
        wanted = self.workers or os.cpu_count() or 1
        return max(1, min(wanted, files))


@dataclass(frozen=True)
class FileTask:
    path: Path
    batch: str
    home: Path
    compression_level: int


@dataclass
class FileOutcome:
    """What happened to one file: its row (None when another batch owns the game)."""

    path: Path
    game_id: str
    record: GameRecord | None
    owner: str


def content_game_id(data: bytes) -> str:
    """A game's id is the SHA-256 of its file's bytes: same bytes, same game."""
    return hashlib.sha256(data).hexdigest()


def ingest_file(task: FileTask) -> FileOutcome:
    """Parse one replay and land its frames and items; never raises for bad replay data."""
    layout = DataLayout(task.home)
    data = task.path.read_bytes()
    game_id = content_game_id(data)
    owner = GameClaims(layout.claims_dir).claim(game_id, task.batch)
    if owner != task.batch:
        return FileOutcome(task.path, game_id, None, owner)
    record = GameRecord(game_id, str(task.path), len(data), status="ok")
    began = time.perf_counter()
    frames_path = layout.game_file("frames", task.batch, game_id)
    items_path = layout.game_file("items", task.batch, game_id)
    try:
        parsed = read_replay(task.path)
    except ReplayRejectedError as rejected:
        record.status, record.error = "quarantined", rejected.reason
        frames_path.unlink(missing_ok=True)
        items_path.unlink(missing_ok=True)
        record.parse_seconds = time.perf_counter() - began
        return FileOutcome(task.path, game_id, record, owner)

    describe_start(record, parsed.start, parsed.metadata)
    describe_end(record, parsed.end, parsed.end_method_code)
    if parsed.repaired:
        record.status, record.error = "repaired", "; ".join(parsed.problems)
    frames = frames_table(game_id, parsed.frames, parsed.slot_updates)
    items = items_table(game_id, parsed.frames)
    frame_ids = frames.column("frame")
    unique = pc.count_distinct(frame_ids).as_py()
    record.frame_count = unique
    record.first_frame = pc.min(frame_ids).as_py()
    record.last_frame = pc.max(frame_ids).as_py()
    record.rollback_frames = len(parsed.frames) - unique
    record.frames_rows, record.items_rows = frames.num_rows, items.num_rows
    record.output_bytes = write_parquet_atomic(
        frames, frames_path, **parquet_options(FRAMES_SCHEMA, task.compression_level)
    )
    if items.num_rows:
        record.output_bytes += write_parquet_atomic(
            items, items_path, **parquet_options(ITEMS_SCHEMA, task.compression_level)
        )
    else:
        items_path.unlink(missing_ok=True)
    record.parse_seconds = time.perf_counter() - began
    return FileOutcome(task.path, game_id, record, owner)


@dataclass
class BatchResult:
    """The outcome of ingesting one batch, with the figures reported as metadata."""

    batch: str
    games: list[GameRecord]
    duplicates_elsewhere: dict[str, str] = field(default_factory=dict)
    input_bytes: int = 0
    output_bytes: int = 0
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for g in self.games if g.status == status)

    @property
    def frames(self) -> int:
        return sum(g.frame_count or 0 for g in self.games)

    @property
    def rows(self) -> int:
        return sum(g.frames_rows for g in self.games)

    @property
    def items_rows(self) -> int:
        return sum(g.items_rows for g in self.games)


ProgressCallback = Callable[[int, int, FileOutcome], None]


def _run_tasks(tasks: list[FileTask], workers: int) -> Iterator[FileOutcome]:
    if workers == 1:
        yield from map(ingest_file, tasks)
        return
    # spawn: safe inside multi-threaded hosts (Dagster run workers, the webserver).
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        yield from pool.map(ingest_file, tasks, chunksize=1)


def _previous_game_ids(layout: DataLayout, batch: str) -> set[str]:
    path = layout.games_file(batch)
    if not path.exists():
        return set()
    return set(pq.read_table(path, columns=["game_id"]).column("game_id").to_pylist())


def _remove_stale_game_files(layout: DataLayout, batch: str, keep: set[str]) -> None:
    for table in ("frames", "items"):
        folder = layout.table_partition(table, batch)
        remove_stale_temp_files(folder)
        if folder.is_dir():
            for path in folder.glob("*.parquet"):
                if path.stem not in keep:
                    path.unlink(missing_ok=True)


def ingest_batch(
    batch: ReplayBatch,
    layout: DataLayout,
    settings: IngestSettings | None = None,
    progress: ProgressCallback | None = None,
    files: Iterable[Path] | None = None,
) -> BatchResult:
    """Ingest every ``.slp`` file of ``batch`` and (re)write its partition of each table."""
    began = time.perf_counter()
    settings = settings or IngestSettings()
    paths = list(files) if files is not None else list_replay_files(batch.folder)
    previous = _previous_game_ids(layout, batch.name)
    remove_stale_temp_files(layout.table_partition("games", batch.name))
    tasks = [FileTask(p, batch.name, layout.home, settings.compression_level) for p in paths]
    by_game: dict[str, GameRecord] = {}
    result = BatchResult(batch.name, [])
    for done, outcome in enumerate(_run_tasks(tasks, settings.worker_count(len(tasks))), 1):
        result.input_bytes += outcome.path.stat().st_size
        if outcome.record is None:
            result.duplicates_elsewhere[str(outcome.path)] = outcome.owner
        elif outcome.game_id in by_game:
            by_game[outcome.game_id].duplicate_paths.append(str(outcome.path))
        else:
            by_game[outcome.game_id] = outcome.record
        if progress is not None:
            progress(done, len(tasks), outcome)
    result.games = sorted(by_game.values(), key=lambda r: r.source_path)
    result.output_bytes = sum(g.output_bytes for g in result.games)
    write_parquet_atomic(
        games_table(result.games),
        layout.games_file(batch.name),
        compression="zstd",
    )
    kept = set(by_game)
    _remove_stale_game_files(layout, batch.name, kept)
    claims = GameClaims(layout.claims_dir)
    for game_id in previous - kept:
        claims.release(game_id, batch.name)
    result.seconds = time.perf_counter() - began
    return result
