"""Teacher training throughput against the model's own rate, and single-step latency.

    python benchmarks/train.py [--home DIR --training-set EXPERIMENT] [--backbones mlp gru ...]
                               [--steps N] [--repeats R] [--threads N] [--device cpu|cuda]

With ``--home`` it trains on the training set of experiment ``--training-set`` there (and
writes that experiment's teacher folder). Without it, it generates sample replays, ingests
them and builds a training set in a scratch folder, with at least as many training episodes
as batch lanes and each episode long enough to keep its lane busy for every measured step, so
the figures measure frames rather than padding. Either way, a set with fewer training
episodes than lanes is refused.

For each backbone, interleaved ``--repeats`` times:

- ``useful_frames_per_s``: the teacher's own loop (``TeacherTrainer.run_epoch``: reading the
  memory-mapped shards, previous-input noise, loss, clipping, AdamW, scheduler, logging) for
  ``--steps`` steps, valid (non-padding) frames over wall time;
- ``model_frames_per_s``: the same network's bare forward + loss + backward + AdamW step on
  random inputs of the same shape (``batch_size`` lanes x ``bptt`` frames, no padding);
- ``loop_over_model``: their ratio (median of the per-repeat ratios; ``_cpu``: the same by
  process CPU time, which other processes on the machine barely move); ``padding_share``: the
  share of the loop's lane frames that were padding; ``train_frames_per_s``: the trainer's
  own figure (valid frames over the time inside its steps).

Then, once: the policy's forward + backward with an MLP backbone (``--compare-width`` x 2,
``--compare-batch`` frames) against a plain MLP of the same widths (Linear + ReLU layers from
the raw frame vector to every head's logits, the same loss), interleaved. Figures are
medians over the repeats; the machine is often shared, so compare only figures of one run.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from exphil_pipeline.evaluation.measurements import torch_step_latency
from exphil_pipeline.replays.batches import ReplayBatch
from exphil_pipeline.replays.ingest import IngestSettings, ingest_batch
from exphil_pipeline.simulator.sample_replays import write_sample_replays
from exphil_pipeline.storage.layout import DataLayout
from exphil_pipeline.training.losses import masked_loss
from exphil_pipeline.training.teacher_config import TeacherConfig
from exphil_pipeline.training.teacher_evaluation import autocast
from exphil_pipeline.training.teacher_trainer import TeacherTrainer
from exphil_pipeline.training.training_set import TrainingSet, build_training_set
from exphil_pipeline.training.training_set_config import TrainingSetConfig
from models import BACKBONE_KINDS, Policy, PolicyConfig

WARMUP_STEPS = 2
"""Steps of the loop and of the bare model run before timing (allocator and caches)."""
SAMPLE_MARGIN_FRAMES = 400
"""Frames a sample game needs beyond the measured chunks: its countdown and the chunk tails."""


def sample_training_set(home: Path, lanes: int, frames_per_lane: int) -> str:
    """A training set of generated games with at least ``lanes`` training episodes of at least
    ``frames_per_lane`` frames each: two players per game, none held out (nothing here
    evaluates), one game spare."""
    config = TrainingSetConfig(characters=["all"], heldout_fraction=0.0)
    games = math.ceil(lanes / 2) + 1
    replays = write_sample_replays(
        home / "replays", games=games, frames=frames_per_lane + SAMPLE_MARGIN_FRAMES, seed=1
    )
    layout = DataLayout(home)
    ingest_batch(ReplayBatch("bench", replays[0].parent), layout, IngestSettings(workers=0))
    build_training_set(layout, "bench", config)
    return "bench"


def check_training_set(home: Path, name: str, lanes: int) -> int:
    """The number of training episodes; fewer than ``lanes`` would leave lanes idle."""
    episodes = TrainingSet.of(DataLayout(home).experiment(name)).episodes("train").num_rows
    if episodes < lanes:
        raise ValueError(
            f"the training set of experiment {name!r} under {home} has {episodes} training "
            f"episodes, fewer than the {lanes} batch lanes: the figures would measure padding. "
            "Use a larger training set or a smaller --batch-size"
        )
    return episodes


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


@dataclass
class Clock:
    """Wall and process CPU seconds (all threads) of timed runs, one entry per run.

    Wall time is what the targets are about; CPU time barely moves when other processes
    share the cores, so its ratios stay comparable between runs on a busy machine (on CUDA
    it only counts the host's work)."""

    device: str
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def time(self, run: Callable[[], Any]) -> None:
        synchronize(self.device)
        wall, cpu = time.perf_counter(), time.process_time()
        run()
        synchronize(self.device)
        self.wall.append(time.perf_counter() - wall)
        self.cpu.append(time.process_time() - cpu)


def median_ratio(numerators: list[float], denominators: list[float]) -> float:
    """Median of the ratios of paired (interleaved) measurements."""
    return round(statistics.median(a / b for a, b in zip(numerators, denominators, strict=True)), 3)


def random_batch(
    config: PolicyConfig, lanes: int, frames: int, device: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random frames (id columns hold valid ids), targets and an all-valid mask."""
    features = torch.randn(lanes, frames, config.input_dim)
    for column in config.categorical:
        ids = torch.randint(0, column.vocab_size, (lanes, frames))
        features[..., column.index] = ids.float()
    targets = torch.stack(
        [torch.randint(0, n, (lanes, frames)) for n in config.head_classes], dim=-1
    ).to(torch.uint8)
    mask = torch.ones(lanes, frames, dtype=torch.bool)
    return features.to(device), targets.to(device), mask.to(device)


class BareModel:
    """The network of a teacher config trained on one fixed random batch: forward from the
    carried state, the trainer's loss (under the trainer's autocast), backward and an AdamW
    step, nothing else."""

    def __init__(self, config: PolicyConfig, teacher: TeacherConfig, device: str) -> None:
        self.policy = Policy.from_config(config).to(device)
        self.optimizer = torch.optim.AdamW(
            self.policy.parameters(), lr=teacher.learning_rate, weight_decay=teacher.weight_decay
        )
        self.batch = random_batch(config, teacher.batch_size, teacher.bptt, device)
        self.state = self.policy.initial_state(teacher.batch_size, device)
        self.device, self.bf16 = device, teacher.bf16

    def steps(self, count: int) -> None:
        features, targets, mask = self.batch
        for _ in range(count):
            with autocast(self.device, self.bf16):
                logits, state = self.policy(features, targets, self.state)
                loss = masked_loss(logits, targets, mask)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.state = tuple(t.detach() for t in state)


def measure_backbone(
    home: Path, name: str, teacher: TeacherConfig, steps: int, repeats: int, calls: int
) -> dict[str, Any]:
    trainer = TeacherTrainer(teacher, DataLayout(home).experiment(name), log=lambda _: None)
    model = BareModel(trainer.policy.config, teacher, teacher.device)
    frames_per_step = teacher.batch_size * teacher.bptt

    def loop(count: int) -> None:
        if trainer.run_epoch(halt_after_steps=count, steps_so_far=0) is not None:
            raise ValueError("the epoch ended before the measured steps: the set is too small")

    loop(WARMUP_STEPS)
    model.steps(WARMUP_STEPS)
    loop_clock, model_clock = Clock(teacher.device), Clock(teacher.device)
    useful, step_seconds = [], 0.0
    for _ in range(repeats):
        frames_before, seconds_before = trainer.trained_frames, trainer.trained_seconds
        loop_clock.time(lambda: loop(steps))
        useful.append(trainer.trained_frames - frames_before)
        step_seconds += trainer.trained_seconds - seconds_before
        model_clock.time(lambda: model.steps(steps))
    model_frames = [steps * frames_per_step] * repeats
    loop_rates = [f / s for f, s in zip(useful, loop_clock.wall, strict=True)]
    model_rates = [f / s for f, s in zip(model_frames, model_clock.wall, strict=True)]
    if trainer.writer:
        trainer.writer.close()
    # Play runs on CPU: time a copy there (the copy also keeps eval mode off the trainer's).
    latency = torch_step_latency(copy.deepcopy(trainer.policy).cpu(), calls, threads=None)
    return {
        # The trainer's own figure: valid frames over the time inside its steps.
        "train_frames_per_s": round(sum(useful) / step_seconds),
        "useful_frames_per_s": round(statistics.median(loop_rates)),
        "model_frames_per_s": round(statistics.median(model_rates)),
        "loop_over_model": median_ratio(loop_rates, model_rates),
        "loop_over_model_cpu": median_ratio(
            [f / s for f, s in zip(useful, loop_clock.cpu, strict=True)],
            [f / s for f, s in zip(model_frames, model_clock.cpu, strict=True)],
        ),
        "padding_share": round(1 - sum(useful) / (repeats * steps * frames_per_step), 4),
        "parameters": sum(p.numel() for p in trainer.policy.parameters()),
        **{f"step_{key}": value for key, value in latency.items()},
    }


def plain_mlp(config: PolicyConfig) -> nn.Sequential:
    """Linear + ReLU layers as wide as the policy's backbone, straight to every head's logits."""
    layers: list[nn.Module] = []
    width = config.input_dim
    for _ in range(config.num_layers):
        layers += [nn.Linear(width, config.hidden_dim), nn.ReLU()]
        width = config.hidden_dim
    return nn.Sequential(*layers, nn.Linear(width, sum(config.head_classes)))


def compare_with_plain_mlp(
    manifest_config: PolicyConfig, batch: int, repeats: int, device: str
) -> dict[str, Any]:
    policy = Policy.from_config(manifest_config).to(device)
    mlp = plain_mlp(manifest_config).to(device)
    features, targets, mask = random_batch(manifest_config, batch, 1, device)
    classes = list(manifest_config.head_classes)

    def policy_pass() -> None:
        policy.zero_grad(set_to_none=True)
        with autocast(device, bf16=True):
            logits, _ = policy(features, targets)
            loss = masked_loss(logits, targets, mask)
        loss.backward()

    def mlp_pass() -> None:
        mlp.zero_grad(set_to_none=True)
        with autocast(device, bf16=True):
            logits = mlp(features).split(classes, dim=-1)
            loss = masked_loss(list(logits), targets, mask)
        loss.backward()

    passes = 3
    for run in (policy_pass, mlp_pass):
        for _ in range(WARMUP_STEPS):
            run()
    policy_clock, mlp_clock = Clock(device), Clock(device)
    for _ in range(repeats):
        for clock, run in ((policy_clock, policy_pass), (mlp_clock, mlp_pass)):
            clock.time(lambda run=run: [run() for _ in range(passes)])
    return {
        "width": manifest_config.hidden_dim,
        "layers": manifest_config.num_layers,
        "batch": batch,
        "policy_fwd_bwd_frames_per_s": round(passes * batch / statistics.median(policy_clock.wall)),
        "plain_mlp_frames_per_s": round(passes * batch / statistics.median(mlp_clock.wall)),
        "policy_over_mlp": median_ratio(policy_clock.wall, mlp_clock.wall),
        "policy_over_mlp_cpu": median_ratio(policy_clock.cpu, mlp_clock.cpu),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path)
    parser.add_argument("--training-set", default="default")
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONE_KINDS))
    parser.add_argument("--steps", type=int, default=5, help="steps per timed segment")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved timed segments")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--bptt", type=int, default=64)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--compare-width", type=int, default=512)
    parser.add_argument("--compare-batch", type=int, default=4096)
    parser.add_argument(
        "--previous-input-noise",
        type=float,
        default=0.2,
        help="TeacherConfig.previous_input_noise of the loop (the bare model has none)",
    )
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    unknown = sorted(set(args.backbones) - set(BACKBONE_KINDS))
    if unknown:
        parser.error(f"unknown backbones {unknown}; choose from {BACKBONE_KINDS}")
    measured_steps = WARMUP_STEPS + args.repeats * args.steps
    with tempfile.TemporaryDirectory() as scratch:
        home = args.home or Path(scratch)
        if args.home:
            name = args.training_set
        else:
            name = sample_training_set(home, args.batch_size, measured_steps * args.bptt)
        episodes = check_training_set(home, name, args.batch_size)
        results = {}
        for backbone in args.backbones:
            teacher = TeacherConfig(
                backbone=backbone,
                hidden_dim=args.hidden,
                batch_size=args.batch_size,
                bptt=args.bptt,
                epochs=1,
                max_steps=measured_steps,
                eval_max_frames=1,
                checkpoint_every=10**9,
                previous_input_noise=args.previous_input_noise,
                resume=False,
                device=args.device,
            )
            results[backbone] = measure_backbone(
                home, name, teacher, args.steps, args.repeats, args.calls
            )
        manifest = TrainingSet.of(DataLayout(home).experiment(name)).manifest
        compare = TeacherConfig(
            backbone="mlp", hidden_dim=args.compare_width, num_layers=2, device=args.device
        ).policy_config(manifest)
        comparison = compare_with_plain_mlp(compare, args.compare_batch, args.repeats, args.device)
    print(
        json.dumps(
            {
                "command": " ".join(["python", "benchmarks/train.py", *(argv or sys.argv[1:])]),
                "cores": os.cpu_count(),
                "torch_threads": torch.get_num_threads(),
                "device": args.device,
                "hidden_dim": args.hidden,
                "batch_size": args.batch_size,
                "bptt": args.bptt,
                "previous_input_noise": args.previous_input_noise,
                "steps": args.steps,
                "repeats": args.repeats,
                "training_episodes": episodes,
                "backbones": results,
                "policy_vs_plain_mlp": comparison,
            }
        )
    )


if __name__ == "__main__":
    main()
