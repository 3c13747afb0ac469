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
  PyTorch for the teacher unless it was exported);
- outcomes (closed loop in a game that answers back): each model plays ``outcome_games``
  simulated games against the strongest scripted level (``scripted:3``) in the arena
  (:mod:`exphil_pipeline.evaluation.arena`), ports alternating, its own character against
  ``outcome_opponent``: win rate with its Wilson 95% interval (a draw counts half) and net
  stocks per minute (stocks taken minus stocks lost). Frame accuracy says how well a model
  copies; these say whether it wins.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from dagster import Config
from matplotlib.figure import Figure
from pydantic import Field, field_validator

from exphil_pipeline.distillation.labelled_frames import EvaluationFrames, evaluation_frames
from exphil_pipeline.distillation.soft_labels import HEAD_SLICES, distilled_teacher
from exphil_pipeline.distillation.student import StudentCheckpoint
from exphil_pipeline.evaluation.arena import ArenaConfig, PlayerStats, play_arena
from exphil_pipeline.evaluation.closed_loop import (
    FrameStep,
    closed_loop_accuracy,
    onnx_frame_step,
    split_episodes,
    torch_frame_step,
)
from exphil_pipeline.evaluation.measurements import latency_us, run_artifact, torch_step_latency
from exphil_pipeline.evaluation.players import OnnxPlayer, Player, ScriptedPlayer, TeacherPlayer
from exphil_pipeline.simulator.melee_data import SIMULATED_NAMES, check_simulated
from exphil_pipeline.simulator.scripted_players import STRONGEST
from exphil_pipeline.storage.layout import ExperimentPaths
from exphil_pipeline.training.episodes import ChunkReader
from exphil_pipeline.training.report import png_markdown
from exphil_pipeline.training.teacher_evaluation import evaluate
from exphil_pipeline.training.training_set import TrainingSet
from runtime.controller_spec import CONTROLLER_SPEC
from runtime.onnx_policy import OnnxPolicy

MAIN_X = CONTROLLER_SPEC.heads.index("main_x")
EVALUATION_LANES = 16


class EvaluationConfig(Config):
    """The ``evaluation`` stage: frame metrics on held-out frames, outcomes in the simulator."""

    eval_frames: int = Field(default=2000, ge=1, description="Held-out frames for the gates.")
    outcome_games: int = Field(
        default=16,
        ge=0,
        description="Simulated games each model plays against scripted:3 (0: no outcome columns).",
    )
    outcome_opponent: str = Field(
        default="FOX", description="The scripted player's character (libmelee name)."
    )
    outcome_max_frames: int = Field(
        default=1800,
        ge=60,
        description="Timer of each outcome game in frames (60 per second); a timeout is won "
        "on stocks, then percent.",
    )
    outcome_seed: int = Field(default=0, description="Seed of the outcome games.")

    @field_validator("outcome_opponent")
    @classmethod
    def _simulated(cls, value: str) -> str:
        return check_simulated("outcome_opponent", value)


@dataclass
class EvaluationReport:
    table: str
    per_head: str
    confusion_markdown: str
    folder: Path
    outcomes: dict[str, dict[str, float | None]]
    """Per model: ``win_rate``, ``ci_low``, ``ci_high``, ``net_stocks_per_minute`` against
    the strongest scripted level (empty when no outcome games were played)."""


def _outcome(player: Player, config: EvaluationConfig) -> PlayerStats | None:
    """``player`` against ``scripted:3`` in the simulator, as player A of the arena. A model
    trained on every character ("any") plays the opponent's character; one whose character
    the simulator lacks gets no outcome."""
    character = player.character or config.outcome_opponent
    if not config.outcome_games or character not in SIMULATED_NAMES:
        return None
    arena = ArenaConfig(
        characters=(character, config.outcome_opponent),
        max_frames=config.outcome_max_frames,
        parallel=config.outcome_games,
    )
    report = play_arena(
        player, ScriptedPlayer(STRONGEST), config.outcome_games, arena, config.outcome_seed
    )
    return report.players[0]


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
    config: EvaluationConfig,
) -> dict:
    teacher = distilled_teacher(experiment)
    dataset = TrainingSet.of(experiment)
    # Recurrent teachers run whole episodes, so the frames are those of the first episodes
    # reaching eval_frames, the same ones the artifacts are measured on.
    best = evaluate(
        teacher.policy,
        ChunkReader(dataset, frames.split),
        lanes=EVALUATION_LANES,
        device="cpu",
        max_frames=len(frames.features),
        bf16=False,
    )
    onnx = experiment.teacher_onnx
    kind = "RL teacher" if teacher.path == experiment.rl_teacher_best else "teacher"
    return {
        "model": f"{kind} ({teacher.policy.config.backbone})",
        "frames": best.get("frames", 0),
        "nll": best.get("loss", float("nan")),
        "accuracy": best.get("accuracy", {}),
        "action": best.get("action_accuracy"),
        "closed_loop": played(lambda: torch_frame_step(teacher.policy)),
        "agreement": 1.0,
        "parameters": sum(p.numel() for p in teacher.policy.parameters()),
        "bytes": teacher.path.stat().st_size,
        "latency": (
            latency_us(onnx, frames.features)
            if onnx.exists()
            else torch_step_latency(teacher.policy)
        ),
        "outcome": _outcome(TeacherPlayer(teacher.path), config),
    }


