"""Mamba (selective state-space model) in plain PyTorch.

Each block: input projection to an inner stream and a gate, a short causal depthwise
convolution, then the selective scan

    h_t = exp(dt_t * A) * h_t-1 + dt_t * B_t * x_t,        y_t = C_t . h_t + D * x_t,

where ``dt``, ``B`` and ``C`` are computed from the frame (input-dependent, "selective").
Training and play run the same recurrence, :func:`selective_scan_step`: play one frame per call,
training in a loop over the frames (:func:`selective_scan`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.backbones.base import Backbone, State, StateTensorSpec


def selective_scan_step(
    state: Tensor, x: Tensor, dt: Tensor, a: Tensor, b: Tensor, c: Tensor
) -> tuple[Tensor, Tensor]:
    """One frame of the scan: ``state[batch, inner, state]``, ``x`` and positive step sizes
    ``dt`` ``[batch, inner]``, negative decay rates ``a[inner, state]``, input and output
    projections ``b``, ``c`` ``[batch, state]`` to ``(y[batch, inner], next state)``, ``y``
    without the ``D`` skip term. Every decay is ``exp`` of a non-positive number, so the
    recurrence cannot overflow however long it runs."""
    state = torch.exp(dt[:, :, None] * a) * state + (dt * x)[:, :, None] * b[:, None, :]
    return (state * c[:, None, :]).sum(-1), state


def selective_scan(
    x: Tensor, dt: Tensor, a: Tensor, b: Tensor, c: Tensor, initial: Tensor
) -> tuple[Tensor, Tensor]:
    """:func:`selective_scan_step` over ``x[batch, T, inner]``, ``dt[batch, T, inner]``,
    ``b``, ``c`` ``[batch, T, state]`` from ``initial[batch, inner, state]``: returns
    ``y[batch, T, inner]`` and the final state.

    A loop over frames rather than a parallel scan: each step only touches
    ``batch * inner * state`` floats, which stay in cache, and autograd runs the same loop
    backwards. On CPU this is several times faster at training sizes than the parallel forms,
    which materialise ``batch * T * inner * state`` (or, chunked, ``chunk`` times more) decays and
    stream them through memory in every op, or factor ``exp(A (t - s))`` into ``exp(A t)`` and
    ``exp(-A s)``, which overflows. The frames are taken with ``unbind``, whose backward
    assembles one gradient tensor, where indexing would allocate a full-size one per frame.
    """
    state = initial
    outputs = []
    frames = zip(x.unbind(1), dt.unbind(1), b.unbind(1), c.unbind(1), strict=True)
    for frame_x, frame_dt, frame_b, frame_c in frames:
        y, state = selective_scan_step(state, frame_x, frame_dt, a, frame_b, frame_c)
        outputs.append(y)
    return torch.stack(outputs, dim=1), state


def parallel_selective_scan(
    x: Tensor, dt: Tensor, a: Tensor, b: Tensor, c: Tensor, initial: Tensor
) -> tuple[Tensor, Tensor]:
    """:func:`selective_scan` as a log-depth parallel scan over time (Hillis-Steele).

    The recurrence ``h_t = d_t * h_{t-1} + u_t`` composes associatively, so ``log2(T)``
    rounds of whole-sequence tensor ops replace ``T`` sequential steps. Only products of
    decays (each <= 1) are formed, so it is as stable as the loop. It materialises
    ``batch * T * inner * state`` floats per round: on a GPU that is the fast path, on a CPU
    the loop wins (memory bandwidth), and :class:`MambaBlock` picks by device.
    """
    decay = torch.exp(dt[..., None] * a)
    update = (dt * x)[..., None] * b[:, :, None, :]
    update = torch.cat([update[:, :1] + decay[:, :1] * initial[:, None], update[:, 1:]], dim=1)
    offset = 1
    while offset < x.shape[1]:
        update = torch.cat(
            [update[:, :offset], update[:, offset:] + decay[:, offset:] * update[:, :-offset]],
            dim=1,
        )
        decay = torch.cat([decay[:, :offset], decay[:, offset:] * decay[:, :-offset]], dim=1)
        offset *= 2
    return (update * c[:, :, None, :]).sum(-1), update[:, -1]


class MambaBlock(nn.Module):
    """Pre-norm residual Mamba block. State: causal conv buffer ``[B, inner, conv_width - 1]``
    (the last inputs of the convolution, oldest first) and scan state ``[B, inner, state_dim]``."""

    def __init__(
        self,
        dim: int,
        state_dim: int,
        conv_width: int,
        expand: int,
        dropout: float,
    ) -> None:
        super().__init__()
        inner = expand * dim
        self.inner_dim = inner
        self.state_dim = state_dim
        self.conv_width = conv_width
        self.dt_rank = math.ceil(dim / 16)
        self.norm = nn.LayerNorm(dim)
        self.input_projection = nn.Linear(dim, 2 * inner)
        self.conv = nn.Conv1d(inner, inner, conv_width, groups=inner)
        self.selection = nn.Linear(inner, self.dt_rank + 2 * state_dim, bias=False)
        self.dt_projection = nn.Linear(self.dt_rank, inner)
        self.log_decay_rate = nn.Parameter(
            torch.log(torch.arange(1, state_dim + 1, dtype=torch.float32)).repeat(inner, 1)
        )
        self.skip = nn.Parameter(torch.ones(inner))
        self.output_projection = nn.Linear(inner, dim)
        self.dropout = nn.Dropout(dropout)
        self._init_dt_bias()

    def _init_dt_bias(self) -> None:
        # Mamba's initialisation: initial step sizes spread log-uniformly over [1e-3, 1e-1],
        # so some channels remember for hundreds of frames and others only a few.
        dt = torch.exp(torch.empty(self.inner_dim).uniform_(math.log(1e-3), math.log(1e-1)))
        with torch.no_grad():
            self.dt_projection.bias.copy_(dt + torch.log(-torch.expm1(-dt)))

    def _select(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Input-dependent ``dt[..., inner]``, ``B[..., state]``, ``C[..., state]``."""
        low_rank_dt, b, c = self.selection(x).split(
            [self.dt_rank, self.state_dim, self.state_dim], dim=-1
        )
        return F.softplus(self.dt_projection(low_rank_dt)), b, c

    def forward(self, x: Tensor, conv_state: Tensor, scan_state: Tensor) -> tuple[Tensor, ...]:
        """``x[B, T, dim]`` to ``(y[B, T, dim], conv_state, scan_state)``."""
        stream, gate = self.input_projection(self.norm(x)).chunk(2, dim=-1)
        conv_input = torch.cat([conv_state, stream.transpose(1, 2)], dim=2)
        next_conv_state = conv_input[:, :, -(self.conv_width - 1) :]
        stream = F.silu(self.conv(conv_input)).transpose(1, 2)
        dt, b, c = self._select(stream)
        a = -torch.exp(self.log_decay_rate)
        scan = parallel_selective_scan if x.is_cuda else selective_scan
        y, next_scan_state = scan(stream, dt, a, b, c, scan_state)
        y = (y + stream * self.skip) * F.silu(gate)
        return x + self.dropout(self.output_projection(y)), next_conv_state, next_scan_state

    def step(self, x: Tensor, conv_state: Tensor, scan_state: Tensor) -> tuple[Tensor, ...]:
        """``x[B, dim]`` to ``(y[B, dim], conv_state, scan_state)``: the plain recurrence."""
        stream, gate = self.input_projection(self.norm(x)).chunk(2, dim=-1)
        conv_input = torch.cat([conv_state, stream[:, :, None]], dim=2)
        convolved = (conv_input * self.conv.weight[:, 0, :]).sum(-1) + self.conv.bias
        stream = F.silu(convolved)
        dt, b, c = self._select(stream)
        a = -torch.exp(self.log_decay_rate)
        y, scan_state = selective_scan_step(scan_state, stream, dt, a, b, c)
        y = (y + stream * self.skip) * F.silu(gate)
        return x + self.dropout(self.output_projection(y)), conv_input[:, :, 1:], scan_state


