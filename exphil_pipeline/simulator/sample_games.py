"""Deterministic scripted Melee games, for sample replays that ship with the project.

Two players fight on a flat stage with Final Destination's edges and blast zones. The motion
is simple kinematics with rounded character attributes, not Melee's engine: walking, dashing
and running, jumps and a double jump under gravity, landing lag, a jab, a forward smash, a
neutral air with L-cancelling, shielding, knockback with hitstun and hitlag, deaths past a
blast zone, respawn on the revival platform and a game that ends when a player runs out of
stocks. Every id written (action states, characters, attacks) is a real Melee value.

Each player's controller follows a fixed script, ``_decide``, which reads only what the
replay shows about the previous frame (both players' positions, facing, action states,
percent, shield, jumps and vertical speed), a style (traits) and one uniform draw per frame.
The first player always plays the reference style, ``REFERENCE_TRAITS``, whose choices never
depend on the draw, so its input is a deterministic function of the previous frame's visible
state: an imitation learner has an exact right answer (with frame delay 1). The second
player's style is drawn from the seed and its choices use the draw, so games differ:

- before control starts, dead or descending on the revival platform: let go of the controller;
- off stage: hold the stick up and toward the stage, and jump (X) while falling with a jump left;
- in the air: press R to L-cancel a falling neutral air near the ground (with the trait's
  probability), press A for a neutral air when the opponent is close, else drift toward them;
- on the ground: hold R to shield while the opponent attacks nearby (keep holding once up,
  otherwise with the trait's probability); within the trait's spacing, turn toward the opponent,
  then forward smash with the C-stick once their percent reaches the trait's kill percent or
  jab (A) below it; jump (X) toward an opponent well above, or with the trait's probability
  toward one within jumping range; sometimes hesitate; stop at the ledge rather than run off;
  else walk (half tilt) or, when far, dash toward the opponent.

The physics ignores inputs while a player cannot act (entry, lag, hitstun, hitlag), but the
script still answers every frame and the replay records what it answered.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from melee.enums import Action, Character

from exphil_pipeline.simulator.slp_writer import (
    FIRST_FRAME,
    Frame,
    Game,
    GameEnd,
    GameEndMethod,
    GameStart,
    Hurtbox,
    LCancel,
    PlayerFrame,
    PlayerStart,
    PostFrame,
    PreFrame,
    write_slp,
)

MEWTWO = 10
"""Mewtwo's external character id."""
FOX = 2
"""Fox's external character id."""
FINAL_DESTINATION = 32
"""Final Destination's external stage id."""

# Slippi's external (character select) ids mapped to the game's internal ids. Ice Climbers
# are left out: Nana is a second character per frame, which the writer does not model.
_INTERNAL_CHARACTER = {
    0: Character.CPTFALCON,
    1: Character.DK,
    2: Character.FOX,
    3: Character.GAMEANDWATCH,
    4: Character.KIRBY,
    5: Character.BOWSER,
    6: Character.LINK,
    7: Character.LUIGI,
    8: Character.MARIO,
    9: Character.MARTH,
    10: Character.MEWTWO,
    11: Character.NESS,
    12: Character.PEACH,
    13: Character.PIKACHU,
    15: Character.JIGGLYPUFF,
    16: Character.SAMUS,
    17: Character.YOSHI,
    18: Character.ZELDA,
    19: Character.SHEIK,
    20: Character.FALCO,
    21: Character.YLINK,
    22: Character.DOC,
    23: Character.ROY,
    24: Character.PICHU,
    25: Character.GANONDORF,
}

STAGE_EDGE_X = 85.5
"""The stage floor is y = 0 for -STAGE_EDGE_X <= x <= STAGE_EDGE_X."""
BLAST_LEFT, BLAST_RIGHT, BLAST_TOP, BLAST_BOTTOM = -246.0, 246.0, 188.0, -140.0
"""Final Destination's blast zones: a player past one loses a stock."""
_STAGE_GROUND_ID = 1  # id Final Destination's floor has in real replays
_NO_GROUND_ID = 0xFFFF
_SPAWN_X = (-60.0, 60.0)
_SPAWN_Y = 10.0
_NOBODY = 6  # "last hit by" in real replays before anyone has been hit
_TIMER_SECONDS = 480
_SAMPLE_START_AT = datetime(2001, 12, 3, tzinfo=UTC)

