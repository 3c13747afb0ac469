from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given
from hypothesis import strategies as st
from peppi_py import RollbackMode, read_slippi
from peppi_py._peppi import read_slippi as read_raw

from exphil_pipeline.replays.frame_tables import (
    FRAMES_SCHEMA,
    ITEMS_SCHEMA,
    frames_table,
    items_table,
    settled_frame_order,
)


@given(st.lists(st.integers(min_value=-123, max_value=50), min_size=1, max_size=200))
def test_settled_order_keeps_the_last_copy_of_each_frame(ids: list[int]) -> None:
    array = np.array(ids, dtype=np.int32)
    order = settled_frame_order(array)
    assert list(array[order]) == sorted(set(ids))
    for index in order:
        assert array[index] not in array[index + 1 :]


def _game(path: Path) -> pa.Table:
    return frames_table("g", read_raw(str(path), False).frames)


def test_rollback_frames_resolve_to_peppis_last_copy(real_replays: Path) -> None:
    path = real_replays / "js-rollbackFrameTest.slp"
    table = _game(path)
    last = read_slippi(str(path), rollback_mode=RollbackMode.LAST).frames
    leader = table.filter(pc.and_(pc.equal(table["port"], 1), pc.invert(table["is_follower"])))
    assert leader["frame"].to_pylist() == last.id.to_pylist()
    assert leader["x"].to_pylist() == last.ports[0].leader.post.position.x.to_pylist()
    assert leader["action_state"].to_pylist() == last.ports[0].leader.post.state.to_pylist()


def test_ice_climbers_nana_rows_are_kept(real_replays: Path) -> None:
    table = _game(real_replays / "peppi-ics.slp")
    nana = table.filter(table["is_follower"])
    assert nana.num_rows == 344
    assert set(nana["port"].to_pylist()) == {1}
    assert set(nana["character"].to_pylist()) == {11}  # NANA


def test_absent_slots_keep_their_rows_with_null_state(real_replays: Path) -> None:
    table = _game(real_replays / "js-doubles.slp")
    assert table.schema.equals(FRAMES_SCHEMA)
    assert table.num_rows == 8866 * 4
    absent = table.filter(pc.invert(table["present"]))
    assert absent.num_rows > 0
    assert absent["x"].null_count == absent.num_rows


def test_columns_missing_in_old_versions_are_null(real_replays: Path) -> None:
    table = _game(real_replays / "peppi-v0.1.slp")
    assert table["hitlag"].null_count == table.num_rows
    assert table["x"].null_count == 0


def test_items_rows_carry_their_frame(real_replays: Path) -> None:
    frames = read_raw(str(real_replays / "peppi-items.slp"), False).frames
    items = items_table("g", frames)
    assert items.schema.equals(ITEMS_SCHEMA)
    assert items.num_rows == 513
    assert items["frame"].null_count == 0
    assert set(items["frame"].to_pylist()) <= set(frames.field("id").to_pylist())
