"""Scripted players: a reference script, and weaker levels of it, for every game at once.

The reference script (``reference_inputs``) reads only what a replay shows about the current
frame (both players' positions, facing, action states, percent, shield, jumps and vertical
speed) and involves no chance, so the input it chooses for frame t + 1 is a function of frame
t's visible state: an imitation learner has an exact right answer at frame delay 1.

- before control starts, dead or on the revival platform: let go of the controller;
- off stage: hold the stick up and toward the stage, and jump while falling with a jump left;
- in the air: press R to L-cancel an aerial falling near the floor; attack (A: a neutral air
  when the opponent is level, toward them a forward air, above them a down air) when within
  reach; otherwise drift toward the opponent;
- on the ground: hold R to shield while the opponent attacks nearby (keep holding once up,
  while the shield is healthy); within spacing, turn toward the opponent, then forward smash
  (C-stick) once their percent reaches the kill percent, up tilt under an opponent above, or jab;
  jump toward an opponent well above; stop at the ledge rather than run off; else walk (half
  tilt) or, when far, dash toward the opponent.

Levels (``LEVELS``) make it weaker in documented ways, each deterministic for a seed:

- a slower reaction: a level re-decides only every ``reaction`` frames and holds its stick in
  between; the buttons and C-stick it chose stay pressed only while the reference script still
  presses them, so it starts an attack or a shield late but lets go on time. (Holding buttons
  through the window was a strength for a fast character: Fox's jab restarts on the frame it
  ends, so a level holding A jab-locked the reference script every time it dropped its
  shield, and level 3 won 3 of 40 Fox dittos against level 2.)
- mistakes: with probability ``mistake_rate`` per decision a level presses a uniformly random
  controller state instead, held whole until its next decision.

Level 3 is the reference script itself (``reaction`` 1, no mistakes); the strongest is listed
last. Measured: each level's win rate against the level below in dittos, 100 arena games per
pair (``evaluation.arena.play_arena``, seed 0: Final Destination, 4 stocks, 8-minute timer,
ports alternating; a draw counts half; 95% Wilson interval; wins-losses-draws):

| character (G&W: GAMEANDWATCH) | level 1 vs 0 | level 2 vs 1 | level 3 vs 2 |
|---|---|---|---|
| FOX | 0.93 [0.86, 0.97] (93-7-0) | 0.95 [0.89, 0.98] (95-5-0) | 1.00 [0.96, 1.00] (100-0-0) |
| MEWTWO | 0.94 [0.88, 0.97] (94-6-0) | 0.99 [0.95, 1.00] (99-1-0) | 0.99 [0.95, 1.00] (99-1-0) |
| G&W | 0.98 [0.93, 0.99] (98-2-0) | 0.98 [0.93, 0.99] (98-2-0) | 1.00 [0.96, 1.00] (100-0-0) |
| LINK | 0.97 [0.92, 0.99] (97-3-0) | 0.89 [0.81, 0.94] (89-11-0) | 0.97 [0.92, 0.99] (97-3-0) |
| GANONDORF | 0.92 [0.85, 0.96] (92-8-0) | 0.97 [0.92, 0.99] (97-3-0) | 0.97 [0.92, 0.99] (97-3-0) |
| ZELDA | 0.98 [0.93, 0.99] (98-2-0) | 0.98 [0.93, 0.99] (98-2-0) | 1.00 [0.96, 1.00] (100-0-0) |
| SHEIK | 0.93 [0.86, 0.97] (93-7-0) | 0.87 [0.79, 0.92] (87-13-0) | 1.00 [0.96, 1.00] (100-0-0) |
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from melee.enums import Action

from exphil_pipeline.simulator.action_groups import AERIAL_INDEX, SHIELDING
from exphil_pipeline.simulator.combat import untouchable
from exphil_pipeline.simulator.engine_state import NO_ATTACK, EngineState
from exphil_pipeline.simulator.melee_data import SimTables
from exphil_pipeline.simulator.pad_inputs import PadInputs

HALF = 0.5
DIAGONAL = 0.7
SPACING = 11.0
KILL_PERCENT = 100.0
GROUND_ATTACK_HEIGHT = 10.0
AERIAL_RANGE = 14.0
SHIELD_RANGE = 25.0
MIN_SHIELD_TO_BLOCK = 20.0
L_CANCEL_HEIGHT = 12.0
JUMP_HEIGHT_GAP = 20.0
JUMP_RANGE = 40.0
RUN_DISTANCE = 45.0
LEDGE_MARGIN = 2.0
_BUTTONS = ("a", "b", "jump", "z", "shield")
_C_STICK = ("cstick_x", "cstick_y")


@dataclass(frozen=True)
class Level:
    """How a scripted player falls short of the reference script."""

    reaction: int  # frames between decisions; the input is held in between
    mistake_rate: float  # chance per decision of pressing a random controller state


LEVELS: dict[int, Level] = {
    0: Level(reaction=30, mistake_rate=0.3),
    1: Level(reaction=12, mistake_rate=0.25),
    2: Level(reaction=6, mistake_rate=0.1),
    3: Level(reaction=1, mistake_rate=0.0),
}
STRONGEST = max(LEVELS)


def reference_inputs(state: EngineState, tables: SimTables) -> PadInputs:
    """Every player's reference-script input for the next frame (see the module docstring)."""
    pad = PadInputs.neutral(state.games)
    dx = state.x[:, ::-1] - state.x
    dy = state.y[:, ::-1] - state.y
    toward = np.where(dx >= 0, np.float32(1), np.float32(-1))
    edge = tables.edge_x[state.stage][:, None]
    free = ~untouchable(state) & (state.action != Action.ON_HALO_WAIT.value)
    offstage = free & (np.abs(state.x) > edge)
    pad.stick_x[offstage] = (-np.sign(state.x) * DIAGONAL)[offstage]
    pad.stick_y[offstage] = DIAGONAL
    pad.jump[offstage] = ((state.vy <= 0) & (state.jumps > 0))[offstage]
    air = free & ~offstage & state.airborne
    _air(state, pad, air, dx, dy, toward)
    ground = free & ~offstage & ~state.airborne
    _ground(state, pad, ground, dx, dy, toward, edge)
    return pad


