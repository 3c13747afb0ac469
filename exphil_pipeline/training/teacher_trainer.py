"""Behavioral cloning of a teacher policy from a training set, resumable and DDP-ready.

The same :func:`train` runs in the Dagster asset (one process) and under ``torchrun``
(``python -m exphil_pipeline.training.teacher_trainer --config run.json``), where every rank streams
its share of the batch lanes and DistributedDataParallel keeps the weights in sync.

Output folder (``$EXPHIL_HOME/teachers/<name>/``): ``last.pt`` (everything needed to resume),
``best.pt`` (the policy with the lowest held-out loss), ``history.json`` and TensorBoard event
files under ``tensorboard/``. Checkpoints are written atomically.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

from exphil_pipeline.storage.atomic import atomic_path, write_text_atomic
from exphil_pipeline.training.episodes import ChunkReader, LaneChunk, epoch_chunks, shuffled_order
from exphil_pipeline.training.previous_input_noise import shuffle_previous_input
from exphil_pipeline.training.training_set import TrainingSet
from models import Policy, PolicyConfig, categorical_columns
from runtime.controller_spec import CONTROLLER_SPEC

SCHEDULES = ("cosine", "constant")
EVAL_CHUNK = 512


@dataclass(frozen=True)
class TeacherConfig:
    """How a teacher is built and trained.

    name: folder under ``teachers/``.
    training_set: name of the training set under ``training_sets/``.
    backbone: mlp, gru, lstm, attention, mamba or hybrid.
    hidden_dim, num_layers, window, dropout: backbone sizes (window: attention context).
    periodic_frequencies, periodic_sigma: periodic encodings of the continuous features
        (:mod:`models.feature_input`; 0 frequencies: none).
    batch_size: lanes per optimizer step (across all ranks under DDP).
    bptt: frames per chunk; state is carried across chunks and gradients stop at their edges.
    epochs: passes over the training episodes; max_steps stops earlier when set (> 0).
    learning_rate, weight_decay, grad_clip: AdamW and gradient-norm clipping.
    schedule: ``cosine`` (linear warm-up then cosine decay) or ``constant``.
    warmup_steps: linear warm-up length.
    seed: weights, data order and dropout all follow from it.
    device: ``cpu`` or ``cuda``; bf16 autocasts the forward pass on CUDA.
    previous_input_noise: share of training frames whose previous-input feature is taken from
        another frame (:mod:`exphil_pipeline.training.previous_input_noise`); evaluation never
        shuffles.
    eval_max_frames: cap on held-out frames evaluated per epoch (0: all).
    checkpoint_every: steps between ``last.pt`` writes (also written at each epoch end).
    resume: continue from ``last.pt`` when it exists and was written by the same config.
    """

    name: str = "default"
    training_set: str = "default"
    backbone: str = "gru"
    hidden_dim: int = 128
    num_layers: int = 1
    window: int = 32
    dropout: float = 0.0
    periodic_frequencies: int = 0
    periodic_sigma: float = 3.0
    batch_size: int = 32
    bptt: int = 64
    epochs: int = 2
    max_steps: int = 0
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    schedule: str = "cosine"
    warmup_steps: int = 20
    seed: int = 0
    device: str = "cpu"
    bf16: bool = True
    previous_input_noise: float = 0.0
    eval_max_frames: int = 200_000
    checkpoint_every: int = 200
    resume: bool = True

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {self.device!r}")
        for name in ("batch_size", "bptt", "epochs", "hidden_dim", "num_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")

    def policy_config(self, manifest: dict[str, Any]) -> PolicyConfig:
        spec = manifest["embedding_spec"]
        return PolicyConfig(
            input_dim=spec["dim"],
            embedding_spec_hash=spec["hash"],
            categorical=categorical_columns(
                [tuple(c) for c in spec["categorical"]], max_embedding_dim=16
            ),
            backbone=self.backbone,
            hidden_dim=self.hidden_dim,
            num_layers=self.num_layers,
            window=self.window,
            dropout=self.dropout,
            periodic_frequencies=self.periodic_frequencies,
            periodic_sigma=self.periodic_sigma,
            controller_spec_hash=manifest["controller_spec"]["hash"],
        )


@dataclass
class Distributed:
    """This process's place in a torchrun job (rank 0 of 1 without torchrun)."""

    rank: int = 0
    world: int = 1

    @classmethod
    def from_env(cls, device: str) -> Distributed:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls()
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device == "cuda" else "gloo")
        return cls(dist.get_rank(), world)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def lanes(self, batch_size: int) -> slice:
        if batch_size % self.world:
            raise ValueError(f"batch_size {batch_size} must divide by the {self.world} ranks")
        share = batch_size // self.world
        return slice(self.rank * share, (self.rank + 1) * share)


