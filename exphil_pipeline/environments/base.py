"""One interface over N parallel two-player games, whatever runs them.

``reset(seed)`` starts every game; ``step(actions)`` applies one frame of controller-spec
classes (``uint8[N, 2, heads]``, ``runtime.controller_spec``) to port 1 and port 2 of every
game and returns the next observations and which games ended. A game that ends is reported once
(``GameResult``) and starts again at once, so N games are always in play. Observations come as
the embedding spec's vectors of every game for each port (``features``, one array) and, on
request, as libmelee ``GameState`` objects (``gamestates()``), the same thing
``runtime``'s agent consumes; the two agree exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class GameResult:
    """How one game ended, from port 1's and port 2's points of view (index 0 and 1)."""

    game: int  # index of the game among the environment's N
    seed: int
    frames: int  # frames played from the first playable frame on
    stocks: tuple[int, int]
    stocks_lost: tuple[int, int]
    percent: tuple[float, float]
    damage_dealt: tuple[float, float]
    self_destructs: tuple[int, int]
    winner: int  # 0 or 1, -1 for a draw
    void: bool = False  # the game could not be played out (a backend died); not rated


def winner_of(stocks: tuple[int, int], percent: tuple[float, float]) -> int:
    """Melee's rule at a game's end: more stocks wins, then lower percent; else a draw (-1)."""
    if stocks[0] != stocks[1]:
        return 0 if stocks[0] > stocks[1] else 1
    if percent[0] != percent[1]:
        return 0 if percent[0] < percent[1] else 1
    return -1


@dataclass
class StepOutput:
    features: np.ndarray  # float32[N, 2, D]: each game embedded for port 1 and for port 2
    done: np.ndarray  # bool[N]: the game ended this frame (and has started again)
    results: list[GameResult] = field(default_factory=list)


class GameEnvironment(Protocol):
    """N parallel games, two ports each (see the module docstring)."""

    num_games: int

    def reset(self, seed: int) -> np.ndarray:
        """Start every game from ``seed``; returns the first features ``float32[N, 2, D]``."""
        ...

    def step(self, actions: np.ndarray) -> StepOutput:
        """Apply ``uint8[N, 2, heads]`` controller classes for one frame."""
        ...

    def gamestates(self) -> list:
        """The current frame of every game as libmelee ``GameState`` objects."""
        ...

    def close(self) -> None: ...
