"""Write Slippi replay files (.slp) from the typed model of a game in ``slp_records``.

The byte layout follows SPEC.md of project-slippi/slippi-wiki. A file is a UBJSON object with
two keys: ``raw``, an optimized uint8 array holding the game's event stream, and ``metadata``.
Every number inside the event stream is big-endian.

We always write version ``SLIPPI_VERSION`` (3.16.0) and only the events a game of one to four
players without items or Ice Climbers needs: event payloads, game start, per frame a frame
start, one pre-frame and one post-frame update per player and a frame bookend, then game end.
Fields that 3.16.0 defines but the model leaves out (undocumented game-info bytes, item
switches, controller fixes, Slippi UIDs, session ids) are written as zeros: off, none, empty.
"""

from __future__ import annotations

import os
import struct
from collections import Counter
from datetime import UTC
from pathlib import Path

from exphil_pipeline.replays.slippi_events import Command
from exphil_pipeline.simulator.slp_records import (
    FIRST_FRAME,
    Frame,
    Game,
    GameEnd,
    GameStart,
    PostFrame,
    PreFrame,
)
from exphil_pipeline.storage.atomic import atomic_path

SLIPPI_VERSION: tuple[int, int, int] = (3, 16, 0)
"""The replay format version written. 3.16.0 has every field of the model (hitlag 3.8.0,
display names and connect codes 3.9.0, raw analog y 3.15.0); real 3.16.0 replays declare the
payload sizes written here (pre-frame 64, post-frame 84, game start 760 bytes); and it comes
before 3.17.0's raw C-stick bytes and 3.18.0's stage events, which the model leaves out."""

# Offsets below are the SPEC.md ones, counted from each event's command byte.
_PRE_FRAME = struct.Struct(">BiBBIH8fIHffbfb")
_POST_FRAME = struct.Struct(">BiBBBH5f4Bf5BfBH3B5ffIHH")
_FRAME_START = struct.Struct(">BiII")
_FRAME_BOOKEND = struct.Struct(">Bii")
_GAME_END = struct.Struct(">BBb4b")
_GAME_START_SIZE = 0x2F9  # through the tiebreaker number (3.14.0), the last field in 3.16.0

_GAME_INFO = 0x5  # game info block offsets in the spec are relative to this
_PLAYER_BLOCK = 0x24
_PLAYER_BLOCKS = 6  # the block has room for 6 players; Slippi uses the first 4
_EMPTY_PLAYER_TYPE = 3
_STOCK_MODE_COUNTDOWN = 0x32  # game mode stock (1 << 5), 4 UI places (4 << 2), countdown (2)
_ITEMS_OFF = -1
_SELF_DESTRUCT_SCORE = -1
_DEFAULT_HANDICAP = 9
_VS_MODE_SCENE = 2  # minor and major scene numbers of an offline VS match
_LANGUAGE_ENGLISH = 1

_NAME_TAG_BYTES = 0x10
_DISPLAY_NAME_BYTES = 0x1F  # includes the null terminator
_CONNECT_CODE_BYTES = 0xA  # includes the null terminator
_FULLWIDTH_HASH = "\uff03"  # connect codes store their "#" as Shift JIS 0x8194


def _payload_sizes() -> dict[Command, int]:
    """Payload size of each event we write; the command byte is not counted."""
    return {
        Command.GAME_START: _GAME_START_SIZE - 1,
        Command.PRE_FRAME: _PRE_FRAME.size - 1,
        Command.POST_FRAME: _POST_FRAME.size - 1,
        Command.GAME_END: _GAME_END.size - 1,
        Command.FRAME_START: _FRAME_START.size - 1,
        Command.FRAME_BOOKEND: _FRAME_BOOKEND.size - 1,
    }


def _event_payloads() -> bytes:
    sizes = _payload_sizes()
    entries = b"".join(struct.pack(">BH", command, size) for command, size in sizes.items())
    return struct.pack(">BB", Command.EVENT_PAYLOADS, len(entries) + 1) + entries


def _shift_jis(text: str, max_bytes: int, what: str) -> bytes:
    """Encode a string field; ``struct``'s ``s`` format pads it with nulls."""
    encoded = text.encode("shift_jis")
    if len(encoded) > max_bytes:
        raise ValueError(f"{what} {text!r} is {len(encoded)} bytes in Shift JIS, max {max_bytes}")
    return encoded


