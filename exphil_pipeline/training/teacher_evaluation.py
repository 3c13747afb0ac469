"""Teacher-forced inference over whole episodes, and the held-out metrics of each epoch.

Episodes are run whole, in order, with the backbone state carried from chunk to chunk exactly
as in play; the soft-label stage reuses :func:`run_episodes` for the same reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from exphil_pipeline.evaluation.action_metrics import (
    REPORTED,
    ActionCounts,
    Matchup,
    by_character,
    by_opponent,
    headline,
    recorded_previous,
    sum_counts,
)
from exphil_pipeline.training.episodes import ChunkReader, LaneChunk, epoch_chunks
from models import Policy
from runtime.controller_spec import CONTROLLER_SPEC

EVAL_CHUNK = 512


def batch_dims(policy: Policy) -> list[int]:
    """Which dimension of each state tensor is the batch (compare shapes at B = 1 and 2)."""
    one, two = policy.state_specs(1), policy.state_specs(2)
    return [
        next(i for i, (a, b) in enumerate(zip(s1.shape, s2.shape, strict=True)) if a != b)
        for s1, s2 in zip(one, two, strict=True)
    ]


def reset_lanes(state: tuple, reset: torch.Tensor, dims: list[int]) -> tuple:
    """Zero the state of lanes that start a new episode (zero = the initial state)."""
    out = []
    for tensor, dim in zip(state, dims, strict=True):
        shape = [1] * tensor.dim()
        shape[dim] = -1
        out.append(tensor * (~reset).to(tensor.dtype).view(shape))
    return tuple(out)


def zero_games(state: tuple, dims: list[int], games: np.ndarray) -> None:
    """Zero, in place, the state of the games at indices ``games`` (they start over)."""
    index = torch.from_numpy(np.asarray(games, dtype=np.int64))
    for tensor, dim in zip(state, dims, strict=True):
        tensor.index_fill_(dim, index, 0.0)


@dataclass
class LaneTensors:
    """One step's tensors for the lanes that read frames in it, on the caller's device.

    A lane whose episodes are done while others still run (the end of an epoch, or fewer
    episodes than lanes) would cost a full lane of compute on zeros; it is left out.
    ``lanes`` are the positions of the rows among the caller's lanes, ``chunk`` their part of
    the step.
    """

    chunk: LaneChunk
    lanes: torch.Tensor
    features: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor
    reset: torch.Tensor

    def state_of(self, state: tuple, dims: list[int]) -> tuple:
        """The rows of a full-width ``state`` that belong to these lanes."""
        return tuple(t.index_select(d, self.lanes) for t, d in zip(state, dims, strict=True))

    def merge_state(self, state: tuple, part: tuple, dims: list[int]) -> tuple:
        """``state`` with these lanes' rows replaced by ``part``."""
        return tuple(
            t.index_copy(d, self.lanes, p) for t, p, d in zip(state, part, dims, strict=True)
        )


def lane_tensors(
    step: LaneChunk, reader: ChunkReader, lanes: slice, chunk: int, device: str
) -> LaneTensors:
    """The tensors of ``lanes`` that read frames in ``step`` (at least one lane, so that
    every rank of a distributed run has a batch to run)."""
    busy = np.flatnonzero(step.episode[lanes] >= 0)
    if len(busy) == 0:
        busy = np.zeros(1, dtype=np.int64)
    mine = LaneChunk(
        *(field[lanes][busy] for field in (step.episode, step.offset, step.length, step.reset))
    )
    features, targets, mask = reader.read(mine, chunk)
    return LaneTensors(
        mine,
        torch.from_numpy(busy).to(device),
        torch.from_numpy(features).to(device),
        torch.from_numpy(targets).to(device),
        torch.from_numpy(mask).to(device),
        torch.from_numpy(mine.reset).to(device),
    )


def autocast(device: str, bf16: bool) -> AbstractContextManager:
    """bf16 autocast on CUDA when asked; plain float32 otherwise."""
    if device == "cuda" and bf16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


@dataclass
class EpisodeOutput:
    """Teacher-forced logits of one chunk of whole-episode inference (see run_episodes)."""

    step: LaneChunk
    logits: list[torch.Tensor]
    targets: torch.Tensor
    mask: torch.Tensor
    features: torch.Tensor


