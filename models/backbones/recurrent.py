"""GRU and LSTM backbones: PyTorch's fused recurrent layers behind the backbone interface."""

from __future__ import annotations

from torch import Tensor, nn

from models.backbones.base import Backbone, State, StateTensorSpec


class GRUBackbone(Backbone):
    """A stacked GRU. State: ``(hidden[num_layers, B, hidden_dim],)``."""

    def __init__(self, input_dim: int, hidden_dim: int, num_layers: int, dropout: float) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.output_dim = hidden_dim
        self.num_layers = num_layers
        self.gru = nn.GRU(
            input_dim,
            hidden_dim,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )

    def state_specs(self, batch_size: int) -> tuple[StateTensorSpec, ...]:
        return (StateTensorSpec("gru_hidden", (self.num_layers, batch_size, self.output_dim)),)

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        if state is None:
            state = self.initial_state(x.shape[0], x.device)
        (hidden,) = state
        out, hidden = self.gru(x, hidden)
        return out, (hidden,)

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        out, next_state = self.forward(x.unsqueeze(1), state)
        return out.squeeze(1), next_state


class LSTMBackbone(Backbone):
    """A stacked LSTM. State: ``(hidden, cell)``, each ``[num_layers, B, hidden_dim]``."""

    def __init__(self, input_dim: int, hidden_dim: int, num_layers: int, dropout: float) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.output_dim = hidden_dim
        self.num_layers = num_layers
        self.lstm = nn.LSTM(
            input_dim,
            hidden_dim,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )

    def state_specs(self, batch_size: int) -> tuple[StateTensorSpec, ...]:
        shape = (self.num_layers, batch_size, self.output_dim)
        return (StateTensorSpec("lstm_hidden", shape), StateTensorSpec("lstm_cell", shape))

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        if state is None:
            state = self.initial_state(x.shape[0], x.device)
        hidden, cell = state
        out, (hidden, cell) = self.lstm(x, (hidden, cell))
        return out, (hidden, cell)

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        out, next_state = self.forward(x.unsqueeze(1), state)
        return out.squeeze(1), next_state
