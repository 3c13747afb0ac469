"""``soft_labels`` and ``student``: distilling the experiment's teacher into a small MLP."""

from collections.abc import Iterator

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)

from exphil_pipeline.distillation.soft_labels import SoftLabelsConfig, build_soft_labels
from exphil_pipeline.distillation.student import StudentConfig, StudentMetrics, train_student
from exphil_pipeline.orchestration.partitions import experiments
from exphil_pipeline.orchestration.resources import ExphilStorage
from runtime.controller_spec import CONTROLLER_SPEC

# On every head the student must keep this share of the teacher's top-1 accuracy (both
# measured against the human's recorded action on held-out frames).
MIN_KEPT_ACCURACY = 0.97


@asset(
    deps=["teacher", "rl_teacher"],
    partitions_def=experiments,
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

    experiment = storage.layout.experiment(context.partition_key)
    result = build_soft_labels(experiment, config, progress)
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


def agreement_table(metrics: StudentMetrics) -> str:
    kept = metrics.kept_accuracy()
    lines = [
        "| head | student accuracy | teacher accuracy | kept | agreement with teacher |",
        "|---|---:|---:|---:|---:|",
    ]
    for head in CONTROLLER_SPEC.heads:
        lines.append(
            f"| {head} | {metrics.student_accuracy[head]:.4f} "
            f"| {metrics.teacher_accuracy[head]:.4f} | {kept[head]:.4f} "
            f"| {metrics.agreement_with_teacher[head]:.4f} |"
        )
    return "\n".join(lines)


@asset(
    deps=["soft_labels"],
    partitions_def=experiments,
    group_name="distillation",
    description="A small MLP policy trained on alpha*T^2*KL(soft) + (1-alpha)*CE(hard); "
    "student.pt carries the teacher's policy contract.",
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
    context: AssetExecutionContext, config: StudentConfig, storage: ExphilStorage
) -> Iterator[MaterializeResult | AssetCheckResult]:
    experiment = storage.layout.experiment(context.partition_key)
    result = train_student(experiment, config, log=context.log.info)
    metrics = result.checkpoint.metrics
    kept = metrics.kept_accuracy()
    worst = min(kept, key=kept.get)
    yield MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(result.folder)),
            "parameters": result.parameters,
            "train_frames_per_s": round(result.frames_per_s, 1),
            "evaluated_on": f"{metrics.frames} {result.split_evaluated} frames",
            "min_kept_accuracy": round(kept[worst], 4),
            "min_teacher_agreement": round(min(metrics.agreement_with_teacher.values()), 4),
            "student_loss": round(metrics.student_loss, 4),
            "per_head": MetadataValue.md(agreement_table(metrics)),
        },
    )
    passed = kept[worst] >= MIN_KEPT_ACCURACY
    description = f"lowest share kept: {worst} {kept[worst]:.4f} (gate {MIN_KEPT_ACCURACY})"
    if not passed:
        description += (
            "; train the student longer or wider (student.epochs, student.hidden_sizes), or "
            "on more games; the per_head table in the student's metadata shows which heads lag"
        )
    yield AssetCheckResult(
        check_name="keeps_teacher_accuracy",
        passed=passed,
        description=description,
        metadata={"min_kept": kept[worst], "head": worst},
    )