# First frame of each entry animation; control starts after landing from the fall.
_ENTRY_SCHEDULE = {-118: Action.ENTRY_START, -89: Action.ENTRY_END, -59: Action.FALLING}

_FULL = 80  # raw stick value the game treats as fully tilted; processed value is raw / 80
_HALF = 40
_DIAGONAL = 56  # about 45 degrees at full tilt
_DASH_THRESHOLD = 0.8
# Processed stick value from which a direction bit is set in the processed buttons. The spec
# gives no threshold and real replays vary (0.375-0.75), so this one is ours.
_DIRECTION_THRESHOLD = 0.5

_BUTTON_X = 0x0400
_BUTTON_A = 0x0100
_BUTTON_R = 0x0020
_JOYSTICK_BITS = (0x00010000, 0x00020000, 0x00040000, 0x00080000)  # up, down, left, right
_CSTICK_BITS = (0x00100000, 0x00200000, 0x00400000, 0x00800000)
_ANY_TRIGGER = 0x80000000

_MAX_JUMPS = 2
_LANDING_LAG = 4
_NAIR_LANDING_LAG = 16  # halved by a successful L-cancel
_L_CANCEL_WINDOW = 7
_MAX_SHIELD = 60.0
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
_MAX_PERCENT = 999.0

# Melee's knockback conventions: launch speed and hitstun scale with knockback, launch speed
# decays by a constant each frame, and knockback of 80 or more sends a player tumbling.
_LAUNCH_SPEED_PER_KNOCKBACK = 0.03
_HITSTUN_PER_KNOCKBACK = 0.4
_KNOCKBACK_DECAY = 0.051
_TUMBLE_KNOCKBACK = 80.0

# Script distances, in stage units.
_GROUND_ATTACK_HEIGHT = 10.0
_NAIR_RANGE = 14.0
_SHIELD_RANGE = 25.0
_MIN_SHIELD_TO_BLOCK = 20.0  # above the largest hit, so the shield never breaks
_L_CANCEL_HEIGHT = 12.0
_JUMP_HEIGHT_GAP = 20.0
_JUMP_RANGE = 40.0
_RUN_DISTANCE = 45.0
_LEDGE_MARGIN = 2.0


@dataclass(frozen=True)
class _Physics:
    """Movement attributes, rounded from the game's character data."""

    walk_speed: float
    dash_speed: float
    run_speed: float
    dash_frames: int
    traction: float
    gravity: float
    max_fall_speed: float
    jump_speed: float
    double_jump_speed: float
    air_speed: float
    air_accel: float
    weight: float
    jumpsquat: int


_PHYSICS = {
    Character.FOX: _Physics(
        walk_speed=1.6,
        dash_speed=2.02,
        run_speed=2.2,
        dash_frames=11,
        traction=0.08,
        gravity=0.23,
        max_fall_speed=2.8,
        jump_speed=3.68,
        double_jump_speed=4.42,
        air_speed=0.83,
        air_accel=0.08,
        weight=75,
        jumpsquat=3,
    ),
    Character.MEWTWO: _Physics(
        walk_speed=1.0,
        dash_speed=1.7,
        run_speed=1.5,
        dash_frames=15,
        traction=0.04,
        gravity=0.082,
        max_fall_speed=1.5,
        jump_speed=2.3,
        double_jump_speed=2.1,
        air_speed=1.2,
        air_accel=0.05,
        weight=85,
        jumpsquat=5,
    ),
}
# Everyone else moves like a middleweight.
_DEFAULT_PHYSICS = _Physics(
    walk_speed=1.1,
    dash_speed=1.5,
    run_speed=1.5,
    dash_frames=12,
    traction=0.06,
    gravity=0.095,
    max_fall_speed=1.7,
    jump_speed=2.3,
    double_jump_speed=2.3,
    air_speed=0.86,
    air_accel=0.045,
    weight=100,
    jumpsquat=4,
)


