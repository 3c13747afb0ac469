"""The first layer of every policy: the raw float frame vector to one dense vector.

Categorical columns (action state, character, stage, ...) arrive as exact integer floats in the
same float32 vector as the continuous columns. Expanding them here, inside the network, keeps
the exported ONNX graph's input a single raw float vector, so the runtime never needs to know
which column is an id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn


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
    followed by one embedding per categorical column (in the order given)."""

    continuous_index: Tensor
    categorical_index: Tensor
    categorical_max: Tensor

    def __init__(self, input_dim: int, categorical: Sequence[CategoricalColumn]) -> None:
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
        # Fixed index buffers make the split a Gather in ONNX instead of Python slicing.
        self.register_buffer("continuous_index", torch.tensor(continuous, dtype=torch.long))
        self.register_buffer("categorical_index", torch.tensor(indices, dtype=torch.long))
        self.register_buffer(
            "categorical_max",
            torch.tensor([column.vocab_size - 1 for column in categorical], dtype=torch.float32),
        )
        self.embeddings = nn.ModuleList(
            nn.Embedding(column.vocab_size, column.embedding_dim) for column in categorical
        )
        self.output_dim = len(continuous) + sum(column.embedding_dim for column in categorical)

    def forward(self, frames: Tensor) -> Tensor:
        parts = [frames.index_select(-1, self.continuous_index)]
        if self.embeddings:
            raw = torch.nan_to_num(frames.index_select(-1, self.categorical_index), nan=0.0)
            # Clamp while still float: a corrupt or unseen id must not index out of the table,
            # and clamping before the cast keeps the ONNX graph free of integer Clip.
            ids = torch.round(torch.minimum(raw.clamp(min=0.0), self.categorical_max)).long()
            parts.extend(
                embedding(ids[..., column]) for column, embedding in enumerate(self.embeddings)
            )
        return torch.cat(parts, dim=-1)
