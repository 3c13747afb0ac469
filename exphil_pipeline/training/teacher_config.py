"""How a teacher is built and trained: the one config of the ``teacher`` stage."""

from __future__ import annotations

from typing import Any

from dagster import Config
from pydantic import Field, field_validator

from exphil_pipeline.training.losses import HeadLossOptions
from exphil_pipeline.training.optimization import SCHEDULES, known_schedule
from exphil_pipeline.training.training_set_manifest import TrainingSetManifest
from models import BACKBONE_KINDS, PolicyConfig

# Fields a run may change and still resume from last.pt: how long it runs (early stopping
# included: it only reads the held-out history), how it is evaluated, checkpointed and
# reported, and where it runs. Any other field changes the model, its objective, its
# optimization or the data it sees (the EMA decay changes which weights are evaluated and
# kept), so resuming with it changed would mix two different runs.
RESUMABLE_FIELDS = frozenset(
    {
        "epochs",
        "max_steps",
        "early_stopping_patience",
        "eval_max_frames",
        "checkpoint_every",
        "progress_every_s",
        "resume",
        "device",
        "bf16",
    }
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
    head_mlp_dim: int = Field(
        default=128,
        ge=1,
        description="Hidden width of each group of the autoregressive controller head (the "
        "buttons, then each stick axis and the shoulder: six groups). The head's first layer "
        "is hidden_dim x 6 x head_mlp_dim, more than a 512-wide backbone layer at 128.",
    )
    batch_size: int = Field(
        default=32, ge=1, description="Lanes per chunk (across all ranks under DDP)."
    )
    bptt: int = Field(
        default=64,
        ge=1,
        description="Frames per chunk; state is carried across chunks, gradients stop at edges.",
    )
    grad_accumulation: int = Field(
        default=1,
        ge=1,
        description="Consecutive chunks whose gradients are summed into one optimizer step "
        "(each chunk's loss divided by their number; the state is carried between them as "
        "always): a step sees that many times the frames at one chunk's memory. A step "
        "(max_steps, warmup_steps, checkpoint_every) is one optimizer step; an epoch's last "
        "step takes the chunks left.",
    )
    epochs: int = Field(default=2, ge=1, description="Passes over the training episodes.")
    max_steps: int = Field(default=0, ge=0, description="Stop after this many steps (0: off).")
    early_stopping_patience: int = Field(
        default=0,
        ge=0,
        description="Stop after this many epochs in a row without a lower held-out loss "
        "(0: off). Each history record carries epochs_since_best, history.json stopped_early; "
        "needs held-out games.",
    )
    learning_rate: float = Field(default=1e-3, gt=0, description="AdamW learning rate.")
    weight_decay: float = Field(default=1e-4, ge=0, description="AdamW weight decay.")
    grad_clip: float = Field(default=1.0, gt=0, description="Gradient-norm clipping.")
    schedule: str = Field(
        default="cosine",
        description=f"One of {', '.join(SCHEDULES)} (exphil_pipeline.training.optimization): "
        "linear warm-up then cosine decay to 0, linear warm-up then flat, or torch's "
        "OneCycleLR (lr/25 up to lr over the warm-up, down to lr/250000, beta1 cycling).",
    )
    warmup_steps: int = Field(
        default=20, ge=0, description="Warm-up length in optimizer steps (0: none)."
    )
    ema_decay: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Keep an exponential moving average of the weights with this decay per "
        "optimizer step (0: off; 0.999 averages over ~1000 steps, reached after a warm-up "
        "that starts at 0.1, see training/optimization.py). When on, held-out evaluation, "
        "early stopping and best.pt use the averaged weights; last.pt holds both.",
    )
    label_smoothing_sticks: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Label smoothing of the four stick-axis heads (main_x, main_y, c_x, c_y): "
        "that share of each target is spread evenly over all buckets, so a policy sampled at "
        "temperature 1 picks a random bucket about that often.",
    )
    label_smoothing_shoulder: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="Label smoothing of the shoulder head."
    )
    label_smoothing_buttons: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Label smoothing of the eight button heads. Keep 0 unless measured: "
        "buttons are rarely pressed, and smoothed bots press rare buttons (taunts).",
    )
    button_focal_gamma: float = Field(
        default=0.0,
        ge=0.0,
        description="Focal loss on the button heads: each frame's loss times (1 - p)^gamma, "
        "p the probability of the recorded state, so frames already right count less "
        "(0: plain cross-entropy; 2 is usual).",
    )
    button_positive_weight: float = Field(
        default=1.0,
        gt=0.0,
        description="Weight of frames where a button is pressed in the button heads' loss "
        "(> 1 counters rare presses and makes the policy press more; 1: unweighted).",
    )
    seed: int = Field(default=0, description="Weights, data order and dropout follow from it.")
    device: str = Field(default="cpu", description="cpu or cuda (bf16 autocast on cuda).")
    bf16: bool = Field(default=True, description="Autocast the forward pass to bf16 on CUDA.")
    mirror_probability: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Share of training episodes mirrored left/right each epoch "
        "(exphil_pipeline.training.mirror; frames on asymmetric stages stay as they are).",
    )
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
    progress_every_s: float = Field(
        default=30.0,
        ge=0.0,
        description="Seconds between progress lines in the log (step/total, steps/s, "
        "non-padding frames/s, time left in the epoch and the run); 0: every step.",
    )
    resume: bool = Field(
        default=True,
        description="Continue from last.pt when it exists; refused when a field other than "
        "run length, early stopping, evaluation, logging or device changed.",
    )

    @field_validator("schedule")
    @classmethod
    def _known_schedule(cls, value: str) -> str:
        return known_schedule(value)

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
        """Fields that differ from the config ``saved`` with last.pt and forbid resuming.
        A field ``saved`` lacks counts as its default: last.pt predates the field, and the
        run behaved as the default does."""
        fields = type(self).model_fields
        return sorted(
            name
            for name, value in self.model_dump().items()
            if name not in RESUMABLE_FIELDS
            and saved.get(name, fields[name].get_default(call_default_factory=True)) != value
        )

    def loss_options(self) -> HeadLossOptions:
        return HeadLossOptions.by_group(
            sticks=self.label_smoothing_sticks,
            shoulder=self.label_smoothing_shoulder,
            buttons=self.label_smoothing_buttons,
            button_focal_gamma=self.button_focal_gamma,
            button_positive_weight=self.button_positive_weight,
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
            head_mlp_dim=self.head_mlp_dim,
        )