@dataclass(frozen=True)
class _Move:
    """An attack, the same for every character."""

    action: Action
    attack_id: int  # Slippi's attack id, reported as "last attack landed"
    damage: float
    first_active: int  # frames of the action during which the hitbox is out
    last_active: int
    duration: int
    reach_x: float  # hitbox reach from the attacker's position
    reach_y: float
    base_knockback: float
    knockback_growth: float
    angle: float  # launch angle in degrees above horizontal
    hits_behind: bool


_JAB = _Move(
    action=Action.NEUTRAL_ATTACK_1,
    attack_id=2,
    damage=4.0,
    first_active=2,
    last_active=3,
    duration=17,
    reach_x=14.0,
    reach_y=10.0,
    base_knockback=5.0,
    knockback_growth=30.0,
    angle=20.0,
    hits_behind=False,
)
_FSMASH = _Move(
    action=Action.FSMASH_MID,
    attack_id=10,
    damage=16.0,
    first_active=12,
    last_active=15,
    duration=45,
    reach_x=18.0,
    reach_y=12.0,
    base_knockback=30.0,
    knockback_growth=100.0,
    angle=40.0,
    hits_behind=False,
)
_NAIR = _Move(
    action=Action.NAIR,
    attack_id=13,
    damage=10.0,
    first_active=4,
    last_active=12,
    duration=30,
    reach_x=12.0,
    reach_y=12.0,
    base_knockback=10.0,
    knockback_growth=100.0,
    angle=45.0,
    hits_behind=True,
)
_MOVES = {move.action: move for move in (_JAB, _FSMASH, _NAIR)}

_ENTRY_ACTIONS = frozenset({Action.ENTRY, Action.ENTRY_START, Action.ENTRY_END})
_DEAD_ACTIONS = frozenset({Action.DEAD_LEFT, Action.DEAD_RIGHT, Action.DEAD_UP, Action.DEAD_DOWN})
_HALO_ACTIONS = frozenset({Action.ON_HALO_DESCENT, Action.ON_HALO_WAIT})
_UNTOUCHABLE = _ENTRY_ACTIONS | _DEAD_ACTIONS | _HALO_ACTIONS
_NO_CONTROL = _UNTOUCHABLE - {Action.ON_HALO_WAIT}
_SHIELD_ACTIONS = frozenset({Action.SHIELD_START, Action.SHIELD, Action.SHIELD_STUN})
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


@dataclass(frozen=True)
class _Traits:
    """Per-player style, drawn once per game; rates are chances per frame."""

    spacing: float  # horizontal distance under which the player attacks on the ground
    kill_percent: float  # opponent percent from which forward smash replaces jab
    shield_rate: float  # of raising shield against a nearby attack
    l_cancel_rate: float  # of pressing R while a neutral air falls near the ground
    aerial_rate: float  # of jumping toward an opponent within jumping range
    hesitation_rate: float  # of letting go of the controller instead of approaching


# The first player's style in every game: no chance involved (rates 0 or 1), so its inputs are
# a function of the previous frame's visible state alone.
REFERENCE_TRAITS = _Traits(
    spacing=11.0,
    kill_percent=100.0,
    shield_rate=0.0,
    l_cancel_rate=1.0,
    aerial_rate=0.0,
    hesitation_rate=0.0,
)


@dataclass(frozen=True)
class _Inputs:
    """One frame of controller input, sticks as raw values in [-80, 80]."""

    stick_x: int = 0
    stick_y: int = 0
    cstick_x: int = 0
    a: bool = False
    jump: bool = False
    shield: bool = False


@dataclass
class _Fighter:
    """A player's simulation state between frames."""

    port: int
    character: Character
    physics: _Physics
    spawn_x: float
    stocks: int
    x: float
    facing: float
    y: float = _SPAWN_Y
    action: Action = Action.ENTRY
    age: int = 0
    vx: float = 0.0
    vy: float = 0.0
    kb_x: float = 0.0
    kb_y: float = 0.0
    airborne: bool = True
    jumps: int = _MAX_JUMPS - 1
    ground: int = _NO_GROUND_ID
    percent: float = 0.0
    shield: float = _MAX_SHIELD
    timer: int = 0  # frames left in a timed state: lag, shield stun, death, revival platform
    hitstun: int = 0
    hitlag: int = 0
    invulnerable: int = 0
    move_connected: bool = False
    trigger_age: int = _L_CANCEL_WINDOW  # frames since R was last pressed
    l_cancel: LCancel = LCancel.NONE
    last_attack_landed: int = 0
    combo: int = 0
    last_hit_by: int = _NOBODY


