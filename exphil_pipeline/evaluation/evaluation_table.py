"""The evaluation table: teacher, student FP32 and student INT8 side by side.

Definitions (all on held-out frames):

- NLL: sum over heads of the teacher-forced negative log-likelihood of the human's action,
  per frame, in nats (``nll``) and in bits (``nll_bits_per_frame``, HAL's unit). PyTorch
  models only: the FP32 row's is its PyTorch student's (the ``policy_onnx`` gate holds the
  graph's logits to it), and the INT8 row has none (a quantized graph only exposes its own
  sampling path);
- accuracy: for the teacher, teacher-forced top-1 per head; for the ONNX artifacts, the
  classes the graph itself picks at temperature 0 (what the bot would press), per head and
  for the whole action;
- button press F1, button change F1, main-stick F1: of the same classes as the accuracy,
  defined in :mod:`exphil_pipeline.evaluation.action_metrics` (micro-averaged over buttons;
  a change is a difference from the recorded previous frame; the main stick's (x, y) pair
  macro-averaged over the classes present). Buttons are predicted first, from the hidden
  state alone, so their classes are the same teacher-forced or picked by the graph;
- per character and per matchup: the same figures for the frames of each target character,
  and of each (character, opponent character) pair;
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
from exphil_pipeline.evaluation.action_metrics import (
    HEADLINE,
    REPORTED,
    Breakdown,
    count_by_matchup,
    headline,
    recorded_previous,
)
from exphil_pipeline.evaluation.arena import ArenaConfig, PlayerStats, play_arena
from exphil_pipeline.evaluation.closed_loop import (
    NewFrameStep,
    closed_loop_accuracy,
    onnx_frame_step,
    split_episodes,
    torch_frame_step,
)
from exphil_pipeline.evaluation.measurements import (
    latency_us,
    run_artifact,
    teacher_forced_nll,
    torch_step_latency,
)
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
METRIC_KEYS = (
    "action_accuracy",
    "closed_loop_action_accuracy",
    "nll_bits_per_frame",
    "button_press_f1",
    "button_change_f1",
    "main_stick_f1",
    "win_rate",
    "net_stocks_per_minute",
)
"""The figures of each model the ``evaluation`` asset records as its ``metrics``."""


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
    per_button_f1: str
    breakdown: str
    """Markdown: the headline figures per model, target character and opponent character."""
    confusion_markdown: str
    folder: Path
    outcomes: dict[str, dict[str, float | None]]
    """Per model: ``win_rate``, ``ci_low``, ``ci_high``, ``net_stocks_per_minute`` against
    the strongest scripted level (empty when no outcome games were played)."""
    metrics: dict[str, dict[str, float | None]]
    """Per model: the figures the field reports (see :data:`METRIC_KEYS`)."""


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
    played: Callable[[NewFrameStep], float],
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
        "figures": {key: best.get(key) for key in REPORTED},
        "per_character": {c: headline(v) for c, v in best.get("per_character", {}).items()},
        "per_matchup": {
            c: {o: headline(v) for o, v in opponents.items()}
            for c, opponents in best.get("per_matchup", {}).items()
        },
        "closed_loop": played(lambda lanes: torch_frame_step(teacher.policy, lanes)),
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
    played: Callable[[NewFrameStep], float],
    config: EvaluationConfig,
    nll: np.ndarray | None,
) -> tuple[dict, np.ndarray]:
    """The row of one ONNX artifact, and the classes it chose on every frame; ``nll[N,
    heads]`` is the teacher-forced NLL of the human's classes where the model gives one."""
    chosen = run_artifact(path, frames.features).classes
    counts = count_by_matchup(
        chosen, frames.targets, recorded_previous(frames.features), frames.matchups, nll
    )
    breakdown = Breakdown.of(counts)
    teacher_choice = np.stack(
        [frames.soft[:, columns].astype(np.float32).argmax(-1) for columns in HEAD_SLICES], axis=1
    )
    policy = OnnxPolicy.load(path)
    row = {
        "model": label,
        "frames": len(frames.features),
        "nll": None if nll is None else float(nll.sum(axis=1).mean()),
        "accuracy": breakdown.overall["head_accuracy"],
        "action": breakdown.overall["action_accuracy"],
        "figures": {key: breakdown.overall[key] for key in REPORTED},
        "per_character": breakdown.per_character,
        "per_matchup": breakdown.per_matchup,
        "closed_loop": played(lambda lanes: onnx_frame_step(policy, lanes)),
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

    def played(new_step: NewFrameStep) -> float:
        episodes = split_episodes(dataset, frames.split, eval_frames)
        return closed_loop_accuracy(new_step, episodes).all_heads

    rows = [_teacher_row(experiment, frames, played, config)]
    # The FP32 graph is the PyTorch student exported; the policy_onnx gate holds its logits to
    # the student's, so the student's NLL is the graph's.
    student_nll = teacher_forced_nll(student.policy, frames.features, frames.targets)
    fp32, _ = _artifact_row(
        "student FP32", experiment.policy_fp32, student, frames, played, config, student_nll
    )
    int8, chosen = _artifact_row(
        "student INT8", experiment.policy_int8, student, frames, played, config, None
    )
    rows += [fp32, int8]
    png = _confusion_png(
        frames.targets[:, MAIN_X], chosen[:, MAIN_X], experiment.main_stick_confusion
    )
    table = _summary_table(rows, frames.split, config)
    per_head = _per_head_table(rows)
    per_button_f1 = _button_f1_table(rows)
    breakdown = _breakdown_table(rows, frames.split)
    experiment.evaluation_table.write_text(
        "\n\n".join([table, per_head, per_button_f1, breakdown]) + "\n"
    )
    json_rows = _json_rows(rows)
    evaluation_json(experiment).write_text(json.dumps(json_rows, indent=2) + "\n")
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
        per_button_f1,
        breakdown,
        png_markdown(png, "main stick confusion"),
        experiment.artifacts,
        outcomes,
        {row["model"]: {key: row[key] for key in METRIC_KEYS} for row in json_rows},
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
            "nll_bits_per_frame": _number(row["figures"]["nll_bits_per_frame"]),
            "button_press_f1": _number(row["figures"]["button_press_f1"]),
            "button_change_f1": _number(row["figures"]["button_change_f1"]),
            "main_stick_f1": _number(row["figures"]["main_stick_f1"]),
            "button_press_f1_per_button": row["figures"]["button_press_f1_per_button"],
            "button_change_f1_per_button": row["figures"]["button_change_f1_per_button"],
            "per_character": row["per_character"],
            "per_matchup": row["per_matchup"],
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
        f"| model | {split} frames | NLL bits/frame | mean head accuracy | action accuracy "
        "| closed-loop action accuracy | button press F1 | button change F1 | main-stick F1 "
        "| agreement with teacher "
        f"| win rate {versus} [95% CI] | net stocks/min {versus} | parameters | file bytes "
        "| p50 µs | p99 µs |",
        "|---|" + "---:|" * 15,
    ]
    for row in rows:
        accuracy = np.mean(list(row["accuracy"].values())) if row["accuracy"] else None
        figures = row["figures"]
        lines.append(
            f"| {row['model']} | {row['frames']:,} | {_cell(figures['nll_bits_per_frame'], 3)} "
            f"| {_cell(accuracy)} | {_cell(row['action'])} | {_cell(row['closed_loop'])} "
            f"| {_cell(figures['button_press_f1'])} | {_cell(figures['button_change_f1'])} "
            f"| {_cell(figures['main_stick_f1'])} "
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


def _button_f1_table(rows: list[dict]) -> str:
    header = "| button | " + " | ".join(
        f"{r['model']} press F1 | {r['model']} change F1" for r in rows
    )
    lines = [header + " |", "|---|" + "---:|" * (2 * len(rows))]
    for button in CONTROLLER_SPEC.buttons:
        cells = " | ".join(
            f"{_cell(r['figures']['button_press_f1_per_button'].get(button))} "
            f"| {_cell(r['figures']['button_change_f1_per_button'].get(button))}"
            for r in rows
        )
        lines.append(f"| {button} | {cells} |")
    return "\n".join(lines)


def _breakdown_table(rows: list[dict], split: str) -> str:
    """Per model: each target character over every opponent ("all"), then each matchup."""
    lines = [
        f"| model | character | opponent | {split} frames | NLL bits/frame | action accuracy "
        "| button press F1 | button change F1 | main-stick F1 |",
        "|---|---|---|" + "---:|" * 6,
    ]

    def line(model: str, character: str, opponent: str, figures: dict) -> str:
        cells = " | ".join(
            f"{figures[key]:,}"
            if key == "frames"
            else _cell(figures[key], 3 if "nll" in key else 4)
            for key in HEADLINE
        )
        return f"| {model} | {character} | {opponent} | {cells} |"

    for row in rows:
        for character, figures in row["per_character"].items():
            lines.append(line(row["model"], character, "all", figures))
            for opponent, versus in row["per_matchup"].get(character, {}).items():
                lines.append(line(row["model"], character, opponent, versus))
    return "\n".join(lines)
