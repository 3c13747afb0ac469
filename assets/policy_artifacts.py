"""``policy_onnx``, ``policy_int8`` and ``evaluation``: the artifacts players run, gated."""

import json
import shutil
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from exphil_pipeline.artifacts.onnx_export import export_policy, manifest_for, write_manifest
from exphil_pipeline.artifacts.quantization import METHODS, quantize_candidates
from exphil_pipeline.distillation.labelled_frames import evaluation_frames
from exphil_pipeline.distillation.soft_labels import distilled_teacher
from exphil_pipeline.distillation.student import StudentCheckpoint
from exphil_pipeline.evaluation.evaluation_table import EvaluationConfig, evaluation_report
from exphil_pipeline.evaluation.measurements import (
    action_agreement,
    latency_us,
    pytorch_path_logits,
    run_artifact,
)
from exphil_pipeline.orchestration.partitions import experiments
from exphil_pipeline.orchestration.resources import ExphilStorage
from runtime.artifact_manifest import read_manifest

MAX_LOGIT_DIFFERENCE = 1e-4
MIN_INT8_AGREEMENT = 0.99
CALIBRATION_FRAMES = 500


class ArtifactConfig(Config):
    eval_frames: int = Field(default=2000, ge=1, description="Held-out frames for the gates.")


class PolicyOnnxConfig(ArtifactConfig):
    temperature: float = Field(default=1.0, ge=0, description="Sampling temperature to ship.")
    export_teacher: bool = Field(
        default=False, description="Also export the teacher as a single-step graph."
    )


@asset(
    deps=["student"],
    partitions_def=experiments,
    group_name="artifacts",
    description="FP32 ONNX single-step graph of the student (sampling inside the graph, "
    "manifest from the checkpoint's policy contract in metadata_props and beside it); "
    "optionally the teacher's too.",
    check_specs=[
        AssetCheckSpec(
            "onnx_matches_pytorch",
            asset="policy_onnx",
            blocking=True,
            description=f"ONNX FP32 logits within {MAX_LOGIT_DIFFERENCE} of PyTorch on held-out "
            "frames.",
        )
    ],
)
def policy_onnx(
    context: AssetExecutionContext, config: PolicyOnnxConfig, storage: ExphilStorage
) -> Iterator[MaterializeResult | AssetCheckResult]:
    experiment = storage.layout.experiment(context.partition_key)
    student = StudentCheckpoint.of(experiment)
    contract = student.contract
    path = experiment.policy_fp32
    metrics = {f"agreement_{k}": v for k, v in student.metrics.agreement_with_teacher.items()}
    manifest = manifest_for(
        student.policy,
        contract.character,
        contract.frame_delay,
        config.temperature,
        "fp32",
        metrics,
        contract.frame_delay_range,
    )
    export_policy(student.policy, path, manifest)
    frames = evaluation_frames(experiment, config.eval_frames)
    outputs = run_artifact(path, frames.features, temperature=0.0)
    reference = pytorch_path_logits(student.policy, frames.features, outputs.classes)
    difference = float(np.abs(outputs.logits - reference).max())
    write_manifest(path, replace(manifest, metrics={**metrics, "max_logit_diff": difference}))
    exported = {"student": str(path)}
    if config.export_teacher:
        teacher = distilled_teacher(experiment)
        export_policy(
            teacher.policy,
            experiment.teacher_onnx,
            manifest_for(
                teacher.policy,
                teacher.contract.character,
                teacher.contract.frame_delay,
                config.temperature,
                frame_delay_range=teacher.contract.frame_delay_range,
            ),
        )
        exported["teacher"] = str(experiment.teacher_onnx)
    context.log.info(f"exported {exported}; max |logit diff| {difference:.2e}")
    yield MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(path)),
            "artifacts": MetadataValue.json(exported),
            "bytes": path.stat().st_size,
            "max_logit_diff": difference,
            "latency_us": MetadataValue.json(latency_us(path, frames.features)),
            "manifest": MetadataValue.json(json.loads(read_manifest(path).to_json())),
        },
    )
    passed = difference <= MAX_LOGIT_DIFFERENCE
    description = f"largest logit difference {difference:.2e} (gate {MAX_LOGIT_DIFFERENCE})"
    if not passed:
        description += (
            "; the exported graph does not compute what the student checkpoint does: a bug "
            "in the export, not in the data (report it with student.pt)"
        )
    yield AssetCheckResult(
        check_name="onnx_matches_pytorch",
        passed=passed,
        description=description,
        metadata={"max_logit_diff": difference, "frames": len(frames.features)},
    )