def _sign(value: float) -> float:
    return -1.0 if value < 0 else 1.0


def _approach(value: float, target: float, step: float) -> float:
    if value < target:
        return min(value + step, target)
    return max(value - step, target)


def _enter(f: _Fighter, action: Action) -> None:
    f.action = action
    f.age = 1


def _start_move(f: _Fighter, move: _Move) -> None:
    _enter(f, move.action)
    f.move_connected = False


def _decide(me: _Fighter, opp: _Fighter, traits: _Traits, roll: float) -> _Inputs:
    """The scripted controller: a function of the visible state, traits and one draw."""
    if me.action in _NO_CONTROL:
        return _Inputs()
    dx = opp.x - me.x
    dy = opp.y - me.y
    toward = 1 if dx >= 0 else -1
    if abs(me.x) > STAGE_EDGE_X:
        home = -1 if me.x > 0 else 1
        return _Inputs(home * _DIAGONAL, _DIAGONAL, jump=me.vy <= 0 and me.jumps > 0)
    if me.airborne:
        landing_nair = me.action == Action.NAIR and me.vy < 0 and me.y < _L_CANCEL_HEIGHT
        if landing_nair and roll < traits.l_cancel_rate:
            return _Inputs(toward * _FULL, shield=True)
        if abs(dx) < _NAIR_RANGE and abs(dy) < _NAIR_RANGE:
            return _Inputs(a=True)
        return _Inputs(toward * _FULL)
    can_block = (
        opp.action in _MOVES and abs(dx) < _SHIELD_RANGE and me.shield >= _MIN_SHIELD_TO_BLOCK
    )
    if can_block and (me.action in _SHIELD_ACTIONS or roll < traits.shield_rate):
        return _Inputs(shield=True)
    if abs(dx) < traits.spacing and abs(dy) < _GROUND_ATTACK_HEIGHT:
        if me.facing != toward:
            return _Inputs(toward * _HALF)
        if opp.percent >= traits.kill_percent:
            return _Inputs(cstick_x=toward * _FULL)
        return _Inputs(a=True)
    if dy > _JUMP_HEIGHT_GAP and abs(dx) < _JUMP_RANGE:
        return _Inputs(toward * _FULL, jump=True)
    if roll < traits.aerial_rate and abs(dx) < _JUMP_RANGE:
        return _Inputs(toward * _FULL, jump=True)
    if roll >= 1.0 - traits.hesitation_rate:
        return _Inputs()
    if abs(me.x) >= STAGE_EDGE_X - _LEDGE_MARGIN and me.x * toward > 0:
        return _Inputs()
    return _Inputs(toward * (_FULL if abs(dx) > _RUN_DISTANCE else _HALF))


def _direction_bits(x: float, y: float, bits: tuple[int, int, int, int]) -> int:
    up, down, left, right = bits
    return (
        (up if y >= _DIRECTION_THRESHOLD else 0)
        | (down if y <= -_DIRECTION_THRESHOLD else 0)
        | (left if x <= -_DIRECTION_THRESHOLD else 0)
        | (right if x >= _DIRECTION_THRESHOLD else 0)
    )


def _pre_frame(f: _Fighter, inputs: _Inputs) -> PreFrame:
    # The script's stick positions all lie outside the game's dead zone, so the processed
    # value is simply raw / 80.
    stick_x, stick_y, cstick_x = (
        v / _FULL for v in (inputs.stick_x, inputs.stick_y, inputs.cstick_x)
    )
    trigger = 1.0 if inputs.shield else 0.0
    physical = (
        (_BUTTON_A if inputs.a else 0)
        | (_BUTTON_X if inputs.jump else 0)
        | (_BUTTON_R if inputs.shield else 0)
    )
    processed = (
        physical
        | _direction_bits(stick_x, stick_y, _JOYSTICK_BITS)
        | _direction_bits(cstick_x, 0.0, _CSTICK_BITS)
        | (_ANY_TRIGGER if trigger else 0)
    )
    return PreFrame(
        action_state=f.action.value,
        x=f.x,
        y=f.y,
        facing=f.facing,
        joystick_x=stick_x,
        joystick_y=stick_y,
        cstick_x=cstick_x,
        cstick_y=0.0,
        trigger=trigger,
        buttons=processed,
        physical_buttons=physical,
        physical_l=0.0,
        physical_r=trigger,
        raw_analog_x=inputs.stick_x,
        percent=f.percent,
        raw_analog_y=inputs.stick_y,
    )


