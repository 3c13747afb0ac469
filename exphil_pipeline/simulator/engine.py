"""The simulator's engine: ``step`` advances every player of N games by one frame.

Characters move by their own attributes from libmelee's character table (gravity, terminal and
fast-fall speed, walk and air speed, air mobility and friction, ground friction, jumps) and the
documented approximations where that table is silent (jump and dash speeds, jumpsquat, weight),
on the legal stages' real floors, platforms, edges and blast zones
(:mod:`exphil_pipeline.simulator.melee_data`). Ground attacks (jab, tilts, smashes, dash attack)
and aerials (neutral, forward, back, up, down) use each character's frame data: their length,
and per frame whether a hitbox is out, where and how big (:mod:`.combat` resolves hits).
Also: jumpsquat, short and full hops, double jumps, fast falls, landing lag and L-cancels,
shields with decay, stun and release lag, walking off platforms, deaths past a blast zone,
the revival platform and respawn invulnerability.

Every rule is a masked array update over ``[N, 2]`` players, so the cost of a step barely
depends on N. Melee's engine is richer (specials, grabs, ledges, tech, DI); this is the part of
it that matters to spacing, punishing and staying alive, and it is the same engine that writes
the sample replays, so what a policy meets here also lands in the ``frames`` table.
"""

from __future__ import annotations

import numpy as np
from melee.enums import Action

from exphil_pipeline.simulator.action_groups import (
    AERIAL_INDEX,
    AERIAL_LANDING,
    DASHING_OR_RUNNING,
    DEAD,
    ENTRY,
    GROUND_MOVING,
    HALO,
    LAG,
    RISING,
    SHIELDING,
)
from exphil_pipeline.simulator.combat import resolve_blast_zones, resolve_hits
from exphil_pipeline.simulator.engine_state import MAIN_FLOOR, NO_ATTACK, NO_GROUND, EngineState
from exphil_pipeline.simulator.melee_data import ATTACKS, SimTables
from exphil_pipeline.simulator.pad_inputs import PadInputs

A = Action
_ENTRY_SCHEDULE = ((-118, A.ENTRY_START.value), (-89, A.ENTRY_END.value), (-59, A.FALLING.value))
DASH_TILT = 0.8
WALK_TILT = 0.2
DIRECTION_TILT = 0.5
FAST_FALL_TILT = -0.65
LANDING_LAG = 4
L_CANCEL_WINDOW = 7
SHIELD_DECAY = 0.28
SHIELD_REGEN = 0.07
SHIELD_START_FRAMES = 2
SHIELD_RELEASE_LAG = 15
HALO_START_Y, HALO_END_Y = 80.0, 40.0
HALO_DESCENT_FRAMES, HALO_WAIT_FRAMES = 40, 150
RESPAWN_INVULNERABLE = 120
KNOCKBACK_DECAY = 0.051  # Melee's launch speed loses this much per frame


def enter(state: EngineState, where: np.ndarray, action: int | np.ndarray) -> None:
    """Switch the selected players to ``action``, counting its frames from 1."""
    state.action[where] = action if np.isscalar(action) else action[where]
    state.age[where] = 1


def start_attack(
    state: EngineState, tables: SimTables, where: np.ndarray, attack: np.ndarray
) -> None:
    """Begin ``attack`` (index into ``ATTACKS``, per player) for the selected players, in the
    action state the character's frame data gives it."""
    state.attack[where] = attack[where]
    state.attack_hit[where] = False
    enter(state, where, tables.attack_action_state[state.character, np.maximum(attack, 0)])