class MambaBackbone(Backbone):
    """Input projection, ``num_layers`` Mamba blocks, final LayerNorm.

    State: ``conv [num_layers, B, expand * hidden_dim, conv_width - 1]`` and
    ``scan [num_layers, B, expand * hidden_dim, state_dim]``.
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int,
        num_layers: int,
        state_dim: int,
        conv_width: int,
        expand: int,
        dropout: float,
    ) -> None:
        super().__init__()
        if conv_width < 2:
            raise ValueError(f"conv_width must be >= 2, got {conv_width}")
        self.input_dim = input_dim
        self.output_dim = hidden_dim
        self.num_layers = num_layers
        self.input_projection = nn.Linear(input_dim, hidden_dim)
        self.blocks = nn.ModuleList(
            MambaBlock(hidden_dim, state_dim, conv_width, expand, dropout)
            for _ in range(num_layers)
        )
        self.output_norm = nn.LayerNorm(hidden_dim)

    def state_specs(self, batch_size: int) -> tuple[StateTensorSpec, ...]:
        block = self.blocks[0]
        inner = (self.num_layers, batch_size, block.inner_dim)
        return (
            StateTensorSpec("mamba_conv", (*inner, block.conv_width - 1)),
            StateTensorSpec("mamba_scan", (*inner, block.state_dim)),
        )

    def forward(self, x: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        return self.forward_projected(self.input_projection(x), state)

    @property
    def input_layer(self) -> nn.Linear:
        return self.input_projection

    def forward_projected(self, hidden: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        if state is None:
            state = self.initial_state(hidden.shape[0], hidden.device)
        return self._run(hidden, state, sequence=True)

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        return self.step_projected(self.input_projection(x), state)

    def step_projected(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        return self._run(x, state, sequence=False)

    def _run(self, hidden: Tensor, state: State, sequence: bool) -> tuple[Tensor, State]:
        conv_states, scan_states = state
        next_conv, next_scan = [], []
        for layer, block in enumerate(self.blocks):
            run_block = block if sequence else block.step
            hidden, conv, scan = run_block(hidden, conv_states[layer], scan_states[layer])
            next_conv.append(conv)
            next_scan.append(scan)
        return self.output_norm(hidden), (torch.stack(next_conv), torch.stack(next_scan))
