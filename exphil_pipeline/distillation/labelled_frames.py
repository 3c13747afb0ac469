"""Frames with both kinds of label: the human's action and the teacher's distributions.

The student trains on random rows of these; the export gates and the evaluation table read
the held-out ones (the training ones when nothing is held out).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from exphil_pipeline.distillation.soft_labels import SoftLabels
from exphil_pipeline.storage.layout import ExperimentPaths
from exphil_pipeline.training.episodes import Episodes
from exphil_pipeline.training.training_set import TrainingSet


@dataclass
class FrameSplit:
    """One split's frames gathered across shards: features, human targets, teacher probs."""

    features: list[np.ndarray]
    targets: list[np.ndarray]
    soft: list[np.ndarray]

    @property
    def offsets(self) -> np.ndarray:
        return np.cumsum([0, *(len(t) for t in self.targets)])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def rows(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows at global indices ``index`` (sorted first for page-cache locality)."""
        index = np.sort(index)
        offsets = self.offsets
        shard = np.searchsorted(offsets, index, side="right") - 1
        parts = [[], [], []]
        for s in np.unique(shard):
            local = index[shard == s] - offsets[s]
            parts[0].append(self.features[s][local])
            parts[1].append(self.targets[s][local])
            parts[2].append(self.soft[s][local])
        return tuple(np.concatenate(p) for p in parts)


def frame_split(dataset: TrainingSet, labels: SoftLabels, split: str) -> FrameSplit:
    features, targets = (
        zip(*dataset.shards(split), strict=True) if dataset.frames(split) else ((), ())
    )
    return FrameSplit(list(features), list(targets), labels.shards(split))


@dataclass(frozen=True)
class EvaluationFrames:
    """The first frames of the evaluation split with both kinds of label."""

    features: np.ndarray
    targets: np.ndarray
    soft: np.ndarray
    split: str
    matchups: list[tuple[str, str]]
    """Per frame: the target's character and the opponent's (from the split's episodes)."""


def evaluation_frames(experiment: ExperimentPaths, max_frames: int) -> EvaluationFrames:
    """Up to ``max_frames`` (0: all) frames of the experiment's evaluation split."""
    dataset = TrainingSet.of(experiment)
    split = dataset.evaluation_split
    frames = frame_split(dataset, SoftLabels.of(experiment), split)
    count = min(len(frames), max_frames) if max_frames else len(frames)
    features, targets, soft = frames.rows(np.arange(count))
    return EvaluationFrames(
        features, targets, soft, split, frame_matchups(dataset, split, frames.offsets, count)
    )


def frame_matchups(
    dataset: TrainingSet, split: str, offsets: np.ndarray, count: int
) -> list[tuple[str, str]]:
    """(character, opponent character) of the first ``count`` rows of ``split`` in shard
    order, the shards starting at global rows ``offsets``."""
    episodes = Episodes.of(dataset, split)
    episode_of_row = np.full(count, -1, dtype=np.int64)
    firsts = offsets[episodes.shard] + episodes.start
    for episode in np.flatnonzero(firsts < count):
        first = firsts[episode]
        episode_of_row[first : first + episodes.length[episode]] = episode
    if (episode_of_row < 0).any():
        row = int(np.flatnonzero(episode_of_row < 0)[0])
        raise ValueError(
            f"{dataset.path}: row {row} of split {split!r} belongs to no episode of its "
            "episodes.parquet; rebuild the training set"
        )
    pairs = list(zip(episodes.character, episodes.opponent_character, strict=True))
    return [pairs[episode] for episode in episode_of_row]
