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

# Post-frame update layout after the command byte: frame id (int32, big-endian), port index,
# is-follower flag.
_FRAME_ID_BYTES = np.arange(1, 5)
_PORT_BYTE, _FOLLOWER_BYTE = 5, 6


def event_starts(raw: np.ndarray, sizes: dict[int, int], first: int) -> np.ndarray:
    """Offsets of the events a sequential walk from ``first`` visits, in stream order.

    The walk steps over each event by its declared size and stops before an unknown command
    or an event that runs past the end, and after Game End. Walking byte by byte in Python is
    slow, so it is done in bulk: every byte holding a command that fits is a candidate event,
    each candidate's successor is known from its size, and the successor chain from ``first``
    is unrolled by pointer doubling (``log2`` passes over the candidates).
    """
    size_of = np.full(256, -1, dtype=np.int64)
    for command, size in sizes.items():
        size_of[command] = size
    # Bytes within the declared commands' range (two cheap passes over the stream), less the
    # undeclared commands among them (size -1) and events running past the end.
    low, high = min(sizes), max(sizes)
    offsets = np.subtract(raw[first:], np.uint8(low))
    candidates = np.flatnonzero(offsets <= high - low) + first
    ends = candidates + 1 + size_of[raw[candidates]]
    candidates = candidates[(ends > candidates) & (ends <= len(raw))]
    if len(candidates) == 0 or candidates[0] != first:
        return candidates[:0]
    ends = candidates + 1 + size_of[raw[candidates]]
    stop = len(candidates)  # the chain's end: a node that leads to itself
    successor = np.searchsorted(candidates, ends)
    lands = successor < stop
    lands[lands] = candidates[successor[lands]] == ends[lands]
    successor[~lands | (raw[candidates] == Command.GAME_END)] = stop
    successor = np.append(successor, stop)
    # ``visited`` holds the chain's first 2**k events (in order), ``jump`` leaps 2**k ahead.
    visited = np.zeros(1, dtype=np.int64)
    jump = successor
    while True:
        reached = jump[visited]
        reached = reached[reached != stop]
        if len(reached) == 0:
            break
        visited = np.concatenate([visited, reached])
        jump = jump[jump]
    return candidates[visited]


def post_frame_ids(data: bytes) -> dict[tuple[int, bool], np.ndarray]:
    """Frame ids of every post-frame update per (port 1-4, is_follower), in stream order."""
    length = struct.unpack_from(">i", data, len(RAW_HEADER))[0]
    start = len(RAW_HEADER) + 4
    end = start + length if 0 < length <= len(data) - start else len(data)
    raw = np.frombuffer(data, dtype=np.uint8, count=end - start, offset=start)
    sizes, first = event_sizes(memoryview(raw))
    events = event_starts(raw, sizes, first)
    posts = events[raw[events] == Command.POST_FRAME]
    frame_bytes = raw[posts[:, None] + _FRAME_ID_BYTES]
    frames = frame_bytes.view(">i4").ravel().astype(np.int32)
    slots = (raw[posts + _PORT_BYTE].astype(np.int64) + 1) * 2 + (raw[posts + _FOLLOWER_BYTE] != 0)
    keys, first_seen = np.unique(slots, return_index=True)
    return {
        (int(key) // 2, bool(key % 2)): frames[slots == key] for key in keys[np.argsort(first_seen)]
    }


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
