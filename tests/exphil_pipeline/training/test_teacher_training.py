"""Teacher training: learning, resumption, DDP, checkpoints."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from exphil_pipeline.training.teacher_trainer import TeacherConfig, load_teacher, train
from models import BACKBONE_KINDS
from tests.exphil_pipeline.training.teacher_fixtures import build_set, segment_set

REPO = Path(__file__).resolve().parents[2]


def _quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def real_segment(real_store) -> Path:
    """128 consecutive frames of one real Mewtwo game, as a one-episode training set."""
    source = build_set(real_store.home, "mewtwo-real", characters=("MEWTWO",), heldout_fraction=0)
    segment_set(source, real_store.home, "segment", frames=128)
    return real_store.home


@pytest.fixture(scope="module")
def sample_set(sample_store) -> Path:
    build_set(sample_store.home, "teach", characters=("MEWTWO",), heldout_fraction=0.1)
    return sample_store.home


@pytest.mark.parametrize("backbone", BACKBONE_KINDS)
def test_each_backbone_overfits_a_real_replay_segment(real_segment: Path, backbone: str) -> None:
    config = TeacherConfig(
        name=f"overfit-{backbone}",
        training_set="segment",
        backbone=backbone,
        hidden_dim=64,
        batch_size=1,
        bptt=128,
        epochs=200,
        schedule="constant",
        learning_rate=5e-3,
        weight_decay=0.0,
        warmup_steps=0,
        resume=False,
    )
    result = train(config, real_segment, log=_quiet)
    first, last = result.curve[0][1], result.curve[-1][1]
    assert last < 0.02 * first, (first, last)


def _sample_config(name: str, **overrides: object) -> TeacherConfig:
    fields = {
        "name": name,
        "training_set": "teach",
        "backbone": "gru",
        "hidden_dim": 32,
        "batch_size": 4,
        "bptt": 32,
        "epochs": 2,
        "checkpoint_every": 3,
        "dropout": 0.1,
        **overrides,
    }
    return TeacherConfig(**fields)


def _parameters(policy: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in policy.parameters()]


def test_a_killed_run_resumes_to_the_uninterrupted_result(sample_set: Path) -> None:
    full = train(_sample_config("full"), sample_set, log=_quiet)
    cut_config = _sample_config("cut")
    halted = train(cut_config, sample_set, log=_quiet, halt_after_steps=5)
    assert halted.halted and halted.steps == 5  # the last checkpoint is from step 3
    resumed = train(cut_config, sample_set, log=_quiet)
    assert resumed.steps == full.steps
    for a, b in zip(_parameters(full.policy), _parameters(resumed.policy), strict=True):
        assert torch.equal(a, b)
    assert [h["heldout"]["loss"] for h in resumed.history] == [
        h["heldout"]["loss"] for h in full.history
    ]


def test_checkpoints_hold_everything_and_load_identically(sample_set: Path) -> None:
    result = train(_sample_config("saved", epochs=1), sample_set, log=_quiet)
    checkpoint = torch.load(result.folder / "last.pt", weights_only=False)
    assert {"policy", "optimizer", "scheduler", "progress", "config", "embedding_spec_hash"} <= set(
        checkpoint
    )
    assert checkpoint["config"] == asdict(_sample_config("saved", epochs=1))
    loaded = load_teacher(result.folder, "last")
    features = torch.randn(2, 16, result.policy.config.input_dim).abs()
    targets = torch.zeros(2, 16, 13, dtype=torch.uint8)
    result.policy.eval()
    loaded.eval()
    with torch.no_grad():
        expected, _ = result.policy(features, targets)
        actual, _ = loaded(features, targets)
    for a, b in zip(expected, actual, strict=True):
        assert torch.equal(a, b)
    assert (result.folder / "best.pt").exists() and (result.folder / "history.json").exists()
    assert any((result.folder / "tensorboard").iterdir())


def test_two_gloo_processes_stay_in_sync(sample_set: Path, tmp_path: Path) -> None:
    config = tmp_path / "run.json"
    config.write_text(json.dumps(asdict(_sample_config("ddp", epochs=1, resume=False))))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "exphil_pipeline.training.teacher_trainer",
            "--config",
            str(config),
            "--home",
            str(sample_set),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = [json.loads(line) for line in run.stdout.splitlines() if line.startswith('{"rank"')]
    assert sorted(r["rank"] for r in ranks) == [0, 1]
    assert ranks[0]["param_sum"] == ranks[1]["param_sum"]
    assert ranks[0]["steps"] == ranks[1]["steps"] > 0


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="schedule"):
        TeacherConfig(schedule="linear")
    with pytest.raises(ValueError, match="device"):
        TeacherConfig(device="tpu")
