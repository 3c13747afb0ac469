"""RL from an imitation teacher: the checkpoint is a teacher, a killed run resumes, actors agree
wherever they run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest
import torch

from exphil_pipeline.distillation.soft_labels import (
    SoftLabelsConfig,
    build_soft_labels,
    distilled_teacher,
)
from exphil_pipeline.evaluation.matches import read_matches
from exphil_pipeline.rl.actor import ActorSpec, RolloutRequest
from exphil_pipeline.rl.actor_pool import actor_pool
from exphil_pipeline.rl.opponent_mix import OpponentSpec
from exphil_pipeline.rl.rl_config import RLConfig
from exphil_pipeline.rl.rl_trainer import train_rl
from exphil_pipeline.storage.layout import DataLayout
from exphil_pipeline.training.teacher_checkpoint import TeacherCheckpoint
from tests.exphil_pipeline.training.teacher_fixtures import small_mewtwo_teacher

BASE = "rl-base"


@pytest.fixture(scope="module")
def home(sample_store) -> Path:
    """The sample games with a small Mewtwo imitation teacher (experiment ``rl-base``)."""
    home = Path(sample_store.home)
    small_mewtwo_teacher(
        home, BASE, backbone="mlp", hidden_dim=32, batch_size=4, bptt=32, max_steps=30
    )
    return home


def _config(**overrides: object) -> RLConfig:
    settings = {
        "imitation_experiment": BASE,
        "steps": 6 * 2 * 8 * 32,
        "actors": 2,
        "games_per_actor": 8,
        "unroll": 32,
        "cluster": "inline",
        "max_game_frames": 60,
        "eval_games": 2,
        "checkpoint_every": 2,
        "value_warmup_updates": 1,
        "opponents": ["scripted:3", "teacher", "self"],
    }
    return RLConfig(**{**settings, **overrides})


def test_the_rl_teacher_is_a_teacher_the_distillation_chain_takes(home: Path) -> None:
    result = train_rl(_config(), home, "rl-run", log=lambda _: None)
    assert result is not None
    layout = DataLayout(home)
    paths, base = layout.experiment("rl-run"), layout.experiment(BASE)
    rl = TeacherCheckpoint.load(paths.rl_teacher_best)
    imitation = TeacherCheckpoint.load(base.teacher_best)
    assert rl.contract == imitation.contract and rl.contract.frame_delay == 2
    assert rl.policy.value is not None
    history = result.progress.history
    assert [h["update"] for h in history] == list(range(1, 7))
    for key in ("reward_per_frame", "kl_reverse", "value_loss", "learner_frames_per_s"):
        assert np.isfinite([h[key] for h in history]).all(), key
    assert paths.rl_teacher_curves.read_bytes()[:4] == b"\x89PNG"
    assert len(list((paths.rl_teacher / "snapshots").glob("v*.pt"))) == 3
    # Every game it played, in training and in the final arena runs, is a matches row.
    matches = read_matches(layout)
    rl_rows = matches.filter(pc.equal(matches["run_kind"], "rl"))
    assert rl_rows.num_rows >= 3 * 2
    assert result.versus_base.players[0].name == "rl:rl-run"
    # Which opponents the run met, from the pool the config names.
    assert result.opponent_games and all(n > 0 for n in result.opponent_games.values())
    for name in result.opponent_games:
        assert name in ("scripted:3", "teacher") or name.startswith("self:v"), name

    # Distillation takes it as its teacher: same frames, labels from the RL teacher.
    shutil_copy_training_set(layout, BASE, "rl-run")
    build_soft_labels(paths, SoftLabelsConfig(teacher="rl"))
    assert distilled_teacher(paths).path == paths.rl_teacher_best


def shutil_copy_training_set(layout: DataLayout, source: str, target: str) -> None:
    import shutil

    shutil.copytree(
        layout.experiment(source).training_set,
        layout.experiment(target).training_set,
        dirs_exist_ok=True,
    )


def test_a_killed_run_resumes_from_its_last_checkpoint(home: Path) -> None:
    config = _config()
    assert train_rl(config, home, "rl-resume", log=lambda _: None, halt_after_updates=3) is None
    last = DataLayout(home).experiment("rl-resume").rl_teacher_last
    saved = torch.load(last, weights_only=False)
    assert saved["progress"]["updates"] == 2  # the third update was lost with the "kill"
    messages: list[str] = []
    result = train_rl(config, home, "rl-resume", log=messages.append)
    assert result is not None
    assert any("resumed at update 2" in m for m in messages)
    assert [h["update"] for h in result.progress.history] == list(range(1, 7))
    with pytest.raises(ValueError, match="learning_rate"):
        train_rl(_config(learning_rate=1e-3), home, "rl-resume", log=lambda _: None)


def _spec(home: Path, index: int) -> ActorSpec:
    teacher = TeacherCheckpoint.load(DataLayout(home).experiment(BASE).teacher_best)
    config = _config()
    return ActorSpec(
        index=index,
        policy=teacher.policy.config.to_dict(),
        frame_delay=teacher.contract.frame_delay,
        frame_delay_range=teacher.contract.frame_delay_range,
        character="MEWTWO",
        opponent_character="FOX",
        stage="FINAL_DESTINATION",
        stocks=4,
        max_game_frames=300,
        games=4,
        unroll=12,
        rewards=config.rewards(),
        seed=7 + index,
    )


@pytest.mark.parametrize("cluster", ["local", "ray"])
def test_actors_give_the_same_chunks_in_any_pool(home: Path, cluster: str) -> None:
    if cluster == "ray":
        ray = pytest.importorskip("ray")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    teacher = TeacherCheckpoint.load(DataLayout(home).experiment(BASE).teacher_best)
    weights = {k: v.numpy() for k, v in teacher.policy.state_dict().items()}
    chunks = {}
    for kind in ("inline", cluster):
        pool = actor_pool(kind, [_spec(home, 0), _spec(home, 1)])
        try:
            for actor in (0, 1):
                request = RolloutRequest(3, weights, {OpponentSpec("scripted:2", level=2): 1.0})
                pool.submit(actor, request)
            chunks[kind] = sorted((pool.next() for _ in range(2)), key=lambda r: r.actor)
        finally:
            pool.close()
    if cluster == "ray":
        ray.shutdown()
    for inline, remote in zip(chunks["inline"], chunks[cluster], strict=True):
        assert remote.version == 3 and remote.port == remote.actor % 2
        for name in ("features", "actions", "log_probs", "rewards", "dones"):
            np.testing.assert_array_equal(getattr(inline, name), getattr(remote, name))
    assert chunks[cluster][0].features.shape[:2] == (13, 4)
