"""Causal sliding-window attention: each frame attends to itself and the ``window - 1`` frames
before it, in every layer (so a stack of L layers sees ``L * (window - 1) + 1`` frames).

Positions enter only through ALiBi, a per-head linear penalty on the distance between query and
key. Nothing depends on absolute positions, so a rolling buffer of the last ``window - 1`` keys
and values per layer reproduces the windowed sequence forward exactly, however many frames came
before (the same argument that makes sliding-window KV caches exact).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from models.backbones.base import Backbone, State, StateTensorSpec


def alibi_slopes(num_heads: int) -> Tensor:
    """Geometric per-head slopes ``2^(-8 i / num_heads)``, i = 1..num_heads (ALiBi's choice)."""
    exponents = torch.arange(1, num_heads + 1, dtype=torch.float32) * (-8.0 / num_heads)
    return torch.pow(2.0, exponents)


class WindowedAttentionBlock(nn.Module):
    """Pre-norm transformer block whose attention takes cached keys/values and an additive bias."""

    def __init__(self, dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.attention_norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.attention_out = nn.Linear(dim, dim)
        self.feedforward_norm = nn.LayerNorm(dim)
        self.feedforward = nn.Sequential(
            nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, x: Tensor, past_keys: Tensor, past_values: Tensor, bias: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """One block over ``x[B, T, dim]`` given the previous ``P`` frames' keys and values
        ``[B, heads, P, head_dim]`` and the additive attention bias ``[B, heads, T, P + T]``.

        Returns the block output and the keys/values over all ``P + T`` positions.
        """
        batch, frames, dim = x.shape
        qkv = self.qkv(self.attention_norm(x)).view(batch, frames, 3, self.num_heads, -1)
        queries, keys, values = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        keys = torch.cat([past_keys, keys], dim=2)
        values = torch.cat([past_values, values], dim=2)
        scores = queries @ keys.transpose(-1, -2) / math.sqrt(self.head_dim) + bias
        mixed = torch.softmax(scores, dim=-1) @ values
        mixed = mixed.transpose(1, 2).reshape(batch, frames, dim)
        x = x + self.dropout(self.attention_out(mixed))
        x = x + self.dropout(self.feedforward(self.feedforward_norm(x)))
        return x, keys, values


class WindowedAttentionBackbone(Backbone):
    """Input projection, ``num_layers`` windowed attention blocks, final LayerNorm.

    State: ``keys`` and ``values`` ``[num_layers, B, num_heads, window - 1, head_dim]`` (the last
    ``window - 1`` frames, oldest first) and ``valid[B, window - 1]`` (1.0 where a buffer slot
    holds a real frame, 0.0 before the history has filled it).
    """

    alibi: Tensor

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int,
        num_layers: int,
        num_heads: int,
        window: int,
        dropout: float,
    ) -> None:
        super().__init__()
        if hidden_dim % num_heads:
            raise ValueError(f"hidden_dim {hidden_dim} is not divisible by num_heads {num_heads}")
        if window < 2:
            raise ValueError(f"window must be >= 2 frames, got {window}")
        self.input_dim = input_dim
        self.output_dim = hidden_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.window = window
        self.input_projection = nn.Linear(input_dim, hidden_dim)
        self.blocks = nn.ModuleList(
            WindowedAttentionBlock(hidden_dim, num_heads, dropout) for _ in range(num_layers)
        )
        self.output_norm = nn.LayerNorm(hidden_dim)
        self.register_buffer("alibi", alibi_slopes(num_heads), persistent=False)

    def state_specs(self, batch_size: int) -> tuple[StateTensorSpec, ...]:
        history = self.window - 1
        cache = (
            self.num_layers,
            batch_size,
            self.num_heads,
            history,
            self.output_dim // self.num_heads,
        )
        return (
            StateTensorSpec("attention_keys", cache),
            StateTensorSpec("attention_values", cache),
            StateTensorSpec("attention_valid", (batch_size, history)),
        )

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        return self.forward_projected(self.input_projection(x), state)

    @property
    def input_layer(self) -> nn.Linear:
        return self.input_projection

    def forward_projected(self, hidden: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        if state is None:
            state = self.initial_state(hidden.shape[0], hidden.device)
        past_keys, past_values, past_valid = state
        history = self.window - 1
        valid = torch.cat([past_valid, torch.ones_like(hidden[..., 0])], dim=1)
        bias = self._attention_bias(valid, hidden.shape[1])
        next_keys, next_values = [], []
        for layer, block in enumerate(self.blocks):
            hidden, keys, values = block(hidden, past_keys[layer], past_values[layer], bias)
            next_keys.append(keys[:, :, -history:])
            next_values.append(values[:, :, -history:])
        next_state = (torch.stack(next_keys), torch.stack(next_values), valid[:, -history:])
        return self.output_norm(hidden), next_state

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        return self.step_projected(self.input_projection(x), state)

    def step_projected(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        out, next_state = self.forward_projected(x.unsqueeze(1), state)
        return out.squeeze(1), next_state

    def _attention_bias(self, valid: Tensor, frames: int) -> Tensor:
        """Additive bias ``[B, heads, T, P+T]``: ALiBi inside the window, -inf outside it and
        on empty buffer slots. Every query may attend to itself, so no row is all -inf."""
        history = self.window - 1
        query_positions = torch.arange(frames, device=valid.device) + history
        key_positions = torch.arange(history + frames, device=valid.device)
        distance = query_positions[:, None] - key_positions[None, :]
        in_window = (distance >= 0) & (distance < self.window)
        allowed = in_window[None, None] & (valid[:, None, None, :] > 0.5)
        alibi = -self.alibi[:, None, None] * distance.to(valid.dtype)
        return torch.where(allowed, alibi[None], float("-inf"))
