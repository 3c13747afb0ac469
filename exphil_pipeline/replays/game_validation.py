"""Per-game validation: the values the partition checks guard, checked while a game is ingested.

A replay that parses can still hold garbage: a flipped bit in a position, a percent of 1e30, a
character id no game has. Such a game is quarantined on its own, with a reason naming the
field, frame, port and value, so the rest of its batch lands and passes every partition check.
The bounds are wide on purpose: they reject values no Melee game can produce, never unusual
play. Fields a replay's Slippi version does not record are null and never fail.
"""

from __future__ import annotations

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


def _check_values(frames: pa.Table) -> None:
    # Each column is first judged by one aggregate over the whole game; only a column that
    # fails is searched row by row (on present rows) for the value to report.
    present = frames.column("present")
    for field in frames.schema:
        if not pa.types.is_floating(field.type):
            continue
        column = frames.column(field.name)
        if pc.all(pc.is_finite(column)).as_py() is False:
            row = _first(frames, pc.and_(present, pc.invert(pc.is_finite(column))))
            if row is not None:
                value = column[row].as_py()
                raise InvalidGame(f"{field.name} = {value} at {_where(frames, row)}: not a number")
    for name, (low, high) in VALUE_RANGES.items():
        column = frames.column(name)
        bounds = pc.min_max(column)
        if bounds["min"].as_py() is None or (
            bounds["min"].as_py() >= low and bounds["max"].as_py() <= high
        ):
            continue
        outside = pc.or_(pc.less(column, low), pc.greater(column, high))
        row = _first(frames, pc.and_(present, outside))
        if row is not None:
            raise InvalidGame(
                f"{name} = {column[row].as_py()} at {_where(frames, row)}: outside "
                f"[{low:g}, {high:g}]"
            )
    characters = frames.column("character")
    if set(pc.unique(characters).to_pylist()) - set(INTERNAL_CHARACTER_NAMES) - {None}:
        known = pa.array(sorted(INTERNAL_CHARACTER_NAMES), pa.uint8())
        row = _first(frames, pc.and_(present, pc.invert(pc.is_in(characters, known))))
        if row is not None:
            raise InvalidGame(
                f"character = {characters[row].as_py()} at {_where(frames, row)}: not a Melee "
                "character id"
            )


def _check_shape(frames: pa.Table) -> None:
    frame_ids = frames.column("frame")
    distinct = pc.count_distinct(frame_ids).as_py()
    bounds = pc.min_max(frame_ids)
    first, last = bounds["min"].as_py(), bounds["max"].as_py()
    if distinct != last - first + 1:
        raise InvalidGame(
            f"frame ids run from {first} to {last} but only {distinct} are present: a gap"
        )
    ports = frames.column("port").to_numpy()
    followers = frames.column("is_follower").to_numpy(zero_copy_only=False)
    slots = len(np.unique(ports.astype(np.int16) * 2 + followers))
    if frames.num_rows != distinct * slots:
        raise InvalidGame(
            f"{frames.num_rows} rows for {distinct} frames x {slots} character slots "
            f"(expected {distinct * slots})"
        )


def validate_game(frames: pa.Table, stage: int | None) -> None:
    """Raise :class:`InvalidGame` naming the first impossible value of a game's frames."""
    if stage is not None and stage > MAX_STAGE_ID:
        raise InvalidGame(f"stage = {stage} in the game start: not a Melee stage id")
    if frames.num_rows == 0:
        raise InvalidGame("the game has no frame rows")
    _check_shape(frames)
    _check_values(frames)