@torch.no_grad()
def run_episodes(
    policy: Policy,
    reader: ChunkReader,
    lanes: int,
    device: str,
    lengths: np.ndarray | None = None,
    autocast_to: Callable[[], AbstractContextManager] = nullcontext,
) -> Iterator[EpisodeOutput]:
    """Run every episode of ``reader``'s split whole, in order, carrying the state, as in play.

    ``lengths`` (default: the episodes' own) can shorten or skip (0) episodes.
    """
    lengths = reader.episodes.length if lengths is None else lengths
    order = np.flatnonzero(lengths > 0)
    lanes = max(1, min(lanes, len(order)))
    state, dims = policy.initial_state(lanes, device), batch_dims(policy)
    was_training = policy.training
    policy.eval()
    # No gradients here, so chunks can be long: the state is carried either way.
    for step in epoch_chunks(lengths, lanes, EVAL_CHUNK, order):
        batch = lane_tensors(step, reader, slice(0, lanes), EVAL_CHUNK, device)
        part = reset_lanes(batch.state_of(state, dims), batch.reset, dims)
        with autocast_to():
            logits, part = policy(batch.features, batch.targets, part)
        state = batch.merge_state(state, part, dims)
        yield EpisodeOutput(
            batch.chunk,
            [head.float() for head in logits],
            batch.targets,
            batch.mask,
            batch.features,
        )
    policy.train(was_training)


def evaluate(
    policy: Policy,
    reader: ChunkReader,
    lanes: int,
    device: str,
    max_frames: int,
    bf16: bool = True,
) -> dict[str, Any]:
    """Held-out figures on ``reader``'s split (its episodes that start within the first
    ``max_frames`` frames, whole; 0: all): NLL and top-1 accuracy per head, and the metrics of
    :mod:`exphil_pipeline.evaluation.action_metrics` of the teacher-forced top-1 classes;
    overall and ``per_character``; the headline figures (``action_metrics.HEADLINE``)
    ``per_matchup[character][opponent]``."""
    episodes = reader.episodes
    lengths = episodes.length.copy()
    if max_frames:
        keep = np.cumsum(lengths) - lengths < max_frames
        lengths = np.where(keep, lengths, 0)
    counts: dict[Matchup, ActionCounts] = {}
    outputs = run_episodes(policy, reader, lanes, device, lengths, lambda: autocast(device, bf16))
    for out in outputs:
        targets = out.targets.long()
        nll = torch.stack(
            [
                F.cross_entropy(head.transpose(1, 2), targets[..., i], reduction="none")
                for i, head in enumerate(out.logits)
            ],
            dim=-1,
        )
        chosen = torch.stack([head.argmax(-1) for head in out.logits], dim=-1)
        chosen, human, nll, mask = (t.cpu().numpy() for t in (chosen, targets, nll, out.mask))
        previous = recorded_previous(out.features.cpu().numpy())
        lanes_of: dict[Matchup, list[int]] = {}
        for lane in np.flatnonzero(out.step.episode >= 0):
            episode = out.step.episode[lane]
            key = (episodes.character[episode], episodes.opponent_character[episode])
            lanes_of.setdefault(key, []).append(int(lane))
        for key, mine in lanes_of.items():
            rows = mask[mine]
            part = ActionCounts.of(
                chosen[mine][rows], human[mine][rows], previous[mine][rows], nll[mine][rows]
            )
            counts[key] = counts[key] + part if key in counts else part
    return {
        **_describe(sum_counts(list(counts.values()))),
        "per_character": {name: _describe(part) for name, part in by_character(counts).items()},
        # Headline figures only: a corpus of every character has hundreds of matchups.
        "per_matchup": {
            name: {opponent: headline(part.figures()) for opponent, part in opponents.items()}
            for name, opponents in by_opponent(counts).items()
        },
    }


def _describe(counts: ActionCounts) -> dict[str, Any]:
    frames = max(counts.frames, 1)
    nll = counts.nll / frames
    figures = counts.figures()
    return {
        "frames": counts.frames,
        "loss": float(nll.sum()),
        "nll": dict(zip(CONTROLLER_SPEC.heads, nll.round(5).tolist(), strict=True)),
        "accuracy": dict(
            zip(CONTROLLER_SPEC.heads, (counts.correct / frames).round(5).tolist(), strict=True)
        ),
        # Every head right at once: the whole controller state the player held.
        "action_accuracy": float(counts.actions / frames),
        **{key: figures[key] for key in REPORTED},
    }
