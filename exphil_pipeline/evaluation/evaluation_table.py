"""The evaluation table: teacher, student FP32 and student INT8 side by side.

Definitions (all on held-out frames):

- NLL: sum over heads of the teacher-forced negative log-likelihood of the human's action
  (PyTorch models only; a quantized graph only exposes its own sampling path);
- accuracy: for the teacher, teacher-forced top-1 per head; for the ONNX artifacts, the
  classes the graph itself picks at temperature 0 (what the bot would press), per head and
  for the whole action;
- closed loop: whole-action accuracy when each episode is played frame by frame at
  temperature 0 with the model's own last choice as the previous input, as in play
  (:mod:`exphil_pipeline.evaluation.closed_loop`); the gap to the action accuracy is what
  copying its own last input costs the model;
- agreement: per-head match with the teacher's top-1 choice, averaged over heads;
- latency: one step on one thread (ONNX ``session.run`` for artifacts, ``Policy.step`` in
  PyTorch for the teacher unless it was exported).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from exphil_pipeline.distillation.labelled_frames import EvaluationFrames, evaluation_frames
from exphil_pipeline.distillation.soft_labels import HEAD_SLICES
from exphil_pipeline.distillation.student import StudentCheckpoint
from exphil_pipeline.evaluation.closed_loop import (
    FrameStep,
    closed_loop_accuracy,
    onnx_frame_step,
    split_episodes,
    torch_frame_step,
)
from exphil_pipeline.evaluation.measurements import latency_us, run_artifact, torch_step_latency
from exphil_pipeline.storage.layout import ExperimentPaths
from exphil_pipeline.training.report import png_markdown
from exphil_pipeline.training.teacher_checkpoint import TeacherCheckpoint
from exphil_pipeline.training.training_set import TrainingSet
from runtime.controller_spec import CONTROLLER_SPEC
from runtime.onnx_policy import OnnxPolicy

MAIN_X = CONTROLLER_SPEC.heads.index("main_x")


@dataclass
class EvaluationReport:
    table: str
    per_head: str
    confusion_markdown: str
    folder: Path


def _confusion_png(human: np.ndarray, chosen: np.ndarray, path: Path) -> bytes:
    classes = CONTROLLER_SPEC.stick_buckets
    counts = np.zeros((classes, classes))
    np.add.at(counts, (human, chosen), 1)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    figure = Figure(figsize=(5.5, 5))
    axis = figure.subplots()
    image = axis.imshow(rates, cmap="viridis", vmin=0, vmax=1)
    axis.set_xlabel("INT8 student's class (temperature 0)")
    axis.set_ylabel("human's class")
    axis.set_title("main stick x: share of each human class")
    figure.colorbar(image, ax=axis, fraction=0.046)
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=90)
    return path.read_bytes()


def _teacher_row(
    experiment: ExperimentPaths,
    frames: EvaluationFrames,
    played: Callable[[Callable[[], FrameStep]], float],
) -> dict:
    teacher = TeacherCheckpoint.best(experiment)
    history = json.loads(experiment.teacher_history.read_text())
    evaluated = [e["heldout"] for e in history["epochs"] if e["heldout"]["frames"]]
    best = min(evaluated, key=lambda e: e["loss"]) if evaluated else {}
    onnx = experiment.teacher_onnx
    return {
        "model": f"teacher ({teacher.policy.config.backbone})",
        "frames": best.get("frames", 0),
        "nll": best.get("loss", float("nan")),
        "accuracy": best.get("accuracy", {}),
        "action": best.get("action_accuracy"),
        "closed_loop": played(lambda: torch_frame_step(teacher.policy)),
        "agreement": 1.0,
        "parameters": sum(p.numel() for p in teacher.policy.parameters()),
        "bytes": experiment.teacher_best.stat().st_size,
        "latency": (
            latency_us(onnx, frames.features)
            if onnx.exists()
            else torch_step_latency(teacher.policy)
        ),
    }


def _artifact_row(
    label: str,
    path: Path,
    student: StudentCheckpoint,
    frames: EvaluationFrames,
    played: Callable[[Callable[[], FrameStep]], float],
) -> tuple[dict, np.ndarray]:
    """The row of one ONNX artifact, and the classes it chose on every frame."""
    chosen = run_artifact(path, frames.features).classes
    correct = chosen == frames.targets
    teacher_choice = np.stack(
        [frames.soft[:, columns].astype(np.float32).argmax(-1) for columns in HEAD_SLICES], axis=1
    )
    policy = OnnxPolicy.load(path)
    row = {
        "model": label,
        "frames": len(frames.features),
        "nll": student.metrics.student_loss if "FP32" in label else None,
        "accuracy": {h: float(correct[:, i].mean()) for i, h in enumerate(CONTROLLER_SPEC.heads)},
        "action": float(correct.all(axis=1).mean()),
        "closed_loop": played(lambda: onnx_frame_step(policy)),
        "agreement": float((chosen == teacher_choice).mean()),
        "parameters": sum(p.numel() for p in student.policy.parameters()),
        "bytes": path.stat().st_size,
        "latency": latency_us(path, frames.features),
    }
    return row, chosen


def evaluation_report(experiment: ExperimentPaths, eval_frames: int) -> EvaluationReport:
    """Teacher, student FP32 and student INT8 of ``experiment`` on its evaluation frames;
    writes ``evaluation.md`` and the confusion image beside the artifacts."""
    student = StudentCheckpoint.of(experiment)
    frames = evaluation_frames(experiment, eval_frames)
    dataset = TrainingSet.of(experiment)

    def played(new_step: Callable[[], FrameStep]) -> float:
        episodes = split_episodes(dataset, frames.split, eval_frames)
        return closed_loop_accuracy(new_step, episodes).all_heads

    rows = [_teacher_row(experiment, frames, played)]
    fp32, _ = _artifact_row("student FP32", experiment.policy_fp32, student, frames, played)
    int8, chosen = _artifact_row("student INT8", experiment.policy_int8, student, frames, played)
    rows += [fp32, int8]
    png = _confusion_png(
        frames.targets[:, MAIN_X], chosen[:, MAIN_X], experiment.main_stick_confusion
    )
    table = _summary_table(rows, frames.split)
    per_head = _per_head_table(rows)
    experiment.evaluation_table.write_text(table + "\n\n" + per_head + "\n")
    return EvaluationReport(
        table, per_head, png_markdown(png, "main stick confusion"), experiment.artifacts
    )


def _cell(value: float | None, digits: int = 4) -> str:
    return "—" if value is None or value != value else f"{value:.{digits}f}"


def _summary_table(rows: list[dict], split: str) -> str:
    lines = [
        f"| model | {split} frames | NLL | mean head accuracy | action accuracy "
        "| closed-loop action accuracy | agreement with teacher | parameters | file bytes "
        "| p50 µs | p99 µs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        accuracy = np.mean(list(row["accuracy"].values())) if row["accuracy"] else None
        lines.append(
            f"| {row['model']} | {row['frames']:,} | {_cell(row['nll'], 3)} | {_cell(accuracy)} "
            f"| {_cell(row['action'])} | {_cell(row['closed_loop'])} "
            f"| {_cell(row['agreement'])} | {row['parameters']:,} "
            f"| {row['bytes']:,} | {row['latency']['p50_us']} | {row['latency']['p99_us']} |"
        )
    return "\n".join(lines)


def _per_head_table(rows: list[dict]) -> str:
    header = "| head | " + " | ".join(r["model"] for r in rows) + " |"
    lines = [header, "|---|" + "---:|" * len(rows)]
    for head in CONTROLLER_SPEC.heads:
        cells = " | ".join(_cell(r["accuracy"].get(head)) for r in rows)
        lines.append(f"| {head} | {cells} |")
    return "\n".join(lines)
