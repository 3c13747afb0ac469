"""A recurrent layer followed by windowed attention.

The GRU carries an unbounded (if fading) memory into every frame's vector; the attention layers
on top then compare the last ``window`` of those vectors directly, which a GRU alone does badly.
"""

from __future__ import annotations

from torch import Tensor

from models.backbones.attention import WindowedAttentionBackbone
from models.backbones.base import Backbone, State, StateTensorSpec
from models.backbones.recurrent import GRUBackbone


class HybridBackbone(Backbone):
    """One GRU layer, then ``num_layers`` windowed attention blocks.

    State: the GRU's ``gru_hidden[1, B, hidden_dim]`` followed by the attention state
    (see :class:`WindowedAttentionBackbone`).
    """

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
        self.input_dim = input_dim
        self.output_dim = hidden_dim
        self.recurrent = GRUBackbone(input_dim, hidden_dim, num_layers=1, dropout=0.0)
        self.attention = WindowedAttentionBackbone(
            hidden_dim, hidden_dim, num_layers, num_heads, window, dropout
        )
        self._recurrent_state_size = len(self.recurrent.state_specs(1))

    def state_specs(self, batch_size: int) -> tuple[StateTensorSpec, ...]:
        return self.recurrent.state_specs(batch_size) + self.attention.state_specs(batch_size)

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        if state is None:
            state = self.initial_state(x.shape[0], x.device)
        recurrent_state, attention_state = self._split(state)
        hidden, recurrent_state = self.recurrent(x, recurrent_state)
        hidden, attention_state = self.attention(hidden, attention_state)
        return hidden, recurrent_state + attention_state

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        recurrent_state, attention_state = self._split(state)
        hidden, recurrent_state = self.recurrent.step(x, recurrent_state)
        hidden, attention_state = self.attention.step(hidden, attention_state)
        return hidden, recurrent_state + attention_state

    def _split(self, state: State) -> tuple[State, State]:
        return state[: self._recurrent_state_size], state[self._recurrent_state_size :]
