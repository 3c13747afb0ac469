"""Mamba (selective state-space model) in plain PyTorch.

Each block: input projection to an inner stream and a gate, a short causal depthwise
convolution, then the selective scan

    h_t = exp(dt_t * A) * h_t-1 + dt_t * B_t * x_t,        y_t = C_t . h_t + D * x_t,

where ``dt``, ``B`` and ``C`` are computed from the frame (input-dependent, "selective").
Training runs the scan in parallel over time with :func:`chunked_selective_scan`; play runs
the recurrence one frame at a time in :meth:`MambaBlock.step`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.backbones.base import Backbone, State, StateTensorSpec


def elapsed_time(dt: Tensor) -> Tensor:
    """``out[..., t, s, :] = sum(dt[..., s+1 : t+1, :])`` for ``s <= t``, 0 above the diagonal.

    ``dt[..., T, inner]`` to ``[..., T, T, inner]``. Summing the terms themselves, rather than
    subtracting two running sums, keeps the differences exact however large the sums grow.
    """
    length = dt.shape[-2]
    terms = dt[..., :, None, :].expand(*dt.shape[:-2], length, length, dt.shape[-1])
    strictly_lower = torch.ones(length, length, dtype=torch.bool, device=dt.device).tril(-1)
    return torch.cumsum(terms.masked_fill(~strictly_lower[:, :, None], 0.0), dim=-3)


def decay_between(dt: Tensor, a: Tensor) -> Tensor:
    """``exp(a * elapsed_time(dt))`` as ``[..., T, T, inner, state]``, 0 above the diagonal
    (a frame never decays into an earlier one)."""
    length = dt.shape[-2]
    causal = torch.ones(length, length, dtype=torch.bool, device=dt.device).tril()
    # -inf goes in after the product: inf * a would give NaN gradients for a.
    log_decay = (elapsed_time(dt)[..., None] * a).masked_fill(~causal[:, :, None, None], -math.inf)
    return torch.exp(log_decay)


def chunked_selective_scan(
    x: Tensor,
    dt: Tensor,
    a: Tensor,
    b: Tensor,
    c: Tensor,
    initial: Tensor,
    chunk_size: int,
) -> tuple[Tensor, Tensor]:
    """The selective scan, parallel over time (the chunked form of Mamba-2's SSD algorithm).

    Args:
        x: inputs ``[batch, T, inner]``.
        dt: positive step sizes ``[batch, T, inner]``.
        a: negative decay rates ``[inner, state]``.
        b, c: input and output projections ``[batch, T, state]``.
        initial: state before the first frame ``[batch, inner, state]``.
        chunk_size: frames per chunk; the largest intermediate holds
            ``batch * T * chunk_size * inner * state`` floats.

    Returns:
        ``y[batch, T, inner]`` (without the ``D`` skip term) and the final state.

    Within a chunk, every output is a decay-weighted sum over earlier frames of the chunk plus
    the decayed state entering the chunk; the states entering chunks follow from the same
    construction one level up, over chunks. Every decay is ``exp`` of a non-positive number, so
    nothing overflows however long the sequence.
    """
    batch, frames, inner = x.shape
    padding = (-frames) % chunk_size
    # dt = 0 makes padded frames leave the state untouched, so the final state stays exact.
    x, dt, b, c = (F.pad(t, (0, 0, 0, padding)) for t in (x, dt, b, c))
    chunks = (frames + padding) // chunk_size
    x, dt, b, c = (t.view(batch, chunks, chunk_size, -1) for t in (x, dt, b, c))
    weighted_x = dt * x

    # Indices: k chunk, t/s frame within the chunk (to/from), d inner channel, n state.
    within = decay_between(dt, a)  # [b, k, t, s, d, n]
    c_times_b = c[:, :, :, None, None, :] * b[:, :, None, :, None, :]  # [b, k, t, s, 1, n]
    frame_weights = (within * c_times_b).sum(-1)  # [b, k, t, s, d]
    y_within = (frame_weights * weighted_x[:, :, None]).sum(3)  # [b, k, t, d]

    # State at the end of each chunk had it started from zero, then the states entering chunks.
    chunk_states = (within[:, :, -1] * (b[:, :, :, None, :] * weighted_x[..., None])).sum(2)
    chunk_dt = F.pad(dt.sum(2), (0, 0, 1, 0))  # [b, k + 1, d]
    across = decay_between(chunk_dt, a)  # [b, k + 1, j, d, n]
    starts = torch.cat([initial[:, None], chunk_states], dim=1)  # [b, j, d, n]
    entering = (across * starts[:, None]).sum(2)  # [b, k + 1, d, n]; the last is the final state

    from_start = torch.exp(torch.cumsum(dt, dim=2)[..., None] * a)  # [b, k, t, d, n]
    y_entering = (from_start * entering[:, :-1, None] * c[:, :, :, None, :]).sum(-1)
    y = (y_within + y_entering).reshape(batch, chunks * chunk_size, inner)[:, :frames]
    return y, entering[:, -1]


class MambaBlock(nn.Module):
    """Pre-norm residual Mamba block. State: causal conv buffer ``[B, inner, conv_width - 1]``
    (the last inputs of the convolution, oldest first) and scan state ``[B, inner, state_dim]``."""

    def __init__(
        self,
        dim: int,
        state_dim: int,
        conv_width: int,
        expand: int,
        chunk_size: int,
        dropout: float,
    ) -> None:
        super().__init__()
        inner = expand * dim
        self.inner_dim = inner
        self.state_dim = state_dim
        self.conv_width = conv_width
        self.chunk_size = chunk_size
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
        y, next_scan_state = chunked_selective_scan(
            stream, dt, a, b, c, scan_state, self.chunk_size
        )
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
        decay = torch.exp(dt[:, :, None] * a)
        scan_state = decay * scan_state + (dt * stream)[:, :, None] * b[:, None, :]
        y = (scan_state * c[:, None, :]).sum(-1) + stream * self.skip
        y = y * F.silu(gate)
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
        chunk_size: int,
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
            MambaBlock(hidden_dim, state_dim, conv_width, expand, chunk_size, dropout)
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
        if state is None:
            state = self.initial_state(x.shape[0], x.device)
        return self._run(x, state, sequence=True)

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        return self._run(x, state, sequence=False)

    def _run(self, x: Tensor, state: State, sequence: bool) -> tuple[Tensor, State]:
        conv_states, scan_states = state
        hidden = self.input_projection(x)
        next_conv, next_scan = [], []
        for layer, block in enumerate(self.blocks):
            run_block = block if sequence else block.step
            hidden, conv, scan = run_block(hidden, conv_states[layer], scan_states[layer])
            next_conv.append(conv)
            next_scan.append(scan)
        return self.output_norm(hidden), (torch.stack(next_conv), torch.stack(next_scan))
