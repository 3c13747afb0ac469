"""The simulation engine: ``step`` advances both fighters by one frame given their inputs.

The motion is simple kinematics, not Melee's engine: walking, dashing and running, jumps and a
double jump under gravity, landing lag, the attacks of ``attacks`` (a neutral air that can be
L-cancelled), shielding, knockback that decays each frame, deaths past a blast zone and
respawn on the revival platform. Inputs are ignored while a player cannot act (entry, lag,
hitstun, hitlag). The engine does not know who chooses the inputs nor how a replay file is
encoded, so the same step serves scripted games and any other driver.
"""

from __future__ import annotations

import math

from melee.enums import Action

from exphil_pipeline.simulator.attacks import (
    FSMASH,
    JAB,
    MOVES,
    NAIR,
    apply_hit,
    start_move,
    touching_move,
)
from exphil_pipeline.simulator.fighter import (
    BLAST_BOTTOM,
    BLAST_LEFT,
    BLAST_RIGHT,
    BLAST_TOP,
    DEAD_ACTIONS,
    ENTRY_ACTIONS,
    FULL_TILT,
    HALO_ACTIONS,
    L_CANCEL_WINDOW,
    MAX_JUMPS,
    MAX_SHIELD,
    SHIELD_ACTIONS,
    STAGE_EDGE_X,
    UNTOUCHABLE,
    Fighter,
    Inputs,
    enter,
    sign,
)
from exphil_pipeline.simulator.slp_records import LCancel

_STAGE_GROUND_ID = 1  # id Final Destination's floor has in real replays

# First frame of each entry animation; control starts after landing from the fall.
_ENTRY_SCHEDULE = {-118: Action.ENTRY_START, -89: Action.ENTRY_END, -59: Action.FALLING}

_DASH_THRESHOLD = 0.8
_LANDING_LAG = 4
_NAIR_LANDING_LAG = 16  # halved by a successful L-cancel
_SHIELD_DECAY = 0.28
_SHIELD_REGEN = 0.07
_SHIELD_START_FRAMES = 2
_SHIELD_RELEASE_LAG = 15
_DEATH_FRAMES = 60
_HALO_START_Y = 80.0
_HALO_END_Y = 40.0
_HALO_DESCENT_FRAMES = 40
_HALO_WAIT_FRAMES = 150
_RESPAWN_INVULNERABLE_FRAMES = 120
# Melee's launch speed decays by a constant each frame.
_KNOCKBACK_DECAY = 0.051

_LAG_ACTIONS = frozenset({Action.LANDING, Action.NAIR_LANDING, Action.SHIELD_RELEASE})
_RISING_ACTIONS = frozenset(
    {
        Action.JUMPING_FORWARD,
        Action.JUMPING_BACKWARD,
        Action.JUMPING_ARIAL_FORWARD,
        Action.JUMPING_ARIAL_BACKWARD,
    }
)
_GROUND_MOVING = frozenset({Action.WALK_MIDDLE, Action.DASHING, Action.RUNNING})


def step(fighters: list[Fighter], inputs: list[Inputs], number: int) -> None:
    """Play frame ``number`` for two fighters, in place: ``inputs[i]`` is fighter i's input."""
    for f, i in zip(fighters, inputs, strict=True):
        _advance(f, i, number)
    # Both hits are found before either lands, so simultaneous attacks trade.
    opponents = fighters[::-1]
    hits = [
        (a, d, m) for a, d in zip(fighters, opponents, strict=True) if (m := touching_move(a, d))
    ]
    for attacker, defender, move in hits:
        apply_hit(attacker, defender, move)
    for f in fighters:
        _check_blast_zones(f)


def _approach(value: float, target: float, delta: float) -> float:
    if value < target:
        return min(value + delta, target)
    return max(value - delta, target)


