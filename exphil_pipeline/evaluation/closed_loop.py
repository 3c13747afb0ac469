"""Closed-loop imitation accuracy: the policy fed its own previous choices, as in play.

Teacher-forced evaluation gives the policy the recorded previous input on every frame. In
play it sees the last action it chose itself (``runtime.agent``), so a policy that learned to
copy its previous input repeats its own mistakes. Here every held-out episode is played frame
by frame at temperature 0 with the previous-input columns overwritten by the policy's last
choice (the first frame keeps the recorded one, as nothing was chosen yet), the state carried
from the episode's start; the choices are compared with the recorded inputs. Episodes play
side by side, one per lane, so one policy call per frame serves many of them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch

from exphil_pipeline.training.episodes import Episodes
from exphil_pipeline.training.training_set import TrainingSet
from models import Policy
from runtime.controller_spec import CONTROLLER_SPEC
from runtime.dry_run import Agreement
from runtime.embedding_spec import PREVIOUS_INPUT_COLUMNS
from runtime.onnx_policy import OnnxPolicy

FrameStep = Callable[[np.ndarray], np.ndarray]
"""Frame vectors ``float32[lanes, D]``, one per lane, to the classes chosen ``int[lanes,
heads]``; each lane's state kept inside."""
NewFrameStep = Callable[[int], FrameStep]
"""A :data:`FrameStep` for that many lanes, every lane at its initial state."""

LANES = 32
"""Episodes played side by side."""


def play_episodes(step: FrameStep, episodes: Sequence[np.ndarray]) -> list[np.ndarray]:
    """The classes ``int64[N_i, heads]`` chosen over each ``episodes[i][N_i, D]``, lane ``i``
    playing episode ``i``, each frame's previous input being the choice made on the frame
    before. A lane whose episode has ended repeats its last frame until the longest ends;
    those choices are dropped."""
    lengths = np.array([len(features) for features in episodes])
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    frames = np.concatenate(episodes)
    chosen = np.empty((len(frames), CONTROLLER_SPEC.num_heads), dtype=np.int64)
    last = np.zeros((len(episodes), CONTROLLER_SPEC.num_heads), dtype=np.int64)
    for index in range(int(lengths.max(initial=0))):
        rows = starts + np.minimum(index, lengths - 1)
        features = frames[rows]
        if index:
            features[:, PREVIOUS_INPUT_COLUMNS] = last
        last = np.asarray(step(features), dtype=np.int64)
        playing = index < lengths
        chosen[rows[playing]] = last[playing]
    return np.split(chosen, starts[1:])


def torch_frame_step(policy: Policy, lanes: int) -> FrameStep:
    """Argmax stepping of a PyTorch policy from its initial state."""
    policy.eval()
    state = policy.initial_state(lanes)
    uniforms = torch.zeros(lanes, CONTROLLER_SPEC.num_heads)
    temperature = torch.tensor(0.0)

    @torch.no_grad()
    def step(rows: np.ndarray) -> np.ndarray:
        nonlocal state
        classes, _, state = policy.step(torch.from_numpy(rows), state, uniforms, temperature)
        return classes.numpy()

    return step


def onnx_frame_step(policy: OnnxPolicy, lanes: int) -> FrameStep:
    """Argmax stepping of an ONNX artifact from its initial state: the artifact steps one
    frame at a time, so each lane is a player of its own on the same session."""
    players = [policy, *(policy.another_player() for _ in range(lanes - 1))]
    policy.reset()
    uniforms = np.zeros(CONTROLLER_SPEC.num_heads, dtype=np.float32)
    return lambda rows: np.stack(
        [player.step(row, uniforms, 0.0) for player, row in zip(players, rows, strict=True)]
    )


def split_episodes(
    dataset: TrainingSet, split: str, max_frames: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(features[N, D], targets[N, heads])`` of the split's episodes in order, whole, until
    ``max_frames`` (0: all) is reached; the episode that crosses it is cut there."""
    episodes = Episodes.of(dataset, split)
    shards = list(dataset.shards(split))
    left = max_frames or episodes.frames
    for shard, start, length in zip(episodes.shard, episodes.start, episodes.length, strict=True):
        if left <= 0:
            return
        count = min(length, left)
        features, targets = shards[shard]
        yield (
            np.asarray(features[start : start + count], dtype=np.float32),
            np.asarray(targets[start : start + count]),
        )
        left -= count


def closed_loop_accuracy(
    new_step: NewFrameStep, episodes: Iterator[tuple[np.ndarray, np.ndarray]]
) -> Agreement:
    """Every episode played from the initial state, :data:`LANES` at a time: the share of
    frames whose whole action (``all_heads``) and each head matched the recorded input."""
    same = []
    while group := list(itertools.islice(episodes, LANES)):
        features, targets = zip(*group, strict=True)
        played = play_episodes(new_step(len(group)), features)
        same.extend(chosen == recorded for chosen, recorded in zip(played, targets, strict=True))
    return Agreement.of(np.concatenate(same)) if same else Agreement()