def _post_frame(f: _Fighter) -> PostFrame:
    flags = (
        0,
        0x20 if f.hitlag else 0,
        0x80 if f.action in _SHIELD_ACTIONS else 0,
        0x02 if f.hitstun else 0,
        0x40 if f.action in _DEAD_ACTIONS else 0,
    )
    protected = f.invulnerable or f.action in _HALO_ACTIONS
    return PostFrame(
        character=f.character.value,
        action_state=f.action.value,
        x=f.x,
        y=f.y,
        facing=f.facing,
        percent=f.percent,
        shield=f.shield,
        last_attack_landed=f.last_attack_landed,
        combo_count=f.combo,
        last_hit_by=f.last_hit_by,
        stocks=f.stocks,
        action_frame=float(f.age),
        state_flags=flags,
        misc_as=float(f.hitstun),
        airborne=f.airborne,
        last_ground_id=f.ground,
        jumps_remaining=f.jumps,
        l_cancel=f.l_cancel,
        hurtbox=Hurtbox.INVULNERABLE if protected else Hurtbox.VULNERABLE,
        self_air_x_speed=f.vx if f.airborne else 0.0,
        self_y_speed=f.vy,
        attack_x_speed=f.kb_x,
        attack_y_speed=f.kb_y,
        self_ground_x_speed=0.0 if f.airborne else f.vx,
        hitlag=float(f.hitlag),
    )


def _advance(f: _Fighter, inputs: _Inputs, number: int) -> None:
    """Apply one frame of inputs and motion to a fighter."""
    f.l_cancel = LCancel.NONE  # reported on the landing frame only
    if f.hitlag:
        f.hitlag -= 1
        return
    f.age += 1
    f.trigger_age = 0 if inputs.shield else f.trigger_age + 1
    f.invulnerable = max(f.invulnerable - 1, 0)
    if f.action not in _SHIELD_ACTIONS:
        f.shield = min(f.shield + _SHIELD_REGEN, _MAX_SHIELD)
    if f.action in _ENTRY_ACTIONS:
        if number in _ENTRY_SCHEDULE:
            _enter(f, _ENTRY_SCHEDULE[number])
    elif f.action in _DEAD_ACTIONS:
        _advance_dead(f)
    elif f.action in _HALO_ACTIONS:
        _advance_halo(f, inputs)
    else:
        _act(f, inputs)
        _move(f)


def _advance_dead(f: _Fighter) -> None:
    f.timer -= 1
    if f.timer == 0:
        _enter(f, Action.ON_HALO_DESCENT)
        f.timer = _HALO_DESCENT_FRAMES
        f.x, f.y = f.spawn_x, _HALO_START_Y
        f.airborne = True
        f.facing = -_sign(f.spawn_x)
        f.jumps = _MAX_JUMPS - 1
        f.shield = _MAX_SHIELD


def _advance_halo(f: _Fighter, inputs: _Inputs) -> None:
    f.timer -= 1
    if f.action == Action.ON_HALO_DESCENT:
        f.y -= (_HALO_START_Y - _HALO_END_Y) / _HALO_DESCENT_FRAMES
        if f.timer == 0:
            _enter(f, Action.ON_HALO_WAIT)
            f.timer = _HALO_WAIT_FRAMES
    elif f.timer == 0 or inputs != _Inputs():
        _enter(f, Action.FALLING)
        f.invulnerable = _RESPAWN_INVULNERABLE_FRAMES


