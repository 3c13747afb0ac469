"""The distilled student: a small MLP trained on the teacher's soft labels.

It minimizes, summed over heads, ``alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) *
CE(student, human)`` on random frames, and is saved to
``$EXPHIL_HOME/students/<experiment>/student.pt`` with the teacher's policy contract. The
learning-rate schedules and EMA weights are the teacher's
(:mod:`exphil_pipeline.training.optimization`), and so are the progress lines in the log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from dagster import Config
from pydantic import Field, field_validator
from torch.nn import functional as F

from exphil_pipeline.distillation.labelled_frames import FrameSplit, frame_split
from exphil_pipeline.distillation.soft_labels import HEAD_SLICES, SoftLabels, distilled_teacher
from exphil_pipeline.storage.atomic import atomic_path
from exphil_pipeline.storage.layout import ExperimentPaths
from exphil_pipeline.training.optimization import SCHEDULES, ema_of, known_schedule, lr_scheduler
from exphil_pipeline.training.policy_contract import PolicyContract
from exphil_pipeline.training.previous_input_noise import shuffle_previous_input
from exphil_pipeline.training.progress_log import ProgressMeter
from exphil_pipeline.training.training_set import TrainingSet
from exphil_pipeline.training.training_set_manifest import TrainingSetManifest
from models import Policy, PolicyConfig
from runtime.controller_spec import CONTROLLER_SPEC


class StudentConfig(Config):
    """Size and optimization of the distilled student."""

    hidden_sizes: list[int] = Field(
        default=[64, 64], description="MLP hidden widths, one per layer (one width repeated)."
    )
    periodic_frequencies: int = Field(
        default=0,
        ge=0,
        description="Periodic encodings per continuous feature (models.feature_input; 0: none).",
    )
    periodic_sigma: float = Field(default=3.0, gt=0, description="Their initial spread.")
    alpha: float = Field(
        default=0.7, ge=0.0, le=1.0, description="Weight of the soft (KL) term vs. human CE."
    )
    epochs: int = Field(default=3, ge=1)
    batch_size: int = Field(default=512, ge=1, description="Random frames per step.")
    learning_rate: float = Field(default=2e-3, gt=0, description="Peak AdamW learning rate.")
    weight_decay: float = Field(default=1e-4, ge=0)
    schedule: str = Field(
        default="one_cycle",
        description=f"One of {', '.join(SCHEDULES)}, as the teacher's "
        "(exphil_pipeline.training.optimization).",
    )
    warmup_fraction: float = Field(
        default=0.1,
        ge=0.0,
        lt=1.0,
        description="Warm-up length as a share of all steps (the run's length in steps "
        "follows from the number of training frames).",
    )
    ema_decay: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Exponential moving average of the weights, decay per step (0: off). "
        "When on, the metrics and student.pt use the averaged weights.",
    )
    progress_every_s: float = Field(
        default=30.0,
        ge=0.0,
        description="Seconds between progress lines in the log (steps/s, frames/s, time "
        "left); 0: every step.",
    )
    seed: int = Field(default=0, description="Weights and batch order follow from it.")
    previous_input_noise: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Share of training frames whose previous input is taken from another frame "
        "(exphil_pipeline.training.previous_input_noise).",
    )
    eval_max_frames: int = Field(
        default=50_000, ge=0, description="Held-out frames for the reported metrics (0: all)."
    )

    @field_validator("hidden_sizes")
    @classmethod
    def _one_width(cls, sizes: list[int]) -> list[int]:
        if not sizes or len(set(sizes)) != 1 or sizes[0] < 1:
            raise ValueError(
                f"hidden_sizes must be one width repeated per layer (e.g. [64, 64]), got {sizes}"
            )
        return sizes

    @field_validator("schedule")
    @classmethod
    def _known_schedule(cls, value: str) -> str:
        return known_schedule(value)

    def policy_config(self, manifest: TrainingSetManifest) -> PolicyConfig:
        return manifest.policy_config(
            max_embedding_dim=8,
            backbone="mlp",
            hidden_dim=self.hidden_sizes[0],
            num_layers=len(self.hidden_sizes),
            head_mlp_dim=self.hidden_sizes[-1],
            periodic_frequencies=self.periodic_frequencies,
            periodic_sigma=self.periodic_sigma,
        )


@dataclass(frozen=True)
class StudentMetrics:
    """Per head, teacher-forced on the evaluation split's first frames."""

    frames: int
    agreement_with_teacher: dict[str, float]
    """Share of frames where the student's argmax is the teacher's."""
    student_accuracy: dict[str, float]
    teacher_accuracy: dict[str, float]
    student_nll: dict[str, float]
    student_loss: float
    """Sum of the per-head NLL of the human's action."""

    def kept_accuracy(self) -> dict[str, float]:
        """Per head: student accuracy / teacher accuracy (1.0 where the teacher scores 0)."""
        return {
            h: self.student_accuracy[h] / t if (t := self.teacher_accuracy[h]) else 1.0
            for h in CONTROLLER_SPEC.heads
        }