def _artifact_row(
    label: str,
    path: Path,
    student: StudentCheckpoint,
    frames: EvaluationFrames,
    played: Callable[[Callable[[], FrameStep]], float],
    config: EvaluationConfig,
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
        "outcome": _outcome(OnnxPlayer(path), config),
    }
    return row, chosen


def evaluation_report(experiment: ExperimentPaths, config: EvaluationConfig) -> EvaluationReport:
    """Teacher, student FP32 and student INT8 of ``experiment`` on its evaluation frames and
    in simulated games; writes ``evaluation.md``, ``evaluation.json`` (the same rows for
    scripts) and the confusion image beside the artifacts."""
    eval_frames = config.eval_frames
    student = StudentCheckpoint.of(experiment)
    frames = evaluation_frames(experiment, eval_frames)
    dataset = TrainingSet.of(experiment)

    def played(new_step: Callable[[], FrameStep]) -> float:
        episodes = split_episodes(dataset, frames.split, eval_frames)
        return closed_loop_accuracy(new_step, episodes).all_heads

    rows = [_teacher_row(experiment, frames, played, config)]
    fp32, _ = _artifact_row("student FP32", experiment.policy_fp32, student, frames, played, config)
    int8, chosen = _artifact_row(
        "student INT8", experiment.policy_int8, student, frames, played, config
    )
    rows += [fp32, int8]
    png = _confusion_png(
        frames.targets[:, MAIN_X], chosen[:, MAIN_X], experiment.main_stick_confusion
    )
    table = _summary_table(rows, frames.split, config)
    per_head = _per_head_table(rows)
    experiment.evaluation_table.write_text(table + "\n\n" + per_head + "\n")
    evaluation_json(experiment).write_text(json.dumps(_json_rows(rows), indent=2) + "\n")
    outcomes = {
        row["model"]: {
            "win_rate": row["outcome"].win_rate,
            "ci_low": row["outcome"].ci_low,
            "ci_high": row["outcome"].ci_high,
            "net_stocks_per_minute": row["outcome"].net_stocks_per_minute,
        }
        for row in rows
        if row["outcome"] is not None
    }
    return EvaluationReport(
        table,
        per_head,
        png_markdown(png, "main stick confusion"),
        experiment.artifacts,
        outcomes,
    )


def evaluation_json(experiment: ExperimentPaths) -> Path:
    """``evaluation.json`` beside ``evaluation.md``: the summary table's rows for scripts."""
    return experiment.evaluation_table.with_suffix(".json")


def _number(value: float | None) -> float | None:
    return None if value is None or value != value else float(value)


def _json_rows(rows: list[dict]) -> list[dict]:
    """One object per model (teacher, student FP32, student INT8); NaN and missing are null."""
    return [
        {
            "model": row["model"],
            "frames": int(row["frames"]),
            "nll": _number(row["nll"]),
            "mean_head_accuracy": (
                _number(float(np.mean(list(row["accuracy"].values())))) if row["accuracy"] else None
            ),
            "action_accuracy": _number(row["action"]),
            "closed_loop_action_accuracy": _number(row["closed_loop"]),
            "agreement_with_teacher": _number(row["agreement"]),
            "head_accuracy": {head: _number(v) for head, v in row["accuracy"].items()},
            "win_rate": row["outcome"].win_rate if row["outcome"] else None,
            "net_stocks_per_minute": (
                row["outcome"].net_stocks_per_minute if row["outcome"] else None
            ),
            "parameters": int(row["parameters"]),
            "bytes": int(row["bytes"]),
            "p50_us": row["latency"]["p50_us"],
            "p99_us": row["latency"]["p99_us"],
        }
        for row in rows
    ]


def _cell(value: float | None, digits: int = 4) -> str:
    return "—" if value is None or value != value else f"{value:.{digits}f}"


def _outcome_cells(outcome: PlayerStats | None) -> str:
    if outcome is None:
        return "— | —"
    return (
        f"{outcome.win_rate:.2f} [{outcome.ci_low:.2f}, {outcome.ci_high:.2f}] "
        f"| {outcome.net_stocks_per_minute:+.2f}"
    )


def _summary_table(rows: list[dict], split: str, config: EvaluationConfig) -> str:
    versus = f"vs scripted:{STRONGEST} ({config.outcome_games} games)"
    lines = [
        f"| model | {split} frames | NLL | mean head accuracy | action accuracy "
        "| closed-loop action accuracy | agreement with teacher "
        f"| win rate {versus} [95% CI] | net stocks/min {versus} | parameters | file bytes "
        "| p50 µs | p99 µs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        accuracy = np.mean(list(row["accuracy"].values())) if row["accuracy"] else None
        lines.append(
            f"| {row['model']} | {row['frames']:,} | {_cell(row['nll'], 3)} | {_cell(accuracy)} "
            f"| {_cell(row['action'])} | {_cell(row['closed_loop'])} "
            f"| {_cell(row['agreement'])} | {_outcome_cells(row['outcome'])} "
            f"| {row['parameters']:,} "
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
