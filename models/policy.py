"""The policy network: frame vectors -> backbone -> autoregressive controller head.

A :class:`Policy` is rebuilt from its :class:`PolicyConfig` alone, so a checkpoint is just the
config's dict plus a state dict (:meth:`Policy.checkpoint` / :meth:`Policy.from_checkpoint`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor, nn

from models.backbones import (
    Backbone,
    GRUBackbone,
    HybridBackbone,
    LSTMBackbone,
    MambaBackbone,
    MLPBackbone,
    State,
    StateTensorSpec,
    WindowedAttentionBackbone,
)
from models.controller_head import AutoregressiveControllerHead
from models.feature_input import CategoricalColumn, FeatureInput, FusedInputLayer
from runtime.controller_spec import CONTROLLER_SPEC

BACKBONE_KINDS = ("mlp", "gru", "lstm", "attention", "mamba", "hybrid")
ATTENTION_KINDS = ("attention", "hybrid")


@dataclass(frozen=True)
class PolicyConfig:
    """Everything needed to rebuild a policy network (weights aside). JSON-serializable."""

    input_dim: int
    """Width D of the float32 frame vector the network takes."""
    embedding_spec_hash: str
    """Hash of the feature spec that produced the frame vectors; a policy only runs on frames
    built by the same spec, and this is how callers check that."""
    categorical: tuple[CategoricalColumn, ...] = ()
    """Columns of the frame vector that hold integer ids, embedded by the first layer."""
    periodic_frequencies: int = 0
    """Learned frequencies of each continuous column's periodic encoding; 0: none
    (see :mod:`models.feature_input`)."""
    periodic_sigma: float = 3.0
    """Spread of the periodic frequencies at initialization, in cycles per unit of input."""
    backbone: str = "gru"
    """One of ``mlp``, ``gru``, ``lstm``, ``attention``, ``mamba``, ``hybrid``."""
    hidden_dim: int = 256
    """Width of the backbone's output and of its internal layers."""
    num_layers: int = 2
    """Backbone depth: MLP blocks, recurrent layers, attention blocks (for ``hybrid``: the
    attention blocks after its single GRU layer) or Mamba blocks."""
    window: int = 32
    """Attention context in frames, the current one included (``attention``, ``hybrid``)."""
    num_attention_heads: int = 4
    """Attention heads per block (``attention``, ``hybrid``); must divide ``hidden_dim``."""
    mamba_state_dim: int = 16
    """Size of each channel's SSM state (``mamba``)."""
    mamba_conv_width: int = 4
    """Frames seen by Mamba's causal depthwise convolution, the current one included."""
    mamba_expand: int = 2
    """Mamba's inner width as a multiple of ``hidden_dim``."""
    dropout: float = 0.0
    """Dropout probability inside the backbone, in ``[0, 1)``."""
    head_classes: tuple[int, ...] = CONTROLLER_SPEC.head_classes
    """Classes per controller head, in target order."""
    joint_heads: int = len(CONTROLLER_SPEC.buttons)
    """Leading heads predicted together, independent given the hidden vector (the buttons);
    the rest are predicted one after another."""
    head_mlp_dim: int = 128
    """Hidden width of each head group's MLP."""
    value_head: bool = False
    """Whether to add a scalar value output on top of the backbone."""
    controller_spec_hash: str = CONTROLLER_SPEC.content_hash
    """Hash of the controller spec the targets were encoded with."""

    def __post_init__(self) -> None:
        # Lists are accepted for convenience; tuples keep the frozen config hashable and equal
        # to its from_dict(to_dict()) round trip.
        object.__setattr__(self, "categorical", tuple(self.categorical))
        object.__setattr__(self, "head_classes", tuple(self.head_classes))
        problems = self._problems()
        if problems:
            raise ValueError("invalid PolicyConfig: " + "; ".join(problems))

    def _problems(self) -> list[str]:
        problems = []
        if self.input_dim < 1:
            problems.append(f"input_dim must be >= 1, got {self.input_dim}")
        if not self.embedding_spec_hash:
            problems.append("embedding_spec_hash must be a non-empty string")
        indices = [column.index for column in self.categorical]
        if len(set(indices)) != len(indices):
            problems.append(f"categorical column indices repeat: {indices}")
        if any(i >= self.input_dim for i in indices):
            problems.append(f"categorical indices {indices} must be < input_dim {self.input_dim}")
        if len(indices) == self.input_dim:
            problems.append("at least one column must be continuous")
        if self.backbone not in BACKBONE_KINDS:
            problems.append(f"backbone must be one of {BACKBONE_KINDS}, got {self.backbone!r}")
        positive = (
            "hidden_dim",
            "num_layers",
            "num_attention_heads",
            "mamba_state_dim",
            "mamba_expand",
            "head_mlp_dim",
        )
        problems += [f"{name} must be >= 1" for name in positive if getattr(self, name) < 1]
        if self.periodic_frequencies < 0 or self.periodic_sigma <= 0:
            problems.append("periodic_frequencies must be >= 0 and periodic_sigma > 0")
        if self.window < 2:
            problems.append(f"window must be >= 2 frames, got {self.window}")
        if self.mamba_conv_width < 2:
            problems.append(f"mamba_conv_width must be >= 2, got {self.mamba_conv_width}")
        if self.backbone in ATTENTION_KINDS and self.hidden_dim % self.num_attention_heads:
            problems.append(
                f"hidden_dim {self.hidden_dim} must be divisible by "
                f"num_attention_heads {self.num_attention_heads}"
            )
        if not 0.0 <= self.dropout < 1.0:
            problems.append(f"dropout must be in [0, 1), got {self.dropout}")
        if not self.head_classes or any(n < 2 for n in self.head_classes):
            problems.append(f"head_classes must be non-empty, each >= 2: {self.head_classes}")
        if not 0 <= self.joint_heads <= len(self.head_classes):
            problems.append(f"joint_heads must be in [0, {len(self.head_classes)}]")
        elif len(set(self.head_classes[: self.joint_heads])) > 1:
            problems.append("the joint heads must all have the same number of classes")
        return problems

    @property
    def num_heads(self) -> int:
        return len(self.head_classes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only (lists for tuples)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["categorical"] = [column.to_dict() for column in self.categorical]
        data["head_classes"] = list(self.head_classes)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolicyConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error, missing ones take defaults."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown PolicyConfig fields: {unknown}")
        values = dict(data)
        if "categorical" in values:
            values["categorical"] = tuple(
                CategoricalColumn.from_dict(column) for column in values["categorical"]
            )
        if "head_classes" in values:
            values["head_classes"] = tuple(int(n) for n in values["head_classes"])
        return cls(**values)


