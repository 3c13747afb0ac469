"""Pre-3.0 replays: slot updates go back onto the frames they name."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from hypothesis import given
from hypothesis import strategies as st

from exphil_pipeline.replays.repair import NotAReplayError, event_sizes
from exphil_pipeline.replays.slippi_events import RAW_HEADER, Command
from exphil_pipeline.replays.slot_frames import post_frame_ids, realignment
from exphil_pipeline.storage.layout import DataLayout


def test_a_slot_without_gaps_stays_in_place() -> None:
    frames = np.arange(-123, 10)
    assert realignment(frames, frames.astype(np.int32)) is None


def test_a_gap_moves_later_updates_to_their_frames() -> None:
    frames = np.arange(0, 8)
    updates = np.array([0, 1, 2, 5, 6], dtype=np.int32)  # frames 3 and 4 have no update
    assert realignment(frames, updates).tolist() == [0, 1, 2, -1, -1, 3, 4, -1]


def test_doubles_replay_player_absent_while_waiting_for_a_stock(real_store, real_replays) -> None:
    # js-doubles (Slippi 1.2): port 1 has no updates for frames 7755-7782.
    data = (real_replays / "js-doubles.slp").read_bytes()
    updates = post_frame_ids(data)[(1, False)]
    assert not np.isin(np.arange(7755, 7783), updates).any()
    record = next(g for g in real_store.games if g.source_path.endswith("js-doubles.slp"))
    path = DataLayout(real_store.home).table_partition("frames", real_store.batch)
    table = pq.read_table(
        path / f"{record.game_id}.parquet",
        filters=[("port", "=", 1), ("is_follower", "=", False)],
        columns=["frame", "present"],
    )
    frames = table.column("frame").to_numpy()
    present = table.column("present").to_numpy(zero_copy_only=False)
    assert not present[(frames >= 7755) & (frames <= 7782)].any()
    assert present[frames == 7783].all()
    assert np.array_equal(frames[present], np.sort(updates))


def _walked_post_frame_ids(data: bytes) -> dict[tuple[int, bool], list[int]]:
    """The reference: the sequential event walk ``post_frame_ids`` replaces, event by event."""
    length = struct.unpack_from(">i", data, len(RAW_HEADER))[0]
    start = len(RAW_HEADER) + 4
    end = start + length if 0 < length <= len(data) - start else len(data)
    raw = memoryview(data)[start:end]
    sizes, offset = event_sizes(raw)
    found: dict[tuple[int, bool], list[int]] = {}
    while offset < len(raw):
        command = raw[offset]
        size = sizes.get(command)
        if size is None or offset + 1 + size > len(raw):
            break
        if command == Command.POST_FRAME:
            frame, port_index, follower = struct.unpack_from(">iBB", raw, offset + 1)
            found.setdefault((port_index + 1, bool(follower)), []).append(frame)
        elif command == Command.GAME_END:
            break
        offset += 1 + size
    return found


def _as_lists(found: dict[tuple[int, bool], np.ndarray]) -> dict[tuple[int, bool], list[int]]:
    assert all(frames.dtype == np.int32 for frames in found.values())
    return {slot: frames.tolist() for slot, frames in found.items()}


def test_post_frame_ids_match_the_event_walk_on_every_real_replay(real_replays: Path) -> None:
    compared = 0
    for path in sorted(real_replays.glob("*.slp")):
        data = path.read_bytes()
        try:
            expected = _walked_post_frame_ids(data)
        except (NotAReplayError, struct.error):
            continue
        found = post_frame_ids(data)
        assert list(found) == list(expected), path.name  # slots in order of first update
        assert _as_lists(found) == expected, path.name
        compared += 1
    assert compared >= 70


def _stream(events: list[bytes], sizes: dict[int, int], declared: int | None = None) -> bytes:
    table = b"".join(struct.pack(">BH", command, size) for command, size in sizes.items())
    raw = bytes([Command.EVENT_PAYLOADS, 1 + len(table)]) + table + b"".join(events)
    length = len(raw) if declared is None else declared
    return RAW_HEADER + struct.pack(">i", length) + raw


_SIZES = {Command.GAME_START: 8, Command.PRE_FRAME: 9, Command.POST_FRAME: 11, Command.GAME_END: 1}


@st.composite
def _event_streams(draw: st.DrawFn) -> bytes:
    """Streams whose payloads are full of command bytes (false event starts), cut anywhere,
    sometimes with an unknown event or an early game end."""
    events = [bytes([Command.GAME_START]) + draw(st.binary(min_size=8, max_size=8))]
    for _ in range(draw(st.integers(0, 40))):
        command = draw(st.sampled_from([Command.PRE_FRAME, Command.POST_FRAME, 0x99, 0x39]))
        size = _SIZES.get(command, 3)
        body = st.sampled_from([0x36, 0x37, 0x38, 0x39, 0, 1, 255])
        events.append(bytes([command, *draw(st.lists(body, min_size=size, max_size=size))]))
    data = _stream(events, _SIZES)
    return data[: draw(st.integers(len(data) - sum(map(len, events)), len(data)))]


@given(_event_streams())
def test_post_frame_ids_match_the_event_walk_on_tricky_streams(data: bytes) -> None:
    assert _as_lists(post_frame_ids(data)) == _walked_post_frame_ids(data)
