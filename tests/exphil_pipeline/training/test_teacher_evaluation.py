"""Held-out evaluation over whole episodes equals the same figures computed frame by frame."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from exphil_pipeline.distillation.labelled_frames import frame_matchups
from exphil_pipeline.distillation.student import StudentConfig
from exphil_pipeline.evaluation.action_metrics import (
    Breakdown,
    count_by_matchup,
    recorded_previous,
)
from exphil_pipeline.evaluation.measurements import teacher_forced_nll
from exphil_pipeline.training.episodes import ChunkReader
from exphil_pipeline.training.teacher_config import TeacherConfig
from exphil_pipeline.training.teacher_evaluation import evaluate, run_episodes
from models import Policy
from runtime.controller_spec import CONTROLLER_SPEC
from tests.exphil_pipeline.training.teacher_fixtures import build_set


def test_lanes_count_every_frame_once_under_its_matchup(sample_store) -> None:
    dataset = build_set(
        sample_store.home, "both-sides", characters=["MEWTWO", "FOX"], heldout_fraction=0.0
    )
    torch.manual_seed(0)
    # A stateless policy scores each frame alone, so lanes and chunks cannot change a figure.
    policy = Policy.from_config(StudentConfig(hidden_sizes=[32]).policy_config(dataset.manifest))
    result = evaluate(policy, ChunkReader(dataset, "train"), 3, "cpu", max_frames=0, bf16=False)

    shards = list(dataset.shards("train"))
    features = np.concatenate([np.asarray(f, dtype=np.float32) for f, _ in shards])
    human = np.concatenate([np.asarray(t) for _, t in shards])
    offsets = np.cumsum([0, *(len(t) for _, t in shards)])
    with torch.no_grad():
        logits, _ = policy(torch.from_numpy(features)[:, None], torch.from_numpy(human)[:, None])
    chosen = torch.stack([head[:, 0].argmax(-1) for head in logits], dim=-1).numpy()
    nll = teacher_forced_nll(policy, features, human)
    matchups = frame_matchups(dataset, "train", offsets, len(human))
    expected = Breakdown.of(
        count_by_matchup(chosen, human, recorded_previous(features), matchups, nll)
    )

    assert result["frames"] == len(human)
    assert result["nll_bits_per_frame"] == pytest.approx(expected.overall["nll_bits_per_frame"])
    assert result["loss"] == pytest.approx(nll.sum(axis=1).mean(), rel=1e-5)
    for key in ("action_accuracy", "button_press_f1", "button_change_f1", "main_stick_f1"):
        assert result[key] == pytest.approx(expected.overall[key]), key
    assert {c: set(v) for c, v in result["per_matchup"].items()} == {
        "MEWTWO": {"FOX"},
        "FOX": {"MEWTWO"},
    }
    for character, opponents in expected.per_matchup.items():
        assert (
            result["per_character"][character]["frames"]
            == (expected.per_character[character]["frames"])
        )
        for opponent, figures in opponents.items():
            got = result["per_matchup"][character][opponent]
            assert got["frames"] == figures["frames"] > 0
            assert got["button_change_f1"] == pytest.approx(figures["button_change_f1"])


def test_lanes_left_idle_at_the_end_change_no_output(sample_store) -> None:
    # More episodes than lanes, so the last steps run with lanes whose episodes are done
    # (left out of the batch) while a recurrent state is carried in the others.
    dataset = build_set(
        sample_store.home, "idle-lanes", characters=["MEWTWO", "FOX"], heldout_fraction=0.0
    )
    reader = ChunkReader(dataset, "train")
    episodes = reader.episodes
    assert len(episodes) % 4 != 0 and len(set(episodes.shard)) == 1
    torch.manual_seed(0)
    config = TeacherConfig(backbone="gru", hidden_dim=16, num_layers=1, bf16=False)
    policy = Policy.from_config(config.policy_config(dataset.manifest))

    in_lanes = np.zeros((episodes.frames, sum(CONTROLLER_SPEC.head_classes)), np.float32)
    for out in run_episodes(policy, reader, 4, "cpu"):
        merged = torch.cat(out.logits, dim=-1).numpy()
        assert len(out.step.episode) == int(np.sum(out.step.episode >= 0))
        for lane, episode in enumerate(out.step.episode):
            row, count = episodes.start[episode] + out.step.offset[lane], out.step.length[lane]
            in_lanes[row : row + count] = merged[lane, :count]

    # Each episode in one call from the initial state: what play computes, frame after frame.
    features, targets = (np.array(a) for a in next(dataset.shards("train")))
    expected = []
    with torch.no_grad():
        for start, length in zip(episodes.start, episodes.length, strict=True):
            logits, _ = policy(
                torch.from_numpy(features[None, start : start + length]),
                torch.from_numpy(targets[None, start : start + length]),
                policy.initial_state(1, "cpu"),
            )
            expected.append(torch.cat(logits, dim=-1)[0].numpy())
    np.testing.assert_allclose(in_lanes, np.concatenate(expected), rtol=1e-4, atol=1e-5)