def step(state: EngineState, pad: PadInputs, tables: SimTables) -> np.ndarray:
    """Play one frame of every game in place; returns ``bool[N, 2]``: who landed a hit."""
    state.frame += 1
    state.l_cancel[:] = 0
    frozen = state.hitlag > 0
    state.hitlag[frozen] -= 1
    live = ~frozen
    state.age[live] += 1
    state.trigger_age = np.where(pad.shield, 0, np.minimum(state.trigger_age + 1, 99)).astype(
        np.int16
    )
    state.invulnerable[live] = np.maximum(state.invulnerable[live] - 1, 0)
    regen = live & ~SHIELDING[state.action]
    state.shield[regen] = np.minimum(state.shield[regen] + SHIELD_REGEN, 60.0)
    entry = live & ENTRY[state.action]
    for frame, action in _ENTRY_SCHEDULE:
        enter(state, entry & (state.frame[:, None] == frame), action)
    dead = live & DEAD[state.action]
    halo = live & HALO[state.action]
    _advance_dead(state, dead)
    _advance_halo(state, halo, pad)
    active = live & ~entry & ~dead & ~halo
    previous_y = state.y.copy()
    _act(state, pad, tables, active)
    _move(state, tables, active, previous_y)
    hits = resolve_hits(state, tables)
    resolve_blast_zones(state, tables)
    return hits


def _advance_dead(state: EngineState, dead: np.ndarray) -> None:
    state.timer[dead] -= 1
    revive = dead & (state.timer <= 0) & (state.stocks > 0)
    enter(state, revive, A.ON_HALO_DESCENT.value)
    state.timer[revive] = HALO_DESCENT_FRAMES
    spawn = np.where(np.arange(2)[None, :] == 0, np.float32(-40.0), np.float32(40.0))
    state.x[revive] = np.broadcast_to(spawn, state.x.shape)[revive]
    state.y[revive] = HALO_START_Y
    state.facing[revive] = -np.sign(state.x[revive])
    state.airborne[revive] = True
    state.ground[revive] = NO_GROUND
    state.shield[revive] = 60.0


def _advance_halo(state: EngineState, halo: np.ndarray, pad: PadInputs) -> None:
    state.timer[halo] -= 1
    descending = halo & (state.action == A.ON_HALO_DESCENT.value)
    state.y[descending] -= (HALO_START_Y - HALO_END_Y) / HALO_DESCENT_FRAMES
    wait = descending & (state.timer <= 0)
    enter(state, wait, A.ON_HALO_WAIT.value)
    state.timer[wait] = HALO_WAIT_FRAMES
    touched = (np.abs(pad.stick_x) > WALK_TILT) | (np.abs(pad.stick_y) > WALK_TILT) | pad.a
    touched |= pad.jump | pad.shield | pad.b
    leave = halo & ~descending & ((state.timer <= 0) | touched)
    enter(state, leave, A.FALLING.value)
    state.invulnerable[leave] = RESPAWN_INVULNERABLE
    state.jumps[leave] = 1


def _column(tables: SimTables, name: str, state: EngineState) -> np.ndarray:
    """A per-character attribute for every player: ``float32[N, 2]``."""
    return getattr(tables.character, name)[state.character]


def _act(state: EngineState, pad: PadInputs, tables: SimTables, active: np.ndarray) -> None:
    """State transitions and self-induced speed: the players' choices, where they may choose."""
    stunned = active & (state.hitstun > 0)
    state.hitstun[stunned] -= 1
    recovered = stunned & (state.hitstun == 0)
    enter(state, recovered & state.airborne, A.FALLING.value)
    enter(state, recovered & ~state.airborne, A.STANDING.value)
    free = active & ~stunned
    attacking = free & (state.attack != NO_ATTACK)
    length = tables.attack_frames[state.character, np.maximum(state.attack, 0)]
    done = attacking & (state.age > length)
    state.attack[done] = NO_ATTACK
    enter(state, done & state.airborne, A.FALLING.value)
    enter(state, done & ~state.airborne, A.STANDING.value)
    _drift(state, pad, tables, attacking & ~done & state.airborne)
    free &= ~attacking
    lagging = free & LAG[state.action]
    state.timer[lagging] -= 1
    enter(state, lagging & (state.timer <= 0), A.STANDING.value)
    free &= ~lagging
    shielding = free & SHIELDING[state.action]
    _hold_shield(state, pad, shielding)
    free &= ~shielding
    squat = free & (state.action == A.KNEE_BEND.value)
    _jump(state, pad, tables, squat & (state.age > _column(tables, "jumpsquat", state)))
    free &= ~squat
    _air_control(state, pad, tables, free & state.airborne)
    _ground_control(state, pad, tables, free & ~state.airborne)


