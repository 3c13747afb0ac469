"""Soft labels line up with the training set; the distillation loss is what it claims."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from exphil_pipeline.distillation.soft_labels import (
    HEAD_SLICES,
    SoftLabels,
    SoftLabelsConfig,
    build_soft_labels,
)
from exphil_pipeline.distillation.student import StudentConfig, distillation_loss
from exphil_pipeline.storage.layout import DataLayout
from exphil_pipeline.training.teacher_config import TeacherConfig
from exphil_pipeline.training.teacher_trainer import train
from exphil_pipeline.training.training_set import TrainingSet
from tests.exphil_pipeline.training.teacher_fixtures import build_set

HEAD_CLASSES = [s.stop - s.start for s in HEAD_SLICES]


def _random_logits(batch: int, seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, classes, generator=generator) for classes in HEAD_CLASSES]


def test_loss_is_pure_cross_entropy_at_alpha_zero() -> None:
    logits = _random_logits(8, 0)
    targets = torch.stack([torch.randint(0, c, (8,)) for c in HEAD_CLASSES], dim=1)
    soft = torch.full((8, sum(HEAD_CLASSES)), 0.1)
    expected = sum(F.cross_entropy(head, targets[:, i]) for i, head in enumerate(logits))
    assert torch.allclose(distillation_loss(logits, targets, soft, 2.0, 0.0), expected)


def test_soft_term_vanishes_when_the_student_matches_the_teacher() -> None:
    logits = _random_logits(8, 1)
    soft = torch.cat([torch.softmax(head / 2.0, dim=-1) for head in logits], dim=-1)
    targets = torch.zeros(8, len(HEAD_CLASSES), dtype=torch.long)
    assert distillation_loss(logits, targets, soft, 2.0, 1.0).abs() < 1e-5


def test_student_config_is_validated() -> None:
    with pytest.raises(ValueError, match="hidden_sizes"):
        StudentConfig(hidden_sizes=[128, 64])
    with pytest.raises(ValueError, match="alpha"):
        StudentConfig(alpha=1.5)


def test_soft_labels_follow_whole_episodes_of_a_recurrent_teacher(sample_store) -> None:
    home = sample_store.home
    build_set(home, "soft", characters=["MEWTWO"], heldout_fraction=0.1)
    config = TeacherConfig(hidden_dim=16, batch_size=2, bptt=16, max_steps=3)
    teacher = train(config, home, "soft", log=lambda _: None).policy
    experiment = DataLayout(home).experiment("soft")
    build_soft_labels(experiment, SoftLabelsConfig(temperature=2.0, lanes=2))
    labels = SoftLabels.of(experiment)
    dataset = TrainingSet.of(experiment)
    assert labels.temperature == 2.0
    for split in ("train", "heldout"):
        shards = list(dataset.shards(split))
        soft_shards = labels.shards(split)
        for episode in dataset.episodes(split).to_pylist():
            features, targets = shards[episode["shard"]]
            rows = slice(episode["start"], episode["start"] + episode["length"])
            # One uninterrupted sequence from the initial state, as the teacher would play it.
            teacher.eval()
            with torch.no_grad():
                logits, _ = teacher(
                    torch.from_numpy(np.array(features[rows]))[None],
                    torch.from_numpy(np.array(targets[rows]))[None],
                )
            expected = torch.cat([torch.softmax(h[0] / 2.0, -1) for h in logits], -1).numpy()
            actual = soft_shards[episode["shard"]][rows].astype(np.float32)
            np.testing.assert_allclose(actual, expected, atol=2e-3)
