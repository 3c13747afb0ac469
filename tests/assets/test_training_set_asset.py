"""The ``training_set`` asset on generated games: selection, shards, manifest, checks."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from assets.training_set import training_set
from exphil_pipeline.replays.batches import ReplayBatch
from exphil_pipeline.replays.ingest import IngestSettings, ingest_batch
from exphil_pipeline.simulator.game_assembly import FOX, MEWTWO, generate_game
from exphil_pipeline.simulator.slp_writer import write_slp
from exphil_pipeline.storage.layout import DataLayout
from exphil_pipeline.training.training_set import TrainingSet, is_heldout
from exphil_pipeline.training.training_set_config import TrainingSetConfig
from runtime.controller_spec import CONTROLLER_SPEC
from runtime.embedding_spec import EMBEDDING_SPEC
from tests.assets.experiment_runs import materialize_experiment


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, sample_replays: list[Path]) -> Path:
    """Three Mewtwo-on-port-1 samples plus one game with Mewtwo on port 2."""
    root = tmp_path_factory.mktemp("ts-home")
    folder = root / "replays"
    folder.mkdir()
    for path in sample_replays:
        shutil.copy(path, folder / path.name)
    write_slp(folder / "swapped.slp", generate_game(99, 900, characters=(FOX, MEWTWO)))
    ingest_batch(ReplayBatch("b1", folder), DataLayout(root), IngestSettings(workers=1))
    return root


def _materialize(home: Path, experiment: str, **config: object):
    return materialize_experiment([training_set], home, experiment, {"training_set": config})


def _open(home: Path, experiment: str) -> TrainingSet:
    return TrainingSet.of(DataLayout(home).experiment(experiment))


def test_builds_shards_episodes_and_manifest(home: Path) -> None:
    result = _materialize(home, "mewtwo", characters=["MEWTWO"], shard_frames=1000)
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert [(c.check_name, c.passed) for c in checks] == [("values_valid", True)]
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    # float32 features and uint8 classes, nothing else stored per frame.
    frame_bytes = 4 * EMBEDDING_SPEC.dim + CONTROLLER_SPEC.num_heads
    assert metadata["bytes_per_frame"].value == frame_bytes
    assert "MEWTWO" in metadata["frames_per_character"].value

    dataset = _open(home, "mewtwo")
    manifest = dataset.manifest
    assert manifest.embedding_spec.hash == EMBEDDING_SPEC.content_hash
    assert manifest.controller_spec_hash == CONTROLLER_SPEC.content_hash
    assert set(manifest.frames_per_character) == {"MEWTWO"}
    total = 0
    for split in ("train", "heldout"):
        episodes = dataset.episodes(split).to_pylist()
        shards = list(dataset.shards(split))
        for features, targets in shards:
            assert isinstance(features, np.memmap) and features.shape[1] == EMBEDDING_SPEC.dim
            assert features.dtype == np.float32 and targets.dtype == np.uint8
        for episode in episodes:
            # Episodes live inside one shard and never cross a game boundary.
            features, targets = shards[episode["shard"]]
            assert episode["start"] + episode["length"] <= len(targets)
            assert is_heldout(episode["game_id"], 0.1) == (split == "heldout")
        assert sum(e["length"] for e in episodes) == dataset.frames(split)
        total += dataset.frames(split)
    # The player is chosen by character: Mewtwo is on port 2 in the swapped game.
    ports = {e["port"] for s in ("train", "heldout") for e in dataset.episodes(s).to_pylist()}
    assert ports == {1, 2}
    assert total == metadata["frames"].value


def test_rematerializing_gives_identical_files(home: Path) -> None:
    assert _materialize(home, "again", characters=["MEWTWO"]).success
    folder = home / "training_sets" / "again"
    first = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*.npy")}
    assert _materialize(home, "again", characters=["MEWTWO"]).success
    second = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*.npy")}
    assert first == second
    leftovers = [p.name for p in (home / "training_sets").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_both_players_when_both_match_and_opponent_filter(home: Path) -> None:
    assert _materialize(home, "all", characters=["all"]).success
    both = _open(home, "all").manifest
    assert set(both.frames_per_character) == {"MEWTWO", "FOX"}
    assert _materialize(home, "vsfox", characters=["all"], opponent_characters=["FOX"]).success
    vs_fox = _open(home, "vsfox").manifest
    assert set(vs_fox.frames_per_character) == {"MEWTWO"}


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match="unknown character names \\['MEWTW0'\\]"):
        TrainingSetConfig(characters=["MEWTW0"])
    with pytest.raises(ValueError, match="frame_delay"):
        TrainingSetConfig(frame_delay=-1)


def test_a_training_set_from_another_spec_is_refused(home: Path, tmp_path: Path) -> None:
    assert _materialize(home, "spec", characters=["MEWTWO"]).success
    copy = tmp_path / "spec"
    shutil.copytree(home / "training_sets" / "spec", copy)
    manifest = (copy / "manifest.json").read_text()
    (copy / "manifest.json").write_text(manifest.replace(EMBEDDING_SPEC.content_hash, "0" * 64))
    with pytest.raises(ValueError, match="re-materialize training_set"):
        TrainingSet.open(copy)


def test_curation_counts_and_character_weights_reach_the_metadata(home: Path) -> None:
    result = _materialize(
        home,
        "weighted",
        characters=["MEWTWO"],
        stages=["BATTLEFIELD"],
        character_weights={"MEWTWO": 2.5},
    )
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    # Every generated game is on Final Destination.
    assert metadata["games_skipped"].value == {"stage not in stages": 4}
    assert metadata["games_seen"].value == 4 and metadata["games_used"].value == 0

    assert _materialize(home, "weighted", characters=["MEWTWO"], character_weights={"MEWTWO": 2.5})
    dataset = _open(home, "weighted")
    weights = {
        w for s in ("train", "heldout") for w in dataset.episodes(s).column("weight").to_pylist()
    }
    assert weights == {2.5}