def _hold_shield(state: EngineState, pad: PadInputs, shielding: np.ndarray) -> None:
    state.shield[shielding] = np.maximum(state.shield[shielding] - SHIELD_DECAY, 0.0)
    stun = shielding & (state.action == A.SHIELD_STUN.value)
    state.timer[stun] -= 1
    free = shielding & ~(stun & (state.timer > 0))
    release = free & ~pad.shield
    enter(state, release, A.SHIELD_RELEASE.value)
    state.timer[release] = SHIELD_RELEASE_LAG
    starting = state.action == A.SHIELD_START.value
    hold = free & pad.shield & (state.action != A.SHIELD.value)
    hold &= ~(starting & (state.age <= SHIELD_START_FRAMES))
    enter(state, hold, A.SHIELD.value)


def _jump(state: EngineState, pad: PadInputs, tables: SimTables, jumping: np.ndarray) -> None:
    forward = pad.stick_x * state.facing >= 0
    action = np.where(forward, A.JUMPING_FORWARD.value, A.JUMPING_BACKWARD.value)
    enter(state, jumping, action.astype(np.int16))
    full = _column(tables, "jump_speed", state)
    short = _column(tables, "short_hop_speed", state)
    state.vy[jumping] = np.where(pad.jump, full, short)[jumping]
    state.vx[jumping] = (pad.stick_x * _column(tables, "air_speed", state))[jumping]
    state.airborne[jumping] = True
    state.ground[jumping] = NO_GROUND
    state.jumps[jumping] -= 1


def _direction(pad_x: np.ndarray, pad_y: np.ndarray, facing: np.ndarray) -> np.ndarray:
    """0 neutral, 1 forward, 2 back, 3 up, 4 down, for a stick and a facing."""
    vertical = np.abs(pad_y) >= np.abs(pad_x)
    out = np.zeros(pad_x.shape, dtype=np.int16)
    tilted = np.maximum(np.abs(pad_x), np.abs(pad_y)) >= DIRECTION_TILT
    out = np.where(tilted & vertical & (pad_y > 0), 3, out)
    out = np.where(tilted & vertical & (pad_y < 0), 4, out)
    out = np.where(tilted & ~vertical & (pad_x * facing > 0), 1, out)
    return np.where(tilted & ~vertical & (pad_x * facing < 0), 2, out).astype(np.int16)


def _air_control(state: EngineState, pad: PadInputs, tables: SimTables, air: np.ndarray) -> None:
    c_stick = np.maximum(np.abs(pad.cstick_x), np.abs(pad.cstick_y)) >= DIRECTION_TILT
    sx = np.where(c_stick, pad.cstick_x, pad.stick_x)
    sy = np.where(c_stick, pad.cstick_y, pad.stick_y)
    aerial = air & (pad.a | c_stick)
    # NAIR, FAIR, BAIR, UAIR, DAIR follow the direction codes' order.
    start_attack(state, tables, aerial, AERIAL_INDEX[_direction(sx, sy, state.facing)])
    double = air & ~aerial & pad.jump & (state.jumps > 0) & (state.vy < 0)
    forward = pad.stick_x * state.facing >= 0
    action = np.where(forward, A.JUMPING_ARIAL_FORWARD.value, A.JUMPING_ARIAL_BACKWARD.value)
    enter(state, double, action.astype(np.int16))
    state.vy[double] = _column(tables, "double_jump_speed", state)[double]
    state.vx[double] = (pad.stick_x * _column(tables, "double_jump_x", state))[double]
    state.jumps[double] -= 1
    state.fast_falling[double] = False
    fell = air & ~aerial & ~double & RISING[state.action] & (state.vy < 0)
    enter(state, fell, A.FALLING.value)
    _drift(state, pad, tables, air)


