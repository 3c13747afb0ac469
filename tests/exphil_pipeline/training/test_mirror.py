"""Left/right mirroring: exact twice, and the same as mirroring the game through libmelee."""

from __future__ import annotations

import csv
import json
import multiprocessing
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from exphil_pipeline.evaluation.parity import ParityReport, compare_replay
from exphil_pipeline.storage.layout import DataLayout
from exphil_pipeline.training.examples import GameFrames
from exphil_pipeline.training.mirror import (
    mirror_features,
    mirror_lanes,
    mirror_targets,
    mirrorable,
    mirrored_episodes,
)
from runtime.controller_spec import CONTROLLER_SPEC
from runtime.embedding_spec import EMBEDDING_SPEC, MIRROR_STAGES
from runtime.melee_ids import STAGE_NAMES

MIRROR_STAGE_IDS = {external for external, name in STAGE_NAMES.items() if name in MIRROR_STAGES}


def _games(store) -> list[tuple[Path, GameFrames]]:
    layout = DataLayout(store.home)
    out = []
    for frames_path in sorted(layout.frames_dir.glob("batch=*/*.parquet")):
        items_path = layout.items_dir / frames_path.parent.name / frames_path.name
        out.append((frames_path, GameFrames.read(frames_path, items_path, 0)))
    return out


def test_mirroring_twice_is_identity_on_every_real_frame(real_store) -> None:
    compared = 0
    for _, game in _games(real_store):
        for port in game.leader_ports:
            others = [p for p in game.leader_ports if p != port]
            if not others:
                continue
            examples = game.examples(port, others[0])
            twice = mirror_features(mirror_features(examples.features))
            assert twice.tobytes() == examples.features.tobytes()
            targets = examples.targets
            assert np.array_equal(mirror_targets(mirror_targets(targets)), targets)
            compared += len(examples)
    assert compared > 100_000


def test_mirroring_flips_what_it_should_and_only_that() -> None:
    names = EMBEDDING_SPEC.names
    frame = np.arange(EMBEDDING_SPEC.dim, dtype=np.float32)[None] % 7
    frame[0, names.index("stage")] = 2  # Battlefield
    mirrored = mirror_features(frame)[0]
    for name, before, after in zip(names, frame[0], mirrored, strict=True):
        if name in ("prev_main_x", "prev_c_x"):
            assert after == 16 - before, name
        elif name.endswith(("_x", "_dx", "_facing", "_vx")) or "_x_" in name:
            assert after == -before, name
        else:
            assert after == before, name
    targets = np.tile(CONTROLLER_SPEC.neutral(), (1, 1))
    targets[0, CONTROLLER_SPEC.heads.index("main_x")] = 3
    flipped = mirror_targets(targets)[0]
    assert flipped[CONTROLLER_SPEC.heads.index("main_x")] == 13
    assert mirrorable(frame).tolist() == [True]
    frame[0, names.index("stage")] = 6  # Yoshi's Story
    assert mirrorable(frame).tolist() == [False]


def test_training_lanes_mirror_like_the_frames_and_only_where_chosen() -> None:
    rng = np.random.default_rng(0)
    features = rng.integers(0, 9, size=(3, 5, EMBEDDING_SPEC.dim)).astype(np.float32)
    # Lanes on Battlefield (mirrored), Yoshi's Story (asymmetric: kept), Final Destination.
    features[..., EMBEDDING_SPEC.names.index("stage")] = np.array([2, 6, 1])[:, None]
    targets = rng.integers(0, 17, size=(3, 5, CONTROLLER_SPEC.num_heads)).astype(np.uint8)
    lanes_f, lanes_t = torch.from_numpy(features.copy()), torch.from_numpy(targets.copy())
    mirror_lanes(lanes_f, lanes_t, torch.tensor([True, True, False]))
    expected_f, expected_t = features.copy(), targets.copy()
    expected_f[0], expected_t[0] = mirror_features(features[0]), mirror_targets(targets[0])
    assert np.array_equal(lanes_f.numpy(), expected_f)
    assert np.array_equal(lanes_t.numpy(), expected_t)
    chosen = mirrored_episodes(1000, 0.3, seed=4, epoch=2)
    assert np.array_equal(chosen, mirrored_episodes(1000, 0.3, seed=4, epoch=2))
    assert 0.25 < chosen.mean() < 0.35
    assert not np.array_equal(chosen, mirrored_episodes(1000, 0.3, seed=4, epoch=3))


def _compare_mirrored(args: tuple[Path, Path]) -> ParityReport:
    path, home = args
    return compare_replay(path, DataLayout(home), mirror=True)


def test_a_mirrored_frame_is_the_embedding_of_the_mirrored_game(real_store, real_replays) -> None:
    with open(real_replays / "CATALOG.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    files = [
        real_replays / row["file"]
        for row in rows
        if row["parses"] == "yes" and row["stage"] and int(row["stage"]) in MIRROR_STAGE_IDS
    ][:6]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        reports = list(pool.map(_compare_mirrored, [(f, real_store.home) for f in files]))
    compared = [r for r in reports if r.status not in ("unreadable", "skipped")]
    assert len(compared) >= 4
    for report in compared:
        assert report.status == "ok" and report.max_abs_diff == 0.0, report.to_dict()
    assert sum(r.frames_compared for r in compared) > 20_000


def test_cli_compares_mirrored_frames(sample_store, sample_replays) -> None:
    env = {
        **os.environ,
        "EXPHIL_HOME": str(sample_store.home),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    run = subprocess.run(
        ["exphil", "parity", "--mirror", str(sample_replays[0])],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    line = json.loads(run.stdout)
    assert line["status"] == "ok" and line["max_abs_diff"] == 0.0 and line["frames_compared"] > 0
