"""Teacher training: learning, resumption, DDP, checkpoints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from exphil_pipeline.storage.layout import DataLayout
from exphil_pipeline.training.policy_contract import PolicyContract
from exphil_pipeline.training.teacher_checkpoint import TeacherCheckpoint
from exphil_pipeline.training.teacher_config import TeacherConfig
from exphil_pipeline.training.teacher_trainer import train
from models import BACKBONE_KINDS
from tests.exphil_pipeline.training.teacher_fixtures import build_set, segment_set, share_set

REPO = Path(__file__).resolve().parents[3]


def _quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def real_segment(real_store) -> Path:
    """128 consecutive frames of one real Mewtwo game, as a one-episode training set."""
    source = build_set(real_store.home, "mewtwo-real", characters=["MEWTWO"], heldout_fraction=0)
    segment_set(source, real_store.home, "segment", frames=128)
    return real_store.home


@pytest.fixture(scope="module")
def sample_set(sample_store) -> Path:
    build_set(sample_store.home, "teach", characters=["MEWTWO"], heldout_fraction=0.1)
    return sample_store.home


@pytest.mark.parametrize("backbone", BACKBONE_KINDS)
def test_each_backbone_overfits_a_real_replay_segment(real_segment: Path, backbone: str) -> None:
    config = TeacherConfig(
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
    experiment = f"overfit-{backbone}"
    result = train(config, share_set(real_segment, "segment", experiment), experiment, _quiet)
    first, last = result.curve[0][1], result.curve[-1][1]
    assert last < 0.02 * first, (first, last)


def _sample_config(**overrides: object) -> TeacherConfig:
    fields = {
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
    full = train(_sample_config(), share_set(sample_set, "teach", "full"), "full", _quiet)
    share_set(sample_set, "teach", "cut")
    halted = train(_sample_config(), sample_set, "cut", _quiet, halt_after_steps=5)
    assert halted.halted and halted.steps == 5  # the last checkpoint is from step 3
    resumed = train(_sample_config(), sample_set, "cut", _quiet)
    assert resumed.steps == full.steps
    for a, b in zip(_parameters(full.policy), _parameters(resumed.policy), strict=True):
        assert torch.equal(a, b)
    assert [h["heldout"]["loss"] for h in resumed.history] == [
        h["heldout"]["loss"] for h in full.history
    ]


def test_checkpoints_hold_everything_and_load_identically(sample_set: Path) -> None:
    config = _sample_config(epochs=1)
    result = train(config, share_set(sample_set, "teach", "saved"), "saved", _quiet)
    checkpoint = torch.load(result.folder / "last.pt", weights_only=False)
    assert {"policy", "optimizer", "scheduler", "progress", "config", "contract"} <= set(checkpoint)
    assert checkpoint["config"] == config.model_dump()
    loaded = TeacherCheckpoint.load(result.folder / "last.pt").policy
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


def test_checkpoints_carry_the_policy_contract(sample_set: Path) -> None:
    build_set(sample_set, "delayed", characters=["MEWTWO"], frame_delay=3, heldout_fraction=0.1)
    train(_sample_config(max_steps=2), sample_set, "delayed", _quiet)
    best = TeacherCheckpoint.best(DataLayout(sample_set).experiment("delayed"))
    assert best.contract.frame_delay == 3 and best.contract.character == "MEWTWO"
    assert best.contract.training_set == "delayed"
    assert best.contract.embedding_spec_hash == best.policy.config.embedding_spec_hash
    last = TeacherCheckpoint.load(best.path.with_name("last.pt"))
    assert last.contract == best.contract


def test_resume_continues_on_run_length_and_refuses_a_different_model(sample_set: Path) -> None:
    share_set(sample_set, "teach", "grow")
    first = train(_sample_config(epochs=1), sample_set, "grow", _quiet)
    longer = train(_sample_config(epochs=2, eval_max_frames=100), sample_set, "grow", _quiet)
    assert len(longer.history) == 2 and longer.steps == 2 * first.steps
    with pytest.raises(ValueError, match=r"hidden_dim.*resume: false"):
        train(_sample_config(epochs=3, hidden_dim=16), sample_set, "grow", _quiet)
    # Rebuilt with other games held out: other data under the same experiment name.
    build_set(sample_set, "grow", characters=["MEWTWO"], heldout_fraction=0.0)
    with pytest.raises(ValueError, match="training set"):
        train(_sample_config(epochs=3), sample_set, "grow", _quiet)
    restarted = train(_sample_config(epochs=1, hidden_dim=16, resume=False), sample_set, "grow")
    assert restarted.steps == first.steps


def test_a_checkpoint_without_a_contract_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no policy contract.*re-materialize"):
        PolicyContract.from_checkpoint({"policy": {}}, tmp_path / "best.pt")


def test_two_gloo_processes_stay_in_sync(sample_set: Path, tmp_path: Path) -> None:
    config = tmp_path / "run.json"
    share_set(sample_set, "teach", "ddp")
    config.write_text(_sample_config(epochs=1, resume=False).model_dump_json())
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
            "--experiment",
            "ddp",
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