def _drift(state: EngineState, pad: PadInputs, tables: SimTables, air: np.ndarray) -> None:
    """Air control toward the stick, and the fast fall (stick down while falling)."""
    target = pad.stick_x * _column(tables, "air_speed", state)
    mobility = _column(tables, "air_mobility", state)
    friction = _column(tables, "air_friction", state)
    steer = np.abs(pad.stick_x) > WALK_TILT
    toward = np.clip(target - state.vx, -mobility, mobility)
    settle = -np.clip(state.vx, -friction, friction)
    state.vx[air] = (state.vx + np.where(steer, toward, settle))[air]
    state.fast_falling |= air & (pad.stick_y < FAST_FALL_TILT) & (state.vy < 0)


def _ground_control(
    state: EngineState, pad: PadInputs, tables: SimTables, ground: np.ndarray
) -> None:
    smash = np.maximum(np.abs(pad.cstick_x), np.abs(pad.cstick_y)) >= DIRECTION_TILT
    shield = ground & pad.shield
    enter(state, shield, A.SHIELD_START.value)
    left = ground & ~shield
    smashing = left & smash
    smash_dir = _direction(pad.cstick_x, pad.cstick_y, state.facing)
    turn = smashing & (smash_dir == 2)
    state.facing[turn] *= -1
    smash_attack = np.select(
        [smash_dir == 3, smash_dir == 4],
        [ATTACKS.index(A.UPSMASH), ATTACKS.index(A.DOWNSMASH)],
        ATTACKS.index(A.FSMASH_MID),
    ).astype(np.int16)
    start_attack(state, tables, smashing, smash_attack)
    left &= ~smashing
    tilting = left & pad.a
    moving = DASHING_OR_RUNNING[state.action]
    tilt_dir = _direction(pad.stick_x, pad.stick_y, state.facing)
    turn = tilting & ~moving & (tilt_dir == 2)
    state.facing[turn] *= -1
    tilt_attack = np.select(
        [moving, tilt_dir == 3, tilt_dir == 4, (tilt_dir == 1) | (tilt_dir == 2)],
        [
            ATTACKS.index(A.DASH_ATTACK),
            ATTACKS.index(A.UPTILT),
            ATTACKS.index(A.DOWNTILT),
            ATTACKS.index(A.FTILT_MID),
        ],
        ATTACKS.index(A.NEUTRAL_ATTACK_1),
    ).astype(np.int16)
    start_attack(state, tables, tilting, tilt_attack)
    left &= ~tilting
    squat = left & pad.jump
    enter(state, squat, A.KNEE_BEND.value)
    left &= ~squat
    _run(state, pad, tables, left)


def _run(state: EngineState, pad: PadInputs, tables: SimTables, ground: np.ndarray) -> None:
    """Dashing, running, walking or standing, by the stick's tilt."""
    direction = np.where(pad.stick_x < 0, np.float32(-1), np.float32(1))
    dash = ground & (np.abs(pad.stick_x) >= DASH_TILT)
    moving = DASHING_OR_RUNNING[state.action]
    begin = dash & (~moving | (direction != state.facing))
    enter(state, begin, A.DASHING.value)
    state.facing[begin] = direction[begin]
    state.vx[begin] = (direction * _column(tables, "dash_speed", state))[begin]
    to_run = dash & ~begin & (state.action == A.DASHING.value)
    to_run &= state.age > _column(tables, "dash_frames", state)
    enter(state, to_run, A.RUNNING.value)
    running = dash & (state.action == A.RUNNING.value)
    state.vx[running] = (direction * _column(tables, "run_speed", state))[running]
    walk = ground & ~dash & (np.abs(pad.stick_x) > WALK_TILT)
    rewalk = walk & ((state.action != A.WALK_MIDDLE.value) | (direction != state.facing))
    enter(state, rewalk, A.WALK_MIDDLE.value)
    state.facing[walk] = direction[walk]
    state.vx[walk] = (pad.stick_x * _column(tables, "max_walk_speed", state))[walk]
    stand = ground & ~dash & ~walk & (state.action != A.STANDING.value)
    enter(state, stand, A.STANDING.value)


