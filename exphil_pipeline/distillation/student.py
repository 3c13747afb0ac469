"""Distillation: the teacher's soft labels, and a small MLP student trained on them.

Soft labels (``$EXPHIL_HOME/soft_labels/<teacher>/``) are the teacher's per-head
distributions at temperature T for every frame of the training set, one float16 row of
``sum(classes)`` probabilities per frame, in shards aligned row for row with the training
set's shards. Recurrent and attention teachers run over whole episodes with their state
carried, exactly as they would play, never on isolated windows. The head is teacher-forced
with the recorded action, so each head's distribution is conditioned on the human's earlier
components, the same conditioning the student is trained with.

The student (``$EXPHIL_HOME/students/<name>/student.pt``) minimizes, summed over heads,
``alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, human)``.
"""

from __future__ import annotations

import itertools
import json
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from exphil_pipeline.storage.atomic import atomic_path
from exphil_pipeline.training.episodes import ChunkReader
from exphil_pipeline.training.previous_input_noise import shuffle_previous_input
from exphil_pipeline.training.teacher_trainer import run_episodes
from exphil_pipeline.training.training_set import SPLITS, TrainingSet
from models import Policy, PolicyConfig, categorical_columns
from runtime.controller_spec import CONTROLLER_SPEC

SOFT_MANIFEST = "manifest.json"


def _head_slices() -> list[slice]:
    bounds = np.cumsum((0, *CONTROLLER_SPEC.head_classes))
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]


HEAD_SLICES = _head_slices()
TOTAL_CLASSES = sum(CONTROLLER_SPEC.head_classes)


@dataclass(frozen=True)
class TeacherRun:
    """A trained teacher: its best policy and the config it was trained with."""

    policy: Policy
    config: dict[str, Any]

    @classmethod
    def load(cls, home: Path, name: str) -> TeacherRun:
        path = home / "teachers" / name / "best.pt"
        if not path.is_file():
            raise FileNotFoundError(f"no teacher {name!r} ({path} missing): materialize teacher")
        checkpoint = torch.load(path, weights_only=False, map_location="cpu")
        return cls(Policy.from_checkpoint(checkpoint["policy"]), checkpoint["config"])

    def training_set(self, home: Path) -> TrainingSet:
        return TrainingSet.open(home / "training_sets" / self.config["training_set"])


@dataclass
class SoftLabelResult:
    folder: Path
    frames: int
    seconds: float
    temperature: float


