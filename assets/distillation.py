"""``soft_labels`` and ``student``: distilling the teacher into a small MLP."""

from collections.abc import Iterator

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetSpec,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
    multi_asset,
)
from pydantic import Field

from exphil_pipeline.distillation.student import StudentConfig, build_soft_labels, train_student
from exphil_pipeline.orchestration.resources import ExphilStorage
from runtime.controller_spec import CONTROLLER_SPEC

# On every head the student must keep this share of the teacher's top-1 accuracy (both
# measured against the human's recorded action on held-out frames).
MIN_KEPT_ACCURACY = 0.97


class SoftLabelsConfig(Config):
    teacher: str = Field(default="default", description="Teacher under teachers/.")
    temperature: float = Field(default=2.0, gt=0, description="Distillation temperature T.")
    lanes: int = Field(default=64, ge=1, description="Episodes run side by side.")


@asset(
    deps=["teacher"],
    group_name="distillation",
    description="The teacher's per-head distributions at temperature T for every training "
    "frame (whole episodes, state carried), float16 shards aligned with training_set.",
)
def soft_labels(
    context: AssetExecutionContext, config: SoftLabelsConfig, storage: ExphilStorage
) -> MaterializeResult:
    def progress(done: int, total: int) -> None:
        if total and (done == total or done % max(1, total // 5) < 512):
            context.log.info(f"{done}/{total} frames labelled")

    result = build_soft_labels(
        storage.layout.home, config.teacher, config.temperature, config.lanes, progress
    )
    stored = sum(p.stat().st_size for p in result.folder.rglob("*.npy"))
    return MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(result.folder)),
            "frames": result.frames,
            "temperature": result.temperature,
            "bytes": stored,
            "seconds": round(result.seconds, 3),
            "frames_per_s": round(result.frames / max(result.seconds, 1e-9), 1),
        }
    )


class StudentAssetConfig(Config):
    name: str = Field(default="default", description="Folder under students/.")
    teacher: str = Field(default="default", description="Teacher whose soft labels to learn.")
    hidden_sizes: list[int] = Field(default=[64, 64], description="MLP widths, one per layer.")
    periodic_frequencies: int = Field(
        default=0, ge=0, description="Periodic encodings per continuous feature (0: none)."
    )
    periodic_sigma: float = Field(default=3.0, gt=0, description="Their initial spread.")
    alpha: float = Field(default=0.7, ge=0.0, le=1.0, description="Weight of the soft term.")
    epochs: int = Field(default=3, ge=1)
    batch_size: int = Field(default=512, ge=1)
    learning_rate: float = Field(default=2e-3, gt=0)
    weight_decay: float = Field(default=1e-4, ge=0)
    seed: int = 0
    previous_input_noise: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Share of frames whose previous input is taken from another frame.",
    )
    eval_max_frames: int = Field(default=50_000, ge=0)

    def to_student_config(self) -> StudentConfig:
        return StudentConfig(**{**self.model_dump(), "hidden_sizes": tuple(self.hidden_sizes)})


def kept_accuracy(metrics: dict) -> dict[str, float]:
    """Per head: student accuracy / teacher accuracy (1.0 where the teacher scores 0)."""
    student, teacher = metrics["student_accuracy"], metrics["teacher_accuracy"]
    return {h: student[h] / teacher[h] if teacher[h] else 1.0 for h in CONTROLLER_SPEC.heads}


def agreement_table(metrics: dict) -> str:
    kept = kept_accuracy(metrics)
    lines = [
        "| head | student accuracy | teacher accuracy | kept | agreement with teacher |",
        "|---|---:|---:|---:|---:|",
    ]
    for head in CONTROLLER_SPEC.heads:
        lines.append(
            f"| {head} | {metrics['student_accuracy'][head]:.4f} "
            f"| {metrics['teacher_accuracy'][head]:.4f} | {kept[head]:.4f} "
            f"| {metrics['agreement_with_teacher'][head]:.4f} |"
        )
    return "\n".join(lines)


@multi_asset(
    specs=[
        AssetSpec(
            "student",
            deps=["soft_labels"],
            group_name="distillation",
            description="A small MLP policy trained on alpha*T^2*KL(soft) + (1-alpha)*CE(hard).",
        )
    ],
    check_specs=[
        AssetCheckSpec(
            "keeps_teacher_accuracy",
            asset="student",
            blocking=True,
            description=f"On every head the student keeps >= {MIN_KEPT_ACCURACY:.0%} of the "
            "teacher's held-out top-1 accuracy.",
        )
    ],
)
def student(
    context: AssetExecutionContext, config: StudentAssetConfig, storage: ExphilStorage
) -> Iterator[MaterializeResult | AssetCheckResult]:
    result = train_student(storage.layout.home, config.to_student_config(), log=context.log.info)
    metrics = result.metrics
    agreement = metrics["agreement_with_teacher"]
    kept = kept_accuracy(metrics)
    worst = min(kept, key=kept.get)
    yield MaterializeResult(
        asset_key="student",
        metadata={
            "path": MetadataValue.path(str(result.folder)),
            "parameters": result.parameters,
            "train_frames_per_s": round(result.frames_per_s, 1),
            "evaluated_on": f"{metrics['frames']} {result.split_evaluated} frames",
            "min_kept_accuracy": round(kept[worst], 4),
            "min_teacher_agreement": round(min(agreement.values()), 4),
            "student_loss": round(metrics["student_loss"], 4),
            "per_head": MetadataValue.md(agreement_table(metrics)),
        },
    )
    yield AssetCheckResult(
        asset_key="student",
        check_name="keeps_teacher_accuracy",
        passed=kept[worst] >= MIN_KEPT_ACCURACY,
        description=f"lowest share kept: {worst} {kept[worst]:.4f}",
        metadata={"min_kept": kept[worst], "head": worst},
    )
