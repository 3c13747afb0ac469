"""Pre-3.0 replays: slot updates go back onto the frames they name."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq

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
