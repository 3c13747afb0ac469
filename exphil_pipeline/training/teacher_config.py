"""How a teacher is built and trained: the one config of the ``teacher`` stage."""

from __future__ import annotations

from typing import Any

from dagster import Config
from pydantic import Field, field_validator

from exphil_pipeline.training.training_set_manifest import TrainingSetManifest
from models import BACKBONE_KINDS, PolicyConfig

SCHEDULES = ("cosine", "constant")

# Fields a run may change and still resume from last.pt: how long it runs, how it is
# evaluated and checkpointed, and where it runs. Any other field changes the model or the
# data it sees, so resuming with it changed would mix two different runs.
RESUMABLE_FIELDS = frozenset(
    {"epochs", "max_steps", "eval_max_frames", "checkpoint_every", "resume", "device", "bf16"}
)


class TeacherConfig(Config):
    """Backbone, sizes and optimization of a behavioral-cloning teacher."""

    backbone: str = Field(default="gru", description=f"One of {', '.join(BACKBONE_KINDS)}.")
    hidden_dim: int = Field(default=128, ge=1, description="Backbone width.")
    num_layers: int = Field(default=1, ge=1, description="Backbone depth.")
    window: int = Field(default=32, ge=1, description="Attention context in frames.")
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    periodic_frequencies: int = Field(
        default=0,
        ge=0,
        description="Periodic encodings per continuous feature (models.feature_input; 0: none).",
    )
    periodic_sigma: float = Field(default=3.0, gt=0, description="Their initial spread.")
    batch_size: int = Field(
        default=32, ge=1, description="Lanes per optimizer step (across all ranks under DDP)."
    )
    bptt: int = Field(
        default=64,
        ge=1,
        description="Frames per chunk; state is carried across chunks, gradients stop at edges.",
    )
    epochs: int = Field(default=2, ge=1, description="Passes over the training episodes.")
    max_steps: int = Field(default=0, ge=0, description="Stop after this many steps (0: off).")
    learning_rate: float = Field(default=1e-3, gt=0, description="AdamW learning rate.")
    weight_decay: float = Field(default=1e-4, ge=0, description="AdamW weight decay.")
    grad_clip: float = Field(default=1.0, gt=0, description="Gradient-norm clipping.")
    schedule: str = Field(
        default="cosine",
        description=f"One of {', '.join(SCHEDULES)}: linear warm-up then cosine decay, or flat.",
    )
    warmup_steps: int = Field(default=20, ge=0, description="Linear warm-up length.")
    seed: int = Field(default=0, description="Weights, data order and dropout follow from it.")
    device: str = Field(default="cpu", description="cpu or cuda (bf16 autocast on cuda).")
    bf16: bool = Field(default=True, description="Autocast the forward pass to bf16 on CUDA.")
    previous_input_noise: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Share of training frames whose previous input is taken from another frame "
        "(exphil_pipeline.training.previous_input_noise); evaluation never shuffles.",
    )
    eval_max_frames: int = Field(
        default=200_000, ge=0, description="Held-out frames evaluated per epoch (0: all)."
    )
    checkpoint_every: int = Field(
        default=200, ge=1, description="Steps between last.pt writes (also at each epoch end)."
    )
    resume: bool = Field(
        default=True,
        description="Continue from last.pt when it exists; refused when a field other than "
        "run length, evaluation or device changed.",
    )

    @field_validator("schedule")
    @classmethod
    def _known_schedule(cls, value: str) -> str:
        if value not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {value!r}")
        return value

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if value not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda', got {value!r}")
        return value

    @field_validator("backbone")
    @classmethod
    def _known_backbone(cls, value: str) -> str:
        if value not in BACKBONE_KINDS:
            raise ValueError(f"backbone must be one of {BACKBONE_KINDS}, got {value!r}")
        return value

    def resume_conflicts(self, saved: dict[str, Any]) -> list[str]:
        """Fields that differ from the config ``saved`` with last.pt and forbid resuming."""
        current = self.model_dump()
        return sorted(
            name
            for name, value in current.items()
            if name not in RESUMABLE_FIELDS and saved.get(name) != value
        )

    def policy_config(self, manifest: TrainingSetManifest) -> PolicyConfig:
        return manifest.policy_config(
            max_embedding_dim=16,
            backbone=self.backbone,
            hidden_dim=self.hidden_dim,
            num_layers=self.num_layers,
            window=self.window,
            dropout=self.dropout,
            periodic_frequencies=self.periodic_frequencies,
            periodic_sigma=self.periodic_sigma,
        )