def _game_start(start: GameStart) -> bytes:
    buf = bytearray(_GAME_START_SIZE)
    struct.pack_into(">B3BB", buf, 0x0, Command.GAME_START, *SLIPPI_VERSION, 0)
    struct.pack_into(">B", buf, _GAME_INFO + 0x0, _STOCK_MODE_COUNTDOWN)
    struct.pack_into(">bb", buf, _GAME_INFO + 0xB, _ITEMS_OFF, _SELF_DESTRUCT_SCORE)
    struct.pack_into(">HI", buf, _GAME_INFO + 0xE, start.stage, start.timer)
    struct.pack_into(">f", buf, _GAME_INFO + 0x30, 1.0)  # damage ratio
    by_port = {player.port: player for player in start.players}
    for slot in range(_PLAYER_BLOCKS):
        block = _GAME_INFO + 0x60 + _PLAYER_BLOCK * slot
        player = by_port.get(slot)
        if player is None:
            struct.pack_into(">xB", buf, block, _EMPTY_PLAYER_TYPE)
            continue
        struct.pack_into(
            ">BBBB", buf, block, player.character, player.type, player.stocks, player.costume
        )
        struct.pack_into(">B", buf, block + 0x8, _DEFAULT_HANDICAP)
        struct.pack_into(">B", buf, block + 0xF, player.cpu_level)
        struct.pack_into(">fff", buf, block + 0x18, 1.0, 1.0, 1.0)  # offense, defense, scale
    struct.pack_into(">I", buf, 0x13D, start.random_seed)
    for player in start.players:
        port = player.port
        name_tag = _shift_jis(player.name_tag, _NAME_TAG_BYTES, "name tag")
        netplay_name = _shift_jis(player.netplay_name, _DISPLAY_NAME_BYTES - 1, "netplay name")
        code = _shift_jis(
            player.connect_code.replace("#", _FULLWIDTH_HASH),
            _CONNECT_CODE_BYTES - 1,
            "connect code",
        )
        struct.pack_into(f"{_NAME_TAG_BYTES}s", buf, 0x161 + 0x10 * port, name_tag)
        struct.pack_into(f"{_DISPLAY_NAME_BYTES}s", buf, 0x1A5 + 0x1F * port, netplay_name)
        struct.pack_into(f"{_CONNECT_CODE_BYTES}s", buf, 0x221 + 0xA * port, code)
    struct.pack_into(">BxBB", buf, 0x1A1, start.is_pal, _VS_MODE_SCENE, _VS_MODE_SCENE)
    struct.pack_into(">B", buf, 0x2BD, _LANGUAGE_ENGLISH)
    return bytes(buf)


def _pre_frame(number: int, port: int, seed: int, pre: PreFrame) -> bytes:
    return _PRE_FRAME.pack(
        Command.PRE_FRAME,
        number,
        port,
        False,  # is follower: Nana is not modeled
        seed,
        pre.action_state,
        pre.x,
        pre.y,
        pre.facing,
        pre.joystick_x,
        pre.joystick_y,
        pre.cstick_x,
        pre.cstick_y,
        pre.trigger,
        pre.buttons,
        pre.physical_buttons,
        pre.physical_l,
        pre.physical_r,
        pre.raw_analog_x,
        pre.percent,
        pre.raw_analog_y,
    )


def _post_frame(number: int, port: int, post: PostFrame) -> bytes:
    return _POST_FRAME.pack(
        Command.POST_FRAME,
        number,
        port,
        False,  # is follower
        post.character,
        post.action_state,
        post.x,
        post.y,
        post.facing,
        post.percent,
        post.shield,
        post.last_attack_landed,
        post.combo_count,
        post.last_hit_by,
        post.stocks,
        post.action_frame,
        *post.state_flags,
        post.misc_as,
        post.airborne,
        post.last_ground_id,
        post.jumps_remaining,
        post.l_cancel,
        post.hurtbox,
        post.self_air_x_speed,
        post.self_y_speed,
        post.attack_x_speed,
        post.attack_y_speed,
        post.self_ground_x_speed,
        post.hitlag,
        post.animation_index,
        post.instance_hit_by,
        post.instance_id,
    )


