"""Embedding spec v3 against the features of spec v2, on real replays: held-out metrics per
target character, and which v3 features the trained network uses.

    python benchmarks/features.py DIR [--steps N] [--hidden H] [--seed S]

Ingests DIR into a scratch folder, builds one training set of the target characters'
players (CPU games and short games kept: real corpora of these characters are small; 40% of
the games held out, by game), then trains two teachers with the same config, seed and
budget: one on the v3 vectors, one on the same vectors with every column v3 added set to 0,
which leaves exactly the information of spec v2 (v3 kept every v2 column as it was). Prints
one JSON object: per model the held-out NLL (bits/frame, per head) and accuracy (per head and
whole action) overall and per character, teacher-forced, beside the whole-action accuracy
closed-loop (``closed_loop_action_accuracy``: each frame's previous input the policy's own
last choice, as in play), and for the v3 teacher the permutation importance
of each group of new features: how much the held-out NLL rises when that group's columns are
shuffled across held-out frames (mean over ``--repeats`` shuffles).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

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
from exphil_pipeline.training.training_set_config import (
    ALL_STAGES,
    TARGET_CHARACTERS,
    TrainingSetConfig,
)
from runtime.embedding_spec import EMBEDDING_SPEC, GEOMETRY_FEATURES, GEOMETRY_PLAYERS

NAMES = EMBEDDING_SPEC.names
_ITEM_ADDED = ("vx", "vy", "state", "timer", "owner_dx", "owner_dy")

# The columns spec v3 added to v2, in named groups (v2's columns are unchanged in v3).
NEW_GROUPS: dict[str, list[int]] = {
    "stage_geometry": [
        NAMES.index(f"{player}_{name}")
        for player in GEOMETRY_PLAYERS
        for name, *_ in GEOMETRY_FEATURES
    ],
    "special_groups": [i for i, n in enumerate(NAMES) if n.endswith("_special")],
    "charge": [i for i, n in enumerate(NAMES) if n.endswith("_charge")],
    "item_motion_state_owner": [
        i for i, n in enumerate(NAMES) if n.startswith("item") and n.split("_", 1)[1] in _ITEM_ADDED
    ],
    "frame_delay": [NAMES.index("frame_delay")],
}
NEW_COLUMNS = sorted(i for group in NEW_GROUPS.values() for i in group)


def _rewrite_shards(folder: Path, split: str, change) -> None:
    """Apply ``change(features) -> features`` to every feature shard of ``split`` in place."""
    dataset = TrainingSet.open(folder)
    for shard in dataset.manifest.splits[split].shards:
        path = folder / shard.features
        np.save(path, change(np.load(path)))


def _copy_set(layout: DataLayout, source: str, target: str) -> Path:
    destination = layout.experiment(target).training_set
    shutil.rmtree(destination, ignore_errors=True)
    shutil.copytree(layout.experiment(source).training_set, destination)
    return destination


def _zero_new(features: np.ndarray) -> np.ndarray:
    features[:, NEW_COLUMNS] = 0
    return features


SUMMARY_KEYS = ("frames", "nll_bits_per_frame", "action_accuracy", "accuracy", "main_stick_f1")


def _summary(heldout: dict) -> dict:
    """The held-out figures compared: overall and per character."""
    out = {key: heldout[key] for key in SUMMARY_KEYS}
    out["per_character"] = {
        name: {key: part[key] for key in SUMMARY_KEYS}
        for name, part in heldout["per_character"].items()
    }
    return out


def _permutation_importance(
    layout: DataLayout, source: str, policy, config: TeacherConfig, repeats: int, seed: int
) -> dict[str, dict]:
    reader = ChunkReader(TrainingSet.open(layout.experiment(source).training_set), "heldout")
    base = evaluate(policy, reader, config.batch_size, "cpu", 0, False)
    rng = np.random.default_rng(seed)
    out = {}
    for group, columns in NEW_GROUPS.items():
        rises, by_character = [], {}
        for _ in range(repeats):
            folder = _copy_set(layout, source, "permuted")

            def shuffle(features: np.ndarray, columns=columns) -> np.ndarray:
                order = rng.permutation(len(features))
                features[:, columns] = features[order][:, columns]
                return features

            _rewrite_shards(folder, "heldout", shuffle)
            shuffled = evaluate(
                policy,
                ChunkReader(TrainingSet.open(folder), "heldout"),
                config.batch_size,
                "cpu",
                0,
                False,
            )
            rises.append((shuffled["loss"] - base["loss"]) / math.log(2))
            for name, part in shuffled.get("per_character", {}).items():
                before = base["per_character"][name]["loss"]
                by_character.setdefault(name, []).append((part["loss"] - before) / math.log(2))
        out[group] = {
            "columns": len(columns),
            "nll_rise_bits_per_frame": float(np.mean(rises)),
            "per_character": {k: float(np.mean(v)) for k, v in by_character.items()},
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("replays", type=Path)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--frame-delay", type=int, default=2)
    args = parser.parse_args()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="exphil-features-") as scratch:
        layout = DataLayout(Path(scratch))
        ingest_batch(ReplayBatch("real", args.replays), layout, IngestSettings(workers=0))
        config = TrainingSetConfig(
            characters=list(TARGET_CHARACTERS),
            allow_cpu=True,
            min_frames=0,
            require_damage_both=False,
            stages=[ALL_STAGES],
            heldout_fraction=0.4,
            frame_delay=args.frame_delay,
        )
        built = build_training_set(layout, "v3", config)
        _copy_set(layout, "v3", "v2")
        _rewrite_shards(layout.experiment("v2").training_set, "train", _zero_new)
        _rewrite_shards(layout.experiment("v2").training_set, "heldout", _zero_new)
        teacher = TeacherConfig(
            backbone="gru",
            hidden_dim=args.hidden,
            epochs=1_000,
            max_steps=args.steps,
            seed=args.seed,
            eval_max_frames=0,
            batch_size=16,
        )
        results, policies = {}, {}
        for name in ("v2", "v3"):
            result = train(teacher, layout.home, name, log=lambda _: None)
            heldout = evaluate(
                result.policy,
                ChunkReader(TrainingSet.open(layout.experiment(name).training_set), "heldout"),
                teacher.batch_size,
                "cpu",
                0,
                False,
            )
            results[name] = _summary(heldout)
            dataset = TrainingSet.open(layout.experiment(name).training_set)
            closed = closed_loop_accuracy(
                lambda count, policy=result.policy: torch_frame_step(policy, count),
                split_episodes(dataset, "heldout", 0),
            )
            results[name]["closed_loop_action_accuracy"] = closed.all_heads
            policies[name] = result.policy
        importance = _permutation_importance(
            layout, "v3", policies["v3"], teacher, args.repeats, args.seed
        )
        splits = built.manifest.splits
        print(
            json.dumps(
                {
                    "command": "python benchmarks/features.py " + str(args.replays),
                    "training_set": {
                        "frames_per_character": built.manifest.frames_per_character,
                        "train_frames": splits["train"].frames,
                        "heldout_frames": splits["heldout"].frames,
                        "heldout_games": splits["heldout"].games,
                    },
                    "teacher": {"backbone": "gru", "hidden": args.hidden, "steps": args.steps},
                    "spec_v3_dim": EMBEDDING_SPEC.dim,
                    "new_columns": len(NEW_COLUMNS),
                    "v2_features": results["v2"],
                    "v3_features": results["v3"],
                    "permutation_importance_v3": importance,
                    "seconds": round(time.perf_counter() - began, 1),
                }
            )
        )


if __name__ == "__main__":
    main()