def _act(f: _Fighter, inputs: _Inputs) -> None:
    """State transitions and self-induced velocity for one frame."""
    if f.hitstun:
        f.hitstun -= 1
        if not f.hitstun:
            _enter(f, Action.FALLING if f.airborne else Action.STANDING)
    elif f.action in _MOVES:
        if f.age > _MOVES[f.action].duration:
            _enter(f, Action.FALLING if f.airborne else Action.STANDING)
        elif f.airborne:
            _drift(f, inputs)
    elif f.action in _LAG_ACTIONS:
        f.timer -= 1
        if f.timer == 0:
            _enter(f, Action.STANDING)
    elif f.action in _SHIELD_ACTIONS:
        _hold_shield(f, inputs)
    elif f.action == Action.KNEE_BEND:
        if f.age > f.physics.jumpsquat:
            _jump(f, inputs)
    elif f.airborne:
        _air_control(f, inputs)
    else:
        _ground_control(f, inputs)


def _hold_shield(f: _Fighter, inputs: _Inputs) -> None:
    f.shield -= _SHIELD_DECAY
    if f.action == Action.SHIELD_STUN:
        f.timer -= 1
        if f.timer:
            return
    if not inputs.shield:
        _enter(f, Action.SHIELD_RELEASE)
        f.timer = _SHIELD_RELEASE_LAG
    elif f.action != Action.SHIELD and not (
        f.action == Action.SHIELD_START and f.age <= _SHIELD_START_FRAMES
    ):
        _enter(f, Action.SHIELD)


def _jump(f: _Fighter, inputs: _Inputs) -> None:
    stick = inputs.stick_x / _FULL
    forward = stick * f.facing >= 0
    _enter(f, Action.JUMPING_FORWARD if forward else Action.JUMPING_BACKWARD)
    f.airborne = True
    f.jumps -= 1
    f.vy = f.physics.jump_speed
    f.vx = stick * f.physics.air_speed


def _air_control(f: _Fighter, inputs: _Inputs) -> None:
    stick = inputs.stick_x / _FULL
    if inputs.a:
        _start_move(f, _NAIR)
    elif inputs.jump and f.jumps > 0 and f.vy < 0:
        forward = stick * f.facing >= 0
        _enter(f, Action.JUMPING_ARIAL_FORWARD if forward else Action.JUMPING_ARIAL_BACKWARD)
        f.jumps -= 1
        f.vy = f.physics.double_jump_speed
    elif f.action in _RISING_ACTIONS and f.vy < 0:
        _enter(f, Action.FALLING)
    _drift(f, inputs)


def _drift(f: _Fighter, inputs: _Inputs) -> None:
    stick = inputs.stick_x / _FULL
    f.vx = _approach(f.vx, stick * f.physics.air_speed, f.physics.air_accel)


def _ground_control(f: _Fighter, inputs: _Inputs) -> None:
    stick = inputs.stick_x / _FULL
    if inputs.shield:
        _enter(f, Action.SHIELD_START)
    elif inputs.cstick_x:
        f.facing = _sign(inputs.cstick_x)
        _start_move(f, _FSMASH)
    elif inputs.a:
        _start_move(f, _JAB)
    elif inputs.jump:
        _enter(f, Action.KNEE_BEND)
    elif abs(stick) >= _DASH_THRESHOLD:
        _dash(f, _sign(stick))
    elif stick:
        # The script walks at half tilt, which Melee animates as WALK_MIDDLE.
        if f.action != Action.WALK_MIDDLE or _sign(stick) != f.facing:
            _enter(f, Action.WALK_MIDDLE)
        f.facing = _sign(stick)
        f.vx = stick * f.physics.walk_speed
    elif f.action != Action.STANDING:
        _enter(f, Action.STANDING)


def _dash(f: _Fighter, direction: float) -> None:
    if f.action not in (Action.DASHING, Action.RUNNING) or direction != f.facing:
        _enter(f, Action.DASHING)
        f.facing = direction
        f.vx = direction * f.physics.dash_speed
    elif f.action == Action.DASHING and f.age > f.physics.dash_frames:
        _enter(f, Action.RUNNING)
    if f.action == Action.RUNNING:
        f.vx = direction * f.physics.run_speed


def _move(f: _Fighter) -> None:
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