@dataclass(frozen=True)
class StudentCheckpoint:
    """A saved student with what it was trained with and how well it did."""

    policy: Policy
    config: StudentConfig
    contract: PolicyContract
    metrics: StudentMetrics

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save(
                {
                    "policy": self.policy.checkpoint(),
                    "config": self.config.model_dump(),
                    "contract": self.contract.to_dict(),
                    "metrics": asdict(self.metrics),
                },
                tmp,
            )

    @classmethod
    def of(cls, experiment: ExperimentPaths) -> StudentCheckpoint:
        path = experiment.student_checkpoint
        if not path.is_file():
            raise FileNotFoundError(f"no student {path}: materialize student")
        checkpoint = torch.load(path, weights_only=False, map_location="cpu")
        return cls(
            policy=Policy.from_checkpoint(checkpoint["policy"]),
            config=StudentConfig(**checkpoint["config"]),
            contract=PolicyContract.from_checkpoint(checkpoint, path),
            metrics=StudentMetrics(**checkpoint["metrics"]),
        )


def distillation_loss(
    logits: list[torch.Tensor],
    targets: torch.Tensor,
    soft: torch.Tensor,
    temperature: float,
    alpha: float,
) -> torch.Tensor:
    """Sum over heads of alpha * T^2 * KL(soft || student_T) + (1 - alpha) * CE(hard)."""
    total = torch.zeros(())
    for head, (head_logits, columns) in enumerate(zip(logits, HEAD_SLICES, strict=True)):
        teacher = soft[:, columns].float().clamp_min(1e-8)
        teacher = teacher / teacher.sum(-1, keepdim=True)
        student = F.log_softmax(head_logits / temperature, dim=-1)
        kl = F.kl_div(student, teacher, reduction="batchmean")
        hard = F.cross_entropy(head_logits, targets[:, head].long())
        total = total + alpha * temperature**2 * kl + (1 - alpha) * hard
    return total


@dataclass
class StudentResult:
    folder: Path
    checkpoint: StudentCheckpoint
    parameters: int
    frames_per_s: float
    split_evaluated: str


