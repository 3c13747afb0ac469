"""Opponents drawn game by game: a saved policy (recurrent in PyTorch, stateless in
onnxruntime) stepping any subset of the games plays them as the arena's teacher player does,
and only games that start again draw a new opponent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from exphil_pipeline.environments.simulator_env import SimulatorConfig, SimulatorEnvironment
from exphil_pipeline.evaluation.players import TeacherPlayer
from exphil_pipeline.rl.opponent_mix import OpponentMix, OpponentSpec, PolicyOpponent
from runtime.controller_spec import CONTROLLER_SPEC
from tests.exphil_pipeline.training.teacher_fixtures import small_mewtwo_teacher

BASE = "mix-base"
FRAMES = 24


@pytest.fixture(scope="module", params=["gru", "mlp"])
def saved_teacher(sample_store, request) -> Path:
    """A small Mewtwo teacher of each kind: a GRU's per-game state is what subsets must keep
    apart; an MLP plays through onnxruntime and must choose what PyTorch chooses."""
    return small_mewtwo_teacher(
        Path(sample_store.home),
        f"{BASE}-{request.param}",
        backbone=request.param,
        hidden_dim=16,
        batch_size=4,
        bptt=16,
        max_steps=4,
    )


def _games(count: int, seed: int = 0) -> tuple[SimulatorEnvironment, np.ndarray]:
    env = SimulatorEnvironment(
        SimulatorConfig(
            games=count,
            characters=("FOX", "MEWTWO"),
            stage="FINAL_DESTINATION",
            stocks=4,
            max_frames=600,
            observe=(0, 1),
        )
    )
    return env, env.reset(seed)


def _step(env: SimulatorEnvironment, second: np.ndarray) -> np.ndarray:
    both = np.tile(CONTROLLER_SPEC.neutral(), (len(second), 2, 1))
    both[:, 1] = second
    return env.step(both).features


def test_over_all_games_a_policy_opponent_plays_as_the_arena_s_teacher_player(
    saved_teacher: Path,
) -> None:
    env, features = _games(5)
    opponent = PolicyOpponent(saved_teacher, 5, seed=3)
    player = TeacherPlayer(saved_teacher)
    player.start(np.ones(5, dtype=np.int64), 3)
    every = np.arange(5)
    for _ in range(FRAMES):
        mine = opponent.act(features[every, 1], every)
        np.testing.assert_array_equal(mine, player.act(env, features[:, 1]))
        features = _step(env, mine)


def test_stepping_games_in_two_subsets_equals_stepping_them_together(
    saved_teacher: Path,
) -> None:
    env, features = _games(6)
    together = PolicyOpponent(saved_teacher, 6, seed=5)
    apart = PolicyOpponent(saved_teacher, 6, seed=5)
    # Uniforms are drawn in call order, so the first subset takes the first games' rows.
    first, second = np.array([0, 1, 2]), np.array([3, 4, 5])
    for _ in range(FRAMES):
        expected = together.act(features[:, 1], np.arange(6))
        got = np.empty_like(expected)
        got[first] = apart.act(features[first, 1], first)
        got[second] = apart.act(features[second, 1], second)
        np.testing.assert_array_equal(got, expected)
        features = _step(env, expected)
    for mine, theirs in zip(apart._state, together._state, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=0, atol=0)


def test_each_game_draws_its_opponent_and_only_restarted_games_draw_again(
    saved_teacher: Path,
) -> None:
    games = 120
    level_3, level_1 = OpponentSpec("scripted:3", level=3), OpponentSpec("scripted:1", level=1)
    teacher = OpponentSpec("teacher", checkpoint=str(saved_teacher))
    mix = OpponentMix(games, port=1, seed=0)
    mix.draw(np.arange(games), {level_3: 0.25, level_1: 0.25, teacher: 0.5})
    drawn = [spec.name for spec in mix.assigned]
    # Binomial(120, 0.5): 60 +- 5.5; the bounds are over 3.5 standard deviations away.
    assert 40 <= drawn.count("teacher") <= 80
    assert drawn.count("scripted:3") > 10 and drawn.count("scripted:1") > 10
    env, features = _games(games)
    classes = mix.act(env, features[:, 1])
    assert classes.shape == (games, CONTROLLER_SPEC.num_heads)

    restarted = np.array([0, 1, 2])
    mix.draw(restarted, {OpponentSpec("scripted:2", level=2): 1.0})
    after = [spec.name for spec in mix.assigned]
    assert after[:3] == ["scripted:2"] * 3
    assert after[3:] == drawn[3:]
    # The teacher left the odds but still plays its games, so it is kept until they end.
    assert mix.act(env, features[:, 1]).shape == (games, CONTROLLER_SPEC.num_heads)
    mix.draw(np.arange(games), {level_3: 1.0})
    assert {spec.name for spec in mix.assigned} == {"scripted:3"}
    assert not mix._policies