def _advance(f: Fighter, inputs: Inputs, number: int) -> None:
    """Apply one frame of inputs and motion to a fighter."""
    f.l_cancel = LCancel.NONE  # reported on the landing frame only
    if f.hitlag:
        f.hitlag -= 1
        return
    f.age += 1
    f.trigger_age = 0 if inputs.shield else f.trigger_age + 1
    f.invulnerable = max(f.invulnerable - 1, 0)
    if f.action not in SHIELD_ACTIONS:
        f.shield = min(f.shield + _SHIELD_REGEN, MAX_SHIELD)
    if f.action in ENTRY_ACTIONS:
        if number in _ENTRY_SCHEDULE:
            enter(f, _ENTRY_SCHEDULE[number])
    elif f.action in DEAD_ACTIONS:
        _advance_dead(f)
    elif f.action in HALO_ACTIONS:
        _advance_halo(f, inputs)
    else:
        _act(f, inputs)
        _move(f)


def _advance_dead(f: Fighter) -> None:
    f.timer -= 1
    if f.timer == 0:
        enter(f, Action.ON_HALO_DESCENT)
        f.timer = _HALO_DESCENT_FRAMES
        f.x, f.y = f.spawn_x, _HALO_START_Y
        f.airborne = True
        f.facing = -sign(f.spawn_x)
        f.jumps = MAX_JUMPS - 1
        f.shield = MAX_SHIELD


def _advance_halo(f: Fighter, inputs: Inputs) -> None:
    f.timer -= 1
    if f.action == Action.ON_HALO_DESCENT:
        f.y -= (_HALO_START_Y - _HALO_END_Y) / _HALO_DESCENT_FRAMES
        if f.timer == 0:
            enter(f, Action.ON_HALO_WAIT)
            f.timer = _HALO_WAIT_FRAMES
    elif f.timer == 0 or inputs != Inputs():
        enter(f, Action.FALLING)
        f.invulnerable = _RESPAWN_INVULNERABLE_FRAMES


def _act(f: Fighter, inputs: Inputs) -> None:
    """State transitions and self-induced velocity for one frame."""
    if f.hitstun:
        f.hitstun -= 1
        if not f.hitstun:
            enter(f, Action.FALLING if f.airborne else Action.STANDING)
    elif f.action in MOVES:
        if f.age > MOVES[f.action].duration:
            enter(f, Action.FALLING if f.airborne else Action.STANDING)
        elif f.airborne:
            _drift(f, inputs)
    elif f.action in _LAG_ACTIONS:
        f.timer -= 1
        if f.timer == 0:
            enter(f, Action.STANDING)
    elif f.action in SHIELD_ACTIONS:
        _hold_shield(f, inputs)
    elif f.action == Action.KNEE_BEND:
        if f.age > f.physics.jumpsquat:
            _jump(f, inputs)
    elif f.airborne:
        _air_control(f, inputs)
    else:
        _ground_control(f, inputs)


def _hold_shield(f: Fighter, inputs: Inputs) -> None:
    f.shield -= _SHIELD_DECAY
    if f.action == Action.SHIELD_STUN:
        f.timer -= 1
        if f.timer:
            return
    if not inputs.shield:
        enter(f, Action.SHIELD_RELEASE)
        f.timer = _SHIELD_RELEASE_LAG
    elif f.action != Action.SHIELD and not (
        f.action == Action.SHIELD_START and f.age <= _SHIELD_START_FRAMES
    ):
        enter(f, Action.SHIELD)


def _jump(f: Fighter, inputs: Inputs) -> None:
    stick = inputs.stick_x / FULL_TILT
    forward = stick * f.facing >= 0
    enter(f, Action.JUMPING_FORWARD if forward else Action.JUMPING_BACKWARD)
    f.airborne = True
    f.jumps -= 1
    f.vy = f.physics.jump_speed
    f.vx = stick * f.physics.air_speed


def _air_control(f: Fighter, inputs: Inputs) -> None:
    stick = inputs.stick_x / FULL_TILT
    if inputs.a:
        start_move(f, NAIR)
    elif inputs.jump and f.jumps > 0 and f.vy < 0:
        forward = stick * f.facing >= 0
        enter(f, Action.JUMPING_ARIAL_FORWARD if forward else Action.JUMPING_ARIAL_BACKWARD)
        f.jumps -= 1
        f.vy = f.physics.double_jump_speed
    elif f.action in _RISING_ACTIONS and f.vy < 0:
        enter(f, Action.FALLING)
    _drift(f, inputs)


def _drift(f: Fighter, inputs: Inputs) -> None:
    stick = inputs.stick_x / FULL_TILT
    f.vx = _approach(f.vx, stick * f.physics.air_speed, f.physics.air_accel)