@dataclass
class TrainResult:
    folder: Path
    policy: Policy
    history: list[dict[str, Any]]
    curve: list[tuple[int, float]]
    best: dict[str, Any]
    parameters: int
    frames_per_s: float
    device: str
    steps: int
    halted: bool = False


@dataclass
class _Progress:
    epoch: int = 0
    epoch_step: int = 0
    step: int = 0
    best_loss: float = math.inf
    history: list[dict[str, Any]] = field(default_factory=list)
    epoch_losses: list[float] = field(default_factory=list)
    curve: list[tuple[int, float]] = field(default_factory=list)  # (step, training loss)


def _batch_dims(policy: Policy) -> list[int]:
    """Which dimension of each state tensor is the batch (compare shapes at B = 1 and 2)."""
    one, two = policy.state_specs(1), policy.state_specs(2)
    return [
        next(i for i, (a, b) in enumerate(zip(s1.shape, s2.shape, strict=True)) if a != b)
        for s1, s2 in zip(one, two, strict=True)
    ]


def _reset_lanes(state: tuple, reset: torch.Tensor, dims: list[int]) -> tuple:
    """Zero the state of lanes that start a new episode (zero = the initial state)."""
    out = []
    for tensor, dim in zip(state, dims, strict=True):
        shape = [1] * tensor.dim()
        shape[dim] = -1
        out.append(tensor * (~reset).to(tensor.dtype).view(shape))
    return tuple(out)