def build_backbone(config: PolicyConfig, input_dim: int) -> Backbone:
    """The backbone ``config.backbone`` names, taking ``input_dim``-wide frame encodings."""
    hidden, layers, dropout = config.hidden_dim, config.num_layers, config.dropout
    if config.backbone == "mlp":
        return MLPBackbone(input_dim, hidden, layers, dropout)
    if config.backbone == "gru":
        return GRUBackbone(input_dim, hidden, layers, dropout)
    if config.backbone == "lstm":
        return LSTMBackbone(input_dim, hidden, layers, dropout)
    if config.backbone == "attention":
        return WindowedAttentionBackbone(
            input_dim, hidden, layers, config.num_attention_heads, config.window, dropout
        )
    if config.backbone == "hybrid":
        return HybridBackbone(
            input_dim, hidden, layers, config.num_attention_heads, config.window, dropout
        )
    return MambaBackbone(
        input_dim,
        hidden,
        layers,
        state_dim=config.mamba_state_dim,
        conv_width=config.mamba_conv_width,
        expand=config.mamba_expand,
        dropout=dropout,
    )


class Policy(nn.Module):
    """:class:`FeatureInput` -> backbone -> :class:`AutoregressiveControllerHead`
    (plus an optional scalar value head on the backbone output)."""

    def __init__(self, config: PolicyConfig) -> None:
        super().__init__()
        self.config = config
        self.features = FeatureInput(
            config.input_dim,
            config.categorical,
            config.periodic_frequencies,
            config.periodic_sigma,
        )
        self.backbone = build_backbone(config, self.features.output_dim)
        self.head = AutoregressiveControllerHead(
            self.backbone.output_dim, config.head_classes, config.joint_heads, config.head_mlp_dim
        )
        self.value = nn.Linear(self.backbone.output_dim, 1) if config.value_head else None

    @classmethod
    def from_config(cls, config: PolicyConfig) -> Policy:
        return cls(config)

    def checkpoint(self) -> dict[str, Any]:
        """``{"config": config dict, "state_dict": weights}``: what :meth:`from_checkpoint`
        needs, loadable with ``torch.load(..., weights_only=True)``."""
        return {"config": self.config.to_dict(), "state_dict": self.state_dict()}

    @classmethod
    def from_checkpoint(cls, checkpoint: Mapping[str, Any]) -> Policy:
        policy = cls(PolicyConfig.from_dict(checkpoint["config"]))
        policy.load_state_dict(checkpoint["state_dict"])
        return policy

    def state_specs(self, batch_size: int) -> tuple[StateTensorSpec, ...]:
        return self.backbone.state_specs(batch_size)

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        return self.backbone.initial_state(batch_size, device)

    def encode(self, features: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """``features[B, T, D]`` to backbone outputs ``[B, T, hidden_dim]`` and the final state.

        A backbone that starts with a Linear has it fused with the id embeddings
        (:meth:`FeatureInput.project`): the same function as ``backbone(features(x))`` in
        fewer operations over a sequence of frames; :meth:`step` keeps the plain form."""
        layer = self.backbone.input_layer
        if layer is None:
            return self.backbone(self.features(features), state)
        return self.backbone.forward_projected(self.features.project(features, layer), state)

    def forward(
        self, features: Tensor, targets: Tensor, state: State | None = None
    ) -> tuple[list[Tensor], State]:
        """Teacher-forced logits (one ``[B, T, classes_i]`` per head) and the final state."""
        hidden, state = self.encode(features, state)
        return self.head(hidden, targets), state

    def fused_input(self) -> FusedInputLayer | None:
        """The feature input and the backbone's input layer as one
        :class:`~models.feature_input.FusedInputLayer` holding a copy of today's weights; None
        for a backbone that does not start with a Linear."""
        layer = self.backbone.input_layer
        return None if layer is None else self.features.fused_with(layer)

    def predict_value(self, hidden: Tensor) -> Tensor:
        """Scalar value ``[...]`` for backbone outputs ``hidden[..., hidden_dim]``."""
        if self.value is None:
            raise ValueError("this policy was configured without a value head")
        return self.value(hidden).squeeze(-1)

    def step(
        self, features: Tensor, state: State, uniforms: Tensor, temperature: Tensor
    ) -> tuple[Tensor, Tensor, State]:
        """One frame of play: ``features[B, D]``, ``uniforms[B, num_heads]`` in ``[0, 1)``,
        ``temperature`` scalar or ``[B]`` (<= 0: argmax) to ``(classes long[B, num_heads],
        probs[B, num_heads], next state)``."""
        classes, probs, _, state = self.step_with_logits(features, state, uniforms, temperature)
        return classes, probs, state

    def step_with_logits(
        self,
        features: Tensor,
        state: State,
        uniforms: Tensor,
        temperature: Tensor,
        fused_input: FusedInputLayer | None = None,
    ) -> tuple[Tensor, Tensor, Tensor, State]:
        """:meth:`step` that also returns ``logits[B, sum(head_classes)]``: every head's
        untempered logits given the classes chosen before it, concatenated in head order (the
        teacher-forced logits of :meth:`forward` with the chosen classes as targets).

        ``fused_input``: this policy's :meth:`fused_input`, the same function in fewer
        operations, for an inference graph built after training."""
        if fused_input is None:
            hidden, state = self.backbone.step(self.features(features), state)
        else:
            hidden, state = self.backbone.step_projected(fused_input(features), state)
        classes, probs, logits = self.head.sample_with_logits(hidden, uniforms, temperature)
        return classes, probs, logits, state