def _ground_control(f: Fighter, inputs: Inputs) -> None:
    stick = inputs.stick_x / FULL_TILT
    if inputs.shield:
        enter(f, Action.SHIELD_START)
    elif inputs.cstick_x:
        f.facing = sign(inputs.cstick_x)
        start_move(f, FSMASH)
    elif inputs.a:
        start_move(f, JAB)
    elif inputs.jump:
        enter(f, Action.KNEE_BEND)
    elif abs(stick) >= _DASH_THRESHOLD:
        _dash(f, sign(stick))
    elif stick:
        # Every walk shows as WALK_MIDDLE, Melee's animation at half tilt; speed follows the tilt.
        if f.action != Action.WALK_MIDDLE or sign(stick) != f.facing:
            enter(f, Action.WALK_MIDDLE)
        f.facing = sign(stick)
        f.vx = stick * f.physics.walk_speed
    elif f.action != Action.STANDING:
        enter(f, Action.STANDING)


def _dash(f: Fighter, direction: float) -> None:
    if f.action not in (Action.DASHING, Action.RUNNING) or direction != f.facing:
        enter(f, Action.DASHING)
        f.facing = direction
        f.vx = direction * f.physics.dash_speed
    elif f.action == Action.DASHING and f.age > f.physics.dash_frames:
        enter(f, Action.RUNNING)
    if f.action == Action.RUNNING:
        f.vx = direction * f.physics.run_speed


def _move(f: Fighter) -> None:
    """Integrate velocities, then handle the stage's edges, floor and walls."""
    previous_y = f.y
    if f.airborne:
        f.vy = max(f.vy - f.physics.gravity, -f.physics.max_fall_speed)
        f.x += f.vx + f.kb_x
        f.y += f.vy + f.kb_y
    else:
        if f.action not in _GROUND_MOVING:
            f.vx = _approach(f.vx, 0.0, f.physics.traction)
        f.x += f.vx + f.kb_x
        if abs(f.x) > STAGE_EDGE_X:
            if f.hitstun:
                f.airborne = True  # knocked off the edge
            else:
                f.x = math.copysign(STAGE_EDGE_X, f.x)  # players stop at the ledge
                f.vx = 0.0
    speed = math.hypot(f.kb_x, f.kb_y)
    scale = max(speed - _KNOCKBACK_DECAY, 0.0) / speed if speed else 0.0
    f.kb_x, f.kb_y = f.kb_x * scale, f.kb_y * scale
    if f.airborne and f.y <= 0.0 and abs(f.x) <= STAGE_EDGE_X:
        if previous_y >= 0.0:
            _land(f)
        else:
            f.x = math.copysign(STAGE_EDGE_X, f.x)  # below the floor: the stage's side wall


def _land(f: Fighter) -> None:
    f.y = f.vy = f.kb_y = 0.0
    f.airborne = False
    f.jumps = MAX_JUMPS
    f.ground = _STAGE_GROUND_ID
    if f.hitstun:
        return  # keeps sliding in its damage state
    if f.action == Action.NAIR:
        cancelled = f.trigger_age < L_CANCEL_WINDOW
        f.l_cancel = LCancel.SUCCESS if cancelled else LCancel.FAILURE
        enter(f, Action.NAIR_LANDING)
        f.timer = _NAIR_LANDING_LAG // 2 if cancelled else _NAIR_LANDING_LAG
    else:
        enter(f, Action.LANDING)
        f.timer = _LANDING_LAG


def _check_blast_zones(f: Fighter) -> None:
    if f.action in UNTOUCHABLE:
        return
    if f.x < BLAST_LEFT:
        action = Action.DEAD_LEFT
    elif f.x > BLAST_RIGHT:
        action = Action.DEAD_RIGHT
    elif f.y > BLAST_TOP:
        action = Action.DEAD_UP
    elif f.y < BLAST_BOTTOM:
        action = Action.DEAD_DOWN
    else:
        return
    enter(f, action)
    f.stocks -= 1
    f.timer = _DEATH_FRAMES
    f.percent = 0.0
    f.vx = f.vy = f.kb_x = f.kb_y = 0.0
    f.hitstun = f.hitlag = 0
