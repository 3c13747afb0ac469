"""Behavioral cloning of a teacher policy from a training set, resumable and DDP-ready.

The same :func:`train` runs in the Dagster asset (one process) and under ``torchrun``
(``python -m exphil_pipeline.training.teacher_trainer --config run.json --experiment NAME``),
where every rank streams its share of the batch lanes and DistributedDataParallel keeps the
weights in sync.

Output folder (``$EXPHIL_HOME/teachers/<experiment>/``): ``last.pt`` (everything needed to
resume), ``best.pt`` (the policy with the lowest held-out loss; its EMA weights when
``ema_decay`` is on), ``history.json`` and TensorBoard event files under ``tensorboard/``.
Both checkpoints carry the policy contract (:mod:`exphil_pipeline.training.policy_contract`).
Checkpoints are written atomically. Within an epoch, progress lines (steps/s, frames/s, time
left) go to ``log`` (:mod:`exphil_pipeline.training.progress_log`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from exphil_pipeline.storage.atomic import atomic_path, write_text_atomic
from exphil_pipeline.storage.layout import DEFAULT_EXPERIMENT, HOME_ENV, DataLayout, ExperimentPaths
from exphil_pipeline.training.distributed import Distributed
from exphil_pipeline.training.episodes import ChunkReader, LaneChunk, epoch_chunks, shuffled_order
from exphil_pipeline.training.losses import masked_loss
from exphil_pipeline.training.mirror import mirror_lanes, mirrored_episodes
from exphil_pipeline.training.optimization import ema_of, lr_scheduler, restore_scheduler
from exphil_pipeline.training.policy_contract import PolicyContract
from exphil_pipeline.training.previous_input_noise import shuffle_previous_input
from exphil_pipeline.training.progress_log import ProgressMeter
from exphil_pipeline.training.teacher_config import TeacherConfig
from exphil_pipeline.training.teacher_evaluation import (
    autocast,
    batch_dims,
    evaluate,
    lane_tensors,
    reset_lanes,
)
from exphil_pipeline.training.training_set import TrainingSet
from models import Policy


@dataclass
class TrainResult:
    folder: Path
    policy: Policy
    """The weights evaluated and kept in best.pt: the EMA weights when ``ema_decay`` is on."""
    history: list[dict[str, Any]]
    curve: list[tuple[int, float]]
    best: dict[str, Any]
    parameters: int
    frames_per_s: float
    device: str
    steps: int
    halted: bool = False
    stopped_early: bool = False


@dataclass
class Progress:
    """Where training stands; saved in last.pt so a resumed run continues exactly."""

    epoch: int = 0
    epoch_step: int = 0
    step: int = 0
    best_loss: float = math.inf
    history: list[dict[str, Any]] = field(default_factory=list)
    epoch_losses: list[float] = field(default_factory=list)
    curve: list[tuple[int, float]] = field(default_factory=list)  # (step, training loss)


def epochs_since_best(history: list[dict[str, Any]]) -> int:
    """Epochs since the held-out loss last went below every earlier one (0: the last did)."""
    best, since = math.inf, 0
    for record in history:
        loss = record["heldout"]["loss"] if record["heldout"]["frames"] else math.nan
        best, since = (loss, 0) if loss < best else (best, since + 1)
    return since


def _groups(chunks: Iterable[LaneChunk], size: int) -> Iterator[tuple[int, list[LaneChunk]]]:
    """``size`` consecutive chunks at a time (fewer at the end), with the first one's index."""
    iterator, first = iter(chunks), 0
    while group := list(itertools.islice(iterator, size)):
        yield first, group
        first += len(group)


