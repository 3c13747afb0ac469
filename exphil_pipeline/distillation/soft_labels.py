"""The teacher's soft labels: its per-head distributions at temperature T for every frame.

Stored in ``$EXPHIL_HOME/soft_labels/<experiment>/``: one float16 row of ``sum(classes)``
probabilities per frame, in shards aligned row for row with the training set's shards.
Recurrent and attention teachers run over whole episodes with their state carried, exactly as
they would play, never on isolated windows. The head is teacher-forced with the recorded
action, so each head's distribution is conditioned on the human's earlier components, the same
conditioning the student is trained with.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from dagster import Config
from pydantic import Field

from exphil_pipeline.storage.atomic import atomic_folder
from exphil_pipeline.storage.layout import ExperimentPaths
from exphil_pipeline.training.episodes import ChunkReader
from exphil_pipeline.training.teacher_checkpoint import TeacherCheckpoint
from exphil_pipeline.training.teacher_evaluation import run_episodes
from exphil_pipeline.training.training_set import SPLITS, TrainingSet
from models import Policy
from runtime.controller_spec import CONTROLLER_SPEC

SOFT_MANIFEST = "manifest.json"


def _head_slices() -> list[slice]:
    bounds = np.cumsum((0, *CONTROLLER_SPEC.head_classes))
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]


HEAD_SLICES = _head_slices()
TOTAL_CLASSES = sum(CONTROLLER_SPEC.head_classes)


class SoftLabelsConfig(Config):
    """How the teacher's distributions are taken."""

    temperature: float = Field(default=2.0, gt=0, description="Distillation temperature T.")
    lanes: int = Field(default=64, ge=1, description="Episodes run side by side.")
    teacher: Literal["imitation", "rl"] = Field(
        default="imitation",
        description="Which teacher to distil: the imitation teacher, or the RL teacher "
        "(materialize rl_teacher first).",
    )


@dataclass(frozen=True)
class SoftLabelsManifest:
    teacher: str
    """The experiment whose teacher produced the labels."""
    training_set: str
    temperature: float
    head_classes: tuple[int, ...]
    shards: dict[str, tuple[str, ...]]
    frames: int
    teacher_kind: str = "imitation"
    """Which of the experiment's teachers: ``imitation`` or ``rl``."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> SoftLabelsManifest:
        data = json.loads(text)
        return cls(
            teacher=data["teacher"],
            training_set=data["training_set"],
            temperature=float(data["temperature"]),
            head_classes=tuple(data["head_classes"]),
            shards={split: tuple(names) for split, names in data["shards"].items()},
            frames=int(data["frames"]),
            teacher_kind=data.get("teacher_kind", "imitation"),
        )


@dataclass(frozen=True)
class SoftLabels:
    """Soft-label shards of one experiment, memory-mapped, aligned with its training set."""

    path: Path
    manifest: SoftLabelsManifest

    @classmethod
    def of(cls, experiment: ExperimentPaths) -> SoftLabels:
        path = experiment.soft_labels
        if not (path / SOFT_MANIFEST).is_file():
            raise FileNotFoundError(
                f"no soft labels for experiment {experiment.name!r} ({path}): "
                "materialize soft_labels"
            )
        return cls(path, SoftLabelsManifest.from_json((path / SOFT_MANIFEST).read_text()))

    @property
    def temperature(self) -> float:
        return self.manifest.temperature

    def shards(self, split: str) -> list[np.ndarray]:
        return [np.load(self.path / name, mmap_mode="r") for name in self.manifest.shards[split]]


def distilled_teacher(experiment: ExperimentPaths) -> TeacherCheckpoint:
    """The teacher whose soft labels the experiment's student learns from."""
    kind = SoftLabels.of(experiment).manifest.teacher_kind
    return TeacherCheckpoint.load(experiment.teacher_checkpoint(kind))


@dataclass
class SoftLabelResult:
    folder: Path
    frames: int
    seconds: float
    temperature: float


def build_soft_labels(
    experiment: ExperimentPaths,
    config: SoftLabelsConfig,
    progress: Callable[[int, int], None] | None = None,
) -> SoftLabelResult:
    """Write the teacher's distributions at the temperature for every training-set frame."""
    began = time.perf_counter()
    teacher = TeacherCheckpoint.load(experiment.teacher_checkpoint(config.teacher))
    dataset = TrainingSet.of(experiment)
    shards: dict[str, tuple[str, ...]] = {}
    frames = 0
    with atomic_folder(experiment.soft_labels) as building:
        for split in SPLITS:
            (building / split).mkdir(parents=True)
            outputs, names = [], []
            for index, shard in enumerate(dataset.manifest.splits[split].shards):
                names.append(f"{split}/soft-{index:05d}.npy")
                outputs.append(
                    np.lib.format.open_memmap(
                        building / names[-1], "w+", np.float16, (shard.frames, TOTAL_CLASSES)
                    )
                )
            shards[split] = tuple(names)
            reader = ChunkReader(dataset, split)
            frames += _label_split(
                teacher.policy, reader, outputs, config.temperature, config.lanes, progress
            )
            for output in outputs:
                output.flush()
        manifest = SoftLabelsManifest(
            teacher=experiment.name,
            training_set=teacher.contract.training_set,
            temperature=config.temperature,
            head_classes=tuple(CONTROLLER_SPEC.head_classes),
            shards=shards,
            frames=frames,
            teacher_kind=config.teacher,
        )
        (building / SOFT_MANIFEST).write_text(manifest.to_json())
    return SoftLabelResult(
        experiment.soft_labels, frames, time.perf_counter() - began, config.temperature
    )


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
