"""A frame-by-frame MLP: no memory, so it sees only what the current frame vector holds."""

from __future__ import annotations

from torch import Tensor, nn

from models.backbones.base import Backbone, State, StateTensorSpec


class MLPBackbone(Backbone):
    """``num_layers`` blocks of Linear -> LayerNorm -> ReLU -> Dropout, applied per frame.

    ReLU rather than GELU: this backbone is the one distilled students use, whose every frame is
    a latency budget, and ReLU is a single cheap op in PyTorch and a single ONNX node, where
    exact GELU is among the slowest elementwise ops on CPU and five nodes at opset 17.
    """

    def __init__(self, input_dim: int, hidden_dim: int, num_layers: int, dropout: float) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.output_dim = hidden_dim
        layers: list[nn.Module] = []
        width = input_dim
        for _ in range(num_layers):
            layers += [
                nn.Linear(width, hidden_dim),
                nn.LayerNorm(hidden_dim),
                nn.ReLU(),
                nn.Dropout(dropout),
            ]
            width = hidden_dim
        self.layers = nn.Sequential(*layers)

    def state_specs(self, batch_size: int) -> tuple[StateTensorSpec, ...]:
        return ()

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        return self.layers(x), ()

    @property
    def input_layer(self) -> nn.Linear:
        return self.layers[0]

    def forward_projected(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        return self.layers[1:](x), ()

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        return self.layers(x), ()

    def step_projected(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        return self.layers[1:](x), ()