def _air(
    state: EngineState,
    pad: PadInputs,
    air: np.ndarray,
    dx: np.ndarray,
    dy: np.ndarray,
    toward: np.ndarray,
) -> None:
    aerial = state.attack >= AERIAL_INDEX[0]
    landing = air & aerial & (state.vy < 0) & (state.y < L_CANCEL_HEIGHT)
    pad.shield[landing] = True
    pad.stick_x[air] = toward[air]
    close = air & ~landing & ~aerial & (np.abs(dx) < AERIAL_RANGE) & (np.abs(dy) < AERIAL_RANGE)
    pad.a[close] = True
    above = close & (dy < -GROUND_ATTACK_HEIGHT / 2)
    pad.stick_x[close] = 0.0
    pad.stick_y[above] = -1.0  # down air onto an opponent below
    forward = close & ~above & (np.abs(dx) > AERIAL_RANGE / 2) & (state.facing == toward)
    pad.stick_x[forward] = toward[forward]


def _ground(
    state: EngineState,
    pad: PadInputs,
    ground: np.ndarray,
    dx: np.ndarray,
    dy: np.ndarray,
    toward: np.ndarray,
    edge: np.ndarray,
) -> None:
    opponent_attacks = (state.attack != NO_ATTACK)[:, ::-1]
    threatened = opponent_attacks & (np.abs(dx) < SHIELD_RANGE)
    block = ground & threatened & (state.shield >= MIN_SHIELD_TO_BLOCK)
    block &= SHIELDING[state.action] | threatened
    pad.shield[block] = True
    left = ground & ~block
    spaced = left & (np.abs(dx) < SPACING) & (np.abs(dy) < GROUND_ATTACK_HEIGHT)
    turn = spaced & (state.facing != toward)
    pad.stick_x[turn] = (toward * HALF)[turn]
    hit = spaced & ~turn
    kill = hit & (state.percent[:, ::-1] >= KILL_PERCENT)
    pad.cstick_x[kill] = toward[kill]
    pad.a[hit & ~kill] = True
    left &= ~spaced
    under = left & (dy > GROUND_ATTACK_HEIGHT) & (dy < JUMP_HEIGHT_GAP) & (np.abs(dx) < SPACING)
    pad.a[under] = True
    pad.stick_y[under] = 1.0  # up tilt
    left &= ~under
    jump = left & (dy > JUMP_HEIGHT_GAP) & (np.abs(dx) < JUMP_RANGE)
    pad.jump[jump] = True
    pad.stick_x[jump] = toward[jump]
    left &= ~jump
    at_ledge = left & (np.abs(state.x) >= edge - LEDGE_MARGIN) & (state.x * toward > 0)
    left &= ~at_ledge
    far = np.abs(dx) > RUN_DISTANCE
    pad.stick_x[left] = (toward * np.where(far, 1.0, HALF))[left]


