"""Learning from real human replays: ingest a folder, train one character, held-out metrics.

    python benchmarks/human.py DIR --character C [--preset P] [--device D] [--home H]

Runs what ``exphil train --replays DIR --character C --preset P`` runs
(:func:`exphil_pipeline.cli.train_experiment`) in a scratch data root (``--home`` keeps it),
and prints one JSON object: the command, the cores, the games ingested and the training set's
games and frames by split (and why games were skipped), seconds (ingest, the training run,
both), ``frames_per_s`` (training-set frames, both splits, per second of the training run) and
the held-out evaluation: one row per model (teacher, student FP32, student INT8) with action
accuracy, closed-loop action accuracy, NLL in bits per frame, button press and change F1 and
main-stick F1 (defined in ``exphil_pipeline.evaluation.action_metrics``), per character and
per matchup.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from exphil_pipeline.cli import TrainError, train_experiment
from exphil_pipeline.storage.layout import HOME_ENV, DataLayout
from exphil_pipeline.training.presets import DEFAULT_PRESET, PresetError, preset
from exphil_pipeline.training.training_set import TrainingSet

INGEST_KEYS = ("games", "ok", "repaired", "quarantined", "frames", "seconds", "frames_per_s")


def human_benchmark(
    replays: Path, character: str, preset_name: str, home: Path, device: str | None = None
) -> dict[str, Any]:
    """Ingest ``replays`` and train ``character`` with preset ``preset_name`` under data root
    ``home``, whose Dagster instance records the runs; the figures :func:`main` prints."""
    chosen = preset(character, preset_name).override("teacher", device=device)
    os.environ[HOME_ENV] = str(home)
    os.environ["DAGSTER_HOME"] = str(DataLayout(home).dagster_home)
    began = time.perf_counter()
    trained = train_experiment(chosen, replays=replays)
    seconds = time.perf_counter() - began
    manifest = TrainingSet.open(trained.artifacts["training_set"]).manifest
    frames = manifest.frames
    return {
        "character": chosen.character,
        "preset": chosen.name,
        "experiment": trained.experiment,
        "ingest": {key: (trained.ingest or {}).get(key) for key in INGEST_KEYS},
        "training_set": {
            "games_seen": manifest.games_seen,
            "games_skipped": manifest.games_skipped,
            **{
                split: {"games": s.games, "episodes": s.episodes, "frames": s.frames}
                for split, s in manifest.splits.items()
            },
        },
        "seconds": round(seconds, 2),
        "train_seconds": round(trained.train_seconds, 2),
        "frames_per_s": round(frames / trained.train_seconds, 1),
        "evaluation": trained.evaluation,
    }


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="folder of .slp replays (searched recursively)")
    parser.add_argument("--character", required=True, help="libmelee name, e.g. FOX")
    parser.add_argument("--preset", default=DEFAULT_PRESET, help="standard, quick or tiny")
    parser.add_argument("--device", choices=("cpu", "cuda"), help="teacher device")
    parser.add_argument("--home", type=Path, help="data root to keep (default: a scratch one)")
    args = parser.parse_args(argv)
    if not args.dir.is_dir():
        parser.error(f"{args.dir} is not a folder")
    with tempfile.TemporaryDirectory() as scratch:
        home = (args.home or Path(scratch)).resolve()
        try:
            figures = human_benchmark(args.dir, args.character, args.preset, home, args.device)
        except PresetError as error:
            parser.error(str(error))
        except TrainError as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(error.exit_code) from None
    print(
        json.dumps(
            {
                "command": " ".join(["python benchmarks/human.py", *argv]),
                "cores": os.cpu_count(),
                "torch_threads": torch.get_num_threads(),
                **figures,
            }
        )
    )


if __name__ == "__main__":
    main()
