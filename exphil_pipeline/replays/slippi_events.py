"""Constants of the Slippi replay container and its raw event stream (project-slippi SPEC.md)."""

from enum import IntEnum

RAW_HEADER = b"{U\x03raw[$U#l"
"""UBJSON opening of a replay: an object whose ``raw`` key holds a sized uint8 array; the
4-byte big-endian length of that array follows."""


class Command(IntEnum):
    """Command bytes that start each event in the raw stream."""

    EVENT_PAYLOADS = 0x35
    GAME_START = 0x36
    PRE_FRAME = 0x37
    POST_FRAME = 0x38
    GAME_END = 0x39
    FRAME_START = 0x3A
    FRAME_BOOKEND = 0x3C
