"""Learning a range of frame delays: every training episode paired at its own delay, the delay
an input, held-out games at ``frame_delay``, and players telling the policy the delay they play
at."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from exphil_pipeline.evaluation.players import DelayedInputs
from exphil_pipeline.storage.layout import DataLayout
from exphil_pipeline.training.examples import GameFrames
from exphil_pipeline.training.policy_contract import PolicyContract
from exphil_pipeline.training.training_set import select_players
from exphil_pipeline.training.training_set_config import TrainingSetConfig
from runtime.agent import delay_input, effective_delay
from runtime.embedding_spec import (
    EMBEDDING_SPEC,
    FRAME_DELAY_COLUMN,
    MAX_FRAME_DELAY,
    PREVIOUS_INPUT_COLUMNS,
    frame_delay_feature,
)
from tests.conftest import IngestedStore
from tests.exphil_pipeline.training.teacher_fixtures import (
    build_set,
    fraction_holding_out_one_game,
)


def test_the_range_must_hold_frame_delay() -> None:
    assert TrainingSetConfig(frame_delay=2, frame_delay_range=[0, 18]).trained_delays == (0, 18)
    assert TrainingSetConfig(frame_delay=3).trained_delays == (3, 3)
    for delay, span in ((0, [2, 18]), (20, [0, 18]), (0, [0, MAX_FRAME_DELAY + 1]), (0, [0])):
        with pytest.raises(ValueError, match="frame_delay_range"):
            TrainingSetConfig(frame_delay=delay, frame_delay_range=span)


def test_episode_delays_are_stable_and_cover_the_range() -> None:
    config = TrainingSetConfig(frame_delay=4, frame_delay_range=[0, 18])
    ids = [f"{index:064x}" for index in range(400)]
    drawn = [config.episode_delay(game_id, 1, heldout=False) for game_id in ids]
    assert drawn == [config.episode_delay(game_id, 1, heldout=False) for game_id in ids]
    assert set(drawn) == set(range(19))
    assert {config.episode_delay(game_id, 2, heldout=True) for game_id in ids} == {4}
    fixed = TrainingSetConfig(frame_delay=4)
    assert {fixed.episode_delay(game_id, 1, heldout=False) for game_id in ids} == {4}


def test_a_ranged_set_pairs_each_episode_at_its_own_delay(sample_store: IngestedStore) -> None:
    home = Path(sample_store.home)
    game_ids = [g.game_id for g in sample_store.games if g.status != "quarantined"]
    config = {
        "characters": ["all"],
        "frame_delay": 2,
        "frame_delay_range": [0, 18],
        "heldout_fraction": fraction_holding_out_one_game(game_ids),
    }
    dataset = build_set(home, "delay-range", **config)
    layout = DataLayout(home)
    selection = select_players(layout, TrainingSetConfig(**config))
    players = {(p.game_id, p.port): p for p in selection.players}
    seen: dict[str, set[int]] = {"train": set(), "heldout": set()}
    for split in seen:
        shards = list(dataset.shards(split))
        for episode in dataset.episodes(split).to_pylist():
            player = players[(episode["game_id"], episode["port"])]
            game = GameFrames.read(
                layout.game_file("frames", player.batch, player.game_id),
                layout.game_file("items", player.batch, player.game_id),
                player.stage,
            )
            expected = game.examples(player.port, player.opponent_port, episode["frame_delay"])
            features, targets = shards[episode["shard"]]
            rows = slice(episode["start"], episode["start"] + episode["length"])
            assert np.array_equal(features[rows], expected.features)
            assert np.array_equal(targets[rows], expected.targets)
            seen[split].add(episode["frame_delay"])
    assert seen["heldout"] == {2}
    assert len(seen["train"]) > 1 and seen["train"] <= set(range(19))
    contract = PolicyContract.of(dataset, "delay-range")
    assert (contract.frame_delay, contract.frame_delay_range) == (2, (0, 18))


@pytest.mark.parametrize(
    ("frame_delay", "trained", "told"),
    [(6, (0, 18), 6), (0, (0, 18), 1), (30, (0, 18), 18), (2, (2, 2), 2), (9, (2, 2), 2)],
)
def test_players_tell_the_policy_the_delay_it_plays_at(
    frame_delay: int, trained: tuple[int, int], told: int
) -> None:
    """Delay 0 still lands one frame late (libmelee's frame); a policy trained at one delay
    always reads that one."""
    assert delay_input(effective_delay(frame_delay), trained) == told
    inputs = DelayedInputs(frame_delay, games=3, trained_delays=trained)
    observed = np.ones((3, EMBEDDING_SPEC.dim), dtype=np.float32)
    rows = inputs.observation(observed)
    assert np.all(rows[:, FRAME_DELAY_COLUMN] == frame_delay_feature(told))
    assert np.array_equal(rows[:, PREVIOUS_INPUT_COLUMNS], inputs.chosen.astype(np.float32))
    assert np.all(observed == 1)
