"""The PPO loss's pieces on hand-computed cases, and log-probabilities from a real policy."""

from __future__ import annotations

import math

import pytest
import torch

from exphil_pipeline.rl.ppo_loss import (
    PPOConfig,
    action_log_probs,
    entropy,
    ppo_loss,
    teacher_kl,
)
from models.policy import Policy, PolicyConfig

CONFIG = PPOConfig(clip=0.2, value_coef=0.5, entropy_coef=0.01, teacher_kl_reverse=0.1)


def _policy_term(ratio: float, advantage: float) -> tuple[float, float]:
    """The policy loss and its gradient with respect to the new log-probability."""
    new = torch.tensor([math.log(ratio)], requires_grad=True)
    zero = torch.zeros(1)
    loss, stats = ppo_loss(
        new, zero, torch.tensor([advantage]), zero, zero, zero, zero, zero, CONFIG
    )
    loss.backward()
    return stats["policy_loss"], float(new.grad[0])


@pytest.mark.parametrize(
    ("ratio", "advantage", "loss", "clipped"),
    [
        (1.1, 2.0, -2.2, False),  # inside the clip: the plain surrogate
        (0.9, -2.0, 1.8, False),
        (1.5, 1.0, -1.2, True),  # a good action already made 1.5x likelier: no more push
        (0.5, 1.0, -0.5, False),  # a good action made less likely: still pulled back up
        (1.5, -1.0, 1.5, False),  # a bad action made likelier: still pushed down
        (0.5, -1.0, 0.8, True),  # a bad action already made 2x rarer: no more push
    ],
)
def test_clipped_surrogate(ratio: float, advantage: float, loss: float, clipped: bool) -> None:
    policy_loss, gradient = _policy_term(ratio, advantage)
    assert policy_loss == pytest.approx(loss)
    if clipped:
        assert gradient == 0.0
    else:
        assert gradient == pytest.approx(-ratio * advantage)


def test_total_loss_and_statistics() -> None:
    ratios = torch.tensor([1.0, 1.5, 0.5, 1.1])
    old = torch.log(torch.tensor([0.2, 0.2, 0.4, 0.5]))
    new = old + torch.log(ratios)
    advantages = torch.tensor([1.0, 1.0, -1.0, 2.0])
    values, returns = torch.tensor([1.0, 2.0, 0.0, 0.0]), torch.tensor([0.0, 4.0, 0.0, 0.0])
    ent, kl_f, kl_r = torch.full((4,), 2.0), torch.full((4,), 0.3), torch.full((4,), 0.5)
    config = PPOConfig(teacher_kl_forward=0.2)
    loss, stats = ppo_loss(new, old, advantages, values, returns, ent, kl_f, kl_r, config)
    policy = -(1.0 + 1.2 - 0.8 + 2.2) / 4
    value = (1 + 4) / 4
    assert stats["policy_loss"] == pytest.approx(policy)
    assert stats["value_loss"] == pytest.approx(value)
    assert stats["clip_fraction"] == pytest.approx(0.5)
    approx_kl = sum((r - 1) - math.log(r) for r in (1.0, 1.5, 0.5, 1.1)) / 4
    assert stats["approx_kl"] == pytest.approx(approx_kl, rel=1e-5)
    assert (stats["entropy"], stats["kl_forward"], stats["kl_reverse"]) == pytest.approx(
        (2.0, 0.3, 0.5)
    )
    expected = policy + 0.5 * value - 0.01 * 2.0 + 0.2 * 0.3 + 0.1 * 0.5
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_entropy_of_uniform_heads_is_the_sum_of_log_classes() -> None:
    logits = [torch.zeros(3, 4), torch.zeros(3, 8), torch.zeros(3, 2)]
    torch.testing.assert_close(entropy(logits), torch.full((3,), math.log(4 * 8 * 2)))


def test_teacher_kl_is_zero_for_identical_logits_and_known_for_two_distributions() -> None:
    logits = [torch.randn(5, 3), torch.randn(5, 7)]
    forward, reverse = teacher_kl(logits, [head.clone() for head in logits])
    torch.testing.assert_close(forward, torch.zeros(5), atol=1e-6, rtol=0)
    torch.testing.assert_close(reverse, torch.zeros(5), atol=1e-6, rtol=0)
    policy = [torch.log(torch.tensor([[0.5, 0.5]]))] * 2  # two heads, each the same pair
    teacher = [torch.log(torch.tensor([[0.9, 0.1]]))] * 2
    forward, reverse = teacher_kl(policy, teacher)
    kl_teacher_policy = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    kl_policy_teacher = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    torch.testing.assert_close(forward, torch.tensor([2 * kl_teacher_policy]))
    torch.testing.assert_close(reverse, torch.tensor([2 * kl_policy_teacher]))


@pytest.fixture(scope="module")
def policy() -> Policy:
    torch.manual_seed(0)
    config = PolicyConfig(
        input_dim=12, embedding_spec_hash="test", backbone="mlp", hidden_dim=16, num_layers=1
    )
    return Policy(config).eval()


def test_action_log_probs_sum_the_taken_class_of_each_teacher_forced_head(policy: Policy) -> None:
    features = torch.randn(3, 5, 12)
    classes = torch.tensor(policy.config.head_classes)
    actions = (torch.rand(3, 5, len(classes)) * classes).long()
    with torch.no_grad():
        logits, _ = policy(features, actions)
    expected = torch.zeros(3, 5)
    for head, head_logits in enumerate(logits):
        log_softmax = torch.log_softmax(head_logits, dim=-1)
        expected += log_softmax.gather(-1, actions[..., head, None]).squeeze(-1)
    torch.testing.assert_close(action_log_probs(logits, actions), expected)


def test_action_log_probs_of_sampled_actions_are_the_sampler_s_own(policy: Policy) -> None:
    # The autoregressive sampler conditions each head on the classes drawn before it; the
    # teacher-forced logits with those classes as targets must give the same joint
    # probability, the product of each drawn class's probability.
    batch = 8
    features = torch.randn(batch, 12)
    uniforms = torch.rand(batch, policy.config.num_heads)
    with torch.no_grad():
        state = policy.initial_state(batch)
        classes, probs, _ = policy.step(features, state, uniforms, torch.tensor(1.0))
        logits, _ = policy(features[:, None], classes[:, None])
    log_probs = action_log_probs(logits, classes[:, None]).squeeze(1)
    torch.testing.assert_close(log_probs, probs.log().sum(-1), rtol=1e-5, atol=1e-5)


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="clip"):
        PPOConfig(clip=1.5)
    with pytest.raises(ValueError, match="gamma"):
        PPOConfig(gamma=0.0)
    with pytest.raises(ValueError, match="entropy_coef"):
        PPOConfig(entropy_coef=-0.1)
