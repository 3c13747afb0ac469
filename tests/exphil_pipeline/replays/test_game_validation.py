"""Per-game validation: the whole-column checks give the verdict the row-by-row search gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exphil_pipeline.replays.frame_tables import frames_table
from exphil_pipeline.replays.game_validation import (
    VALUE_RANGES,
    FrameSpan,
    InvalidGame,
    validate_game,
)
from exphil_pipeline.replays.reader import read_replay
from runtime.melee_ids import INTERNAL_CHARACTER_NAMES

# A doubles game with absent slots (null rows) and a 1v1 game.
GAMES = ["js-doubles.slp", "exphil-fox_multishine.slp"]


def _reference_verdict(frames: pa.Table) -> str | None:
    """The first impossible value, found by a plain search over present rows in check order."""
    present = frames["present"].to_numpy(zero_copy_only=False)

    def where(row: int) -> str:
        follower = " (follower)" if frames["is_follower"][row].as_py() else ""
        return f"frame {frames['frame'][row].as_py()}, port {frames['port'][row].as_py()}{follower}"

    def first(bad: np.ndarray) -> int | None:
        hits = np.flatnonzero(bad & present)
        return int(hits[0]) if len(hits) else None

    def valid(name: str) -> np.ndarray:
        return frames[name].is_valid().to_numpy(zero_copy_only=False)

    for field in frames.schema:
        if pa.types.is_floating(field.type):
            values = frames[field.name].to_numpy(zero_copy_only=False)
            row = first(~np.isfinite(values) & valid(field.name))
            if row is not None:
                value = frames[field.name][row].as_py()
                return f"{field.name} = {value} at {where(row)}: not a number"
    for name, (low, high) in VALUE_RANGES.items():
        values = frames[name].to_numpy(zero_copy_only=False).astype(float)
        with np.errstate(invalid="ignore"):
            row = first((values < low) | (values > high))
        if row is not None:
            return (
                f"{name} = {frames[name][row].as_py()} at {where(row)}: outside [{low:g}, {high:g}]"
            )
    characters = pc.fill_null(frames["character"], 0).to_numpy()
    row = first(~np.isin(characters, list(INTERNAL_CHARACTER_NAMES)) & valid("character"))
    if row is not None:
        return f"character = {characters[row]} at {where(row)}: not a Melee character id"
    return None


@pytest.fixture(scope="module")
def real_games(real_replays: Path) -> list[pa.Table]:
    games = []
    for name in GAMES:
        parsed = read_replay(real_replays / name)
        games.append(frames_table("g", parsed.frames, parsed.slot_updates))
    return games


def _with_value(frames: pa.Table, name: str, row: int, value: float) -> pa.Table:
    """``frames`` with ``value`` written into column ``name`` at ``row``, its null mask kept:
    on a null row it lands in the bytes under the null, as stale data does."""
    column = frames[name].combine_chunks()
    dtype = pa.array([], column.type).to_numpy().dtype
    offset = column.offset * dtype.itemsize
    values = np.frombuffer(column.buffers()[1], dtype, len(column), offset).copy()
    values[row] = value
    rebuilt = pa.Array.from_buffers(
        column.type, len(column), [column.buffers()[0], pa.py_buffer(values)]
    )
    return frames.set_column(
        frames.schema.get_field_index(name), frames.schema.field(name), rebuilt
    )


_COLUMNS_AND_VALUES = st.sampled_from(
    [
        ("x", float("nan")),
        ("y", float("inf")),
        ("hitlag", float("-inf")),
        ("joystick_x", float("nan")),
        ("percent", 1e30),
        ("shield", -1.0),
        ("x", 1e6),
        ("stocks", 200),
        ("action_state", 0x400),
        ("character", 200),
    ]
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    game=st.integers(0, len(GAMES) - 1),
    damage=st.lists(st.tuples(_COLUMNS_AND_VALUES, st.floats(0, 1)), max_size=3),
)
def test_validation_names_the_first_impossible_value_like_a_row_search(
    real_games: list[pa.Table], game: int, damage: list[tuple[tuple[str, float], float]]
) -> None:
    frames = real_games[game]
    for (name, value), where in damage:
        frames = _with_value(frames, name, int(where * (frames.num_rows - 1)), value)
    expected = _reference_verdict(frames)
    if expected is None:
        assert isinstance(validate_game(frames, 32), FrameSpan)
    else:
        with pytest.raises(InvalidGame) as raised:
            validate_game(frames, 32)
        assert str(raised.value) == expected


def test_the_frame_span_is_the_games_frame_ids(real_games: list[pa.Table]) -> None:
    for frames in real_games:
        ids = frames["frame"].to_numpy()
        span = validate_game(frames, None)
        assert (span.first, span.last, span.count) == (ids.min(), ids.max(), len(set(ids)))


def test_a_gap_in_the_frame_ids_is_reported(real_games: list[pa.Table]) -> None:
    frames = real_games[1]
    gap = frames.filter(pc.not_equal(frames["frame"], 100))
    with pytest.raises(InvalidGame, match=r"only .* are present: a gap"):
        validate_game(gap, None)
