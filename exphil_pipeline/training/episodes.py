"""Truncated-BPTT batches streamed from a training set's memory-mapped shards.

A batch has B *lanes*. Each lane walks through whole episodes (one player in one game) in
chunks of T frames, so a recurrent or attention backbone can carry its state from one chunk to
the next and resets it only where a lane starts a new episode. A chunk never crosses an
episode: a lane whose episode ends mid-chunk leaves the rest of the chunk masked.

The order is a pure function of (seed, epoch) and the episode lengths, so a run resumed from a
checkpoint at (epoch, step) sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from exphil_pipeline.training.training_set import TrainingSet


@dataclass(frozen=True)
class Episodes:
    """Where each episode of one split lies: shard, first row, length, whose it is."""

    shard: np.ndarray
    start: np.ndarray
    length: np.ndarray
    character: list[str]
    opponent_character: list[str]

    @classmethod
    def of(cls, dataset: TrainingSet, split: str) -> Episodes:
        table = dataset.episodes(split)
        return cls(
            shard=table.column("shard").to_numpy(),
            start=table.column("start").to_numpy(),
            length=table.column("length").to_numpy(),
            character=table.column("character").to_pylist(),
            opponent_character=table.column("opponent_character").to_pylist(),
        )

    def __len__(self) -> int:
        return len(self.length)

    @property
    def frames(self) -> int:
        return int(self.length.sum())


@dataclass(frozen=True)
class LaneChunk:
    """What every lane reads in one step: episode index (-1 idle), offset, frames, reset."""

    episode: np.ndarray
    offset: np.ndarray
    length: np.ndarray
    reset: np.ndarray


def epoch_chunks(
    lengths: np.ndarray, lanes: int, chunk: int, order: np.ndarray
) -> Iterator[LaneChunk]:
    """The steps of one pass over the episodes in ``order`` (each lane takes the next one)."""
    queue = list(order[::-1])
    current = np.full(lanes, -1, dtype=np.int64)
    offset = np.zeros(lanes, dtype=np.int64)
    for lane in range(lanes):
        if queue:
            current[lane] = queue.pop()
    while (current >= 0).any():
        length = np.where(
            current >= 0, np.minimum(chunk, lengths[np.maximum(current, 0)] - offset), 0
        )
        yield LaneChunk(current.copy(), offset.copy(), length, (offset == 0) & (current >= 0))
        offset += length
        for lane in np.flatnonzero((current >= 0) & (offset >= lengths[np.maximum(current, 0)])):
            current[lane] = queue.pop() if queue else -1
            offset[lane] = 0


def shuffled_order(count: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(count)


class ChunkReader:
    """Copies the frames of a step's lane chunks out of the shard memory maps."""

    def __init__(self, dataset: TrainingSet, split: str) -> None:
        self.episodes = Episodes.of(dataset, split)
        self._shards = list(dataset.shards(split))
        self.dim = dataset.manifest.embedding_spec.dim
        self.heads = len(dataset.manifest.controller_spec["heads"])

    def read(self, step: LaneChunk, chunk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``features[B, T, D]``, ``targets[B, T, heads]``, ``mask[B, T]`` (zeros where idle)."""
        lanes = len(step.episode)
        features = np.zeros((lanes, chunk, self.dim), dtype=np.float32)
        targets = np.zeros((lanes, chunk, self.heads), dtype=np.uint8)
        mask = np.zeros((lanes, chunk), dtype=np.bool_)
        for lane in np.flatnonzero(step.episode >= 0):
            episode = step.episode[lane]
            shard_features, shard_targets = self._shards[self.episodes.shard[episode]]
            first = self.episodes.start[episode] + step.offset[lane]
            count = step.length[lane]
            features[lane, :count] = shard_features[first : first + count]
            targets[lane, :count] = shard_targets[first : first + count]
            mask[lane, :count] = True
        return features, targets, mask