def _land(f: _Fighter) -> None:
    f.y = f.vy = f.kb_y = 0.0
    f.airborne = False
    f.jumps = _MAX_JUMPS
    f.ground = _STAGE_GROUND_ID
    if f.hitstun:
        return  # keeps sliding in its damage state
    if f.action == Action.NAIR:
        cancelled = f.trigger_age < _L_CANCEL_WINDOW
        f.l_cancel = LCancel.SUCCESS if cancelled else LCancel.FAILURE
        _enter(f, Action.NAIR_LANDING)
        f.timer = _NAIR_LANDING_LAG // 2 if cancelled else _NAIR_LANDING_LAG
    else:
        _enter(f, Action.LANDING)
        f.timer = _LANDING_LAG


def _touching_move(attacker: _Fighter, defender: _Fighter) -> _Move | None:
    """The attacker's move if one of its active frames reaches the defender."""
    move = _MOVES.get(attacker.action)
    if move is None or attacker.move_connected:
        return None
    if not move.first_active <= attacker.age <= move.last_active:
        return None
    if defender.action in _UNTOUCHABLE or defender.invulnerable:
        return None
    dx = defender.x - attacker.x
    if abs(dx) > move.reach_x or abs(defender.y - attacker.y) > move.reach_y:
        return None
    return move if move.hits_behind or dx * attacker.facing >= 0 else None


def _knockback(move: _Move, percent: float, weight: float) -> float:
    """Melee's knockback formula for a hit that left the defender at ``percent``."""
    scaled = (percent / 10 + percent * move.damage / 20) * 200 / (weight + 100) * 1.4 + 18
    return scaled * move.knockback_growth / 100 + move.base_knockback


def _apply_hit(attacker: _Fighter, defender: _Fighter, move: _Move) -> None:
    attacker.move_connected = True
    attacker.hitlag = defender.hitlag = int(move.damage / 3 + 3)
    if defender.action in _SHIELD_ACTIONS:
        defender.shield -= move.damage
        _enter(defender, Action.SHIELD_STUN)
        defender.timer = int(move.damage * 0.45) + 2
        return
    direction = _sign(defender.x - attacker.x) if move.hits_behind else attacker.facing
    attacker.combo = attacker.combo + 1 if defender.hitstun else 1
    attacker.last_attack_landed = move.attack_id
    defender.last_hit_by = attacker.port
    defender.percent = min(defender.percent + move.damage, _MAX_PERCENT)
    knockback = _knockback(move, defender.percent, defender.physics.weight)
    speed = knockback * _LAUNCH_SPEED_PER_KNOCKBACK
    defender.kb_x = direction * speed * math.cos(math.radians(move.angle))
    defender.kb_y = speed * math.sin(math.radians(move.angle))
    defender.vx = defender.vy = 0.0
    defender.facing = -direction
    defender.hitstun = int(knockback * _HITSTUN_PER_KNOCKBACK)
    if knockback >= _TUMBLE_KNOCKBACK:
        defender.airborne = True
        _enter(defender, Action.DAMAGE_FLY_NEUTRAL)
    elif defender.airborne:
        _enter(defender, Action.DAMAGE_AIR_1)
    else:
        defender.kb_y = 0.0  # a weak hit slides a grounded player along the floor
        _enter(defender, Action.DAMAGE_NEUTRAL_1)


def _check_blast_zones(f: _Fighter) -> None:
    if f.action in _UNTOUCHABLE:
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
    _enter(f, action)
    f.stocks -= 1
    f.timer = _DEATH_FRAMES
    f.percent = 0.0
    f.vx = f.vy = f.kb_x = f.kb_y = 0.0
    f.hitstun = f.hitlag = 0


def _next_seed(seed: int) -> int:
    # Stand-in for the game's RNG: a 32-bit LCG so the seed changes every frame like Melee's.
    return (seed * 214013 + 2531011) & 0xFFFF_FFFF


def _step(
    fighters: list[_Fighter], traits: list[_Traits], rng: random.Random, number: int, seed: int
) -> Frame:
    rolls = [rng.random() for _ in fighters]
    opponents = fighters[::-1]
    inputs = [
        _decide(me, opp, style, roll)
        for me, opp, style, roll in zip(fighters, opponents, traits, rolls, strict=True)
    ]
    pres = [_pre_frame(f, i) for f, i in zip(fighters, inputs, strict=True)]
    for f, i in zip(fighters, inputs, strict=True):
        _advance(f, i, number)
    # Both hits are found before either lands, so simultaneous attacks trade.
    hits = [
        (a, d, m) for a, d in zip(fighters, opponents, strict=True) if (m := _touching_move(a, d))
    ]
    for attacker, defender, move in hits:
        _apply_hit(attacker, defender, move)
    for f in fighters:
        _check_blast_zones(f)
    players = tuple(PlayerFrame(pre, _post_frame(f)) for pre, f in zip(pres, fighters, strict=True))
    return Frame(number, seed, players)


