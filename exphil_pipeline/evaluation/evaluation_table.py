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
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from exphil_pipeline.artifacts.quantization import latency_us, run_artifact
from exphil_pipeline.distillation.student import (
    HEAD_SLICES,
    TeacherRun,
    evaluation_frames,
    load_student,
)
from exphil_pipeline.evaluation.closed_loop import (
    FrameStep,
    closed_loop_accuracy,
    onnx_frame_step,
    split_episodes,
    torch_frame_step,
)
from exphil_pipeline.training.report import png_markdown
from models import Policy
from runtime.controller_spec import CONTROLLER_SPEC
from runtime.onnx_policy import OnnxPolicy

MAIN_X = CONTROLLER_SPEC.heads.index("main_x")


@dataclass
class EvaluationReport:
    table: str
    per_head: str
    confusion_markdown: str
    folder: Path


def torch_step_latency(
    policy: Policy, calls: int = 300, threads: int | None = 1
) -> dict[str, float]:
    """p50/p99 µs of ``Policy.step`` on one frame (batch 1), on ``threads`` torch threads
    (None: leave torch's setting alone); the first tenth of the calls warms caches up."""
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        policy.eval()
        state = policy.initial_state(1)
        features = torch.zeros(1, policy.config.input_dim)
        uniforms = torch.full((1, len(policy.config.head_classes)), 0.5)
        durations = []
        with torch.no_grad():
            for _ in range(calls):
                began = time.perf_counter_ns()
                _, _, state = policy.step(features, state, uniforms, torch.tensor(1.0))
                durations.append(time.perf_counter_ns() - began)
    finally:
        torch.set_num_threads(previous_threads)
    micros = np.asarray(durations[calls // 10 :]) / 1000
    return {
        "p50_us": round(float(np.percentile(micros, 50)), 1),
        "p99_us": round(float(np.percentile(micros, 99)), 1),
    }


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


def evaluation_report(home: Path, student_name: str, eval_frames: int) -> EvaluationReport:
    student, checkpoint = load_student(home, student_name)
    teacher_name = checkpoint["config"]["teacher"]
    teacher = TeacherRun.load(home, teacher_name)
    frames = evaluation_frames(home, teacher_name, eval_frames)
    teacher_choice = np.stack(
        [frames.soft[:, columns].astype(np.float32).argmax(-1) for columns in HEAD_SLICES], axis=1
    )
    folder = home / "artifacts" / student_name
    heads = CONTROLLER_SPEC.heads

    history = json.loads((home / "teachers" / teacher_name / "history.json").read_text())
    evaluated = [e["heldout"] for e in history["epochs"] if e["heldout"]["frames"]]
    teacher_eval = min(evaluated, key=lambda e: e["loss"]) if evaluated else None
    teacher_onnx = folder / "teacher_fp32.onnx"
    dataset = teacher.training_set(home)

    def played(new_step: Callable[[], FrameStep]) -> float:
        return closed_loop_accuracy(
            new_step, split_episodes(dataset, frames.split, eval_frames)
        ).all_heads

    rows = [
        {
            "model": f"teacher ({teacher.policy.config.backbone})",
            "frames": teacher_eval["frames"] if teacher_eval else 0,
            "nll": teacher_eval["loss"] if teacher_eval else float("nan"),
            "accuracy": teacher_eval["accuracy"] if teacher_eval else {},
            "action": teacher_eval.get("action_accuracy") if teacher_eval else None,
            "closed_loop": played(lambda: torch_frame_step(teacher.policy)),
            "agreement": 1.0,
            "parameters": sum(p.numel() for p in teacher.policy.parameters()),
            "bytes": (home / "teachers" / teacher_name / "best.pt").stat().st_size,
            "latency": (
                latency_us(teacher_onnx, frames.features)
                if teacher_onnx.exists()
                else torch_step_latency(teacher.policy)
            ),
        }
    ]
    confusion = ""
    for label, path in (("student FP32", "policy_fp32.onnx"), ("student INT8", "policy_int8.onnx")):
        chosen = run_artifact(folder / path, frames.features).classes
        correct = chosen == frames.targets
        policy = OnnxPolicy.load(folder / path)
        rows.append(
            {
                "model": label,
                "frames": len(frames.features),
                "nll": checkpoint["metrics"]["student_loss"] if "FP32" in label else None,
                "accuracy": {h: float(correct[:, i].mean()) for i, h in enumerate(heads)},
                "action": float(correct.all(axis=1).mean()),
                "closed_loop": played(lambda policy=policy: onnx_frame_step(policy)),
                "agreement": float((chosen == teacher_choice).mean()),
                "parameters": sum(p.numel() for p in student.parameters()),
                "bytes": (folder / path).stat().st_size,
                "latency": latency_us(folder / path, frames.features),
            }
        )
        if "INT8" in label:
            png = _confusion_png(
                frames.targets[:, MAIN_X], chosen[:, MAIN_X], folder / "main_stick_confusion.png"
            )
            confusion = png_markdown(png, "main stick confusion")
    table = _summary_table(rows, frames.split)
    per_head = _per_head_table(rows)
    (folder / "evaluation.md").write_text(table + "\n\n" + per_head + "\n")
    return EvaluationReport(table, per_head, confusion, folder)


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
