"""Ingesting a replay batch: each ``.slp`` file becomes a ``games`` row and its frames/items.

Files are parsed in a process pool (one worker per core by default); each worker streams one
file at a time and writes that game's Parquet itself, so memory stays flat whatever the batch
size. Every file lands atomically under a name derived from the game's content hash, which
makes re-running a batch idempotent and keeps readers from ever seeing a partial file.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from dagster import Config
from pydantic import Field

from exphil_pipeline.replays.batch_lock import batch_busy, batch_lock
from exphil_pipeline.replays.batches import ReplayBatch, list_replay_files
from exphil_pipeline.replays.claims import GameClaims
from exphil_pipeline.replays.frame_tables import (
    FRAMES_SCHEMA,
    ITEMS_SCHEMA,
    frames_table,
    items_table,
)
from exphil_pipeline.replays.game_validation import InvalidGame, validate_game
from exphil_pipeline.replays.games_table import (
    GameRecord,
    damaged_ports,
    describe_end,
    describe_start,
    games_table,
)
from exphil_pipeline.replays.reader import ReplayRejectedError, read_replay
from exphil_pipeline.storage.atomic import (
    StorageError,
    ensure_writable,
    remove_stale_temp_files,
    write_parquet_atomic,
)
from exphil_pipeline.storage.layout import TABLES, DataLayout

# Continuous floats compress best split into byte planes; everything else is low-cardinality
# and left to zstd, except the frame counter, which delta-encodes to almost nothing.
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
        # Only the game id repeats a long value on every row; zstd already packs the small
        # integer columns as tightly as a dictionary would, at a third less writing time.
        "use_dictionary": [n for n in ("game_id",) if n in names],
        "column_encoding": encodings,
        "write_statistics": [n for n in _KEY_STATS if n in names],
        # One page per column for a whole game: fewer page headers to write (~15% faster).
        "data_page_size": 4 << 20,
        # Parquet's own logical types already give back every contract type exactly; the
        # serialized Arrow schema would add ~3 KB to each file (8% of the corpus' output).
        "store_schema": False,
    }


class IngestSettings(Config):
    """How a batch is parsed and written: the one config of the ingestion stage."""

    workers: int = Field(
        default=0, ge=0, description="Parser processes; 0 = one per core, 1 = in-process."
    )
    compression_level: int = Field(
        default=1,
        ge=1,
        le=22,
        description=(
            "zstd level of the Parquet files (1: a fifth less writing work than 3, measured, "
            "for 2% more bytes)."
        ),
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
    owner = _claim(layout, game_id, task.batch)
    if owner != task.batch:
        return FileOutcome(task.path, game_id, None, owner)
    record = GameRecord(game_id, str(task.path), len(data), status="ok")
    began = time.perf_counter()
    frames_path = layout.game_file("frames", task.batch, game_id)
    items_path = layout.game_file("items", task.batch, game_id)
    try:
        parsed = read_replay(task.path, data)
    except ReplayRejectedError as rejected:
        return _quarantined(task, game_id, record, rejected.reason, began)

    if parsed.repaired:
        record.status, record.error = "repaired", "; ".join(parsed.problems)
    try:
        describe_start(record, parsed.start, parsed.metadata)
        describe_end(record, parsed.end, parsed.end_method_code)
        frames = frames_table(game_id, parsed.frames, parsed.slot_updates)
        span = validate_game(frames, record.stage)
        items = items_table(game_id, parsed.frames)
    except InvalidGame as invalid:
        return _quarantined(task, game_id, record, f"impossible value: {invalid}", began)
    except (ValueError, TypeError, KeyError, IndexError, pa.ArrowException) as error:
        # Values peppi accepted that break a table's contract: they cost this game only.
        reason = f"unreadable values: {type(error).__name__}: {error}"
        return _quarantined(task, game_id, record, reason, began)
    record.frame_count, record.first_frame, record.last_frame = span.count, span.first, span.last
    record.rollback_frames = len(parsed.frames) - span.count
    record.damaged_ports = damaged_ports(frames)
    record.frames_rows, record.items_rows = frames.num_rows, items.num_rows
    record.output_bytes = write_parquet_atomic(
        frames, frames_path, **parquet_options(FRAMES_SCHEMA, task.compression_level)
    )
    if items.num_rows:
        record.output_bytes += write_parquet_atomic(
            items, items_path, **parquet_options(ITEMS_SCHEMA, task.compression_level)
        )
    record.parse_seconds = time.perf_counter() - began
    return FileOutcome(task.path, game_id, record, owner)


def _claim(layout: DataLayout, game_id: str, batch: str) -> str:
    """The batch that owns ``game_id``: the first to claim it, unless that claim is stale (its
    batch neither publishes the game nor is being ingested: the run that claimed it was killed
    before publishing), in which case ``batch`` takes it over."""
    claims = GameClaims(layout.claims_dir)
    owner = claims.claim(game_id, batch)
    if owner == batch or batch_busy(layout, owner) or _publishes(layout, owner, game_id):
        return owner
    claims.take_over(game_id, batch)
    return batch


def _publishes(layout: DataLayout, batch: str, game_id: str) -> bool:
    path = layout.games_file(batch)
    if not path.exists():
        return False
    listed = pq.read_table(path, columns=["game_id"]).column("game_id")
    return bool(pc.any(pc.equal(listed, game_id)).as_py())


def _quarantined(
    task: FileTask, game_id: str, record: GameRecord, reason: str, began: float
) -> FileOutcome:
    """The outcome of a game that lands no frames: its files (if an earlier run wrote any)
    are removed once the new games table no longer lists them."""
    record.status, record.error = "quarantined", reason
    record.parse_seconds = time.perf_counter() - began
    return FileOutcome(task.path, game_id, record, task.batch)


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


def _pool(workers: int) -> ProcessPoolExecutor:
    # spawn: safe inside multi-threaded hosts (Dagster run workers, the webserver).
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def _isolated(task: FileTask) -> FileOutcome:
    """Run one task in a process of its own; if that process dies too, the file is what
    kills the parser, and it is quarantined instead of taking the batch down."""
    with _pool(1) as pool:
        try:
            return pool.submit(ingest_file, task).result()
        except BrokenProcessPool:
            data = task.path.read_bytes()
            game_id = content_game_id(data)
            owner = _claim(DataLayout(task.home), game_id, task.batch)
            record = GameRecord(game_id, str(task.path), len(data), status="quarantined")
            if owner != task.batch:
                return FileOutcome(task.path, game_id, None, owner)
            reason = "the parser process died reading this file (crash or killed)"
            return _quarantined(task, game_id, record, reason, time.perf_counter())


def _run_tasks(tasks: list[FileTask], workers: int) -> Iterator[FileOutcome]:
    """Outcomes in task order. At most ``workers`` tasks are in flight, so when a worker dies
    (a parser crash, an OOM kill, ``kill -9``) the suspects are those few: each is re-run
    alone and the rest of the batch goes on in a fresh pool."""
    if workers == 1:
        yield from map(ingest_file, tasks)
        return
    queue = deque(range(len(tasks)))
    outcomes: dict[int, FileOutcome] = {}
    inflight: dict[Future, int] = {}
    emitted = 0
    pool = _pool(workers)
    try:
        while queue or inflight:
            while queue and len(inflight) < workers:
                index = queue.popleft()
                inflight[pool.submit(ingest_file, tasks[index])] = index
            done, _ = wait(inflight, return_when=FIRST_COMPLETED)
            broken = [inflight.pop(f) for f in done if isinstance(f.exception(), BrokenProcessPool)]
            for future in done & inflight.keys():
                outcomes[inflight.pop(future)] = future.result()
            if broken:
                suspects = sorted(broken + list(inflight.values()))
                inflight.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                pool = _pool(workers)
                outcomes.update({index: _isolated(tasks[index]) for index in suspects})
            while emitted in outcomes:
                yield outcomes.pop(emitted)
                emitted += 1
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


# games.parquet metadata: ids the publication dropped from the batch, whose claims are released
# after it is written. A run killed in between leaves them for the next run to release.
_DROPPED_KEY = b"exphil.dropped_game_ids"


def _previous_game_ids(layout: DataLayout, batch: str) -> set[str]:
    """The games the batch's last publication listed, plus those it dropped whose claims the
    batch still holds (the run that published it was killed before releasing them)."""
    path = layout.games_file(batch)
    if not path.exists():
        return set()
    table = pq.read_table(path, columns=["game_id"])
    dropped = json.loads((table.schema.metadata or {}).get(_DROPPED_KEY, b"[]"))
    owners = GameClaims(layout.claims_dir)
    held = {g for g in dropped if owners.owner(g) == batch}
    return set(table.column("game_id").to_pylist()) | held


def _remove_unlisted_game_files(layout: DataLayout, batch: str, games: list[GameRecord]) -> None:
    """Delete frames and items files that the batch's games table does not vouch for: those
    of games gone from the folder, now quarantined, or left by a run that was killed; and the
    temp files of parser workers killed mid-write during this run (none is writing now)."""
    keep = {
        "frames": {g.game_id for g in games if g.status != "quarantined"},
        "items": {g.game_id for g in games if g.status != "quarantined" and g.items_rows},
    }
    for table, wanted in keep.items():
        folder = layout.table_partition(table, batch)
        if folder.is_dir():
            for path in folder.glob("*.parquet"):
                if path.stem not in wanted:
                    path.unlink(missing_ok=True)
            remove_stale_temp_files(folder)


def ingest_batch(
    batch: ReplayBatch,
    layout: DataLayout,
    settings: IngestSettings | None = None,
    progress: ProgressCallback | None = None,
    files: Iterable[Path] | None = None,
) -> BatchResult:
    """Ingest every ``.slp`` file of ``batch`` and (re)write its partition of each table.

    Publication is by the games table: a game's frames and items become visible to readers
    (the DuckDB views, ``training_set``) only once ``games.parquet`` lists it, and that file
    is written last, atomically. A run killed at any point leaves the previous publication
    intact; the next run finishes the batch and removes what the killed one left behind.
    """
    began = time.perf_counter()
    settings = settings or IngestSettings()
    paths = list(files) if files is not None else list_replay_files(batch.folder)
    with batch_lock(layout, batch.name):
        for table in TABLES:
            folder = layout.table_partition(table, batch.name)
            ensure_writable(folder)
            remove_stale_temp_files(folder)
        previous = _previous_game_ids(layout, batch.name)
        tasks = [FileTask(p, batch.name, layout.home, settings.compression_level) for p in paths]
        result = BatchResult(batch.name, [])
        by_game: dict[str, GameRecord] = {}
        try:
            outcomes = _run_tasks(tasks, settings.worker_count(len(tasks)))
            for done, outcome in enumerate(outcomes, 1):
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
            dropped = sorted(previous - set(by_game))
            table = games_table(result.games).replace_schema_metadata(
                {_DROPPED_KEY: json.dumps(dropped)}
            )
            write_parquet_atomic(table, layout.games_file(batch.name), compression="zstd")
        except OSError as error:
            if isinstance(error, StorageError):
                raise
            raise StorageError(
                f"writing batch {batch.name!r} under {layout.home} failed: {error}; nothing of "
                "this run is visible to readers. Free space or fix permissions, then re-run"
            ) from error
        _remove_unlisted_game_files(layout, batch.name, result.games)
        claims = GameClaims(layout.claims_dir)
        for game_id in dropped:
            claims.release(game_id, batch.name)
    result.seconds = time.perf_counter() - began
    return result