def _frame_events(frame: Frame, ports: list[int]) -> bytes:
    # Real replays send every pre-frame update before any post-frame update.
    scene_frame = frame.number - FIRST_FRAME  # no pauses, so it counts frames from 0
    events = [_FRAME_START.pack(Command.FRAME_START, frame.number, frame.random_seed, scene_frame)]
    events += [
        _pre_frame(frame.number, port, frame.random_seed, player.pre)
        for port, player in zip(ports, frame.players, strict=True)
    ]
    events += [
        _post_frame(frame.number, port, player.post)
        for port, player in zip(ports, frame.players, strict=True)
    ]
    # Without rollback every frame is final as soon as it ends.
    events.append(_FRAME_BOOKEND.pack(Command.FRAME_BOOKEND, frame.number, frame.number))
    return b"".join(events)


def _game_end(end: GameEnd) -> bytes:
    lras = -1 if end.lras_initiator is None else end.lras_initiator
    return _GAME_END.pack(Command.GAME_END, end.method, lras, *end.placements)


def _metadata(game: Game) -> dict[str, object]:
    players: dict[str, object] = {}
    for index, player in enumerate(game.start.players):
        characters = Counter(frame.players[index].post.character for frame in game.frames)
        names: dict[str, str] = {}
        if player.netplay_name:
            names["netplay"] = player.netplay_name
        if player.connect_code:
            names["code"] = player.connect_code
        players[str(player.port)] = {
            "names": names,
            "characters": {str(char): count for char, count in sorted(characters.items())},
        }
    metadata: dict[str, object] = {
        "startAt": game.start_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "lastFrame": game.frames[-1].number,
        "players": players,
        "playedOn": game.played_on,
    }
    if game.console_nick is not None:
        metadata["consoleNick"] = game.console_nick
    return metadata


def _ubjson_string_body(text: str) -> bytes:
    """Length-prefixed UTF-8 as used by UBJSON keys and (after an ``S``) string values."""
    encoded = text.encode("utf-8")
    if len(encoded) < 256:
        return struct.pack(">cB", b"U", len(encoded)) + encoded
    return struct.pack(">ci", b"l", len(encoded)) + encoded


def _ubjson(value: object) -> bytes:
    """Encode the JSON-like metadata: objects, strings and int32 numbers."""
    if isinstance(value, dict):
        items = (_ubjson_string_body(key) + _ubjson(item) for key, item in value.items())
        return b"{" + b"".join(items) + b"}"
    if isinstance(value, str):
        return b"S" + _ubjson_string_body(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return struct.pack(">ci", b"l", value)
    raise TypeError(f"cannot encode {type(value).__name__} in replay metadata")


def _validate(game: Game) -> None:
    ports = [player.port for player in game.start.players]
    if not ports or ports != sorted(set(ports)) or not 0 <= ports[0] <= ports[-1] <= 3:
        raise ValueError(f"players need distinct ports 0-3 in increasing order, got {ports}")
    if not game.frames:
        raise ValueError("a replay needs at least one frame")
    if game.start_at.tzinfo is None:
        raise ValueError("Game.start_at must be timezone-aware")
    for index, frame in enumerate(game.frames):
        if frame.number != FIRST_FRAME + index:
            raise ValueError(f"frame {index} is numbered {frame.number}, not {FIRST_FRAME + index}")
        if len(frame.players) != len(ports):
            raise ValueError(
                f"frame {frame.number} has {len(frame.players)} players, not {len(ports)}"
            )


def encode_slp(game: Game) -> bytes:
    """Return the bytes of a complete .slp file for ``game``."""
    _validate(game)
    ports = [player.port for player in game.start.players]
    raw = bytearray(_event_payloads())
    raw += _game_start(game.start)
    for frame in game.frames:
        raw += _frame_events(frame, ports)
    if game.end is not None:
        raw += _game_end(game.end)
    # The raw array is typed uint8 with a 32-bit count, as the spec prescribes.
    raw_header = b"[$U#" + struct.pack(">ci", b"l", len(raw))
    metadata = _ubjson_string_body("metadata") + _ubjson(_metadata(game))
    return b"{" + _ubjson_string_body("raw") + raw_header + raw + metadata + b"}"


def write_slp(path: str | os.PathLike[str], game: Game) -> None:
    """Write ``game`` to ``path`` atomically: readers see the old file or the whole new one,
    never a partial one."""
    data = encode_slp(game)
    with atomic_path(Path(path)) as temp:
        temp.write_bytes(data)
