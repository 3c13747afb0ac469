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
    STATE_COLUMNS,
    frames_table,
    items_table,
    settled_frame_order,
)
from exphil_pipeline.replays.reader import ParsedReplay, ReplayRejectedError, read_replay
from exphil_pipeline.replays.slot_frames import realignment


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


def _flat_leaves(array: pa.Array, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], pa.Array]:
    if not pa.types.is_struct(array.type):
        return {prefix: array}
    leaves: dict[tuple[str, ...], pa.Array] = {}
    for field, child in zip(array.type, array.flatten(), strict=True):
        leaves.update(_flat_leaves(child, (*prefix, field.name)))
    return leaves


def _reference_frames(game_id: str, parsed: ParsedReplay) -> pa.Table:
    """The straightforward construction ``frames_table`` must equal: every struct flattened
    whole, one table per slot, the slot tables concatenated."""
    ids = parsed.frames.field("id").to_numpy()
    order = settled_frame_order(ids)
    frame_ids = ids[order]
    tables = []
    for port_field, port in zip(
        parsed.frames.type["ports"].type, parsed.frames.field("ports").flatten(), strict=True
    ):
        for slot_field, slot in zip(port.type, port.flatten(), strict=True):
            number, follower = int(port_field.name[1:]), slot_field.name == "follower"
            updates = (parsed.slot_updates or {}).get((number, follower))
            rows = None if updates is None else realignment(frame_ids, updates)
            if rows is not None:
                slot = slot.take(pa.array(rows, mask=rows < 0))
            leaves = {k: v.take(order) for k, v in _flat_leaves(slot).items()}
            columns = {
                "game_id": pa.array([game_id] * len(order)),
                "frame": pa.array(frame_ids, pa.int32()),
                "port": pa.array([number] * len(order), pa.uint8()),
                "is_follower": pa.array([follower] * len(order)),
                "present": slot.is_valid().take(order),
            }
            for column in STATE_COLUMNS:
                leaf = leaves.get(column.source)
                if leaf is None:
                    columns[column.name] = pa.nulls(len(order), column.type)
                elif column.name == "facing":
                    columns[column.name] = pc.cast(pc.sign(leaf), pa.int8())
                elif column.name == "airborne":
                    columns[column.name] = pc.not_equal(leaf, 0)
                else:
                    columns[column.name] = pc.cast(leaf, column.type)
            tables.append(pa.table(columns, schema=FRAMES_SCHEMA))
    return pa.concat_tables(tables)


def test_frames_table_equals_the_reference_construction_on_every_real_replay(
    real_replays: Path,
) -> None:
    compared = 0
    for path in sorted(real_replays.glob("*.slp")):
        try:
            parsed = read_replay(path)
        except ReplayRejectedError:
            continue
        table = frames_table("g", parsed.frames, parsed.slot_updates)
        assert table.schema.equals(FRAMES_SCHEMA)
        assert all(column.num_chunks == 1 for column in table.columns), path.name
        assert table.equals(_reference_frames("g", parsed)), path.name
        compared += 1
    assert compared >= 70
