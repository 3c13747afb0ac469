"""The simulator's game data: libmelee's tables, the approximations, and the packed arrays."""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import pytest
from melee import stages
from melee.enums import Action, Character, Stage

from exphil_pipeline.simulator.melee_data import (
    AERIALS,
    ATTACKS,
    SIM_CHARACTERS,
    SIM_STAGES,
    CharacterArrays,
    CharacterData,
    attack_data,
    attack_slot,
    character_data,
    character_slot,
    external_stage_id,
    randall,
    sim_tables,
    stage_data,
    stage_slot,
)
from runtime.melee_ids import STAGE_NAMES

C, A, S = len(SIM_CHARACTERS), len(ATTACKS), len(SIM_STAGES)

_ATTACK_ARRAY_DTYPES = {
    "attack_frames": np.int16,
    "attack_iasa": np.int16,
    "attack_available": np.bool_,
    "attack_action_state": np.int16,
    "landing_lag": np.int16,
    "l_cancel_lag": np.int16,
    "damage": np.float32,
    "base_knockback": np.float32,
    "knockback_growth": np.float32,
    "angle": np.float32,
}


@pytest.mark.parametrize("character", SIM_CHARACTERS, ids=lambda c: c.name)
def test_character_fields_are_finite_and_positive(character: Character) -> None:
    data = character_data(character)
    for field in fields(CharacterData):
        value = getattr(data, field.name)
        assert math.isfinite(value) and value > 0, (character.name, field.name, value)
    assert data.terminal_velocity < data.fast_fall_speed
    assert data.short_hop_speed < data.jump_speed
    assert data.jumps == 1


def test_fox_movement_comes_from_libmelee_csv() -> None:
    fox = character_data(Character.FOX)
    assert fox.gravity == pytest.approx(0.23)
    assert fox.terminal_velocity == pytest.approx(2.8)
    assert fox.double_jump_speed == pytest.approx(4.186)
    assert (fox.jumpsquat, fox.weight) == (3, 75)


def test_mewtwo_double_jump_falls_back_to_jump_speed() -> None:
    mewtwo = character_data(Character.MEWTWO)  # InitDJSpeed is 0 in the CSV
    assert mewtwo.double_jump_speed == mewtwo.jump_speed


def test_unsupported_character_and_stage_are_named() -> None:
    with pytest.raises(ValueError, match=r"MARTH.*supported characters: FOX, MEWTWO"):
        character_slot(Character.MARTH)
    with pytest.raises(ValueError, match="MARTH"):
        character_data(Character.MARTH)
    with pytest.raises(ValueError, match="NO_STAGE"):
        stage_slot(Stage.NO_STAGE)
    with pytest.raises(ValueError, match="GRAB"):
        attack_slot(Action.GRAB)
    assert [character_slot(c) for c in SIM_CHARACTERS] == list(range(C))


@pytest.mark.parametrize("character", SIM_CHARACTERS, ids=lambda c: c.name)
def test_attacks_have_hitboxes_within_their_frames(character: Character) -> None:
    for attack in ATTACKS:
        data = attack_data(character, attack)
        assert data.available, (character.name, attack.name)
        assert len(data.active) == len(data.hit_radius) == data.frames > 0
        assert 1 <= data.first_active <= data.last_active <= data.frames
        assert 0 <= data.iasa <= data.frames
        for active, radius, x, y in zip(
            data.active, data.hit_radius, data.hit_x, data.hit_y, strict=True
        ):
            assert (radius > 0) if active else (radius == x == y == 0)


def test_game_and_watch_uses_his_own_action_states() -> None:
    nair = attack_data(Character.GAMEANDWATCH, Action.NAIR)
    bair = attack_data(Character.GAMEANDWATCH, Action.BAIR)
    assert (nair.action_state, bair.action_state) == (347, 348)
    assert bair.hit_x[bair.first_active - 1] < 0  # the turtle is behind him
    assert attack_data(Character.FOX, Action.NAIR).action_state == Action.NAIR.value


