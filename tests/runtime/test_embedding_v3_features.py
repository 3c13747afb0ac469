"""Spec v3's new features on hand-built frames: both paths agree and give the known values.

Real replays cover parity at scale (``tests/exphil_pipeline/evaluation/test_parity.py``); these
frames reach the cases real replays at hand lack: every legal stage, Randall along its loop,
positions on and off platforms, items owned by either player, a transformed Zelda.
"""

from __future__ import annotations

import numpy as np
import pytest
from melee.enums import Action, Character, ProjectileType, Stage
from melee.gamestate import GameState, PlayerState, Projectile, UnknownAnimation

from runtime.character_moves import SPECIAL_GROUPS
from runtime.controller_spec import CONTROLLER_SPEC
from runtime.embedding_spec import (
    EMBEDDING_SPEC,
    FRAME_DELAY_COLUMN,
    SLOT_NULL_FILL,
    ZERO_INDEXED_ACTIONS,
    GameColumns,
    ItemColumns,
    SlotColumns,
    embed_batch,
    embed_gamestate,
)
from runtime.melee_ids import STAGE_NAMES
from runtime.stage_geometry import LEGAL_STAGES

EXTERNAL = {name: external for external, name in STAGE_NAMES.items()}
NAMES = EMBEDDING_SPEC.names
COLUMNS = dict(zip(NAMES, EMBEDDING_SPEC.columns, strict=True))


def _player(character: Character, x: float, y: float, action: int = 14, frame: int = 3):
    player = PlayerState()
    player.character = character
    player.action = Action(action)
    player.action_frame = frame
    player.position.x, player.position.y = float(np.float32(x)), float(np.float32(y))
    player.stock, player.percent, player.facing = 4, 0.0, True
    player.on_ground, player.jumps_left, player.shield_strength = y == 0, 2, 60.0
    player.nana = None
    return player


def _slot(player: PlayerState, n: int = 1) -> SlotColumns:
    values = {name: np.full(n, value) for name, value in SLOT_NULL_FILL.items()}
    values.update(
        present=np.ones(n, bool),
        character=np.full(n, player.character.value, np.uint8),
        action_state=np.full(n, player.action.value, np.uint16),
        # Slippi's counter; libmelee adds one on the actions it counts from zero.
        action_frame=np.full(
            n,
            player.action_frame - ZERO_INDEXED_ACTIONS[player.character.value, player.action.value],
            np.float32,
        ),
        x=np.full(n, player.position.x, np.float32),
        y=np.full(n, player.position.y, np.float32),
        stocks=np.full(n, player.stock, np.uint8),
        shield=np.full(n, player.shield_strength, np.float32),
        facing=np.full(n, 1, np.int8),
        airborne=np.full(n, not player.on_ground),
        jumps_left=np.full(n, player.jumps_left, np.uint8),
    )
    return SlotColumns(**values)


def _both_ways(stage: Stage, frame: int, me: PlayerState, them: PlayerState, items=()):
    state = GameState()
    state.stage, state.frame = stage, frame
    state.players = {1: me, 2: them}
    state.projectiles = list(items)
    neutral = CONTROLLER_SPEC.neutral()
    live = embed_gamestate(state, 1, 2, neutral, frame_delay=6)
    empty = SlotColumns(**{k: np.full(1, v) for k, v in SLOT_NULL_FILL.items()})
    item_columns = ItemColumns(
        frame_index=np.zeros(len(items), np.int64),
        item_type=np.array([p.type.value for p in items], np.uint16),
        x=np.array([p.position.x for p in items], np.float32),
        y=np.array([p.position.y for p in items], np.float32),
        owner=np.array([p.owner - 1 for p in items], np.int8),
        spawn_id=np.array([p.spawn_id for p in items], np.uint32),
        vel_x=np.array([p.speed.x for p in items], np.float32),
        vel_y=np.array([p.speed.y for p in items], np.float32),
        state=np.array([p.subtype for p in items], np.uint8),
        timer=np.array([p.expiration_frames for p in items], np.float32),
    )
    batch = embed_batch(
        GameColumns(
            slots=(_slot(me), empty, _slot(them), empty),
            external_stage=EXTERNAL.get(stage.name, 0),
            items=item_columns,
            previous_input=neutral[None],
            target_port=1,
            opponent_port=2,
            frames=np.array([frame]),
            frame_delay=6,
        )
    )[0]
    np.testing.assert_array_equal(live, batch)
    return dict(zip(NAMES, live.tolist(), strict=True))


def _raw(vector: dict[str, float], name: str) -> float:
    return vector[name] / COLUMNS[name].scale


@pytest.mark.parametrize("stage", LEGAL_STAGES)
def test_stage_geometry_agrees_and_reads_right(stage: Stage) -> None:
    positions = [(0, 0), (-30, 27.2001), (40, 60), (-95, -20), (150, 10), (0, 54.4001)]
    for frame in (-123, 0, 450, 700, 1050, 5000):
        for x, y in positions:
            vector = _both_ways(
                stage, frame, _player(Character.MEWTWO, x, y), _player(Character.FOX, -x, y)
            )
            assert vector["self_over_stage"] == float(abs(x) <= _edge(stage))
            assert vector["self_edge_distance"] == pytest.approx(
                np.clip((abs(x) - _edge(stage)) * 0.01, -5, 5), abs=1e-4
            )
            assert vector["frame_delay"] == pytest.approx(6 / 16)
    standing = _both_ways(stage, 0, _player(Character.MEWTWO, 0, 0), _player(Character.FOX, 5, 0))
    assert standing["self_platform_below"] == 0 and standing["self_blast_bottom"] > 0


