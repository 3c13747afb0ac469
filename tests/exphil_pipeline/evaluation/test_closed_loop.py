"""Closed-loop play feeds the policy its own choices; previous-input noise keeps values real."""

from __future__ import annotations

import numpy as np
import torch

from exphil_pipeline.evaluation.closed_loop import closed_loop_accuracy, play_episodes
from exphil_pipeline.training.previous_input_noise import shuffle_previous_input
from models import FeatureInput
from models.feature_input import CategoricalColumn
from runtime.controller_spec import CONTROLLER_SPEC
from runtime.embedding_spec import EMBEDDING_SPEC, PREVIOUS_INPUT_COLUMNS

HEADS = CONTROLLER_SPEC.num_heads


def _frames(count: int) -> np.ndarray:
    frames = np.zeros((count, EMBEDDING_SPEC.dim), dtype=np.float32)
    frames[:, 0] = np.arange(count)
    frames[:, PREVIOUS_INPUT_COLUMNS] = 5  # the recorded previous input, never fed back
    return frames


def test_each_frame_sees_the_choice_made_on_the_frame_before() -> None:
    seen = []

    def step(rows: np.ndarray) -> np.ndarray:
        seen.append(rows[0, PREVIOUS_INPUT_COLUMNS].copy())
        return np.full((len(rows), HEADS), rows[:, :1] % 3)  # the choice depends on the frame

    (chosen,) = play_episodes(step, [_frames(4)])
    assert chosen[:, 0].tolist() == [0, 1, 2, 0]
    assert seen[0].tolist() == [5] * HEADS  # nothing chosen yet: the recorded one
    assert [s[0] for s in seen[1:]] == [0, 1, 2]


def test_episodes_played_side_by_side_are_played_as_alone() -> None:
    def step(rows: np.ndarray) -> np.ndarray:
        # Each lane's choice depends on its frame and its own last choice.
        choice = (rows[:, :1] + rows[:, PREVIOUS_INPUT_COLUMNS][:, :1]) % 7
        return np.broadcast_to(choice, (len(rows), HEADS)).astype(np.int64)

    episodes = [_frames(5), _frames(2) + 1, _frames(1) + 3]
    together = play_episodes(step, episodes)
    for alone, features in zip(together, episodes, strict=True):
        (expected,) = play_episodes(step, [features])
        assert np.array_equal(alone, expected)
        assert len(alone) == len(features)


def test_a_policy_that_copies_its_last_input_is_caught() -> None:
    targets = np.tile(np.arange(4)[:, None] % 2, (1, HEADS))

    def copycat(lanes: int) -> object:
        return lambda rows: rows[:, PREVIOUS_INPUT_COLUMNS].astype(np.int64)

    frames = _frames(4)
    # Teacher-forced, copying the recorded input would be right on every frame.
    frames[:, PREVIOUS_INPUT_COLUMNS] = targets
    result = closed_loop_accuracy(copycat, iter([(frames, targets)] * 3))
    assert result.compared == 12
    assert result.all_heads == 0.5  # frame 0 (recorded input), then its own 0 copied on


def test_shuffled_previous_inputs_come_from_valid_frames_and_nothing_else_moves() -> None:
    torch.manual_seed(0)
    features = torch.from_numpy(_frames(64)).reshape(4, 16, -1)
    features[..., PREVIOUS_INPUT_COLUMNS] = torch.arange(64.0).reshape(4, 16, 1)
    valid = torch.ones(4, 16, dtype=torch.bool)
    valid[3] = False  # an idle lane: its zeros must never be handed out
    noisy = shuffle_previous_input(features, 1.0, valid)
    previous = noisy[..., PREVIOUS_INPUT_COLUMNS]
    assert set(previous[..., 0].flatten().tolist()) <= set(range(48))
    assert (previous == previous[..., :1]).all()  # whole inputs move, never mixed
    outside = torch.ones(EMBEDDING_SPEC.dim, dtype=torch.bool)
    outside[PREVIOUS_INPUT_COLUMNS] = False
    assert torch.equal(noisy[..., outside], features[..., outside])
    assert shuffle_previous_input(features, 0.0, valid) is features


def test_periodic_encodings_widen_the_input_and_keep_the_id_columns() -> None:
    torch.manual_seed(0)
    plain = FeatureInput(6, [CategoricalColumn(5, 4, 3)])
    torch.manual_seed(0)
    periodic = FeatureInput(6, [CategoricalColumn(5, 4, 3)], periodic_frequencies=2)
    frames = torch.rand(3, 6)
    frames[:, 5] = 2
    out = periodic(frames)
    assert out.shape == (3, plain.output_dim + 5 * 2 * 2)
    assert torch.equal(out[:, : plain.output_dim], plain(frames))
    assert out[:, plain.output_dim :].abs().max() <= 1