def test_landing_lag_and_hits() -> None:
    for character in SIM_CHARACTERS:
        for attack in ATTACKS:
            data = attack_data(character, attack)
            if attack in AERIALS:
                assert 0 < data.l_cancel_lag <= data.landing_lag
            else:
                assert data.landing_lag == data.l_cancel_lag == 0
            assert data.damage > 0 and data.base_knockback > 0 and data.knockback_growth > 0
            assert 0 <= data.angle < 360
    assert attack_data(Character.FOX, Action.NAIR).l_cancel_lag == 7
    gnw_nair = attack_data(Character.GAMEANDWATCH, Action.NAIR)
    assert gnw_nair.l_cancel_lag == gnw_nair.landing_lag  # cannot be L-cancelled


def test_packed_character_arrays_match_dataclasses() -> None:
    tables = sim_tables()
    assert tables is sim_tables()
    assert [f.name for f in fields(CharacterArrays)] == [f.name for f in fields(CharacterData)]
    for field in fields(CharacterData):
        array = getattr(tables.character, field.name)
        assert array.shape == (C,) and array.dtype == np.float32
        expected = [getattr(character_data(c), field.name) for c in SIM_CHARACTERS]
        np.testing.assert_allclose(array, expected, rtol=1e-6)
        assert not array.flags.writeable


def test_packed_attack_arrays_match_dataclasses() -> None:
    tables = sim_tables()
    frames = tables.max_frames
    assert frames == max(attack_data(c, a).frames for c in SIM_CHARACTERS for a in ATTACKS)
    for name, dtype in _ATTACK_ARRAY_DTYPES.items():
        assert getattr(tables, name).shape == (C, A) and getattr(tables, name).dtype == dtype
    for name in ("hit_active", "hit_x", "hit_y", "hit_radius"):
        assert getattr(tables, name).shape == (C, A, frames)
    for c, character in enumerate(SIM_CHARACTERS):
        for a, attack in enumerate(ATTACKS):
            data = attack_data(character, attack)
            n = data.frames
            assert tables.attack_frames[c, a] == n and tables.attack_iasa[c, a] == data.iasa
            assert tables.angle[c, a] == pytest.approx(data.angle)
            assert tables.l_cancel_lag[c, a] == data.l_cancel_lag
            assert tables.hit_active[c, a, :n].tolist() == list(data.active)
            np.testing.assert_allclose(tables.hit_radius[c, a, :n], data.hit_radius, rtol=1e-6)
            np.testing.assert_allclose(tables.hit_x[c, a, :n], data.hit_x, rtol=1e-6)
            assert not tables.hit_active[c, a, n:].any() and not tables.hit_y[c, a, n:].any()
    assert (tables.hit_radius[tables.hit_active] > 0).all()


def test_stages_match_libmelee() -> None:
    tables = sim_tables()
    for s, stage in enumerate(SIM_STAGES):
        data = stage_data(stage)
        blast = (data.blast_left, data.blast_right, data.blast_top, data.blast_bottom)
        assert blast == pytest.approx(stages.BLASTZONES[stage])
        packed = (tables.blast_left, tables.blast_right, tables.blast_top, tables.blast_bottom)
        assert [float(a[s]) for a in packed] == pytest.approx(stages.BLASTZONES[stage])
        assert tables.edge_x[s] == pytest.approx(stages.EDGE_GROUND_POSITION[stage])
        assert data.edge_x < data.ledge_x == pytest.approx(stages.EDGE_POSITION[stage])
        sides = (data.top_platform, data.left_platform, data.right_platform)
        present = [side is not None for side in sides]
        assert (~np.isnan(tables.platforms[s, :, 0])).tolist() == present
        assert stage_slot(stage) == s
    assert stage_data(Stage.FINAL_DESTINATION).platforms == ()
    assert len(stage_data(Stage.BATTLEFIELD).platforms) == 3
    assert len(stage_data(Stage.POKEMON_STADIUM).platforms) == 2
    fountain = stage_data(Stage.FOUNTAIN_OF_DREAMS)
    assert fountain.moving_platforms and len(fountain.platforms) == 3
    assert stage_data(Stage.YOSHIS_STORY).has_randall
    assert randall(600) == pytest.approx(stages.randall_position(600))
    assert tables.platforms.shape == (S, 3, 3)


def test_external_stage_ids_match_runtime_table() -> None:
    tables = sim_tables()
    for s, stage in enumerate(SIM_STAGES):
        assert STAGE_NAMES[external_stage_id(stage)] == stage.name
        assert tables.stage_external_id[s] == external_stage_id(stage)
    assert external_stage_id(Stage.FINAL_DESTINATION) == 32
