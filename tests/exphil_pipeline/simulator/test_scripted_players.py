"""The scripted controller driving the engine directly, without building replay records."""

from __future__ import annotations

import random

from melee.enums import Character

from exphil_pipeline.simulator import physics
from exphil_pipeline.simulator.fighter import SPAWN_X, new_fighter
from exphil_pipeline.simulator.scripted_players import (
    REFERENCE_TRAITS,
    choose_inputs,
    decide,
    draw_opponent_traits,
)
from exphil_pipeline.simulator.slp_records import FIRST_FRAME


def test_reference_player_ignores_the_draw_and_both_players_fight() -> None:
    rng = random.Random(4)
    fighters = [
        new_fighter(port, character, spawn_x, stocks=4)
        for port, (character, spawn_x) in enumerate(
            zip((Character.MEWTWO, Character.FOX), SPAWN_X, strict=True)
        )
    ]
    traits = [REFERENCE_TRAITS, draw_opponent_traits(rng)]
    for number in range(FIRST_FRAME, FIRST_FRAME + 3000):
        me, opp = fighters
        assert decide(me, opp, REFERENCE_TRAITS, 0.0) == decide(me, opp, REFERENCE_TRAITS, 0.999)
        physics.step(fighters, choose_inputs(fighters, traits, rng), number)
    assert all(f.percent > 0 or f.stocks < 4 for f in fighters)
