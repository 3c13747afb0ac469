"""One policy trained over a range of frame delays against one policy per delay, on real
replays: held-out figures at each fixed delay, teacher-forced and closed-loop.

    python benchmarks/frame_delay.py DIR [--delays 0 6 12 18] [--range 0 18] [--steps N]
                                         [--backbone gru] [--hidden H] [--seed S]

Ingests DIR into a scratch folder and builds, from the same games and the same held-out split
(by game id): one training set per delay in ``--delays`` (every pair at that delay) and one
over ``--range`` (each training episode at a delay drawn from it, the delay an input). Trains a
teacher on each with the same config, seed and step budget, then evaluates the ranged teacher
and the fixed-delay teacher on each delay's held-out games: whole-action accuracy and NLL
teacher-forced, and whole-action accuracy closed-loop (each frame's previous input being the
policy's own last choice, as in play). Prints one JSON object; ``gap`` is ranged minus fixed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from exphil_pipeline.evaluation.closed_loop import (
    closed_loop_accuracy,
    split_episodes,
    torch_frame_step,
)
from exphil_pipeline.replays.batches import ReplayBatch
from exphil_pipeline.replays.ingest import IngestSettings, ingest_batch
from exphil_pipeline.storage.layout import DataLayout
from exphil_pipeline.training.episodes import ChunkReader
from exphil_pipeline.training.teacher_config import TeacherConfig
from exphil_pipeline.training.teacher_evaluation import evaluate
from exphil_pipeline.training.teacher_trainer import train
from exphil_pipeline.training.training_set import TrainingSet, build_training_set
from exphil_pipeline.training.training_set_config import ALL_CHARACTERS, ALL_STAGES
from exphil_pipeline.training.training_set_config import TrainingSetConfig as SetConfig
from models import Policy


def held_out_figures(policy: Policy, dataset: TrainingSet, lanes: int, frames: int) -> dict:
    """Teacher-forced and closed-loop figures on ``dataset``'s held-out games."""
    forced = evaluate(policy, ChunkReader(dataset, "heldout"), lanes, "cpu", 0, False)
    closed = closed_loop_accuracy(
        lambda count: torch_frame_step(policy, count), split_episodes(dataset, "heldout", frames)
    )
    return {
        "action_accuracy": round(forced["action_accuracy"], 4),
        "nll_bits_per_frame": round(forced["loss"] / math.log(2), 4),
        "closed_loop_action_accuracy": round(closed.all_heads, 4),
        "frames": forced["frames"],
        "closed_loop_frames": closed.compared,
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| delay | ranged acc | fixed acc | ranged closed-loop | fixed closed-loop "
        "| ranged NLL | fixed NLL |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        r, f = row["ranged"], row["fixed"]
        lines.append(
            f"| {row['delay']} | {r['action_accuracy']:.3f} | {f['action_accuracy']:.3f} "
            f"| {r['closed_loop_action_accuracy']:.3f} | {f['closed_loop_action_accuracy']:.3f} "
            f"| {r['nll_bits_per_frame']:.2f} | {f['nll_bits_per_frame']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("replays", type=Path)
    parser.add_argument("--delays", type=int, nargs="+", default=[0, 6, 12, 18])
    parser.add_argument("--range", type=int, nargs=2, default=[0, 18], metavar=("LOW", "HIGH"))
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--backbone", default="gru")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--heldout-fraction", type=float, default=0.3)
    parser.add_argument(
        "--closed-loop-frames", type=int, default=20_000, help="held-out frames played"
    )
    parser.add_argument(
        "--previous-input-noise",
        type=float,
        default=0.5,
        help="TeacherConfig.previous_input_noise of every teacher (0 lets the policies copy "
        "their own last input, and closed loop collapses)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    low, high = args.range
    outside = [d for d in args.delays if not low <= d <= high]
    if outside:
        parser.error(f"delays {outside} lie outside --range {low} {high}")
    if not args.replays.is_dir():
        parser.error(f"{args.replays} is not a folder of .slp files")
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="exphil-frame-delay-") as scratch:
        layout = DataLayout(Path(scratch))
        ingest_batch(ReplayBatch("real", args.replays), layout, IngestSettings(workers=0))
        # Real corpora at hand are small: keep every 1v1 game with frames to learn from.
        curation = {
            "characters": [ALL_CHARACTERS],
            "allow_cpu": True,
            "min_frames": 0,
            "require_damage_both": False,
            "stages": [ALL_STAGES],
            "heldout_fraction": args.heldout_fraction,
        }
        sets = {f"fixed-{d}": SetConfig(**curation, frame_delay=d) for d in args.delays}
        sets["ranged"] = SetConfig(**curation, frame_delay=low, frame_delay_range=[low, high])
        datasets = {}
        for name, config in sets.items():
            built = build_training_set(layout, name, config)
            datasets[name] = TrainingSet.open(built.path)
        teacher = TeacherConfig(
            backbone=args.backbone,
            hidden_dim=args.hidden,
            epochs=1_000,
            max_steps=args.steps,
            seed=args.seed,
            eval_max_frames=1,
            batch_size=16,
            previous_input_noise=args.previous_input_noise,
        )
        policies = {}
        for name in sets:
            print(f"training {name} ({args.steps} steps)", file=sys.stderr)
            policies[name] = train(teacher, layout.home, name, log=lambda _: None).policy.eval()
        rows = []
        for delay in args.delays:
            heldout = datasets[f"fixed-{delay}"]
            ranged = held_out_figures(
                policies["ranged"], heldout, teacher.batch_size, args.closed_loop_frames
            )
            fixed = held_out_figures(
                policies[f"fixed-{delay}"], heldout, teacher.batch_size, args.closed_loop_frames
            )
            gap = {
                key: round(ranged[key] - fixed[key], 4)
                for key in ("action_accuracy", "closed_loop_action_accuracy", "nll_bits_per_frame")
            }
            rows.append({"delay": delay, "ranged": ranged, "fixed": fixed, "gap": gap})
        print(markdown(rows), file=sys.stderr)
        splits = datasets["ranged"].manifest.splits
        print(
            json.dumps(
                {
                    "command": " ".join(
                        ["python benchmarks/frame_delay.py", *(argv or sys.argv[1:])]
                    ),
                    "range": [low, high],
                    "teacher": {
                        "backbone": args.backbone,
                        "hidden": args.hidden,
                        "steps": args.steps,
                        "previous_input_noise": args.previous_input_noise,
                        "batch_size": teacher.batch_size,
                        "bptt": teacher.bptt,
                    },
                    "train_frames": splits["train"].frames,
                    "heldout_games": splits["heldout"].games,
                    "delays": rows,
                    "max_action_accuracy_drop": max(-row["gap"]["action_accuracy"] for row in rows),
                    "max_closed_loop_drop": max(
                        -row["gap"]["closed_loop_action_accuracy"] for row in rows
                    ),
                    "seconds": round(time.perf_counter() - began, 1),
                }
            )
        )


if __name__ == "__main__":
    main()
