"""Tiny policy configurations and synthetic frames shared by the model tests."""

from __future__ import annotations

import torch

from models import CategoricalColumn, PolicyConfig

INPUT_DIM = 8
CATEGORICAL = (
    CategoricalColumn(index=0, vocab_size=10, embedding_dim=4),
    CategoricalColumn(index=3, vocab_size=5, embedding_dim=3),
)


def tiny_config(backbone: str, **overrides: object) -> PolicyConfig:
    """A policy small enough to train for hundreds of steps in a second or two."""
    settings: dict[str, object] = {
        "input_dim": INPUT_DIM,
        "embedding_spec_hash": "test-spec",
        "categorical": CATEGORICAL,
        "backbone": backbone,
        "hidden_dim": 32,
        "num_layers": 2,
        "window": 8,
        "num_attention_heads": 2,
        "mamba_state_dim": 8,
        "head_mlp_dim": 32,
    }
    settings.update(overrides)
    return PolicyConfig(**settings)  # type: ignore[arg-type]


def synthetic_frames(batch: int, frames: int, generator: torch.Generator) -> torch.Tensor:
    """Random frame vectors ``[batch, frames, INPUT_DIM]`` whose id columns hold valid ids."""
    features = torch.randn(batch, frames, INPUT_DIM, generator=generator)
    for column in CATEGORICAL:
        ids = torch.randint(0, column.vocab_size, (batch, frames), generator=generator)
        features[..., column.index] = ids.float()
    return features


def random_targets(
    shape: tuple[int, ...], head_classes: tuple[int, ...], generator: torch.Generator
) -> torch.Tensor:
    """Uniformly random valid classes ``uint8[*shape, num_heads]``."""
    limits = torch.tensor(head_classes, dtype=torch.float32)
    draws = torch.rand(*shape, len(head_classes), generator=generator)
    return (draws * limits).long().to(torch.uint8)
