"""Small training sets for teacher tests: a real replay segment and the generated games."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from exphil_pipeline.storage.layout import DataLayout
from exphil_pipeline.training.teacher_config import TeacherConfig
from exphil_pipeline.training.teacher_trainer import train
from exphil_pipeline.training.training_set import TrainingSet, build_training_set
from exphil_pipeline.training.training_set_config import TrainingSetConfig


def build_set(home: Path, experiment: str, **config: object) -> TrainingSet:
    result = build_training_set(DataLayout(home), experiment, TrainingSetConfig(**config))
    return TrainingSet.open(result.path)


def small_mewtwo_teacher(home: Path, experiment: str, **teacher: object) -> Path:
    """A quickly trained Mewtwo teacher on the games of ``home`` (frame delay 2, a tenth of
    the games held out); returns its ``best.pt``."""
    build_set(home, experiment, characters=["MEWTWO"], heldout_fraction=0.1, frame_delay=2)
    train(TeacherConfig(**teacher), home, experiment, log=lambda _: None)
    return DataLayout(home).experiment(experiment).teacher_best


def fraction_holding_out_one_game(game_ids: list[str]) -> float:
    """A held-out fraction that puts exactly the game with the smallest id prefix aside (the
    split is decided by the game id alone, see ``is_heldout``)."""
    positions = sorted(int(game_id[:16], 16) / 2**64 for game_id in game_ids)
    return (positions[0] + positions[1]) / 2


def share_set(home: Path, source: str, experiment: str) -> Path:
    """Give ``experiment`` a copy of the training set of experiment ``source``."""
    layout = DataLayout(home)
    target = layout.experiment(experiment).training_set
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(layout.experiment(source).training_set, target)
    return home


def segment_set(source: TrainingSet, home: Path, name: str, frames: int) -> TrainingSet:
    """A one-episode training set: the first ``frames`` pairs of ``source``'s first episode."""
    folder = DataLayout(home).experiment(name).training_set
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "train").mkdir(parents=True)
    (folder / "heldout").mkdir()
    features, targets = next(source.shards("train"))
    episode = source.episodes("train").slice(0, 1).to_pylist()[0]
    start = episode["start"]
    np.save(folder / "train/shard-00000.features.npy", features[start : start + frames])
    np.save(folder / "train/shard-00000.targets.npy", targets[start : start + frames])
    episodes = source.episodes("train").slice(0, 1)
    episodes = episodes.set_column(5, "start", pa.array([0], pa.int64()))
    episodes = episodes.set_column(6, "length", pa.array([frames], pa.int64()))
    pq.write_table(episodes, folder / "train/episodes.parquet")
    pq.write_table(episodes.slice(0, 0), folder / "heldout/episodes.parquet")
    manifest = json.loads(source.manifest.to_json())
    shard = {
        "features": "train/shard-00000.features.npy",
        "targets": "train/shard-00000.targets.npy",
        "frames": frames,
        "bytes": 0,
    }
    manifest["splits"] = {
        "train": {"frames": frames, "episodes": 1, "games": 1, "shards": [shard]},
        "heldout": {"frames": 0, "episodes": 0, "games": 0, "shards": []},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return TrainingSet.open(folder)