def _move(
    state: EngineState, tables: SimTables, active: np.ndarray, previous_y: np.ndarray
) -> None:
    """Integrate speeds, then the stage: floors, platforms, edges and the stage's sides."""
    air = active & state.airborne
    gravity = _column(tables, "gravity", state)
    fall = np.where(
        state.fast_falling,
        _column(tables, "fast_fall_speed", state),
        _column(tables, "terminal_velocity", state),
    )
    falling_vy = np.where(state.fast_falling, -fall, np.maximum(state.vy - gravity, -fall))
    state.vy[air] = falling_vy[air]
    ground = active & ~state.airborne
    friction = _column(tables, "friction", state)
    slow = ground & ~GROUND_MOVING[state.action]
    state.vx[slow] = (np.sign(state.vx) * np.maximum(np.abs(state.vx) - friction, 0.0))[slow]
    state.x[active] += (state.vx + state.kb_x)[active]
    state.y[air] += (state.vy + state.kb_y)[air]
    speed = np.hypot(state.kb_x, state.kb_y)
    scale = np.where(speed > 0, np.maximum(speed - KNOCKBACK_DECAY, 0) / np.maximum(speed, 1e-9), 0)
    state.kb_x[active] *= scale[active]
    state.kb_y[active] *= scale[active]
    _stage_contact(state, tables, active, previous_y)


def _stage_contact(
    state: EngineState, tables: SimTables, active: np.ndarray, previous_y: np.ndarray
) -> None:
    edge = tables.edge_x[state.stage][:, None]
    on_floor = active & ~state.airborne & (state.ground == MAIN_FLOOR)
    past = on_floor & (np.abs(state.x) > edge)
    knocked = past & (state.hitstun > 0)
    state.airborne[knocked] = True
    state.ground[knocked] = NO_GROUND
    stop = past & ~knocked  # players stop at the ledge rather than walk off it
    state.x[stop] = (np.sign(state.x) * edge)[stop]
    state.vx[stop] = 0.0
    platforms = tables.platforms[state.stage]  # [N, 3 platforms, (height, left, right)]
    for index in range(platforms.shape[1]):
        height = platforms[:, index, 0][:, None]
        inside = (state.x >= platforms[:, index, 1][:, None]) & (
            state.x <= platforms[:, index, 2][:, None]
        )
        walked_off = active & ~state.airborne & (state.ground == MAIN_FLOOR + 1 + index) & ~inside
        state.airborne[walked_off] = True
        state.ground[walked_off] = NO_GROUND
        crossing = active & state.airborne & (previous_y >= height) & (state.y <= height)
        _land(state, tables, crossing & inside & (state.vy + state.kb_y <= 0), height, index + 2)
    on_main = active & state.airborne & (np.abs(state.x) <= edge) & (state.y <= 0)
    _land(state, tables, on_main & (previous_y >= 0), np.float32(0), MAIN_FLOOR)
    wall = on_main & (previous_y < 0)  # below the floor: pushed out of the stage's side
    state.x[wall] = (np.sign(state.x) * edge)[wall]


def _land(
    state: EngineState, tables: SimTables, landing: np.ndarray, height, ground_id: int
) -> None:
    if not landing.any():
        return
    state.y[landing] = np.broadcast_to(height, state.y.shape)[landing]
    state.vy[landing] = 0.0
    state.kb_y[landing] = 0.0
    state.airborne[landing] = False
    state.ground[landing] = ground_id
    state.jumps[landing] = 1 + _column(tables, "jumps", state).astype(np.int16)[landing]
    state.fast_falling[landing] = False
    state.hit_since_landing[landing] = False
    plain = landing & (state.hitstun == 0)  # a player in hitstun slides on in its damage state
    aerial = plain & (state.attack >= AERIAL_INDEX[0])
    cancelled = state.trigger_age < L_CANCEL_WINDOW
    state.l_cancel[aerial] = np.where(cancelled, 1, 2)[aerial]
    which = np.maximum(state.attack - AERIAL_INDEX[0], 0)
    attack = (state.character, np.maximum(state.attack, 0))
    lag = np.where(cancelled, tables.l_cancel_lag[attack], tables.landing_lag[attack])
    enter(state, aerial, AERIAL_LANDING[which])
    state.timer[aerial] = lag[aerial]
    state.attack[plain] = NO_ATTACK
    other = plain & ~aerial
    enter(state, other, A.LANDING.value)
    state.timer[other] = LANDING_LAG
