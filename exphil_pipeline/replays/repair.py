"""Reading a Slippi file's raw event stream, and repairing what real users' files get wrong.

A ``.slp`` file is a UBJSON object ``{"raw": <bytes>, "metadata": {...}}``. ``raw`` is a stream
of events whose sizes are declared by its first event (Event Payloads, 0x35). Dolphin writes
``raw``'s length only when a game ends cleanly, so a crash leaves length 0 and possibly half
an event at the tail; parsers then reject the whole file. Some files also carry game-end
methods newer than the parser knows.

``repair_replay_bytes`` rebuilds a well-formed file from the stream: it keeps every complete
frame (a frame is complete at its Frame Bookend, or, in versions before 3.0 that have none,
when the next frame begins), drops the partial tail, writes the true length, and maps an
unknown game-end method to 0 (unresolved) while reporting the original so no information is
lost. It never invents frames.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from exphil_pipeline.replays.slippi_events import RAW_HEADER, Command

# Game-end methods peppi 0.8 knows: 0 unresolved, 1 time, 2 game, 3 resolved, 7 no contest.
KNOWN_END_METHODS = frozenset({0, 1, 2, 3, 7})
_FRAME_EVENTS = frozenset({Command.FRAME_START, Command.PRE_FRAME, Command.POST_FRAME})
# Payload bytes the stream walkers read (here and in slot_frames): the game start's version,
# the game-end method, a frame event's frame id, a post-frame's port and follower flag. A table
# declaring fewer is damaged, and reading such events would run past the end of the stream.
_MIN_PAYLOAD = {
    Command.GAME_START: 3,
    Command.GAME_END: 1,
    Command.FRAME_START: 4,
    Command.PRE_FRAME: 4,
    Command.POST_FRAME: 6,
}


class NotAReplayError(ValueError):
    """The bytes are not a Slippi replay (wrong container, no event stream, no game start)."""


@dataclass
class StreamScan:
    """What a walk over the raw event stream found."""

    version: tuple[int, int, int] | None = None
    declared_raw_length: int = 0
    complete_frames: int = 0
    end_method: int | None = None
    truncated: bool = False
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RepairResult:
    data: bytes
    scan: StreamScan


def event_sizes(raw: memoryview) -> tuple[dict[int, int], int]:
    """Payload size per command from the Event Payloads event, and where the next event starts."""
    if len(raw) < 2 or raw[0] != Command.EVENT_PAYLOADS:
        raise NotAReplayError("the raw stream does not start with an Event Payloads event")
    block = raw[1]
    if block < 1 or 1 + block > len(raw) or (block - 1) % 3:
        raise NotAReplayError("the Event Payloads event is malformed")
    sizes = {Command.EVENT_PAYLOADS: block}
    for i in range(2, 1 + block, 3):
        command, size = struct.unpack_from(">BH", raw, i)
        sizes[command] = size
    for command, least in _MIN_PAYLOAD.items():
        if sizes.get(command, least) < least:
            raise NotAReplayError(
                f"the Event Payloads event is malformed: event 0x{command:02x} is declared "
                f"{sizes[command]} bytes, fewer than the {least} it always holds"
            )
    return sizes, 1 + block


def _frame_id(raw: memoryview, offset: int) -> int:
    return struct.unpack_from(">i", raw, offset + 1)[0]


def repair_replay_bytes(data: bytes) -> RepairResult:
    """Rebuild a well-formed replay from ``data``'s complete events (see module docstring)."""
    scan, raw = _raw_stream(data)
    committed, unknown_end_at = _complete_prefix(raw, scan)
    out = bytearray(raw[:committed])
    if unknown_end_at is not None:
        out[unknown_end_at] = 0
    body = RAW_HEADER + struct.pack(">i", len(out)) + bytes(out) + b"U\x08metadata{}}"
    return RepairResult(body, scan)


def _raw_stream(data: bytes) -> tuple[StreamScan, memoryview]:
    """The event stream inside ``data``, cut to the length declared or present."""
    if not data.startswith(RAW_HEADER) or len(data) < len(RAW_HEADER) + 4:
        raise NotAReplayError(
            "not a Slippi replay: the file does not start with the UBJSON raw block"
        )
    declared = struct.unpack_from(">i", data, len(RAW_HEADER))[0]
    start = len(RAW_HEADER) + 4
    available = len(data) - start
    scan = StreamScan(declared_raw_length=declared)
    if declared <= 0 or declared > available:
        scan.truncated = True
        scan.problems.append(
            "raw length not written (the game did not end cleanly)"
            if declared <= 0
            else f"raw length {declared} exceeds the {available} bytes present"
        )
        declared = available
    return scan, memoryview(data)[start : start + declared]


def _complete_prefix(raw: memoryview, scan: StreamScan) -> tuple[int, int | None]:
    """Walk the events: the length of the prefix of complete units (game start, frames, game
    end), and the offset of an unknown game-end method byte to zero (None if known)."""
    sizes, offset = event_sizes(raw)
    # Repair only ever drops a tail, so the result is a prefix of the stream: ``committed`` is
    # where the last complete unit (game start, frame, game end) ends.
    committed = offset
    has_bookends = Command.FRAME_BOOKEND in sizes
    frame_open = False  # events of a not yet complete frame lie past ``committed``
    current_frame: int | None = None
    unknown_end_at: int | None = None
    saw_game_start = False
    while offset < len(raw):
        command = raw[offset]
        size = sizes.get(command)
        if size is None:
            scan.problems.append(
                f"unknown event 0x{command:02x} at byte {offset}: stream cut there"
            )
            scan.truncated = True
            break
        end = offset + 1 + size
        if end > len(raw):
            scan.truncated = True
            scan.problems.append(f"partial event 0x{command:02x} at the end of the stream dropped")
            break
        if command == Command.GAME_START:
            saw_game_start = True
            scan.version = (raw[offset + 1], raw[offset + 2], raw[offset + 3])
            committed = end
        elif command == Command.GAME_END:
            scan.complete_frames += frame_open
            frame_open = False
            scan.end_method = raw[offset + 1]
            if scan.end_method not in KNOWN_END_METHODS:
                unknown_end_at = offset + 1
                scan.problems.append(
                    f"game-end method {scan.end_method} is unknown to the parser; stored as 0"
                )
            committed = end
        elif command in _FRAME_EVENTS and not has_bookends:
            # Before 3.0 there are no bookends: a frame is complete when the next one begins.
            frame = _frame_id(raw, offset)
            if frame_open and frame != current_frame:
                scan.complete_frames += 1
                committed = offset
            current_frame, frame_open = frame, True
        elif command == Command.FRAME_BOOKEND:
            scan.complete_frames += 1
            frame_open = False
            committed = end
        else:
            # With bookends, every other event (frame start, pre/post, items) opens a frame.
            frame_open = frame_open or has_bookends
        offset = end
    if not saw_game_start:
        raise NotAReplayError("the replay has no Game Start event")
    if offset > committed and scan.end_method is None:
        scan.truncated = True
        scan.problems.append("the last frame was incomplete and was dropped")
    if scan.complete_frames == 0:
        raise NotAReplayError("the replay holds no complete frame")
    if scan.end_method is None:
        scan.problems.append("no game-end event (the recording stopped mid-game)")
    return committed, unknown_end_at
