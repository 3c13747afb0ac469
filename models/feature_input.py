"""The first layer of every policy: the raw float frame vector to one dense vector.

Categorical columns (action state, character, stage, ...) arrive as exact integer floats in the
same float32 vector as the continuous columns. Expanding them here, inside the network, keeps
the exported ONNX graph's input a single raw float vector, so the runtime never needs to know
which column is an id.

Continuous columns can also be given periodic encodings (``periodic_frequencies > 0``):
``sin(2 pi c_jk x_j + phase)`` for learned frequencies ``c_jk`` of each column ``j``, at a
cosine and a sine phase. Game decisions hinge on sharp thresholds of a continuous value (a
move's range, the edge of the stage); a plain MLP needs very large first-layer weights, and
so many optimizer steps, to draw such a boundary, while high frequencies draw it at once
(Gorishniy et al. 2022, "On Embeddings for Numerical Features in Tabular Deep Learning").
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F


@dataclass(frozen=True)
class CategoricalColumn:
    """One id column of the frame vector and how it is embedded."""

    index: int
    """Position of the column in the frame vector."""
    vocab_size: int
    """Number of distinct ids; ids outside ``[0, vocab_size)`` are clamped into it."""
    embedding_dim: int
    """Width of the learned embedding that replaces the id."""

    def __post_init__(self) -> None:
        if self.index < 0:
            raise ValueError(f"column index must be >= 0, got {self.index}")
        if self.vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {self.vocab_size}")
        if self.embedding_dim < 1:
            raise ValueError(f"embedding_dim must be >= 1, got {self.embedding_dim}")

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, int]) -> CategoricalColumn:
        return cls(
            index=int(data["index"]),
            vocab_size=int(data["vocab_size"]),
            embedding_dim=int(data["embedding_dim"]),
        )


def categorical_columns(
    index_vocab: Iterable[tuple[int, int]], max_embedding_dim: int = 32
) -> tuple[CategoricalColumn, ...]:
    """Columns for ``(index, vocab_size)`` pairs (an embedding spec's ``categorical``), each
    embedded in ``min(vocab_size, max_embedding_dim)`` dimensions: a table never needs more
    dimensions than it has ids."""
    return tuple(
        CategoricalColumn(index, vocab, min(vocab, max_embedding_dim))
        for index, vocab in index_vocab
    )


class FeatureInput(nn.Module):
    """Frame vectors ``[..., input_dim]`` to ``[..., output_dim]``: continuous columns as they are,
    followed by one embedding per categorical column (in the order given).

    Every column's embedding lives in one table (column ``j``'s ids start at row
    ``row_starts[j]``, its vectors fill the first ``embedding_dim`` entries of a row as wide as
    the widest column), so all columns are looked up with a single gather and the output is
    assembled with another: per frame that is a handful of ops, and of ONNX nodes, however many
    id columns the spec has.
    """

    categorical_index: Tensor
    categorical_max: Tensor
    row_offsets: Tensor
    output_index: Tensor
    table: nn.Embedding | None

    def __init__(
        self,
        input_dim: int,
        categorical: Sequence[CategoricalColumn],
        periodic_frequencies: int = 0,
        periodic_sigma: float = 3.0,
    ) -> None:
        super().__init__()
        indices = [column.index for column in categorical]
        if len(set(indices)) != len(indices):
            raise ValueError(f"categorical column indices repeat: {indices}")
        out_of_range = [i for i in indices if i >= input_dim]
        if out_of_range:
            raise ValueError(f"categorical indices {out_of_range} >= input_dim {input_dim}")
        self.input_dim = input_dim
        self.categorical = tuple(categorical)
        categorical_set = set(indices)
        continuous = [i for i in range(input_dim) if i not in categorical_set]
        vocab_sizes = [column.vocab_size for column in categorical]
        self.embedding_width = max((column.embedding_dim for column in categorical), default=0)
        # Fixed index buffers make the split a Gather in ONNX instead of Python slicing.
        self.register_buffer("categorical_index", torch.tensor(indices, dtype=torch.long))
        self.register_buffer(
            "categorical_max", torch.tensor([v - 1 for v in vocab_sizes], dtype=torch.float32)
        )
        starts = [0, *itertools.accumulate(vocab_sizes)]
        self.row_starts = tuple(starts[:-1])
        # Half a row more than each column's first row: the cast to an index truncates, so
        # adding these rounds a non-integer id to the nearest one.
        self.register_buffer("row_offsets", torch.tensor(self.row_starts) + 0.5)
        self.table = nn.Embedding(starts[-1], self.embedding_width) if categorical else None
        # One gather assembles the output from the frame followed by the flattened lookups
        # ([columns, width], of which each column uses its first embedding_dim entries).
        embedding_positions = [
            input_dim + j * self.embedding_width + k
            for j, column in enumerate(categorical)
            for k in range(column.embedding_dim)
        ]
        self.register_buffer(
            "output_index", torch.tensor(continuous + embedding_positions, dtype=torch.long)
        )
        self.continuous_dim = len(continuous)
        # Multiplies per output unit of the layer after this one: every table row through it
        # (project), or each frame's embedded ids (the plain path); project picks the cheaper.
        self.table_entries = sum(c.vocab_size * c.embedding_dim for c in categorical)
        self.embedded_width = sum(c.embedding_dim for c in categorical)
        self.periodic: Periodic | None = None
        if periodic_frequencies:
            self.periodic = Periodic(self.continuous_dim, periodic_frequencies, periodic_sigma)
        self.output_dim = len(self.output_index) + (
            self.periodic.output_dim if self.periodic else 0
        )

    def column_embeddings(self, column: int) -> Tensor:
        """Embedding vectors ``[vocab_size, embedding_dim]`` of the ``column``-th id column."""
        if self.table is None:
            raise IndexError("this input has no categorical columns")
        spec, start = self.categorical[column], self.row_starts[column]
        return self.table.weight[start : start + spec.vocab_size, : spec.embedding_dim]

    def forward(self, frames: Tensor) -> Tensor:
        if frames.dim() > 2:
            # Gathering columns of a [B, T, D] tensor takes several times longer than of the
            # same frames as one [B * T, D] matrix.
            flat = self(frames.reshape(-1, frames.shape[-1]))
            return flat.view(*frames.shape[:-1], flat.shape[-1])
        encoded = self._embed_ids(frames)
        if self.periodic is None:
            return encoded
        # The continuous columns lead the output (see output_index).
        periodic = self.periodic(encoded[..., : self.continuous_dim])
        return torch.cat([encoded, periodic], dim=-1)

    def project(self, frames: Tensor, layer: nn.Linear) -> Tensor:
        """``layer(self(frames))``, without building the embedded frame vectors.

        Each id column's table goes through that column's slice of ``layer``'s weight once per
        call (``vocab_size x out_features``), and each frame then sums one row of it per id
        column. Over many frames this spares the larger part of ``layer``'s multiply, whose
        inputs are mostly embedding entries. With fewer frames than table rows per embedded
        input (a student's batch of random frames, a single step), multiplying every table row
        costs more than it spares, and this is ``layer(self(frames))``.
        """
        self._check_follows(layer)
        flat = frames.reshape(-1, frames.shape[-1])
        if len(flat) * self.embedded_width <= self.table_entries:
            return layer(self(frames))
        continuous = flat.index_select(-1, self.output_index[: self.continuous_dim])
        weight = layer.weight
        out = F.linear(continuous, weight[:, : self.continuous_dim], layer.bias)
        if self.periodic is not None:
            periodic = self.periodic(continuous)
            out = out + F.linear(periodic, weight[:, len(self.output_index) :])
        tables = self._projected_tables(weight)
        out = out + F.embedding_bag(self._table_rows(flat), tables, mode="sum")
        return out.view(*frames.shape[:-1], -1)

    def fused_with(self, layer: nn.Linear) -> FusedInputLayer:
        """``layer(self(frames))`` for single frames as a :class:`FusedInputLayer`: a copy of
        today's weights, for an inference graph (it does not follow later training)."""
        self._check_follows(layer)
        return FusedInputLayer(self, layer)

    def _check_follows(self, layer: nn.Linear) -> None:
        """Refuse a ``layer`` that does not take this input's output."""
        if layer.in_features != self.output_dim:
            raise ValueError(f"layer takes {layer.in_features} inputs, not {self.output_dim}")

    def _projected_tables(self, weight: Tensor) -> Tensor:
        """Every table row's embedding times its column's slice of ``weight[out, output_dim]``,
        ``[table rows, out]``, row for row as in the table.

        One ``split`` of each tensor, not a slice per column: a slice's backward fills a
        zero gradient as large as the whole tensor, once per column, and at dozens of id
        columns those fills took a third of a training step; a split's backward is one
        ``cat``.
        """
        vocab_sizes = [column.vocab_size for column in self.categorical]
        widths = [column.embedding_dim for column in self.categorical]
        embedded = weight[:, self.continuous_dim : self.continuous_dim + self.embedded_width]
        return torch.cat(
            [
                rows[:, :width] @ columns.T
                for rows, columns, width in zip(
                    self.table.weight.split(vocab_sizes),
                    embedded.split(widths, dim=1),
                    widths,
                    strict=True,
                )
            ]
        )

    def _table_rows(self, frames: Tensor) -> Tensor:
        return table_rows(frames, self.categorical_index, self.categorical_max, self.row_offsets)

    def _embed_ids(self, frames: Tensor) -> Tensor:
        if self.table is None:
            return frames
        rows = self._table_rows(frames)
        # index_select rather than the Embedding call: the same Gather forwards, and on CPU a
        # backward (index_add) that takes a fifth off this layer's training step.
        looked_up = self.table.weight.index_select(0, rows.reshape(-1))
        looked_up = looked_up.view(*rows.shape[:-1], -1)
        return torch.cat([frames, looked_up], dim=-1).index_select(-1, self.output_index)


class Periodic(nn.Module):
    """``values[..., columns]`` to ``[..., columns * 2 * frequencies]``: for every column and
    learned frequency, its sine and its cosine (one ``Sin`` with a quarter-turn phase, so the
    exported graph stays a handful of nodes)."""

    def __init__(self, columns: int, frequencies: int, sigma: float) -> None:
        super().__init__()
        if frequencies < 1 or sigma <= 0:
            raise ValueError(f"need frequencies >= 1 and sigma > 0, got {frequencies}, {sigma}")
        # Each frequency appears twice: once at phase 0 (sine), once at pi/2 (cosine).
        initial = torch.randn(columns, frequencies) * sigma * 2 * math.pi
        self.frequencies = nn.Parameter(initial.repeat(1, 2))
        phase = torch.cat([torch.zeros(frequencies), torch.full((frequencies,), math.pi / 2)])
        self.register_buffer("phase", phase)
        self.output_dim = columns * 2 * frequencies

    def forward(self, values: Tensor) -> Tensor:
        angles = values.unsqueeze(-1) * self.frequencies
        if angles.requires_grad:
            return torch.sin(angles + self.phase).flatten(-2)
        # Nothing to differentiate (acting, the teacher, frequencies kept as learned): one
        # buffer updated in place instead of three, the same values in half the time.
        return angles.add_(self.phase).sin_().flatten(-2)


class FusedInputLayer(nn.Module):
    """``layer(features(frames))`` for frames ``[B, input_dim]`` with the weights copied in
    when it is built, in the form that runs fastest as an exported ONNX graph. Three products
    are summed, one per kind of input, so the embedded frame vector is never assembled:

    - the continuous columns, gathered once, times their slice of ``layer``'s weight;
    - every id column's embedding, looked up with one Gather (rows as wide as the widest
      embedding), times the weight slice of the embeddings, zero-padded to that width;
    - the periodic encodings, laid out frequency-major, ``[B, 2F, columns]``, times their
      weight columns permuted to match. onnxruntime broadcasts a Mul or an Add in spans of the
      innermost dimension, one call per span: spans of every column (127 in the v3 spec)
      rather than of 2F frequencies halve the time of those ops.

    Per frame this spares two concatenations and a gather of every input of ``layer`` one value
    at a time: the demo's INT8 student decides about 1.3x as many frames per second, with the
    same results up to float rounding, and the same number of weights.
    """

    table: Tensor | None
    frequencies: Tensor | None

    def __init__(self, features: FeatureInput, layer: nn.Linear) -> None:
        super().__init__()
        weight = layer.weight.detach()
        columns = features.continuous_dim
        bias = layer.bias.detach() if layer.bias is not None else weight.new_zeros(len(weight))
        self.register_buffer("continuous_index", features.output_index[:columns].clone())
        self.register_buffer("continuous_weight", weight[:, :columns].clone())
        self.register_buffer("bias", bias.clone())
        self.register_buffer("categorical_index", features.categorical_index.clone())
        self.register_buffer("categorical_max", features.categorical_max.clone())
        self.register_buffer("row_offsets", features.row_offsets.clone())
        table = embedded_weight = None
        if features.table is not None:
            table = features.table.weight.detach().clone()
            # output_index places embedding entry k of id column j at input_dim + j * width + k.
            padded = features.output_index[columns:] - features.input_dim
            embedded_weight = weight.new_zeros(
                len(weight), len(features.categorical) * len(table[0])
            )
            embedded_weight[:, padded] = weight[:, columns : columns + features.embedded_width]
        self.register_buffer("table", table)
        self.register_buffer("embedded_weight", embedded_weight)
        frequencies = phase = periodic_weight = None
        if features.periodic is not None:
            frequencies = features.periodic.frequencies.detach().T.clone()
            phase = features.periodic.phase[:, None].clone()
            # Column c's encoding k is the layer's input c * 2F + k, and k * columns + c here.
            periodic_weight = weight[:, len(features.output_index) :].unflatten(1, (columns, -1))
            periodic_weight = periodic_weight.transpose(1, 2).flatten(1).clone()
        self.register_buffer("frequencies", frequencies)
        self.register_buffer("phase", phase)
        self.register_buffer("periodic_weight", periodic_weight)

    def forward(self, frames: Tensor) -> Tensor:
        continuous = frames.index_select(-1, self.continuous_index)
        out = F.linear(continuous, self.continuous_weight, self.bias)
        if self.frequencies is not None:
            angles = continuous.unsqueeze(-2) * self.frequencies + self.phase
            out = out + F.linear(torch.sin(angles).flatten(-2), self.periodic_weight)
        if self.table is not None:
            rows = table_rows(
                frames, self.categorical_index, self.categorical_max, self.row_offsets
            )
            out = out + F.linear(self.table[rows].flatten(-2), self.embedded_weight)
        return out


def table_rows(
    frames: Tensor, categorical_index: Tensor, categorical_max: Tensor, row_offsets: Tensor
) -> Tensor:
    """The table row of every id column of ``frames[..., input_dim]``, ``[..., columns]``.

    A corrupt or unseen id must not index out of the table: NaN and anything below 0 map to 0
    (the comparison is false for NaN), anything above the vocabulary to its last id. Doing this
    in float keeps the ONNX graph free of integer Clip."""
    raw = frames.index_select(-1, categorical_index)
    ids = torch.where(raw > 0, torch.minimum(raw, categorical_max), 0.0)
    return (ids + row_offsets).long()
