"""A scripted game shared by the simulator's tests."""

from __future__ import annotations

import pytest

from exphil_pipeline.simulator.game_assembly import generate_game
from exphil_pipeline.simulator.slp_records import Game

FRAMES = 500
"""Frames of the shared game: too few for anyone to lose the last stock."""


@pytest.fixture(scope="module")
def game() -> Game:
    return generate_game(seed=2, frames=FRAMES)