def _edge(stage: Stage) -> float:
    from runtime.stage_geometry import stage_data

    return stage_data(stage).edge_x


def test_a_player_on_battlefields_side_platform_stands_over_it() -> None:
    vector = _both_ways(
        Stage.BATTLEFIELD,
        0,
        _player(Character.MEWTWO, -30, 27.2001),
        _player(Character.FOX, 30, 80),
    )
    assert vector["self_platform_below"] == 1
    assert _raw(vector, "self_platform_height") == pytest.approx(27.2001, abs=1e-3)
    assert _raw(vector, "self_platform_dy") == pytest.approx(0, abs=1e-3)
    # The opponent above the right platform sees it below, 80 - 27.2 units down.
    assert _raw(vector, "opponent_platform_dy") == pytest.approx(80 - 27.2001, abs=1e-3)


def test_randall_carries_a_player_only_where_it_is() -> None:
    from melee.stages import randall_position

    height, left, right = randall_position(500)
    on = _both_ways(
        Stage.YOSHIS_STORY,
        500,
        _player(Character.MEWTWO, (left + right) / 2, height),
        _player(Character.FOX, 0, 0),
    )
    assert on["self_platform_below"] == 1
    assert _raw(on, "self_platform_height") == pytest.approx(height, abs=1e-3)
    elsewhere = _both_ways(
        Stage.YOSHIS_STORY,
        500 + 600,  # half a loop later Randall is on the other side
        _player(Character.MEWTWO, (left + right) / 2, height),
        _player(Character.FOX, 0, 0),
    )
    assert elsewhere["self_platform_below"] == 0


def _projectile(kind: ProjectileType, x: float, y: float, owner: int, spawn: int) -> Projectile:
    projectile = Projectile()
    projectile.type = kind
    projectile.position.x, projectile.position.y = float(np.float32(x)), float(np.float32(y))
    projectile.speed.x, projectile.speed.y = 2.5, -1.25
    projectile.owner = owner
    projectile.subtype = 3
    projectile.expiration_frames = 40
    projectile.spawn_id = np.uint32(spawn)
    return projectile


def test_items_carry_velocity_state_timer_and_owner_relative_position() -> None:
    me, them = _player(Character.LINK, 0, 0), _player(Character.SHEIK, 50, 0)
    items = [
        _projectile(ProjectileType.LINK_BOMB, 10, 5, owner=1, spawn=1),
        _projectile(ProjectileType.NEEDLE_THROWN, 30, 4, owner=2, spawn=2),
        _projectile(ProjectileType.LINK_ARROW, -70, 2, owner=-1, spawn=3),
    ]
    vector = _both_ways(Stage.FINAL_DESTINATION, 0, me, them, items)
    assert vector["item0_type"] == ProjectileType.LINK_BOMB.value + 1
    assert _raw(vector, "item0_vx") == pytest.approx(2.5)
    assert _raw(vector, "item0_vy") == pytest.approx(-1.25)
    assert vector["item0_state"] == 3 and _raw(vector, "item0_timer") == pytest.approx(40)
    assert _raw(vector, "item0_owner_dx") == pytest.approx(10, abs=1e-3)
    assert vector["item1_owner"] == 2
    assert _raw(vector, "item1_owner_dx") == pytest.approx(-20, abs=1e-3)
    assert vector["item2_owner"] == 0 and vector["item2_owner_dx"] == 0


def test_special_groups_show_the_current_form_of_a_transforming_zelda() -> None:
    zelda_transforming = _player(Character.ZELDA, 0, 0, action=355, frame=10)
    as_sheik = _player(Character.SHEIK, 0, 0, action=362, frame=10)
    before = _both_ways(Stage.BATTLEFIELD, 0, zelda_transforming, _player(Character.FOX, 9, 0))
    after = _both_ways(Stage.BATTLEFIELD, 1, as_sheik, _player(Character.FOX, 9, 0))
    assert SPECIAL_GROUPS[int(before["self_special"])] == "zelda_transform"
    assert SPECIAL_GROUPS[int(after["self_special"])] == "sheik_transform"
    assert before["self_character"] == Character.ZELDA.value
    assert after["self_character"] == Character.SHEIK.value


def test_teleport_and_charge_features_on_mewtwo() -> None:
    teleport = _both_ways(
        Stage.BATTLEFIELD,
        0,
        _player(Character.MEWTWO, 0, 30, action=357, frame=4),
        _player(Character.FOX, 9, 0),
    )
    assert SPECIAL_GROUPS[int(teleport["self_special"])] == "mewtwo_teleport_travel"
    bow = _both_ways(
        Stage.BATTLEFIELD,
        0,
        _player(Character.LINK, 0, 0, action=344, frame=30),
        _player(Character.FOX, 9, 0),
    )
    assert 0 < bow["self_charge"] < 1
    assert NAMES.index("frame_delay") == FRAME_DELAY_COLUMN


def test_an_action_libmelee_does_not_know_embeds_like_its_id() -> None:
    # libmelee hands such an action over as a plain UnknownAnimation, not an Action member.
    unknown = 386
    assert unknown not in {action.value for action in Action}
    mewtwo = _player(Character.MEWTWO, 0, 0)
    mewtwo.action = UnknownAnimation(unknown)
    vector = _both_ways(Stage.BATTLEFIELD, 0, mewtwo, _player(Character.FOX, 9, 0))
    assert vector["self_action_state"] == unknown
    assert vector["self_special"] == 0 and vector["self_charge"] == 0
