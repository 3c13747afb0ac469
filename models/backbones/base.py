"""The interface every backbone shares: a sequence mode for training, a step mode for play.

A backbone's state is a tuple of float tensors whose shapes depend only on the batch size and
the configuration, never on how many frames have been seen. That lets a single-step ONNX graph
take the state as explicit inputs and return it as outputs, and lets training carry the state
from one truncated-BPTT chunk to the next.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor, nn

State = tuple[Tensor, ...]


@dataclass(frozen=True)
class StateTensorSpec:
    """Name and shape of one state tensor (all state tensors are float32)."""

    name: str
    """Identifier, unique within a backbone; usable as an ONNX input/output name."""
    shape: tuple[int, ...]
    """Full shape for the batch size it was asked for."""


class Backbone(nn.Module, ABC):
    """Maps frame encodings ``[B, T, input_dim]`` to hidden vectors ``[B, T, output_dim]``.

    Contract: for any input, stepping frame by frame from a state gives the same outputs and the
    same final state as one :meth:`forward` over the frames from that state.
    """

    input_dim: int
    output_dim: int

    @abstractmethod
    def state_specs(self, batch_size: int) -> tuple[StateTensorSpec, ...]:
        """Shapes of the state tensors, in the order of the state tuple."""

    @abstractmethod
    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Sequence mode: ``x[B, T, input_dim]`` to ``([B, T, output_dim], final state)``.

        ``state=None`` starts from :meth:`initial_state`.
        """

    @abstractmethod
    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        """One frame: ``x[B, input_dim]`` to ``([B, output_dim], next state)``."""

    @property
    def input_layer(self) -> nn.Linear | None:
        """The Linear this backbone applies to every frame before anything else, if it starts
        with one: a caller may apply it itself (fused with the feature embeddings, see
        :meth:`models.feature_input.FeatureInput.project`) and pass the result to
        :meth:`forward_projected`."""
        return None

    def forward_projected(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """:meth:`forward` for frames already through :attr:`input_layer`,
        ``x[B, T, input_layer.out_features]``."""
        raise NotImplementedError(f"{type(self).__name__} does not start with a Linear")

    def step_projected(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        """:meth:`step` for a frame already through :attr:`input_layer`,
        ``x[B, input_layer.out_features]``."""
        raise NotImplementedError(f"{type(self).__name__} does not start with a Linear")

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        """The state before the first frame: all zeros (an empty history)."""
        return tuple(
            torch.zeros(spec.shape, device=device) for spec in self.state_specs(batch_size)
        )

    def state_names(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.state_specs(1))