def _save(path: Path, payload: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


class TeacherTrainer:
    """One training run of one experiment's teacher: set-up, resume, steps, epoch ends and
    the best/last checkpoints. :func:`train` drives it."""

    def __init__(
        self, config: TeacherConfig, paths: ExperimentPaths, log: Callable[[str], None]
    ) -> None:
        self.config, self.paths, self.log = config, paths, log
        self.ranks = Distributed.from_env(config.device)
        dataset = TrainingSet.of(paths)
        self.contract = PolicyContract.of(dataset, paths.name)
        paths.teacher.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(config.seed)
        self.policy = Policy.from_config(config.policy_config(dataset.manifest)).to(config.device)
        self.model: nn.Module = self.policy
        if self.ranks.world > 1:
            self.model = nn.parallel.DistributedDataParallel(self.policy)
        self.optimizer = torch.optim.AdamW(
            self.policy.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
        self.reader = ChunkReader(dataset, "train")
        self.heldout_reader = ChunkReader(dataset, "heldout")
        self.lengths = self.reader.episodes.length
        self.mirrored = np.zeros(len(self.lengths), dtype=np.bool_)
        if len(self.lengths) == 0:
            raise ValueError(f"the training set of experiment {paths.name!r} has no episodes")
        if config.early_stopping_patience and len(self.heldout_reader.episodes) == 0:
            raise ValueError(
                f"early_stopping_patience needs held-out games, and the training set of "
                f"experiment {paths.name!r} has none: rebuild it with heldout_fraction > 0 or "
                "set early_stopping_patience: 0"
            )
        self.loss_options = config.loss_options()
        self.ema = ema_of(self.policy, config.ema_decay)
        order = np.arange(len(self.lengths))
        chunks = sum(1 for _ in epoch_chunks(self.lengths, config.batch_size, config.bptt, order))
        self.steps_per_epoch = math.ceil(chunks / config.grad_accumulation)
        self.total_steps = self.steps_per_epoch * config.epochs
        if config.max_steps:
            self.total_steps = min(self.total_steps, config.max_steps)
        self.scheduler = lr_scheduler(
            self.optimizer, config.schedule, self.total_steps, config.warmup_steps
        )
        self.lanes = self.ranks.lanes(config.batch_size)
        self.dims = batch_dims(self.policy)
        self.state = self._initial_state()
        self.progress = Progress()
        self.writer = self._tensorboard() if self.ranks.is_main else None
        self.meter = ProgressMeter(log, config.progress_every_s)
        self.trained_frames, self.trained_seconds = 0, 0.0

    def _initial_state(self) -> tuple:
        return self.policy.initial_state(self.lanes.stop - self.lanes.start, self.config.device)

    def _tensorboard(self):
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(str(self.paths.teacher_tensorboard))

    @property
    def evaluated(self) -> Policy:
        """The weights held-out evaluation, early stopping and best.pt use."""
        return self.ema.module if self.ema is not None else self.policy

    @property
    def stopped_early(self) -> bool:
        patience = self.config.early_stopping_patience
        return bool(patience) and epochs_since_best(self.progress.history) >= patience

    @property
    def finished(self) -> bool:
        progress = self.progress
        return (
            progress.epoch >= self.config.epochs
            or progress.step >= self.total_steps
            or self.stopped_early
        )

    def resume(self) -> None:
        """Continue from last.pt, or refuse when it was trained on another model or data."""
        last = self.paths.teacher_last
        if not (self.config.resume and last.exists()):
            return
        checkpoint = torch.load(last, weights_only=False, map_location=self.config.device)
        conflicts = self.config.resume_conflicts(checkpoint["config"])
        if PolicyContract.from_checkpoint(checkpoint, last) != self.contract:
            conflicts.append("training set (rebuilt since last.pt was written)")
        if conflicts:
            raise ValueError(
                f"{last} was trained with other {', '.join(conflicts)}; resuming would mix two "
                "runs. Set resume: false to start over, or train under a new experiment name"
            )
        self.policy.load_state_dict(checkpoint["policy"]["state_dict"])
        if self.ema is not None:
            self.ema.load_state_dict(checkpoint["ema"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        restore_scheduler(self.scheduler, checkpoint["scheduler"])
        self.progress = Progress(**checkpoint["progress"])
        self.state = tuple(
            t.to(self.config.device) for t in checkpoint["lane_state"][self.ranks.rank]
        )
        torch.set_rng_state(checkpoint["torch_rng"])
        self.log(f"resumed from step {self.progress.step} (epoch {self.progress.epoch})")

    def save_last(self) -> None:
        lane_states = self.ranks.gather(tuple(t.detach().cpu() for t in self.state))
        if self.ranks.is_main:
            _save(
                self.paths.teacher_last,
                {
                    "policy": self.policy.checkpoint(),
                    "ema": self.ema.state_dict() if self.ema is not None else None,
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    "progress": asdict(self.progress),
                    "lane_state": lane_states,
                    "torch_rng": torch.get_rng_state(),
                    "config": self.config.model_dump(),
                    "contract": self.contract.to_dict(),
                },
            )

    def save_best(self, epoch: int) -> None:
        _save(
            self.paths.teacher_best,
            {
                "policy": self.evaluated.checkpoint(),
                "epoch": epoch,
                "config": self.config.model_dump(),
                "contract": self.contract.to_dict(),
            },
        )

    def step(self, chunks: list[LaneChunk]) -> tuple[float, int]:
        """One optimizer step on consecutive chunks of every lane (their gradients summed,
        the state carried from one to the next); returns their mean loss and the frames
        trained (all ranks)."""
        config = self.config
        began = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        losses, frames = [], 0
        for index, chunk in enumerate(chunks):
            batch = lane_tensors(chunk, self.reader, self.lanes, config.bptt, config.device)
            features, targets, mask = batch.features, batch.targets, batch.mask
            state = reset_lanes(batch.state_of(self.state, self.dims), batch.reset, self.dims)
            if config.mirror_probability:
                episodes = batch.chunk.episode
                flags = (episodes >= 0) & self.mirrored[np.maximum(episodes, 0)]
                mirror_lanes(features, targets, torch.from_numpy(flags).to(config.device))
            features = shuffle_previous_input(features, config.previous_input_noise, mask)
            # Under DDP, gradients are averaged across ranks once, at the group's last chunk.
            last = index == len(chunks) - 1
            syncing = nullcontext() if last or self.ranks.world == 1 else self.model.no_sync()
            with syncing:
                with autocast(config.device, config.bf16):
                    logits, state = self.model(features, targets, state)
                    loss = masked_loss(logits, targets, mask, self.loss_options)
                (loss / len(chunks)).backward()
            state = tuple(t.detach() for t in state)
            self.state = batch.merge_state(self.state, state, self.dims)
            losses.append(loss.item())
            frames += int(mask.sum()) * self.ranks.world
        torch.nn.utils.clip_grad_norm_(self.policy.parameters(), config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.policy)
        self.trained_seconds += time.perf_counter() - began
        self.trained_frames += frames
        value = sum(losses) / len(losses)
        self.progress.epoch_losses.append(value)
        self.progress.step += 1
        self.progress.curve.append((self.progress.step, value))
        if self.writer:
            self.writer.add_scalar("train/loss", value, self.progress.step)
            self.writer.add_scalar("train/lr", self.scheduler.get_last_lr()[0], self.progress.step)
        return value, frames

    def end_epoch(self) -> None:
        """Evaluate on held-out games, keep best.pt, reset the lanes and write last.pt."""
        config, progress = self.config, self.progress
        heldout = evaluate(
            self.evaluated,
            self.heldout_reader,
            config.batch_size,
            config.device,
            config.eval_max_frames,
            config.bf16,
        )
        losses = progress.epoch_losses
        record = {
            "epoch": progress.epoch,
            "step": progress.step,
            "train_loss": float(np.mean(losses)) if losses else None,
            "heldout": heldout,
        }
        progress.history.append(record)
        record["epochs_since_best"] = epochs_since_best(progress.history)
        self.log(
            f"epoch {progress.epoch}: train loss {record['train_loss']}, "
            f"held-out loss {heldout['loss']:.4f} on {heldout['frames']} frames"
        )
        if self.stopped_early:
            self.log(
                f"early stopping: no lower held-out loss for {record['epochs_since_best']} "
                f"epochs (early_stopping_patience {config.early_stopping_patience})"
            )
        if self.writer:
            self.writer.add_scalar("heldout/loss", heldout["loss"], progress.step)
        if self.ranks.is_main and heldout["frames"] and heldout["loss"] < progress.best_loss:
            progress.best_loss = heldout["loss"]
            self.save_best(progress.epoch)
        progress.epoch += 1
        progress.epoch_step = 0
        progress.epoch_losses = []
        self.state = self._initial_state()
        self.save_last()

    def run_epoch(self, halt_after_steps: int | None, steps_so_far: int) -> int | None:
        """Train the rest of the current epoch; returns the steps taken, or None when halted
        after ``halt_after_steps`` steps of this call (as a killed process would stop)."""
        config, progress = self.config, self.progress
        order = shuffled_order(len(self.lengths), config.seed, progress.epoch)
        self.mirrored = mirrored_episodes(
            len(self.lengths), config.mirror_probability, config.seed, progress.epoch
        )
        chunks = epoch_chunks(self.lengths, config.batch_size, config.bptt, order)
        per_step = config.grad_accumulation
        done = math.ceil(progress.epoch_step / per_step)
        self.meter.start_epoch(
            progress.epoch,
            config.epochs,
            self.steps_per_epoch,
            done,
            self.total_steps,
            progress.step,
        )
        steps = 0
        for first, group in _groups(chunks, per_step):
            if first < progress.epoch_step:
                continue  # already trained before the checkpoint this run resumed from
            if progress.step >= self.total_steps:
                break
            loss, frames = self.step(group)
            progress.epoch_step = first + len(group)
            steps += 1
            self.meter.update(done + steps, progress.step, frames, loss)
            if halt_after_steps is not None and steps_so_far + steps >= halt_after_steps:
                return None
            if progress.step % config.checkpoint_every == 0:
                self.save_last()
        return steps

    def finish(self, halted: bool) -> None:
        """Close the logs; a run that was not halted also writes best.pt and history.json."""
        if self.writer:
            self.writer.close()
        if halted or not self.ranks.is_main:
            return
        if not self.paths.teacher_best.exists():
            self.save_best(-1)  # no held-out frames: the final weights are the best we have
        write_text_atomic(
            self.paths.teacher_history,
            json.dumps(
                {
                    "epochs": self.progress.history,
                    "curve": self.progress.curve,
                    "stopped_early": self.stopped_early,
                }
            ),
        )

    def result(self, halted: bool) -> TrainResult:
        evaluated = [h["heldout"] for h in self.progress.history if h["heldout"]["frames"]]
        return TrainResult(
            folder=self.paths.teacher,
            policy=self.evaluated,
            history=self.progress.history,
            curve=self.progress.curve,
            best=min(evaluated, key=lambda h: h["loss"], default={}),
            parameters=sum(p.numel() for p in self.policy.parameters()),
            frames_per_s=self.trained_frames / max(self.trained_seconds, 1e-9),
            device=self.config.device,
            steps=self.progress.step,
            halted=halted,
            stopped_early=self.stopped_early,
        )


def train(
    config: TeacherConfig,
    home: Path,
    experiment: str = DEFAULT_EXPERIMENT,
    log: Callable[[str], None] = print,
    halt_after_steps: int | None = None,
) -> TrainResult:
    """Train (or resume) the teacher of ``experiment`` under ``home``; see the module docstring.

    ``halt_after_steps`` stops abruptly after that many steps of this call without writing a
    checkpoint, the way a killed process would (tests use it to prove resumption).
    """
    trainer = TeacherTrainer(config, DataLayout(home).experiment(experiment), log)
    trainer.resume()
    steps = 0
    while not trainer.finished:
        taken = trainer.run_epoch(halt_after_steps, steps)
        if taken is None:
            trainer.finish(halted=True)
            return trainer.result(halted=True)
        steps += taken
        trainer.end_epoch()
    trainer.finish(halted=False)
    return trainer.result(halted=False)


def main() -> None:
    """Entry point for ``torchrun``: the config is a JSON file of TeacherConfig fields."""
    parser = argparse.ArgumentParser(description="Train a teacher (runs under torchrun).")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--experiment", default=DEFAULT_EXPERIMENT)
    parser.add_argument("--home", type=Path, default=Path(os.environ.get(HOME_ENV, "data")))
    args = parser.parse_args()
    config = TeacherConfig(**json.loads(args.config.read_text()))
    ranks = Distributed.from_env(config.device)
    log = print if ranks.is_main else lambda _: None
    result = train(config, args.home, args.experiment, log=log)
    digest = float(sum(p.double().sum() for p in result.policy.parameters()))
    print(json.dumps({"rank": ranks.rank, "steps": result.steps, "param_sum": digest}))
    if ranks.world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