def _fit(
    policy: Policy,
    frames: FrameSplit,
    temperature: float,
    config: StudentConfig,
    log: Callable[[str], None],
) -> tuple[Policy, float]:
    """Train ``policy`` on random frames for ``config.epochs``; returns the weights to keep
    (the EMA weights when ``ema_decay`` is on) and frames per second."""
    optimizer = torch.optim.AdamW(
        policy.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    rng = np.random.default_rng(config.seed)
    steps_per_epoch = max(1, len(frames) // config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    scheduler = lr_scheduler(
        optimizer, config.schedule, total_steps, config.warmup_fraction * total_steps
    )
    ema = ema_of(policy, config.ema_decay)
    meter = ProgressMeter(log, config.progress_every_s, label="student ")
    trained, seconds = 0, 0.0
    for epoch in range(config.epochs):
        order = rng.permutation(len(frames))
        losses = []
        done = epoch * steps_per_epoch
        meter.start_epoch(epoch, config.epochs, steps_per_epoch, 0, total_steps, done)
        for step in range(steps_per_epoch):
            began = time.perf_counter()
            index = order[step * config.batch_size : (step + 1) * config.batch_size]
            features, targets, soft = map(torch.from_numpy, frames.rows(index))
            features = shuffle_previous_input(features, config.previous_input_noise)
            logits, _ = policy(features.unsqueeze(1), targets.unsqueeze(1))
            logits = [head.squeeze(1) for head in logits]
            loss = distillation_loss(logits, targets, soft, temperature, config.alpha)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if ema is not None:
                ema.update_parameters(policy)
            losses.append(loss.item())
            trained += len(index)
            seconds += time.perf_counter() - began
            meter.update(step + 1, done + step + 1, len(index), losses[-1])
        log(f"student epoch {epoch}: loss {np.mean(losses):.4f}")
    kept = ema.module if ema is not None else policy
    return kept, trained / max(seconds, 1e-9)


def train_student(
    experiment: ExperimentPaths, config: StudentConfig, log: Callable[[str], None] = print
) -> StudentResult:
    """Train the experiment's student; report its agreement and accuracy on held-out frames."""
    labels = SoftLabels.of(experiment)
    contract = distilled_teacher(experiment).contract
    dataset = TrainingSet.of(experiment)
    train_frames = frame_split(dataset, labels, "train")
    if len(train_frames) == 0:
        raise ValueError(f"the training set of experiment {experiment.name!r} has no frames")
    torch.manual_seed(config.seed)
    policy = Policy.from_config(config.policy_config(dataset.manifest))
    policy, frames_per_s = _fit(policy, train_frames, labels.temperature, config, log)
    split = dataset.evaluation_split
    metrics = student_metrics(policy, frame_split(dataset, labels, split), config.eval_max_frames)
    checkpoint = StudentCheckpoint(policy, config, contract, metrics)
    checkpoint.save(experiment.student_checkpoint)
    return StudentResult(
        folder=experiment.student,
        checkpoint=checkpoint,
        parameters=sum(p.numel() for p in policy.parameters()),
        frames_per_s=frames_per_s,
        split_evaluated=split,
    )


@torch.no_grad()
def student_metrics(policy: Policy, frames: FrameSplit, max_frames: int) -> StudentMetrics:
    """Per head: the student's agreement with the teacher's argmax, and both models' accuracy
    against the human labels (all teacher-forced, on the first ``max_frames`` frames)."""
    count = len(frames) if not max_frames else min(len(frames), max_frames)
    features, targets, soft = frames.rows(np.arange(count))
    policy.eval()
    logits, _ = policy(
        torch.from_numpy(features).unsqueeze(1), torch.from_numpy(targets).unsqueeze(1)
    )
    policy.train()
    agreement, student_accuracy, teacher_accuracy, student_nll = {}, {}, {}, {}
    for head, (name, columns) in enumerate(zip(CONTROLLER_SPEC.heads, HEAD_SLICES, strict=True)):
        student_choice = logits[head].squeeze(1).argmax(-1).numpy()
        teacher_choice = soft[:, columns].astype(np.float32).argmax(-1)
        human = targets[:, head]
        agreement[name] = float(np.mean(student_choice == teacher_choice))
        student_accuracy[name] = float(np.mean(student_choice == human))
        teacher_accuracy[name] = float(np.mean(teacher_choice == human))
        student_nll[name] = float(
            F.cross_entropy(logits[head].squeeze(1), torch.from_numpy(human).long())
        )
    return StudentMetrics(
        frames=count,
        agreement_with_teacher=agreement,
        student_accuracy=student_accuracy,
        teacher_accuracy=teacher_accuracy,
        student_nll=student_nll,
        student_loss=float(sum(student_nll.values())),
    )