def _placements(fighters: list[_Fighter]) -> tuple[int, int, int, int]:
    ranked = sorted(fighters, key=lambda f: (-f.stocks, f.percent, f.port))
    placements = [-1, -1, -1, -1]
    for place, f in enumerate(ranked):
        placements[f.port] = place
    return (placements[0], placements[1], placements[2], placements[3])


def generate_game(
    seed: int,
    frames: int,
    characters: tuple[int, int] = (MEWTWO, FOX),
    stage: int = FINAL_DESTINATION,
) -> Game:
    """Simulate a scripted two-player game.

    ``frames`` is the most frames the replay holds, counted from frame -123; the game stops
    earlier when a player loses the last stock (GAME) or the timer runs out (TIME), and ends
    as a no contest otherwise. ``characters`` are external ids for ports 0 and 1. Any
    ``stage`` id is written as given, but the simulated stage is always Final Destination's
    shape. The same arguments always give the same game.
    """
    if frames < 1:
        raise ValueError(f"frames must be at least 1, got {frames}")
    unknown = [c for c in characters if c not in _INTERNAL_CHARACTER]
    if unknown:
        raise ValueError(f"unsupported external character ids {unknown}")
    rng = random.Random(seed)
    start = GameStart(
        stage=stage,
        players=tuple(PlayerStart(port, c) for port, c in enumerate(characters)),
        random_seed=rng.getrandbits(32),
        timer=_TIMER_SECONDS,
    )
    fighters = []
    for player, spawn_x in zip(start.players, _SPAWN_X, strict=True):
        internal = _INTERNAL_CHARACTER[player.character]
        fighters.append(
            _Fighter(
                port=player.port,
                character=internal,
                physics=_PHYSICS.get(internal, _DEFAULT_PHYSICS),
                spawn_x=spawn_x,
                stocks=player.stocks,
                x=spawn_x,
                facing=-_sign(spawn_x),
            )
        )
    opponent_traits = _Traits(
        spacing=rng.uniform(9.0, 13.0),
        kill_percent=rng.uniform(60.0, 130.0),
        shield_rate=rng.uniform(0.1, 0.5),
        l_cancel_rate=rng.uniform(0.3, 0.9),
        aerial_rate=rng.uniform(0.02, 0.08),
        hesitation_rate=rng.uniform(0.0, 0.1),
    )
    traits = [REFERENCE_TRAITS, opponent_traits]
    last_timer_frame = _TIMER_SECONDS * 60 - 1
    seed_now = start.random_seed
    game_frames = []
    method = GameEndMethod.NO_CONTEST
    for number in range(FIRST_FRAME, FIRST_FRAME + frames):
        seed_now = _next_seed(seed_now)
        game_frames.append(_step(fighters, traits, rng, number, seed_now))
        if any(f.stocks == 0 for f in fighters):
            method = GameEndMethod.GAME
            break
        if number == last_timer_frame:
            method = GameEndMethod.TIME
            break
    return Game(
        start=start,
        frames=tuple(game_frames),
        end=GameEnd(method, placements=_placements(fighters)),
        start_at=_SAMPLE_START_AT,
        console_nick="exphil sample_games",
    )


def write_sample_replays(out_dir: str | Path, games: int, frames: int, seed: int) -> list[Path]:
    """Write ``games`` scripted replays named ``sample-{i:04d}.slp`` into ``out_dir``.

    Each game's seed is drawn from ``seed``, so the same arguments give identical files.
    """
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    game_seeds = random.Random(seed)
    paths = []
    for index in range(games):
        path = folder / f"sample-{index:04d}.slp"
        write_slp(path, generate_game(game_seeds.getrandbits(64), frames))
        paths.append(path)
    return paths
