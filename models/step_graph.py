""":meth:`Policy.step` in the flat form an exported single-step graph takes.

ONNX graphs have positional tensor inputs and outputs, so the state tuple travels as separate
tensors named after :meth:`Policy.state_specs`: ``state_in.<name>`` in, ``state_out.<name>`` out.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models.policy import Policy


class PolicyStepGraph(nn.Module):
    """``forward(features, uniforms, temperature, *state) -> (classes, probs, logits,
    *next_state)``.

    Shapes for batch size B: ``features[B, D]`` float32, ``uniforms[B, num_heads]`` float32,
    ``temperature`` float32 scalar (<= 0: argmax), state tensors as in ``state_specs(B)``;
    ``classes`` int64 and ``probs`` float32, both ``[B, num_heads]``; ``logits`` float32
    ``[B, sum(head_classes)]``, the heads' untempered logits along the chosen path (see
    :meth:`Policy.step_with_logits`).

    A backbone that starts with a Linear runs it fused with the feature input
    (:class:`~models.feature_input.FusedInputLayer`, weights copied when the graph is built).
    """

    def __init__(self, policy: Policy) -> None:
        super().__init__()
        self.policy = policy
        # Built from the weights as they are now: make the graph after training, as export does.
        self.fused_input = policy.fused_input()

    def forward(
        self, features: Tensor, uniforms: Tensor, temperature: Tensor, *state: Tensor
    ) -> tuple[Tensor, ...]:
        classes, probs, logits, next_state = self.policy.step_with_logits(
            features, state, uniforms, temperature, self.fused_input
        )
        return (classes, probs, logits, *next_state)

    def input_names(self) -> list[str]:
        states = [f"state_in.{name}" for name in self.policy.backbone.state_names()]
        return ["features", "uniforms", "temperature", *states]

    def output_names(self) -> list[str]:
        states = [f"state_out.{name}" for name in self.policy.backbone.state_names()]
        return ["classes", "probs", "logits", *states]

    def example_inputs(self, batch_size: int = 1) -> tuple[Tensor, ...]:
        """Inputs of the right shapes and dtypes for tracing: zero frames, neutral noise,
        temperature 1 and the initial state."""
        config = self.policy.config
        return (
            torch.zeros(batch_size, config.input_dim),
            torch.full((batch_size, config.num_heads), 0.5),
            torch.tensor(1.0),
            *self.policy.initial_state(batch_size),
        )
