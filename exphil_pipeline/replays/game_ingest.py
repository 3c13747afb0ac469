"""One replay file into its ``games`` row and its game's Parquet files: what each ingestion
worker runs.

This module imports no Dagster (the batch-level settings and the pool live in
:mod:`exphil_pipeline.replays.ingest`): the fork server the workers are forked from imports
only this module. Dagster alone took ~1.4 s of the ~2.3 s that importing the batch-level
module takes, longer than one core needs to ingest 50 MB of replays.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from exphil_pipeline.replays.batch_lock import batch_busy
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
)
from exphil_pipeline.replays.reader import ReplayRejectedError, read_replay
from exphil_pipeline.storage.atomic import write_parquet_atomic
from exphil_pipeline.storage.layout import DataLayout

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
    owner = claim_game(layout, game_id, task.batch)
    if owner != task.batch:
        return FileOutcome(task.path, game_id, None, owner)
    record = GameRecord(game_id, str(task.path), len(data), status="ok")
    began = time.perf_counter()
    frames_path = layout.game_file("frames", task.batch, game_id)
    items_path = layout.game_file("items", task.batch, game_id)
    try:
        parsed = read_replay(task.path, data)
    except ReplayRejectedError as rejected:
        return quarantined_outcome(task, game_id, record, rejected.reason, began)

    if parsed.repaired:
        record.status, record.error = "repaired", "; ".join(parsed.problems)
    try:
        describe_start(record, parsed.start, parsed.metadata)
        describe_end(record, parsed.end, parsed.end_method_code)
        frames = frames_table(game_id, parsed.frames, parsed.slot_updates)
        span = validate_game(frames, record.stage)
        items = items_table(game_id, parsed.frames)
    except InvalidGame as invalid:
        return quarantined_outcome(task, game_id, record, f"impossible value: {invalid}", began)
    except (ValueError, TypeError, KeyError, IndexError, pa.ArrowException) as error:
        # Values peppi accepted that break a table's contract: they cost this game only.
        reason = f"unreadable values: {type(error).__name__}: {error}"
        return quarantined_outcome(task, game_id, record, reason, began)
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


def claim_game(layout: DataLayout, game_id: str, batch: str) -> str:
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


def quarantined_outcome(
    task: FileTask, game_id: str, record: GameRecord, reason: str, began: float
) -> FileOutcome:
    """The outcome of a game that lands no frames: its files (if an earlier run wrote any)
    are removed once the new games table no longer lists them."""
    record.status, record.error = "quarantined", reason
    record.parse_seconds = time.perf_counter() - began
    return FileOutcome(task.path, game_id, record, task.batch)
