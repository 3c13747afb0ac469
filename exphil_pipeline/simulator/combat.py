"""Hits and deaths: where attacks connect, what they do, and who falls past a blast zone.

An attack connects on a frame when its hitbox (from the character's frame data, mirrored by
facing) overlaps the defender's hurtbox, a circle of the character's size centred that high
above its feet, and it has not connected already. Both players' hits are found before either
lands, so simultaneous attacks trade. A shield takes the hit as shield damage, shield stun and
pushback. Otherwise Melee's knockback formula applies to the attack's damage, base knockback,
growth and angle (documented approximations: the frame data has no damage):

    kb = (((p / 10 + p * d / 20) * 200 / (weight + 100) * 1.4 + 18) * growth / 100) + base

with ``p`` the percent after the hit and ``d`` the damage; launch speed is ``0.03 * kb``,
hitstun ``floor(0.4 * kb)`` frames and hitlag ``floor(d / 3 + 3)`` frames for both players.
"""

from __future__ import annotations

import numpy as np
from melee.enums import Action

from exphil_pipeline.simulator.action_groups import SHIELDING, UNTOUCHABLE
from exphil_pipeline.simulator.engine_state import NO_ATTACK, NO_GROUND, EngineState
from exphil_pipeline.simulator.melee_data import SimTables

_DEAD_LEFT, _DEAD_RIGHT = Action.DEAD_LEFT.value, Action.DEAD_RIGHT.value
_DEAD_UP, _DEAD_DOWN = Action.DEAD_UP.value, Action.DEAD_DOWN.value
TUMBLE_KNOCKBACK = 80.0
LAUNCH_SPEED_PER_KNOCKBACK = 0.03
HITSTUN_PER_KNOCKBACK = 0.4
SHIELD_DAMAGE_SCALE = 0.7
SHIELD_PUSHBACK = 0.6
DEATH_FRAMES = 60
MAX_PERCENT = 999.0


def untouchable(state: EngineState) -> np.ndarray:
    """Players no attack can hit and no blast zone can kill (entry, dead, revival platform)."""
    return UNTOUCHABLE[state.action]


def _hitboxes(state: EngineState, tables: SimTables) -> tuple[np.ndarray, ...]:
    """Per player: whether a hitbox is out this frame, its centre and radius."""
    attack = np.maximum(state.attack, 0)
    frame = np.clip(state.age - 1, 0, tables.hit_active.shape[2] - 1)
    index = (state.character, attack, frame)
    out = (state.attack != NO_ATTACK) & ~state.attack_hit & (state.hitlag == 0)
    out &= tables.hit_active[index]
    x = state.x + state.facing * tables.hit_x[index]
    y = state.y + tables.hit_y[index]
    return out, x, y, tables.hit_radius[index]


def resolve_hits(state: EngineState, tables: SimTables) -> np.ndarray:
    """Find and apply this frame's hits; returns ``bool[N, 2]``: who landed one."""
    out, hx, hy, radius = _hitboxes(state, tables)
    size = tables.character.size[state.character]
    # The defender of player 0 is player 1 and back: swap the player axis.
    dx = hx - state.x[:, ::-1]
    dy = hy - (state.y[:, ::-1] + size[:, ::-1])
    reach = radius + size[:, ::-1]
    defender_open = ~untouchable(state) & (state.invulnerable == 0)
    hits = out & (dx * dx + dy * dy <= reach * reach) & defender_open[:, ::-1]
    if not hits.any():
        return hits
    attack = np.maximum(state.attack, 0)
    damage = np.where(hits, tables.damage[state.character, attack], 0)
    base = tables.base_knockback[state.character, attack]
    growth = tables.knockback_growth[state.character, attack]
    angle = np.radians(tables.angle[state.character, attack])
    attacker_facing = state.facing.copy()
    attacker_action = state.action.copy()
    state.attack_hit |= hits
    taken = hits[:, ::-1]  # taken[n, p]: player p is hit this frame
    shielded = taken & SHIELDING[state.action]
    struck = taken & ~shielded
    d = damage[:, ::-1]
    hitlag = np.floor(d / 3 + 3).astype(np.int16)
    state.hitlag = np.where(hits, np.maximum(state.hitlag, hitlag[:, ::-1]), state.hitlag)
    state.hitlag = np.where(taken, np.maximum(state.hitlag, hitlag), state.hitlag)
    _shield_hit(state, shielded, d, attacker_facing[:, ::-1])
    _struck(
        state,
        tables,
        struck,
        d,
        base[:, ::-1],
        growth[:, ::-1],
        angle[:, ::-1],
        attacker_facing[:, ::-1],
    )
    state.last_attack_landed = np.where(hits, attacker_action, state.last_attack_landed).astype(
        np.uint8
    )
    state.damage_dealt += np.where(hits & struck[:, ::-1], damage, 0).astype(np.float32)
    return hits


