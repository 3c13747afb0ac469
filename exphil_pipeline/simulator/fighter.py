"""A fighter's state between frames, and the fixed facts the simulation engine reads.

The simulated stage is flat, with Final Destination's edges and blast zones. Characters move
with attributes rounded from the game's character data (those without their own move like a
middleweight). Action states are Melee's own ids (``melee.enums.Action``), grouped here by what
they allow. ``Inputs`` is one frame of controller input, the only thing a player changes: the
engine (``physics``) reads it, and whatever drives the fighters writes it.
"""

from __future__ import annotations

from dataclasses import dataclass

from melee.enums import Action, Character

from exphil_pipeline.simulator.slp_records import LCancel

STAGE_EDGE_X = 85.5
"""The stage floor is y = 0 for -STAGE_EDGE_X <= x <= STAGE_EDGE_X."""
BLAST_LEFT, BLAST_RIGHT, BLAST_TOP, BLAST_BOTTOM = -246.0, 246.0, 188.0, -140.0
"""Final Destination's blast zones: a player past one loses a stock."""
SPAWN_X = (-60.0, 60.0)
"""Where the first and second player enter, and respawn."""
_SPAWN_Y = 10.0
_NO_GROUND_ID = 0xFFFF
_NOBODY = 6  # "last hit by" in real replays before anyone has been hit

FULL_TILT = 80
"""Raw stick value the game treats as fully tilted; the processed value is raw / 80."""

MAX_JUMPS = 2
"""Jumps of a grounded player: the ground jump and one double jump."""
MAX_SHIELD = 60.0
"""Size of a full shield."""
L_CANCEL_WINDOW = 7
"""An aerial that lands fewer frames than this after R was pressed is L-cancelled."""


@dataclass(frozen=True)
class Inputs:
    """One frame of controller input, sticks as raw values in [-80, 80]."""

    stick_x: int = 0
    stick_y: int = 0
    cstick_x: int = 0
    a: bool = False
    jump: bool = False
    shield: bool = False


@dataclass(frozen=True)
class CharacterPhysics:
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
    Character.FOX: CharacterPhysics(
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
    Character.MEWTWO: CharacterPhysics(
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
_DEFAULT_PHYSICS = CharacterPhysics(
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

ENTRY_ACTIONS = frozenset({Action.ENTRY, Action.ENTRY_START, Action.ENTRY_END})
"""The entry animation before control starts."""
DEAD_ACTIONS = frozenset({Action.DEAD_LEFT, Action.DEAD_RIGHT, Action.DEAD_UP, Action.DEAD_DOWN})
"""Just lost a stock past a blast zone."""
HALO_ACTIONS = frozenset({Action.ON_HALO_DESCENT, Action.ON_HALO_WAIT})
"""On the revival platform."""
UNTOUCHABLE = ENTRY_ACTIONS | DEAD_ACTIONS | HALO_ACTIONS
"""States no attack can hit and no blast zone can kill."""
NO_CONTROL = UNTOUCHABLE - {Action.ON_HALO_WAIT}
"""States that ignore every input (waiting on the revival platform ends on any input)."""
SHIELD_ACTIONS = frozenset({Action.SHIELD_START, Action.SHIELD, Action.SHIELD_STUN})
"""Shield up."""


@dataclass
class Fighter:
    """A player's simulation state between frames."""

    port: int
    character: Character
    physics: CharacterPhysics
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
    jumps: int = MAX_JUMPS - 1
    ground: int = _NO_GROUND_ID
    percent: float = 0.0
    shield: float = MAX_SHIELD
    timer: int = 0  # frames left in a timed state: lag, shield stun, death, revival platform
    hitstun: int = 0
    hitlag: int = 0
    invulnerable: int = 0
    move_connected: bool = False
    trigger_age: int = L_CANCEL_WINDOW  # frames since R was last pressed
    l_cancel: LCancel = LCancel.NONE
    last_attack_landed: int = 0
    combo: int = 0
    last_hit_by: int = _NOBODY


def sign(value: float) -> float:
    """-1.0 for a negative value, else 1.0."""
    return -1.0 if value < 0 else 1.0


def new_fighter(port: int, character: Character, spawn_x: float, stocks: int) -> Fighter:
    """A fighter about to play its entry animation at ``spawn_x``, facing the stage's center."""
    return Fighter(
        port=port,
        character=character,
        physics=_PHYSICS.get(character, _DEFAULT_PHYSICS),
        spawn_x=spawn_x,
        stocks=stocks,
        x=spawn_x,
        facing=-sign(spawn_x),
    )


def enter(f: Fighter, action: Action) -> None:
    """Switch ``f`` to ``action``, counting its frames from 1."""
    f.action = action
    f.age = 1
