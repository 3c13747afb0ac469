"""Scripted players on the engine directly, without building replay records."""

from __future__ import annotations

import numpy as np

from exphil_pipeline.evaluation.arena import ArenaConfig, play_arena
from exphil_pipeline.evaluation.players import ScriptedPlayer
from exphil_pipeline.simulator import engine
from exphil_pipeline.simulator.engine_state import new_games
from exphil_pipeline.simulator.melee_data import sim_tables
from exphil_pipeline.simulator.pad_inputs import PadInputs
from exphil_pipeline.simulator.scripted_players import (
    STRONGEST,
    ScriptedPlayers,
    reference_inputs,
)

GAMES = 8


def _play(levels: np.ndarray, seed: int, frames: int) -> tuple[list[np.ndarray], object]:
    tables = sim_tables()
    state = new_games(np.tile([1, 0], (GAMES, 1)), np.zeros(GAMES, dtype=int), stocks=4)
    players = ScriptedPlayers(levels, seed)
    chosen = []
    for _ in range(frames):
        pad = players.inputs(state, tables)
        chosen.append(pad.to_classes())
        engine.step(state, pad, tables)
    return chosen, state


def test_the_reference_script_is_a_function_of_the_visible_state() -> None:
    levels = np.tile([STRONGEST, 1], (GAMES, 1))
    first, state_a = _play(levels, seed=1, frames=1500)
    again, _ = _play(levels, seed=1, frames=1500)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    # Another seed changes the weaker player's mistakes, so the games differ...
    other, _ = _play(levels, seed=2, frames=1500)
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))
    fought = (state_a.percent > 0) | (state_a.stocks < 4)
    assert fought.any(axis=1).all(), "every game has a hit landed"


def test_inputs_round_trip_through_controller_classes() -> None:
    chosen, _ = _play(np.full((GAMES, 2), STRONGEST), seed=0, frames=600)
    for classes in chosen:
        assert np.array_equal(PadInputs.from_classes(classes).to_classes(), classes)


def test_the_strongest_level_plays_the_reference_script_exactly() -> None:
    tables = sim_tables()
    state = new_games(np.tile([1, 0], (GAMES, 1)), np.zeros(GAMES, dtype=int), stocks=4)
    players = ScriptedPlayers(np.tile([STRONGEST, 0], (GAMES, 1)), seed=5)
    for _ in range(400):
        pad = players.inputs(state, tables)
        reference = reference_inputs(state, tables)
        for name, value in vars(pad).items():
            assert np.array_equal(value[:, 0], getattr(reference, name)[:, 0]), name
        engine.step(state, pad, tables)


def test_the_reference_script_beats_level_2_in_a_fox_ditto() -> None:
    # Fox's jab restarts the frame it ends; a level that held A through its reaction window
    # used to jab-lock the reference script whenever it dropped its shield.
    config = ArenaConfig(characters=("FOX", "FOX"), max_frames=900)
    report = play_arena(ScriptedPlayer(STRONGEST), ScriptedPlayer(2), 10, config, seed=0)
    strongest, weaker = report.players
    assert strongest.wins > 2 * weaker.wins, report.to_markdown()
    assert strongest.net_stocks_per_minute > 0