def _schedule(config: TeacherConfig, total_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if config.schedule == "constant":
            return 1.0
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(1, total_steps - config.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _steps_per_epoch(lengths: np.ndarray, lanes: int, chunk: int) -> int:
    order = np.arange(len(lengths))
    return sum(1 for _ in epoch_chunks(lengths, lanes, chunk, order))


def _to_device(step: LaneChunk, reader: ChunkReader, lanes: slice, chunk: int, device: str):
    features, targets, mask = reader.read(_lane_slice(step, lanes), chunk)
    return (
        torch.from_numpy(features).to(device),
        torch.from_numpy(targets).to(device),
        torch.from_numpy(mask).to(device),
        torch.from_numpy(step.reset[lanes]).to(device),
    )


def _lane_slice(step: LaneChunk, lanes: slice) -> LaneChunk:
    return LaneChunk(step.episode[lanes], step.offset[lanes], step.length[lanes], step.reset[lanes])


def _autocast(config: TeacherConfig):
    if config.device == "cuda" and config.bf16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


@dataclass
class EpisodeOutput:
    """Teacher-forced logits of one chunk of whole-episode inference (see run_episodes)."""

    step: LaneChunk
    logits: list[torch.Tensor]
    targets: torch.Tensor
    mask: torch.Tensor


@torch.no_grad()
def run_episodes(
    policy: Policy,
    reader: ChunkReader,
    lanes: int,
    device: str,
    lengths: np.ndarray | None = None,
    autocast: Callable[[], Any] = nullcontext,
) -> Iterator[EpisodeOutput]:
    """Run every episode of ``reader``'s split whole, in order, carrying the state, as in play.

    ``lengths`` (default: the episodes' own) can shorten or skip (0) episodes.
    """
    lengths = reader.episodes.length if lengths is None else lengths
    order = np.flatnonzero(lengths > 0)
    lanes = max(1, min(lanes, len(order)))
    state, dims = policy.initial_state(lanes, device), _batch_dims(policy)
    was_training = policy.training
    policy.eval()
    # No gradients here, so chunks can be long: the state is carried either way.
    for step in epoch_chunks(lengths, lanes, EVAL_CHUNK, order):
        features, targets, mask, reset = _to_device(
            step, reader, slice(0, lanes), EVAL_CHUNK, device
        )
        state = _reset_lanes(state, reset, dims)
        with autocast():
            logits, state = policy(features, targets, state)
        yield EpisodeOutput(step, [head.float() for head in logits], targets, mask)
    policy.train(was_training)


def evaluate(policy: Policy, reader: ChunkReader, config: TeacherConfig) -> dict[str, Any]:
    """NLL and top-1 accuracy per head, overall and per character, on ``reader``'s split."""
    episodes = reader.episodes
    lengths = episodes.length.copy()
    if config.eval_max_frames:
        keep = np.cumsum(lengths) - lengths < config.eval_max_frames
        lengths = np.where(keep, lengths, 0)
    heads = CONTROLLER_SPEC.num_heads
    totals: dict[str, np.ndarray] = {}
    outputs = run_episodes(
        policy, reader, config.batch_size, config.device, lengths, lambda: _autocast(config)
    )
    for out in outputs:
        targets = out.targets.long()
        nll = torch.stack(
            [
                F.cross_entropy(head.transpose(1, 2), targets[..., i], reduction="none")
                for i, head in enumerate(out.logits)
            ],
            dim=-1,
        )
        correct = torch.stack(
            [head.argmax(-1) == targets[..., i] for i, head in enumerate(out.logits)], dim=-1
        )
        weights = out.mask.unsqueeze(-1).float()
        action = correct.all(-1, keepdim=True) & out.mask.unsqueeze(-1)
        sums = [(nll * weights).sum(1), (correct * weights).sum(1), action.sum(1)]
        per_lane = torch.cat([*sums, out.mask.sum(1, keepdim=True)], dim=1).cpu().numpy()
        for lane in np.flatnonzero(out.step.episode >= 0):
            character = episodes.character[out.step.episode[lane]]
            totals.setdefault(character, np.zeros(2 * heads + 2))
            totals[character] += per_lane[lane]
    return _summarize(totals, heads)


def _summarize(totals: dict[str, np.ndarray], heads: int) -> dict[str, Any]:
    def describe(row: np.ndarray) -> dict[str, Any]:
        frames = max(row[-1], 1)
        nll = row[:heads] / frames
        return {
            "frames": int(row[-1]),
            "loss": float(nll.sum()),
            "nll": dict(zip(CONTROLLER_SPEC.heads, nll.round(5).tolist(), strict=True)),
            "accuracy": dict(
                zip(CONTROLLER_SPEC.heads, (row[heads:-2] / frames).round(5).tolist(), strict=True)
            ),
            # Every head right at once: the whole controller state the player held.
            "action_accuracy": float(row[-2] / frames),
        }

    overall = sum(totals.values()) if totals else np.zeros(2 * heads + 2)
    return {
        **describe(overall),
        "per_character": {name: describe(row) for name, row in sorted(totals.items())},
    }


def _save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def train(
    config: TeacherConfig,
    home: Path,
    log: Callable[[str], None] = print,
    halt_after_steps: int | None = None,
) -> TrainResult:
    """Train (or resume) the teacher described by ``config``; see the module docstring.

    ``halt_after_steps`` stops abruptly after that many steps of this call without writing a
    checkpoint, the way a killed process would (tests use it to prove resumption).
    """
    ranks = Distributed.from_env(config.device)
    dataset = TrainingSet.open(home / "training_sets" / config.training_set)
    folder = home / "teachers" / config.name
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    policy = Policy.from_config(config.policy_config(dataset.manifest)).to(config.device)
    model: nn.Module = policy
    if ranks.world > 1:
        model = nn.parallel.DistributedDataParallel(policy)
    optimizer = torch.optim.AdamW(
        policy.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    reader = ChunkReader(dataset, "train")
    heldout_reader = ChunkReader(dataset, "heldout")
    lengths = reader.episodes.length
    if len(lengths) == 0:
        raise ValueError(f"training set {config.training_set!r} has no training episodes")
    per_epoch = _steps_per_epoch(lengths, config.batch_size, config.bptt)
    total = per_epoch * config.epochs
    if config.max_steps:
        total = min(total, config.max_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config, total))
    lanes = ranks.lanes(config.batch_size)
    dims = _batch_dims(policy)
    state = policy.initial_state(lanes.stop - lanes.start, config.device)
    progress = _Progress()

    last = folder / "last.pt"
    if config.resume and last.exists():
        checkpoint = torch.load(last, weights_only=False, map_location=config.device)
        if checkpoint["config"] == asdict(config):
            policy.load_state_dict(checkpoint["policy"]["state_dict"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            scheduler.load_state_dict(checkpoint["scheduler"])
            progress = _Progress(**checkpoint["progress"])
            state = tuple(t.to(config.device) for t in checkpoint["lane_state"][ranks.rank])
            torch.set_rng_state(checkpoint["torch_rng"])
            log(f"resumed from step {progress.step} (epoch {progress.epoch})")
        else:
            log("last.pt was written by a different config: starting over")

    writer = _tensorboard(folder) if ranks.is_main else None

    def checkpoint_now() -> None:
        lane_states = [tuple(t.detach().cpu() for t in state)]
        if ranks.world > 1:
            lane_states = [None] * ranks.world
            dist.all_gather_object(lane_states, tuple(t.detach().cpu() for t in state))
        if ranks.is_main:
            _save_checkpoint(
                last,
                {
                    "policy": policy.checkpoint(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "progress": asdict(progress),
                    "lane_state": lane_states,
                    "torch_rng": torch.get_rng_state(),
                    "config": asdict(config),
                    "embedding_spec_hash": dataset.manifest["embedding_spec"]["hash"],
                },
            )

    trained_frames, trained_seconds, steps_this_call = 0, 0.0, 0
    halted = False
    while progress.epoch < config.epochs and progress.step < total:
        order = shuffled_order(len(lengths), config.seed, progress.epoch)
        chunks = epoch_chunks(lengths, config.batch_size, config.bptt, order)
        for index, step in enumerate(chunks):
            if index < progress.epoch_step:
                continue  # already trained before the checkpoint this run resumed from
            if progress.step >= total:
                break
            began = time.perf_counter()
            features, targets, mask, reset = _to_device(
                step, reader, lanes, config.bptt, config.device
            )
            state = _reset_lanes(state, reset, dims)
            features = shuffle_previous_input(features, config.previous_input_noise, mask)
            with _autocast(config):
                logits, state = model(features, targets, state)
                loss = _masked_loss(logits, targets, mask)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            state = tuple(t.detach() for t in state)
            trained_seconds += time.perf_counter() - began
            trained_frames += int(mask.sum()) * ranks.world
            progress.epoch_losses.append(loss.item())
            progress.step += 1
            progress.curve.append((progress.step, progress.epoch_losses[-1]))
            progress.epoch_step = index + 1
            steps_this_call += 1
            if writer:
                writer.add_scalar("train/loss", progress.epoch_losses[-1], progress.step)
                writer.add_scalar("train/lr", scheduler.get_last_lr()[0], progress.step)
            if halt_after_steps is not None and steps_this_call >= halt_after_steps:
                halted = True
                break
            if progress.step % config.checkpoint_every == 0:
                checkpoint_now()
        if halted:
            break
        heldout = evaluate(policy, heldout_reader, config)
        record = {
            "epoch": progress.epoch,
            "step": progress.step,
            "train_loss": float(np.mean(progress.epoch_losses)) if progress.epoch_losses else None,
            "heldout": heldout,
        }
        progress.history.append(record)
        log(
            f"epoch {progress.epoch}: train loss {record['train_loss']}, "
            f"held-out loss {heldout['loss']:.4f} on {heldout['frames']} frames"
        )
        if writer:
            writer.add_scalar("heldout/loss", heldout["loss"], progress.step)
        if ranks.is_main and heldout["frames"] and heldout["loss"] < progress.best_loss:
            progress.best_loss = heldout["loss"]
            _save_checkpoint(
                folder / "best.pt",
                {"policy": policy.checkpoint(), "epoch": progress.epoch, "config": asdict(config)},
            )
        progress.epoch += 1
        progress.epoch_step = 0
        progress.epoch_losses = []
        state = policy.initial_state(lanes.stop - lanes.start, config.device)
        checkpoint_now()
    if writer:
        writer.close()
    if ranks.is_main and not halted:
        if not (folder / "best.pt").exists():
            # No held-out frames: the final weights are the best we have.
            _save_checkpoint(
                folder / "best.pt",
                {"policy": policy.checkpoint(), "epoch": -1, "config": asdict(config)},
            )
        write_text_atomic(
            folder / "history.json",
            json.dumps({"epochs": progress.history, "curve": progress.curve}),
        )
    best = min(
        (h["heldout"] for h in progress.history if h["heldout"]["frames"]),
        key=lambda h: h["loss"],
        default={},
    )
    return TrainResult(
        folder=folder,
        policy=policy,
        history=progress.history,
        curve=progress.curve,
        best=best,
        parameters=sum(p.numel() for p in policy.parameters()),
        frames_per_s=trained_frames / max(trained_seconds, 1e-9),
        device=config.device,
        steps=progress.step,
        halted=halted,
    )


def _masked_loss(logits: list[torch.Tensor], targets: torch.Tensor, mask: torch.Tensor):
    """Sum over heads of the mean NLL on valid frames (idle lanes and chunk tails excluded)."""
    weights = mask.reshape(-1).float()
    count = weights.sum().clamp(min=1.0)
    total = torch.zeros((), device=targets.device)
    for head, head_logits in enumerate(logits):
        losses = F.cross_entropy(
            head_logits.reshape(-1, head_logits.shape[-1]).float(),
            targets[..., head].reshape(-1).long(),
            reduction="none",
        )
        total = total + (losses * weights).sum() / count
    return total


def _tensorboard(folder: Path):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(folder / "tensorboard"))


def load_teacher(folder: Path, which: str = "best") -> Policy:
    """The policy saved in ``folder/{which}.pt``."""
    checkpoint = torch.load(folder / f"{which}.pt", weights_only=False, map_location="cpu")
    return Policy.from_checkpoint(checkpoint["policy"])


def main() -> None:
    """Entry point for ``torchrun``: the config is a JSON file of TeacherConfig fields."""
    parser = argparse.ArgumentParser(description="Train a teacher (runs under torchrun).")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("EXPHIL_HOME", "data")))
    args = parser.parse_args()
    config = TeacherConfig(**json.loads(args.config.read_text()))
    ranks = Distributed.from_env(config.device)
    result = train(config, args.home, log=print if ranks.is_main else lambda _: None)
    digest = float(sum(p.double().sum() for p in result.policy.parameters()))
    print(json.dumps({"rank": ranks.rank, "steps": result.steps, "param_sum": digest}))
    if ranks.world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