def build_soft_labels(
    home: Path,
    teacher_name: str,
    temperature: float,
    lanes: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> SoftLabelResult:
    """Write the teacher's distributions at ``temperature`` for every training-set frame."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    began = time.perf_counter()
    teacher = TeacherRun.load(home, teacher_name)
    dataset = teacher.training_set(home)
    final = home / "soft_labels" / teacher_name
    building = final.with_name(f".{teacher_name}.tmp-{uuid.uuid4().hex}")
    shards: dict[str, list[str]] = {}
    frames = 0
    try:
        for split in SPLITS:
            (building / split).mkdir(parents=True)
            reader = ChunkReader(dataset, split)
            outputs = []
            for index, shard in enumerate(dataset.manifest["splits"][split]["shards"]):
                name = f"{split}/soft-{index:05d}.npy"
                outputs.append(
                    np.lib.format.open_memmap(
                        building / name, "w+", np.float16, (shard["frames"], TOTAL_CLASSES)
                    )
                )
                shards.setdefault(split, []).append(name)
            frames += _label_split(teacher.policy, reader, outputs, temperature, lanes, progress)
            for output in outputs:
                output.flush()
        manifest = {
            "teacher": teacher_name,
            "training_set": teacher.config["training_set"],
            "temperature": temperature,
            "head_classes": list(CONTROLLER_SPEC.head_classes),
            "shards": shards,
            "frames": frames,
        }
        (building / SOFT_MANIFEST).write_text(json.dumps(manifest, indent=2))
        retired = final.with_name(f".{teacher_name}.old-{uuid.uuid4().hex}")
        if final.exists():
            final.rename(retired)
        building.rename(final)
        shutil.rmtree(retired, ignore_errors=True)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return SoftLabelResult(final, frames, time.perf_counter() - began, temperature)


def _label_split(
    policy: Policy,
    reader: ChunkReader,
    outputs: list[np.ndarray],
    temperature: float,
    lanes: int,
    progress: Callable[[int, int], None] | None,
) -> int:
    episodes = reader.episodes
    done = 0
    for out in run_episodes(policy, reader, lanes, "cpu"):
        probabilities = torch.cat(
            [torch.softmax(head / temperature, dim=-1) for head in out.logits], dim=-1
        ).numpy()
        step = out.step
        for lane in np.flatnonzero(step.episode >= 0):
            episode = step.episode[lane]
            first = episodes.start[episode] + step.offset[lane]
            count = step.length[lane]
            outputs[episodes.shard[episode]][first : first + count] = probabilities[lane, :count]
            done += int(count)
        if progress:
            progress(done, episodes.frames)
    return done


@dataclass(frozen=True)
class StudentConfig:
    """The distilled student.

    name: folder under ``students/``.
    teacher: the teacher whose soft labels (``soft_labels/<teacher>``) it learns from.
    hidden_sizes: MLP hidden widths (one per layer; all layers share a width).
    periodic_frequencies, periodic_sigma: periodic encodings of the continuous features
        (:mod:`models.feature_input`; 0 frequencies: none).
    alpha: weight of the soft (KL) term against the hard (human CE) term.
    epochs, batch_size, learning_rate, weight_decay: optimization (random frames, AdamW).
    seed: weights and batch order.
    previous_input_noise: share of training frames whose previous-input feature is taken from
        another frame (:mod:`exphil_pipeline.training.previous_input_noise`).
    eval_max_frames: held-out frames used for the reported metrics (0: all).
    """

    name: str = "default"
    teacher: str = "default"
    hidden_sizes: tuple[int, ...] = (64, 64)
    periodic_frequencies: int = 0
    periodic_sigma: float = 3.0
    alpha: float = 0.7
    epochs: int = 3
    batch_size: int = 512
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    previous_input_noise: float = 0.0
    eval_max_frames: int = 50_000

    def __post_init__(self) -> None:
        if not self.hidden_sizes or len(set(self.hidden_sizes)) != 1:
            raise ValueError(
                f"hidden_sizes must be one width repeated per layer (e.g. (64, 64)), "
                f"got {self.hidden_sizes}"
            )
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")


@dataclass(frozen=True)
class SoftLabels:
    """Soft-label shards of one teacher, memory-mapped, aligned with the training set."""

    path: Path
    manifest: dict[str, Any]

    @classmethod
    def open(cls, home: Path, teacher: str) -> SoftLabels:
        path = home / "soft_labels" / teacher
        if not (path / SOFT_MANIFEST).is_file():
            raise FileNotFoundError(
                f"no soft labels for teacher {teacher!r}: materialize soft_labels"
            )
        return cls(path, json.loads((path / SOFT_MANIFEST).read_text()))

    @property
    def temperature(self) -> float:
        return float(self.manifest["temperature"])

    def shards(self, split: str) -> list[np.ndarray]:
        return [np.load(self.path / name, mmap_mode="r") for name in self.manifest["shards"][split]]


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
    policy: Policy
    metrics: dict[str, Any]
    parameters: int
    frames_per_s: float
    split_evaluated: str


def train_student(
    home: Path, config: StudentConfig, log: Callable[[str], None] = print
) -> StudentResult:
    """Train the student on random frames; report held-out agreement and accuracy."""
    labels = SoftLabels.open(home, config.teacher)
    teacher = TeacherRun.load(home, config.teacher)
    dataset = teacher.training_set(home)
    train_frames = frame_split(dataset, labels, "train")
    if len(train_frames) == 0:
        raise ValueError("the training set has no training frames")
    spec = dataset.manifest["embedding_spec"]
    torch.manual_seed(config.seed)
    policy = Policy.from_config(
        PolicyConfig(
            input_dim=spec["dim"],
            embedding_spec_hash=spec["hash"],
            categorical=categorical_columns(
                [tuple(c) for c in spec["categorical"]], max_embedding_dim=8
            ),
            backbone="mlp",
            hidden_dim=config.hidden_sizes[0],
            num_layers=len(config.hidden_sizes),
            head_mlp_dim=config.hidden_sizes[-1],
            periodic_frequencies=config.periodic_frequencies,
            periodic_sigma=config.periodic_sigma,
            controller_spec_hash=dataset.manifest["controller_spec"]["hash"],
        )
    )
    optimizer = torch.optim.AdamW(
        policy.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    rng = np.random.default_rng(config.seed)
    steps_per_epoch = max(1, len(train_frames) // config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.learning_rate, total_steps=total_steps, pct_start=0.1
    )
    trained, seconds = 0, 0.0
    for epoch in range(config.epochs):
        order = rng.permutation(len(train_frames))
        losses = []
        for step in range(steps_per_epoch):
            began = time.perf_counter()
            index = order[step * config.batch_size : (step + 1) * config.batch_size]
            features, targets, soft = map(torch.from_numpy, train_frames.rows(index))
            features = shuffle_previous_input(features, config.previous_input_noise)
            logits, _ = policy(features.unsqueeze(1), targets.unsqueeze(1))
            logits = [head.squeeze(1) for head in logits]
            loss = distillation_loss(logits, targets, soft, labels.temperature, config.alpha)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            trained += len(index)
            seconds += time.perf_counter() - began
        log(f"student epoch {epoch}: loss {np.mean(losses):.4f}")
    split = "heldout" if dataset.frames("heldout") else "train"
    metrics = student_metrics(policy, frame_split(dataset, labels, split), config.eval_max_frames)
    folder = home / "students" / config.name
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "student.pt") as tmp:
        torch.save(
            {
                "policy": policy.checkpoint(),
                "config": asdict(config),
                "teacher_config": teacher.config,
                "metrics": metrics,
            },
            tmp,
        )
    return StudentResult(
        folder=folder,
        policy=policy,
        metrics=metrics,
        parameters=sum(p.numel() for p in policy.parameters()),
        frames_per_s=trained / max(seconds, 1e-9),
        split_evaluated=split,
    )


@torch.no_grad()
def student_metrics(policy: Policy, frames: FrameSplit, max_frames: int) -> dict[str, Any]:
    """Per head: student's agreement with the teacher's argmax, and both models' accuracy
    against the human labels (all teacher-forced, on the first ``max_frames`` frames)."""
    count = len(frames) if not max_frames else min(len(frames), max_frames)
    features, targets, soft = frames.rows(np.arange(count))
    policy.eval()
    logits, _ = policy(
        torch.from_numpy(features).unsqueeze(1), torch.from_numpy(targets).unsqueeze(1)
    )
    policy.train()
    heads = CONTROLLER_SPEC.heads
    agreement, student_accuracy, teacher_accuracy, student_nll = {}, {}, {}, {}
    for head, (name, columns) in enumerate(zip(heads, HEAD_SLICES, strict=True)):
        student_choice = logits[head].squeeze(1).argmax(-1).numpy()
        teacher_choice = soft[:, columns].astype(np.float32).argmax(-1)
        human = targets[:, head]
        agreement[name] = float(np.mean(student_choice == teacher_choice))
        student_accuracy[name] = float(np.mean(student_choice == human))
        teacher_accuracy[name] = float(np.mean(teacher_choice == human))
        student_nll[name] = float(
            F.cross_entropy(logits[head].squeeze(1), torch.from_numpy(human).long())
        )
    return {
        "frames": count,
        "agreement_with_teacher": agreement,
        "student_accuracy": student_accuracy,
        "teacher_accuracy": teacher_accuracy,
        "student_nll": student_nll,
        "student_loss": float(sum(student_nll.values())),
    }


def load_student(home: Path, name: str) -> tuple[Policy, dict[str, Any]]:
    checkpoint = torch.load(home / "students" / name / "student.pt", weights_only=False)
    return Policy.from_checkpoint(checkpoint["policy"]), checkpoint


@dataclass(frozen=True)
class EvaluationFrames:
    """Held-out frames (training frames when nothing is held out) with both kinds of label."""

    features: np.ndarray
    targets: np.ndarray
    soft: np.ndarray
    split: str


def evaluation_frames(home: Path, teacher: str, max_frames: int) -> EvaluationFrames:
    labels = SoftLabels.open(home, teacher)
    dataset = TeacherRun.load(home, teacher).training_set(home)
    split = "heldout" if dataset.frames("heldout") else "train"
    frames = frame_split(dataset, labels, split)
    count = min(len(frames), max_frames) if max_frames else len(frames)
    features, targets, soft = frames.rows(np.arange(count))
    return EvaluationFrames(features, targets, soft, split)
