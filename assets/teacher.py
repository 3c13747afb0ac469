"""``teacher``: a behavioral-cloning policy trained on ``training_set``."""

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset
from pydantic import Field

from exphil_pipeline.orchestration.resources import ExphilStorage
from exphil_pipeline.training.report import head_accuracy_table, loss_curves_png, png_markdown
from exphil_pipeline.training.teacher_trainer import SCHEDULES, TeacherConfig, train
from models import BACKBONE_KINDS


class TeacherAssetConfig(Config):
    """Backbone, sizes and optimization of the teacher (see ``TeacherConfig``)."""

    name: str = Field(default="default", description="Folder under teachers/.")
    training_set: str = Field(default="default", description="Training set to learn from.")
    backbone: str = Field(default="gru", description=f"One of {', '.join(BACKBONE_KINDS)}.")
    hidden_dim: int = Field(default=128, ge=1)
    num_layers: int = Field(default=1, ge=1)
    window: int = Field(default=32, ge=1, description="Attention context in frames.")
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    periodic_frequencies: int = Field(
        default=0, ge=0, description="Periodic encodings per continuous feature (0: none)."
    )
    periodic_sigma: float = Field(default=3.0, gt=0, description="Their initial spread.")
    batch_size: int = Field(default=32, ge=1, description="Lanes per step (all ranks).")
    bptt: int = Field(default=64, ge=1, description="Truncated BPTT length in frames.")
    epochs: int = Field(default=2, ge=1)
    max_steps: int = Field(default=0, ge=0, description="Stop after this many steps (0: off).")
    learning_rate: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=1e-4, ge=0)
    grad_clip: float = Field(default=1.0, gt=0)
    schedule: str = Field(default="cosine", description=f"One of {', '.join(SCHEDULES)}.")
    warmup_steps: int = Field(default=20, ge=0)
    seed: int = 0
    device: str = Field(default="cpu", description="cpu or cuda (bf16 autocast on cuda).")
    bf16: bool = True
    previous_input_noise: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Share of frames whose previous input is taken from another frame.",
    )
    eval_max_frames: int = Field(default=200_000, ge=0)
    checkpoint_every: int = Field(default=200, ge=1)
    resume: bool = Field(default=True, description="Continue from last.pt of the same config.")

    def to_teacher_config(self) -> TeacherConfig:
        return TeacherConfig(**self.model_dump())


@asset(
    deps=["training_set"],
    group_name="training",
    description="A PyTorch policy (backbone + autoregressive controller head) trained by "
    "behavioral cloning; best.pt holds the lowest held-out loss, last.pt resumes training.",
)
def teacher(
    context: AssetExecutionContext, config: TeacherAssetConfig, storage: ExphilStorage
) -> MaterializeResult:
    """Train, evaluate each epoch on held-out games, keep the best checkpoint."""
    result = train(config.to_teacher_config(), storage.layout.home, log=context.log.info)
    png = loss_curves_png(result.curve, result.history, result.folder / "curves.png")
    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(result.folder)),
            "backbone": config.backbone,
            "parameters": result.parameters,
            "device": result.device,
            "steps": result.steps,
            "train_frames_per_s": round(result.frames_per_s, 1),
            "heldout_loss": round(result.best.get("loss", float("nan")), 4),
            "loss_curves": MetadataValue.md(png_markdown(png, "loss curves")),
            "heldout_accuracy": MetadataValue.md(head_accuracy_table(result.best)),
            "tensorboard": MetadataValue.path(str(result.folder / "tensorboard")),
        }
    )
