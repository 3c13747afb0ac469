"""The .slp writer, checked by reading a generated game back with peppi-py and libmelee."""

from __future__ import annotations

import dataclasses
import struct
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import melee
import numpy as np
import peppi_py
import pyarrow as pa
import pytest

from exphil_pipeline.simulator.game_assembly import FINAL_DESTINATION, FOX, MEWTWO
from exphil_pipeline.simulator.slp_records import FIRST_FRAME, Game, PostFrame, PreFrame
from exphil_pipeline.simulator.slp_writer import SLIPPI_VERSION, encode_slp, write_slp
from tests.exphil_pipeline.simulator.conftest import FRAMES

# Model field -> the matching peppi-py column.
PRE_COLUMNS: dict[str, Callable] = {
    "action_state": lambda pre: pre.state,
    "x": lambda pre: pre.position.x,
    "y": lambda pre: pre.position.y,
    "facing": lambda pre: pre.direction,
    "joystick_x": lambda pre: pre.joystick.x,
    "joystick_y": lambda pre: pre.joystick.y,
    "cstick_x": lambda pre: pre.cstick.x,
    "cstick_y": lambda pre: pre.cstick.y,
    "trigger": lambda pre: pre.triggers,
    "buttons": lambda pre: pre.buttons,
    "physical_buttons": lambda pre: pre.buttons_physical,
    "physical_l": lambda pre: pre.triggers_physical.l,
    "physical_r": lambda pre: pre.triggers_physical.r,
    "raw_analog_x": lambda pre: pre.raw_analog_x,
    "percent": lambda pre: pre.percent,
    "raw_analog_y": lambda pre: pre.raw_analog_y,
}
POST_COLUMNS: dict[str, Callable] = {
    "character": lambda post: post.character,
    "action_state": lambda post: post.state,
    "x": lambda post: post.position.x,
    "y": lambda post: post.position.y,
    "facing": lambda post: post.direction,
    "percent": lambda post: post.percent,
    "shield": lambda post: post.shield,
    "last_attack_landed": lambda post: post.last_attack_landed,
    "combo_count": lambda post: post.combo_count,
    "last_hit_by": lambda post: post.last_hit_by,
    "stocks": lambda post: post.stocks,
    "action_frame": lambda post: post.state_age,
    "misc_as": lambda post: post.misc_as,
    "airborne": lambda post: post.airborne,
    "last_ground_id": lambda post: post.ground,
    "jumps_remaining": lambda post: post.jumps,
    "l_cancel": lambda post: post.l_cancel,
    "hurtbox": lambda post: post.hurtbox_state,
    "self_air_x_speed": lambda post: post.velocities.self_x_air,
    "self_y_speed": lambda post: post.velocities.self_y,
    "attack_x_speed": lambda post: post.velocities.knockback_x,
    "attack_y_speed": lambda post: post.velocities.knockback_y,
    "self_ground_x_speed": lambda post: post.velocities.self_x_ground,
    "hitlag": lambda post: post.hitlag,
    "animation_index": lambda post: post.animation_index,
}
# Written, but peppi-py 0.8.6 does not expose them.
POST_NOT_READ_BY_PEPPI = {"instance_hit_by", "instance_id"}