@asset(
    deps=["policy_onnx"],
    partitions_def=experiments,
    group_name="artifacts",
    description="INT8 student: every candidate of exphil_pipeline.artifacts.quantization "
    "measured, the smallest one that holds the agreement gate kept as policy_int8.onnx.",
    check_specs=[
        AssetCheckSpec(
            "int8_agrees_with_fp32",
            asset="policy_int8",
            blocking=True,
            description=f"Same action as FP32 on >= {MIN_INT8_AGREEMENT:.0%} of held-out frames "
            "at temperature 0.",
        )
    ],
)
def policy_int8(
    context: AssetExecutionContext, config: ArtifactConfig, storage: ExphilStorage
) -> Iterator[MaterializeResult | AssetCheckResult]:
    experiment = storage.layout.experiment(context.partition_key)
    fp32 = experiment.policy_fp32
    frames = evaluation_frames(experiment, config.eval_frames)
    calibration = frames.features[:CALIBRATION_FRAMES]
    targets = {method: experiment.int8_candidate(method) for method in METHODS}
    candidates = quantize_candidates(fp32, targets, calibration)
    reference = run_artifact(fp32, frames.features).classes
    report = {}
    for method, path in candidates.items():
        agreement = action_agreement(run_artifact(path, frames.features).classes, reference)
        report[method] = {
            "agreement_with_fp32": agreement["action"],
            "bytes": path.stat().st_size,
            **latency_us(path, frames.features),
        }
        context.log.info(f"{method}: {report[method]}")
    best = choose_candidate(report)
    final = experiment.policy_int8
    shutil.copyfile(candidates[best], final)
    manifest = read_manifest(candidates[best])
    agreement = report[best]["agreement_with_fp32"]
    write_manifest(
        final, replace(manifest, metrics={**manifest.metrics, "agreement_with_fp32": agreement})
    )
    yield MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(final)),
            "method": best,
            "bytes": final.stat().st_size,
            "candidates": MetadataValue.md(_candidates_table(report, best)),
            "agreement_with_fp32": agreement,
            "p99_us": report[best]["p99_us"],
        },
    )
    passed = agreement >= MIN_INT8_AGREEMENT
    description = (
        f"same action as FP32 on {agreement:.4f} of held-out frames with {best} "
        f"(gate {MIN_INT8_AGREEMENT})"
    )
    if not passed:
        description += (
            "; no INT8 candidate holds it (the candidates table compares them): play "
            "policy_fp32.onnx, which passed its own check, or distill a student that quantizes "
            "better (more student epochs, wider layers) and export again"
        )
    yield AssetCheckResult(
        check_name="int8_agrees_with_fp32",
        passed=passed,
        description=description,
        metadata={"agreement": agreement, "method": best},
    )


def choose_candidate(report: dict[str, dict]) -> str:
    """The smallest candidate that holds the agreement gate (the most int8 in it), the faster
    of equals; when none holds it, the one agreeing most with FP32 (the gate then fails)."""
    holding = [m for m in report if report[m]["agreement_with_fp32"] >= MIN_INT8_AGREEMENT]
    if holding:
        return min(holding, key=lambda m: (report[m]["bytes"], report[m]["p99_us"]))
    return max(report, key=lambda m: (report[m]["agreement_with_fp32"], -report[m]["p99_us"]))


def _candidates_table(report: dict, best: str) -> str:
    lines = [
        "| method | same action as FP32 | bytes | p50 µs | p99 µs | kept |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for method, row in report.items():
        kept = "yes" if method == best else ""
        lines.append(
            f"| {method} | {row['agreement_with_fp32']:.4f} | {row['bytes']:,} "
            f"| {row['p50_us']} | {row['p99_us']} | {kept} |"
        )
    return "\n".join(lines)


@asset(
    deps=["policy_int8", "teacher"],
    partitions_def=experiments,
    group_name="artifacts",
    description="Teacher vs student FP32 vs student INT8 on held-out frames (NLL in bits per "
    "frame, accuracy, closed-loop accuracy, button press and change F1, main-stick F1, "
    "agreement, size, latency; per character and per matchup; main-stick confusion image) "
    "and in simulated games against scripted:3 (win rate, net stocks per minute).",
)
def evaluation(
    context: AssetExecutionContext, config: EvaluationConfig, storage: ExphilStorage
) -> MaterializeResult:
    experiment = storage.layout.experiment(context.partition_key)
    report = evaluation_report(experiment, config)
    context.log.info("\n" + report.table)
    return MaterializeResult(
        metadata={
            "table": MetadataValue.md(report.table),
            "per_head_accuracy": MetadataValue.md(report.per_head),
            "per_button_f1": MetadataValue.md(report.per_button_f1),
            "per_character_and_matchup": MetadataValue.md(report.breakdown),
            "metrics": MetadataValue.json(report.metrics),
            "main_stick_confusion": MetadataValue.md(report.confusion_markdown),
            "outcomes": MetadataValue.json(report.outcomes),
            "path": MetadataValue.path(str(report.folder)),
        },
    )
