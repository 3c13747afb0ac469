"""The learner's sequence pass: recurrent state carried, zeroed where a game ends; an update
moves the policy, anchored to its teacher over the asked share of the games."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from exphil_pipeline.rl.actor import Rollout
from exphil_pipeline.rl.learner import Batch, Learner, encode
from exphil_pipeline.rl.ppo_loss import teacher_kl
from exphil_pipeline.rl.rl_config import RLConfig
from exphil_pipeline.training.teacher_evaluation import batch_dims
from models import Policy, PolicyConfig

DIM = 12


def _policy(backbone: str, value_head: bool, periodic_frequencies: int = 0) -> Policy:
    torch.manual_seed(0)
    config = PolicyConfig(
        input_dim=DIM,
        embedding_spec_hash="test",
        backbone=backbone,
        hidden_dim=16,
        num_layers=1,
        value_head=value_head,
        periodic_frequencies=periodic_frequencies,
    )
    return Policy(config).eval()


def _policy_and_teacher(backbone: str, periodic_frequencies: int = 0) -> tuple[Policy, Policy]:
    """A policy with a value head and its teacher: the same weights, no value head."""
    policy = _policy(backbone, True, periodic_frequencies)
    teacher = _policy(backbone, False, periodic_frequencies)
    teacher.load_state_dict(
        {k: v for k, v in policy.state_dict().items() if not k.startswith("value.")}
    )
    return policy, teacher


def _rollout(policy: Policy, steps: int = 8, games: int = 4) -> Rollout:
    rng = np.random.default_rng(0)
    classes = np.array(policy.config.head_classes)
    return Rollout(
        actor=0,
        version=0,
        port=0,
        features=rng.standard_normal((steps + 1, games, DIM)).astype(np.float32),
        actions=(rng.random((steps, games, len(classes))) * classes).astype(np.uint8),
        log_probs=np.full((steps, games), -5.0, np.float32),
        rewards=rng.standard_normal((steps, games)).astype(np.float32),
        dones=rng.random((steps, games)) < 0.1,
        initial_state=tuple(s.numpy() for s in policy.initial_state(games)),
    )


@pytest.mark.parametrize("backbone", ["gru", "attention", "mamba"])
def test_stepping_a_recurrent_backbone_equals_its_sequence_pass(backbone: str) -> None:
    policy = _policy(backbone, value_head=False)
    features = torch.randn(3, 9, DIM)
    state = policy.initial_state(3)
    no_ends = torch.zeros(3, 8, dtype=torch.bool)
    with torch.no_grad():
        stepped = encode(policy, features, state, no_ends, batch_dims(policy))
        whole, _ = policy.encode(features, state)
    torch.testing.assert_close(stepped, whole, atol=1e-5, rtol=1e-5)


def test_a_game_that_ends_starts_the_next_frame_from_a_zero_state() -> None:
    policy = _policy("gru", value_head=False)
    features = torch.randn(2, 6, DIM)
    dones = torch.zeros(2, 5, dtype=torch.bool)
    dones[0, 2] = True  # game 0 ended after frame 2: frame 3 begins a new game
    state = tuple(torch.randn_like(s) for s in policy.initial_state(2))
    with torch.no_grad():
        hidden = encode(policy, features, state, dones, batch_dims(policy))
        fresh, _ = policy.encode(features[:1, 3:], policy.initial_state(1))
    torch.testing.assert_close(hidden[0, 3:], fresh[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backbone", ["mlp", "gru"])
def test_an_update_moves_the_policy_and_reports_its_figures(backbone: str) -> None:
    policy, teacher = _policy_and_teacher(backbone)
    rollout = _rollout(policy)
    before = [p.detach().clone() for p in policy.parameters()]
    learner = Learner(policy, teacher, RLConfig(value_warmup_updates=0, minibatches=2))
    metrics = learner.update([rollout])
    assert learner.updates == 1
    for key in ("policy_loss", "value_loss", "kl_reverse", "entropy", "learner_frames_per_s"):
        assert np.isfinite(metrics[key]), key
    moved = [not torch.equal(a, b) for a, b in zip(before, policy.parameters(), strict=True)]
    assert all(moved)
    assert all(not p.requires_grad for p in teacher.parameters())


@pytest.mark.parametrize("trained", [False, True])
def test_the_periodic_frequencies_stay_as_learned_in_imitation_unless_asked(trained: bool) -> None:
    policy, teacher = _policy_and_teacher("mlp", periodic_frequencies=2)
    frequencies = policy.features.periodic.frequencies
    before = frequencies.detach().clone()
    config = RLConfig(value_warmup_updates=0, train_periodic_frequencies=trained)
    Learner(policy, teacher, config).update([_rollout(policy)])
    assert torch.equal(frequencies, before) is not trained
    assert frequencies.requires_grad is trained


@pytest.mark.parametrize("share", [1.0, 0.5])
def test_the_teacher_kl_is_measured_on_the_asked_share_of_the_games(share: float) -> None:
    policy, teacher = _policy_and_teacher("mlp")
    with torch.no_grad():
        for parameter in teacher.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    rollout = _rollout(policy, games=4)
    batch = Batch.of([rollout], batch_dims(policy), "cpu")
    steps = batch.actions.shape[1]
    with torch.no_grad():
        per_game = []
        for model in (policy, teacher):
            hidden = encode(model, batch.features, (), batch.dones, batch_dims(model))
            per_game.append(model.head(hidden[:, :steps], batch.actions))
        _, reverse = teacher_kl(*per_game)
    per_game_kl = reverse.mean(dim=1).tolist()
    config = RLConfig(value_warmup_updates=0, minibatches=1, teacher_kl_games=share)
    metrics = Learner(policy, teacher, config).update([rollout])
    # Every game has as many frames, so the KL over k games is the mean of their means.
    means = [np.mean(games) for games in itertools.combinations(per_game_kl, int(share * 4))]
    assert min(abs(metrics["kl_reverse"] - mean) for mean in means) < 1e-5
    if share < 1:
        assert abs(metrics["kl_reverse"] - np.mean(per_game_kl)) > 1e-4
