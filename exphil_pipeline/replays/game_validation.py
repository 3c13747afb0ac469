"""Per-game validation: the values the partition checks guard, checked while a game is ingested.

A replay that parses can still hold garbage: a flipped bit in a position, a percent of 1e30, a
character id no game has. Such a game is quarantined on its own, with a reason naming the
field, frame, port and value, so the rest of its batch lands and passes every partition check.
The bounds are wide on purpose: they reject values no Melee game can produce, never unusual
play. Fields a replay's Slippi version does not record are null and never fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from exphil_pipeline.replays.partition_checks import POSITION_BOUND
from runtime.melee_ids import INTERNAL_CHARACTER_NAMES

# (low, high) inclusive, on rows where the character is present.
VALUE_RANGES: dict[str, tuple[float, float]] = {
    "x": (-POSITION_BOUND, POSITION_BOUND),
    "y": (-POSITION_BOUND, POSITION_BOUND),
    "percent": (0.0, 999.0),  # the game caps damage at 999%
    "shield": (0.0, 60.0),  # a full shield is 60
    "stocks": (0, 99),  # the most a stock match can be set to
    "action_state": (0, 0x3FF),  # real ids stop near 400; larger ones are corrupt bytes
}
# External stage ids run from the versus stages through the single-player ones (Break the
# Targets, 33-58) to the Home-Run Contest (84).
MAX_STAGE_ID = 84


class InvalidGame(ValueError):
    """A game whose frames hold a value no Melee game can produce."""


def _where(frames: pa.Table, row: int) -> str:
    port = frames.column("port")[row].as_py()
    follower = " (follower)" if frames.column("is_follower")[row].as_py() else ""
    return f"frame {frames.column('frame')[row].as_py()}, port {port}{follower}"


def _first(frames: pa.Table, bad: pa.ChunkedArray | pa.Array) -> int | None:
    """Index of the first true row of ``bad`` (nulls count as false)."""
    mask = np.asarray(pc.fill_null(bad, False).to_numpy(zero_copy_only=False), dtype=bool)
    hits = np.flatnonzero(mask)
    return int(hits[0]) if len(hits) else None


@cache
def _numpy_dtype(arrow_type: pa.DataType) -> np.dtype:
    return pa.array([], arrow_type).to_numpy().dtype


def _values(column: pa.ChunkedArray) -> np.ndarray:
    """The values of a fixed-width numeric column as stored, null rows included (whatever
    bytes they hold) and all-null chunks left out; no copy when the column is one chunk."""
    dtype = _numpy_dtype(column.type)
    chunks = [
        np.frombuffer(c.buffers()[1], dtype, len(c), c.offset * dtype.itemsize)
        for c in column.chunks
        if c.null_count < len(c)
    ]
    if len(chunks) == 1:
        return chunks[0]
    return np.concatenate(chunks) if chunks else np.empty(0, dtype)


# Every check first judges a whole column at once on its raw values (null rows included, so a
# pass is conclusive); only a column that fails is searched row by row, on present rows, for
# the value to report (a null row's stale bytes never fail a game).


def _check_finite(frames: pa.Table, present: pa.ChunkedArray, name: str) -> None:
    column = frames.column(name)
    values = _values(column)
    if len(values) == 0 or (np.isfinite(values.min()) and np.isfinite(values.max())):
        return
    row = _first(frames, pc.and_(present, pc.invert(pc.is_finite(column))))
    if row is not None:
        value = column[row].as_py()
        raise InvalidGame(f"{name} = {value} at {_where(frames, row)}: not a number")


def _check_range(
    frames: pa.Table, present: pa.ChunkedArray, name: str, low: float, high: float
) -> None:
    column = frames.column(name)
    values = _values(column)
    if len(values) == 0 or (values.min() >= low and values.max() <= high):
        return
    outside = pc.or_(pc.less(column, low), pc.greater(column, high))
    row = _first(frames, pc.and_(present, outside))
    if row is not None:
        raise InvalidGame(
            f"{name} = {column[row].as_py()} at {_where(frames, row)}: outside [{low:g}, {high:g}]"
        )


_KNOWN_CHARACTERS = np.zeros(256, dtype=bool)
_KNOWN_CHARACTERS[sorted(INTERNAL_CHARACTER_NAMES)] = True


def _check_characters(frames: pa.Table, present: pa.ChunkedArray) -> None:
    characters = frames.column("character")
    seen = np.bincount(_values(characters), minlength=256) > 0
    if not (seen & ~_KNOWN_CHARACTERS).any():
        return
    known = pa.array(sorted(INTERNAL_CHARACTER_NAMES), pa.uint8())
    row = _first(frames, pc.and_(present, pc.invert(pc.is_in(characters, known))))
    if row is not None:
        raise InvalidGame(
            f"character = {characters[row].as_py()} at {_where(frames, row)}: not a Melee "
            "character id"
        )


def _check_values(frames: pa.Table) -> None:
    present = frames.column("present")
    for field in frames.schema:
        if pa.types.is_floating(field.type):
            _check_finite(frames, present, field.name)
    for name, (low, high) in VALUE_RANGES.items():
        _check_range(frames, present, name, low, high)
    _check_characters(frames, present)


@dataclass(frozen=True)
class FrameSpan:
    """The frame ids a valid game covers: every id from ``first`` to ``last``, ``count`` of
    them."""

    first: int
    last: int
    count: int


def _check_shape(frames: pa.Table) -> FrameSpan:
    frame_ids = _values(frames.column("frame"))
    first, last = int(frame_ids.min()), int(frame_ids.max())
    if last - first < len(frame_ids):
        distinct = int(np.count_nonzero(np.bincount(frame_ids - first)))
    else:  # wider than the rows: a gap for sure, and too wide to count by offset
        distinct = len(np.unique(frame_ids))
    if distinct != last - first + 1:
        raise InvalidGame(
            f"frame ids run from {first} to {last} but only {distinct} are present: a gap"
        )
    ports = _values(frames.column("port")).astype(np.int64)
    followers = frames.column("is_follower").to_numpy()
    slots = int(np.count_nonzero(np.bincount(ports * 2 + followers)))
    if frames.num_rows != distinct * slots:
        raise InvalidGame(
            f"{frames.num_rows} rows for {distinct} frames x {slots} character slots "
            f"(expected {distinct * slots})"
        )
    return FrameSpan(first, last, distinct)


def validate_game(frames: pa.Table, stage: int | None) -> FrameSpan:
    """Raise :class:`InvalidGame` naming the first impossible value of a game's frames;
    return the frame ids the game covers."""
    if stage is not None and stage > MAX_STAGE_ID:
        raise InvalidGame(f"stage = {stage} in the game start: not a Melee stage id")
    if frames.num_rows == 0:
        raise InvalidGame("the game has no frame rows")
    span = _check_shape(frames)
    _check_values(frames)
    return span
