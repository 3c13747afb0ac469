"""Closed-loop imitation accuracy: the policy fed its own previous choices, as in play.

Teacher-forced evaluation gives the policy the recorded previous input on every frame. In
play it sees the last action it chose itself (``runtime.agent``), so a policy that learned to
copy its previous input repeats its own mistakes. Here every held-out episode is played frame
by frame at temperature 0 with the previous-input columns overwritten by the policy's last
choice (the first frame keeps the recorded one, as nothing was chosen yet), the state carried
from the episode's start; the choices are compared with the recorded inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

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
"""One frame vector ``float32[D]`` to the classes chosen ``int[heads]``; state kept inside."""


def play_episode(step: FrameStep, features: np.ndarray) -> np.ndarray:
    """The classes ``int64[N, heads]`` chosen over ``features[N, D]``, each frame's previous
    input being the choice made on the frame before."""
    chosen = np.empty((len(features), CONTROLLER_SPEC.num_heads), dtype=np.int64)
    for index, recorded in enumerate(features):
        row = recorded.copy()
        if index:
            row[PREVIOUS_INPUT_COLUMNS] = chosen[index - 1]
        chosen[index] = step(row)
    return chosen


def torch_frame_step(policy: Policy) -> FrameStep:
    """Argmax stepping of a PyTorch policy from its initial state."""
    policy.eval()
    state = policy.initial_state(1)
    uniforms = torch.zeros(1, CONTROLLER_SPEC.num_heads)
    temperature = torch.tensor(0.0)

    @torch.no_grad()
    def step(row: np.ndarray) -> np.ndarray:
        nonlocal state
        classes, _, state = policy.step(torch.from_numpy(row)[None], state, uniforms, temperature)
        return classes[0].numpy()

    return step


def onnx_frame_step(policy: OnnxPolicy) -> FrameStep:
    """Argmax stepping of an ONNX artifact from its initial state."""
    policy.reset()
    uniforms = np.zeros(CONTROLLER_SPEC.num_heads, dtype=np.float32)
    return lambda row: policy.step(row, uniforms, 0.0)


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
    new_step: Callable[[], FrameStep], episodes: Iterator[tuple[np.ndarray, np.ndarray]]
) -> Agreement:
    """Every episode played by a fresh ``new_step()``: the share of frames whose whole action
    (``all_heads``) and each head matched the recorded input."""
    same = [play_episode(new_step(), features) == targets for features, targets in episodes]
    return Agreement.of(np.concatenate(same)) if same else Agreement()
