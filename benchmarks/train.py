"""Teacher training throughput and single-step inference latency, per backbone.

    python benchmarks/train.py [--home DIR --training-set EXPERIMENT] [--steps N]

With ``--home`` it trains on the training set of experiment ``--training-set`` there (and
overwrites that experiment's teacher). Without it, it generates sample replays, ingests them
and builds a training set in a scratch folder. For each backbone it trains ``--steps`` steps
with the teacher's own loop (streaming from the memory-mapped shards, data loading included)
and times ``Policy.step`` on one frame in PyTorch (batch 1, no grad). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import torch

from exphil_pipeline.evaluation.measurements import torch_step_latency
from exphil_pipeline.replays.batches import ReplayBatch
from exphil_pipeline.replays.ingest import IngestSettings, ingest_batch
from exphil_pipeline.simulator.sample_replays import write_sample_replays
from exphil_pipeline.storage.layout import DataLayout
from exphil_pipeline.training.teacher_config import TeacherConfig
from exphil_pipeline.training.teacher_trainer import train
from exphil_pipeline.training.training_set import build_training_set
from exphil_pipeline.training.training_set_config import TrainingSetConfig
from models import BACKBONE_KINDS


def sample_training_set(home: Path) -> str:
    replays = write_sample_replays(home / "replays", games=6, frames=4000, seed=1)
    layout = DataLayout(home)
    ingest_batch(ReplayBatch("bench", replays[0].parent), layout, IngestSettings(workers=0))
    build_training_set(layout, "bench", TrainingSetConfig(characters=["all"]))
    return "bench"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path)
    parser.add_argument("--training-set", default="default")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--bptt", type=int, default=64)
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        home = args.home or Path(scratch)
        name = args.training_set if args.home else sample_training_set(home)
        results = {}
        for backbone in BACKBONE_KINDS:
            config = TeacherConfig(
                backbone=backbone,
                hidden_dim=args.hidden,
                batch_size=args.batch_size,
                bptt=args.bptt,
                epochs=1,
                max_steps=args.steps,
                eval_max_frames=1,
                resume=False,
            )
            result = train(config, home, name, log=lambda _: None)
            results[backbone] = {
                "train_frames_per_s": round(result.frames_per_s),
                "parameters": result.parameters,
                **{
                    f"step_{key}": value
                    for key, value in torch_step_latency(
                        result.policy, args.calls, threads=None
                    ).items()
                },
            }
    print(
        json.dumps(
            {
                "command": "python benchmarks/train.py",
                "cores": os.cpu_count(),
                "torch_threads": torch.get_num_threads(),
                "device": "cpu",
                "hidden_dim": args.hidden,
                "batch_size": args.batch_size,
                "bptt": args.bptt,
                "backbones": results,
            }
        )
    )


if __name__ == "__main__":
    main()