def _shield_hit(
    state: EngineState, shielded: np.ndarray, damage: np.ndarray, attacker_facing: np.ndarray
) -> None:
    state.shield[shielded] = np.maximum(state.shield - damage * SHIELD_DAMAGE_SCALE, 0)[shielded]
    state.action[shielded] = Action.SHIELD_STUN.value
    state.age[shielded] = 1
    state.timer[shielded] = np.floor((damage + 4.45) / 2.235).astype(np.int16)[shielded]
    state.vx[shielded] = (attacker_facing * SHIELD_PUSHBACK)[shielded]


def _struck(
    state: EngineState,
    tables: SimTables,
    struck: np.ndarray,
    damage: np.ndarray,
    base: np.ndarray,
    growth: np.ndarray,
    angle: np.ndarray,
    attacker_facing: np.ndarray,
) -> None:
    percent = np.minimum(state.percent + damage, MAX_PERCENT)
    weight = tables.character.weight[state.character]
    scaled = (percent / 10 + percent * damage / 20) * 200 / (weight + 100) * 1.4 + 18
    knockback = scaled * growth / 100 + base
    speed = knockback * LAUNCH_SPEED_PER_KNOCKBACK
    kb_x = np.cos(angle) * speed * attacker_facing
    kb_y = np.sin(angle) * speed
    state.percent[struck] = percent[struck]
    state.kb_x[struck] = kb_x[struck]
    state.kb_y[struck] = kb_y[struck]
    state.vx[struck] = 0.0
    state.vy[struck] = 0.0
    state.hitstun[struck] = np.floor(knockback * HITSTUN_PER_KNOCKBACK).astype(np.int16)[struck]
    state.attack[struck] = NO_ATTACK
    launched = struck & (kb_y > 0)
    state.airborne |= launched
    state.ground[launched] = NO_GROUND
    tumble = knockback >= TUMBLE_KNOCKBACK
    action = np.where(
        tumble,
        Action.DAMAGE_FLY_NEUTRAL.value,
        np.where(state.airborne, Action.DAMAGE_AIR_1.value, Action.DAMAGE_GROUND.value),
    )
    state.action[struck] = action[struck]
    state.age[struck] = 1
    state.hit_since_landing |= struck
    state.combo[struck] = np.minimum(state.combo[struck].astype(np.int16) + 1, 255)
    # Port index of the attacker (the other player of the game).
    state.last_hit_by[struck] = np.broadcast_to(np.array([1, 0], np.uint8), struck.shape)[struck]
    state.fast_falling[struck] = False


def resolve_blast_zones(state: EngineState, tables: SimTables) -> np.ndarray:
    """Players past a blast zone lose a stock; returns ``bool[N, 2]``: who died this frame."""
    stage = state.stage[:, None]
    left, right = tables.blast_left[stage], tables.blast_right[stage]
    top, bottom = tables.blast_top[stage], tables.blast_bottom[stage]
    alive = ~untouchable(state)
    action = np.select(
        [state.x < left, state.x > right, state.y > top, state.y < bottom],
        [_DEAD_LEFT, _DEAD_RIGHT, _DEAD_UP, _DEAD_DOWN],
        -1,
    )
    died = alive & (action >= 0)
    if not died.any():
        return died
    state.action[died] = action[died]
    state.age[died] = 1
    state.stocks[died] -= 1
    state.self_destructs[died & ~state.hit_since_landing] += 1
    state.timer[died] = DEATH_FRAMES
    state.percent[died] = 0.0
    for name in ("vx", "vy", "kb_x", "kb_y"):
        getattr(state, name)[died] = 0.0
    state.hitstun[died] = 0
    state.hitlag[died] = 0
    state.attack[died] = NO_ATTACK
    state.combo[died] = 0
    state.fast_falling[died] = False
    state.airborne[died] = True
    state.ground[died] = NO_GROUND
    return died
