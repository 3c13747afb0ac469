"""A saved teacher (``best.pt`` or ``last.pt``): its policy, config and policy contract."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from exphil_pipeline.storage.layout import ExperimentPaths
from exphil_pipeline.training.policy_contract import PolicyContract
from exphil_pipeline.training.teacher_config import TeacherConfig
from models import Policy


@dataclass(frozen=True)
class TeacherCheckpoint:
    """A saved teacher: its policy, the config it was trained with and its contract."""

    policy: Policy
    config: TeacherConfig
    contract: PolicyContract
    path: Path

    @classmethod
    def load(cls, path: Path) -> TeacherCheckpoint:
        if not path.is_file():
            raise FileNotFoundError(f"no teacher checkpoint {path}: materialize teacher")
        checkpoint = torch.load(path, weights_only=False, map_location="cpu")
        return cls(
            policy=Policy.from_checkpoint(checkpoint["policy"]),
            config=TeacherConfig(**checkpoint["config"]),
            contract=PolicyContract.from_checkpoint(checkpoint, path),
            path=path,
        )

    @classmethod
    def best(cls, experiment: ExperimentPaths) -> TeacherCheckpoint:
        return cls.load(experiment.teacher_best)
