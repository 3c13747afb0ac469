"""The simulator's state: every quantity of every player of N games, one numpy array each.

Arrays are ``[N, 2]`` (game, player) unless noted, so one engine step updates all games with
masked array operations and no Python loop per game. Action states are Melee's own ids
(``melee.enums.Action``), positions and speeds are in Melee units per frame, and the frame
counter follows Slippi's numbering (the entry animation starts at -123, control at -39).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from melee.enums import Action

from exphil_pipeline.simulator.slp_records import FIRST_FRAME

NO_ATTACK = -1
NO_GROUND = 0xFFFF
MAIN_FLOOR = 1
"""Ground id of the stage's main floor; platforms are 2, 3 and 4 (top, left, right)."""
NOBODY = 6
"""``last_hit_by`` before anyone has been hit, as real replays record it."""
SPAWN_X = np.array([-40.0, 40.0], dtype=np.float32)
"""Where the first and second player enter and respawn: inside every legal stage's floor."""
SPAWN_Y = 10.0


@dataclass
class EngineState:
    """All games' state between two frames (see the module docstring for shapes and units)."""

    frame: np.ndarray  # int32[N], the last frame played (FIRST_FRAME - 1 before the first)
    stage: np.ndarray  # int16[N], index into the simulator's stage tables
    character: np.ndarray  # int16, index into the simulator's character tables
    stocks: np.ndarray  # int16
    x: np.ndarray
    y: np.ndarray
    vx: np.ndarray  # self-induced speed
    vy: np.ndarray
    kb_x: np.ndarray  # knockback speed, decays each frame
    kb_y: np.ndarray
    facing: np.ndarray  # +1 right, -1 left
    action: np.ndarray  # int16, melee.enums.Action value
    age: np.ndarray  # int16, frames into the action (1 on its first frame)
    attack: np.ndarray  # int16, index into the attack tables, NO_ATTACK when none
    attack_hit: np.ndarray  # bool, the current attack already connected
    airborne: np.ndarray  # bool
    ground: np.ndarray  # int32, MAIN_FLOOR, a platform id or NO_GROUND
    jumps: np.ndarray  # int16, jumps left
    percent: np.ndarray
    shield: np.ndarray
    timer: np.ndarray  # int16, frames left in a timed state (lag, shield stun, death, halo)
    hitstun: np.ndarray  # int16
    hitlag: np.ndarray  # int16
    invulnerable: np.ndarray  # int16
    trigger_age: np.ndarray  # int16, frames since the shield button was last pressed
    l_cancel: np.ndarray  # uint8, 0 none, 1 success, 2 failure (landing frame only)
    last_attack_landed: np.ndarray  # uint8, action id of the last attack that hit
    combo: np.ndarray  # uint8
    last_hit_by: np.ndarray  # uint8, port index of the last attacker, NOBODY before any
    fast_falling: np.ndarray  # bool
    hit_since_landing: np.ndarray  # bool, the opponent hit this player since it last landed
    self_destructs: np.ndarray  # int16, stocks lost while not hit_since_landing
    damage_dealt: np.ndarray  # float32, damage this player dealt this game

    @property
    def games(self) -> int:
        return len(self.frame)

    def copy(self) -> EngineState:
        return EngineState(**{f.name: getattr(self, f.name).copy() for f in fields(self)})

    def take(self, games: np.ndarray) -> EngineState:
        """The state of the selected games only."""
        return EngineState(**{f.name: getattr(self, f.name)[games] for f in fields(self)})

    def assign(self, games: np.ndarray, other: EngineState) -> None:
        """Overwrite the selected games with ``other``'s (one row per selected game)."""
        for f in fields(self):
            getattr(self, f.name)[games] = getattr(other, f.name)


def new_games(characters: np.ndarray, stage: np.ndarray, stocks: int) -> EngineState:
    """Fresh games, about to play frame ``FIRST_FRAME`` and the entry animation.

    ``characters`` is ``int[N, 2]`` (character table indices), ``stage`` ``int[N]``.
    """
    n = len(stage)
    shape = (n, 2)
    x = np.broadcast_to(SPAWN_X, shape).copy()

    def zeros(dtype: type) -> np.ndarray:
        return np.zeros(shape, dtype=dtype)

    return EngineState(
        frame=np.full(n, FIRST_FRAME - 1, dtype=np.int32),
        stage=stage.astype(np.int16),
        character=characters.astype(np.int16),
        stocks=np.full(shape, stocks, dtype=np.int16),
        x=x,
        y=np.full(shape, SPAWN_Y, dtype=np.float32),
        vx=zeros(np.float32),
        vy=zeros(np.float32),
        kb_x=zeros(np.float32),
        kb_y=zeros(np.float32),
        facing=np.where(x < 0, np.float32(1), np.float32(-1)),
        action=np.full(shape, Action.ENTRY.value, dtype=np.int16),
        age=zeros(np.int16),
        attack=np.full(shape, NO_ATTACK, dtype=np.int16),
        attack_hit=zeros(np.bool_),
        airborne=np.ones(shape, dtype=np.bool_),
        ground=np.full(shape, NO_GROUND, dtype=np.int32),
        jumps=np.ones(shape, dtype=np.int16),
        percent=zeros(np.float32),
        shield=np.full(shape, 60.0, dtype=np.float32),
        timer=zeros(np.int16),
        hitstun=zeros(np.int16),
        hitlag=zeros(np.int16),
        invulnerable=zeros(np.int16),
        trigger_age=np.full(shape, 99, dtype=np.int16),
        l_cancel=zeros(np.uint8),
        last_attack_landed=zeros(np.uint8),
        combo=zeros(np.uint8),
        last_hit_by=np.full(shape, NOBODY, dtype=np.uint8),
        fast_falling=zeros(np.bool_),
        hit_since_landing=zeros(np.bool_),
        self_destructs=zeros(np.int16),
        damage_dealt=zeros(np.float32),
    )
