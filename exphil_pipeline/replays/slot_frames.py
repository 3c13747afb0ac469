"""Which frames each character slot really has, read from the raw event stream.

Replays older than Slippi 3.0 have no frame bookends, and peppi stores each slot's updates in
the order they arrive rather than on the frame they name. When a slot skips frames (a doubles
player who lost the last stock and later took one from a teammate has no updates in between),
every later update of that slot lands on an earlier frame. The frame ids written in the
slot's own post-frame updates are the truth; ``frames_table`` uses them to put each update back
on its frame, and libmelee (which reads those ids too) agrees frame for frame.
"""

from __future__ import annotations

import struct

import numpy as np

from exphil_pipeline.replays.repair import event_sizes
from exphil_pipeline.replays.slippi_events import RAW_HEADER, Command

# Post-frame update layout: command, frame id (int32), port index, is-follower flag.
_POST_FRAME_HEAD = struct.Struct(">iBB")


def post_frame_ids(data: bytes) -> dict[tuple[int, bool], np.ndarray]:
    """Frame ids of every post-frame update per (port 1-4, is_follower), in stream order."""
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
            frame, port_index, follower = _POST_FRAME_HEAD.unpack_from(raw, offset + 1)
            found.setdefault((port_index + 1, bool(follower)), []).append(frame)
        elif command == Command.GAME_END:
            break
        offset += 1 + size
    return {slot: np.asarray(frames, dtype=np.int32) for slot, frames in found.items()}


def realignment(frame_ids: np.ndarray, update_frames: np.ndarray) -> np.ndarray | None:
    """Row of each frame's update in a slot packed in stream order (-1: none); None if in place.

    ``frame_ids`` are the game's frames in order; ``update_frames`` the frames the slot's
    updates name, in stream order.
    """
    if len(update_frames) == 0:
        return None
    first = int(frame_ids[0])
    if np.array_equal(update_frames, np.arange(first, first + len(update_frames))):
        return None  # no gap: stream order is frame order
    rows = np.full(len(frame_ids), -1, dtype=np.int64)
    positions = update_frames.astype(np.int64) - first
    inside = (positions >= 0) & (positions < len(frame_ids))
    rows[positions[inside]] = np.flatnonzero(inside)
    return rows