@pytest.fixture(scope="module")
def replay(game: Game, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("replay") / "game.slp"
    write_slp(path, game)
    return path


@pytest.fixture(scope="module")
def peppi_game(replay: Path) -> peppi_py.Game:
    return peppi_py.read_slippi(str(replay))


def _assert_column(actual: pa.Array, expected: list, name: str) -> None:
    """Exact equality after casting the model's values to the column's dtype (float32 for
    floats, which is what the file holds)."""
    values = actual.to_numpy(zero_copy_only=False)
    np.testing.assert_array_equal(values, np.asarray(expected).astype(values.dtype), err_msg=name)


def _raw_events(data: bytes) -> bytes:
    """The raw element's bytes, located as SPEC.md describes the file's lead-up."""
    header = b"{U\x03raw[$U#l"
    assert data.startswith(header)
    (length,) = struct.unpack_from(">i", data, len(header))
    return data[len(header) + 4 :][:length]


def test_payload_sizes_are_the_3_16_0_ones(game: Game) -> None:
    raw = _raw_events(encode_slp(game))
    assert raw[0] == 0x35
    entries = raw[2 : 1 + raw[1]]
    sizes = {
        entries[i]: struct.unpack_from(">H", entries, i + 1)[0] for i in range(0, len(entries), 3)
    }
    # Offsets in SPEC.md up to 3.16.0; real 3.16.0 replays declare the same sizes.
    assert sizes == {0x36: 760, 0x37: 64, 0x38: 84, 0x39: 6, 0x3A: 12, 0x3C: 8}


def test_peppi_reads_the_game_start_end_and_metadata(game: Game, peppi_game) -> None:
    start = peppi_game.start
    assert start.slippi.version == SLIPPI_VERSION
    assert start.stage == FINAL_DESTINATION
    assert start.random_seed == game.start.random_seed
    assert start.timer == game.start.timer
    assert start.is_pal is False
    assert [(p.port, p.character, p.type, p.stocks, p.costume) for p in start.players] == [
        (0, MEWTWO, 0, 4, 0),
        (1, FOX, 0, 4, 0),
    ]
    assert game.end is not None
    assert peppi_game.end.method == game.end.method
    assert peppi_game.end.lras_initiator is None
    placements = [(p.port, p.placement) for p in peppi_game.end.players]
    assert placements == [(0, game.end.placements[0]), (1, game.end.placements[1])]
    metadata = peppi_game.metadata
    assert metadata["startAt"] == "2001-12-03T00:00:00Z"
    assert metadata["lastFrame"] == game.frames[-1].number
    assert metadata["playedOn"] == "dolphin"
    for index, port in enumerate(("0", "1")):
        used = Counter(frame.players[index].post.character for frame in game.frames)
        assert metadata["players"][port]["characters"] == {str(c): n for c, n in used.items()}


def test_peppi_reads_every_frame_value(game: Game, peppi_game) -> None:
    frames = peppi_game.frames
    assert frames.id.to_pylist() == list(range(FIRST_FRAME, FIRST_FRAME + FRAMES))
    for index, port in enumerate(frames.ports):
        pre, post = port.leader.pre, port.leader.post
        assert port.follower is None
        _assert_column(pre.random_seed, [f.random_seed for f in game.frames], "random_seed")
        for name, column in PRE_COLUMNS.items():
            _assert_column(
                column(pre), [getattr(f.players[index].pre, name) for f in game.frames], name
            )
        for name, column in POST_COLUMNS.items():
            expected = [getattr(f.players[index].post, name) for f in game.frames]
            _assert_column(column(post), expected, name)
        for byte, column in enumerate(post.state_flags):
            expected = [f.players[index].post.state_flags[byte] for f in game.frames]
            _assert_column(column, expected, f"state_flags[{byte}]")


def test_every_model_field_is_compared() -> None:
    pre_fields = {field.name for field in dataclasses.fields(PreFrame)}
    post_fields = {field.name for field in dataclasses.fields(PostFrame)}
    assert pre_fields == set(PRE_COLUMNS)
    assert post_fields == set(POST_COLUMNS) | {"state_flags"} | POST_NOT_READ_BY_PEPPI


def test_libmelee_reads_every_frame(game: Game, replay: Path) -> None:
    console = melee.Console(is_dolphin=False, path=str(replay), allow_old_version=True)
    assert console.connect()
    states = []
    while (state := console.step()) is not None:
        states.append(state)
    assert console.slp_version_tuple == SLIPPI_VERSION
    assert len(states) == len(game.frames)
    for state, frame in zip(states, game.frames, strict=True):
        assert state.frame == frame.number
        assert state.stage == melee.Stage.FINAL_DESTINATION
        for player_start, player in zip(game.start.players, frame.players, strict=True):
            seen, pre, post = state.players[player_start.port + 1], player.pre, player.post
            assert seen.character == melee.Character(post.character)
            assert seen.action == melee.Action(post.action_state)
            assert (seen.position.x, seen.position.y) == (np.float32(post.x), np.float32(post.y))
            assert seen.percent == np.float32(post.percent)
            assert seen.stock == post.stocks
            assert seen.on_ground is not post.airborne
            assert seen.controller_state.raw_main_stick == (pre.raw_analog_x, pre.raw_analog_y)
            pressed = bool(pre.physical_buttons & 0x0100)
            assert seen.controller_state.button[melee.Button.BUTTON_A] is pressed


def test_names_round_trip(game: Game, tmp_path: Path) -> None:
    first = dataclasses.replace(
        game.start.players[0],
        name_tag="\uff25\uff38",  # full-width "EX", as Melee stores name tags
        netplay_name="exphil",
        connect_code="EXPH#123",
    )
    start = dataclasses.replace(game.start, players=(first, game.start.players[1]))
    path = tmp_path / "named.slp"
    write_slp(path, dataclasses.replace(game, start=start))
    player = peppi_py.read_slippi(str(path), skip_frames=True).start.players[0]
    assert player.name_tag == "\uff25\uff38"
    assert (player.netplay.name, player.netplay.code) == ("exphil", "EXPH\uff03123")


def test_write_slp_replaces_atomically_and_leaves_no_temp_file(game: Game, tmp_path: Path) -> None:
    path = tmp_path / "game.slp"
    path.write_bytes(b"an older replay")
    write_slp(path, game)
    assert list(tmp_path.iterdir()) == [path]
    assert path.read_bytes() == encode_slp(game)

    blocked = tmp_path / "blocked.slp"
    blocked.mkdir()  # os.replace cannot put a file over a directory
    with pytest.raises(OSError):
        write_slp(blocked, game)
    assert sorted(tmp_path.iterdir()) == [blocked, path]


def test_misnumbered_frames_are_rejected(game: Game) -> None:
    shifted = tuple(dataclasses.replace(f, number=f.number + 1) for f in game.frames)
    with pytest.raises(ValueError, match="numbered"):
        encode_slp(dataclasses.replace(game, frames=shifted))