def random_inputs(games: int, rng: np.random.Generator) -> PadInputs:
    """Uniformly random controller states (the ``random`` player, and scripted mistakes)."""
    shape = (games, 2)

    def stick() -> np.ndarray:
        return rng.integers(0, 17, shape).astype(np.float32) / 8 - 1

    def button() -> np.ndarray:
        return rng.random(shape) < 0.5

    return PadInputs(
        stick_x=stick(),
        stick_y=stick(),
        cstick_x=stick(),
        cstick_y=stick(),
        a=button(),
        b=button(),
        jump=button(),
        z=button(),
        shield=button(),
        shoulder=rng.integers(0, 5, shape).astype(np.float32) / 4,
    )


class ScriptedPlayers:
    """Scripted inputs for every player of N games at per-player levels, with the held inputs
    and the random stream that make levels deterministic for a seed."""

    def __init__(self, levels: np.ndarray, seed: int) -> None:
        self.levels = np.asarray(levels, dtype=np.int64)  # [N, 2]
        self.reaction = np.vectorize(lambda lv: LEVELS[lv].reaction)(self.levels)
        self.mistakes = np.vectorize(lambda lv: LEVELS[lv].mistake_rate)(self.levels)
        self.rng = np.random.default_rng(seed)
        self.held: PadInputs | None = None
        self.mistaking = np.zeros(self.levels.shape, dtype=np.bool_)  # the held input is random

    def set_level(self, games: np.ndarray, level: int) -> None:
        """Play both ports of the selected games at ``level`` from now on, as new games."""
        self.levels[games] = level
        self.reaction[games] = LEVELS[level].reaction
        self.mistakes[games] = LEVELS[level].mistake_rate
        self.reset_games(games)

    def reset_games(self, games: np.ndarray) -> None:
        """Forget the held inputs of the selected games (a new game starts there)."""
        if self.held is not None:
            for value in vars(self.held).values():
                value[games] = 0
        self.mistaking[games] = False

    def inputs(self, state: EngineState, tables: SimTables) -> PadInputs:
        """The next frame's inputs of every player (levels applied)."""
        fresh = reference_inputs(state, tables)
        if self.held is None:
            self.held = fresh
        decide = (state.frame[:, None] % self.reaction) == 0
        mistake = decide & (self.rng.random(decide.shape) < self.mistakes)
        self.mistaking = np.where(decide, mistake, self.mistaking)
        noise = random_inputs(state.games, self.rng)
        for name, value in vars(self.held).items():
            chosen = np.where(mistake, getattr(noise, name), getattr(fresh, name))
            value[decide] = chosen[decide]
        out = PadInputs(**{name: value.copy() for name, value in vars(self.held).items()})
        # A decided button lasts while the script still presses it; a mistake is held whole.
        for name in _BUTTONS:
            pressed = getattr(out, name)
            pressed &= getattr(fresh, name) | self.mistaking
        for name in _C_STICK:
            released = ~self.mistaking & (getattr(fresh, name) == 0)
            getattr(out, name)[released] = 0.0
        return out
