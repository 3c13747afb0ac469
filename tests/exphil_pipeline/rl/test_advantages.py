"""GAE and V-trace against hand-computed returns, their limits, and episode ends."""

from __future__ import annotations

import pytest
import torch

from exphil_pipeline.rl.advantages import gae, vtrace

GAMMA = 0.9


def _three_steps() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    rewards = torch.tensor([[1.0], [0.0], [2.0]])
    values = torch.tensor([[0.5], [1.0], [0.0]])
    bootstrap = torch.tensor([1.0])
    discounts = torch.full((3, 1), GAMMA)
    return rewards, values, bootstrap, discounts


def test_gae_matches_a_hand_computed_three_step_case() -> None:
    # deltas: 1 + .9 * 1 - .5 = 1.4; 0 + .9 * 0 - 1 = -1; 2 + .9 * 1 - 0 = 2.9.
    # lam = .5: A2 = 2.9, A1 = -1 + .45 * 2.9 = .305, A0 = 1.4 + .45 * .305 = 1.53725.
    advantages, returns = gae(*_three_steps(), lam=0.5)
    torch.testing.assert_close(advantages[:, 0], torch.tensor([1.53725, 0.305, 2.9]))
    torch.testing.assert_close(returns[:, 0], torch.tensor([2.03725, 1.305, 2.9]))


def test_gae_lambda_one_is_the_monte_carlo_return_and_zero_the_td_error() -> None:
    rewards, values, bootstrap, discounts = _three_steps()
    _, returns = gae(rewards, values, bootstrap, discounts, lam=1.0)
    # G2 = 2 + .9 * 1 = 2.9, G1 = .9 * 2.9 = 2.61, G0 = 1 + .9 * 2.61 = 3.349.
    torch.testing.assert_close(returns[:, 0], torch.tensor([3.349, 2.61, 2.9]))
    advantages, _ = gae(rewards, values, bootstrap, discounts, lam=0.0)
    torch.testing.assert_close(advantages[:, 0], torch.tensor([1.4, -1.0, 2.9]))


def _random_unroll(seed: int, steps: int = 6, batch: int = 5) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    done = torch.rand(steps, batch, generator=g) < 0.25
    return {
        "rewards": torch.randn(steps, batch, generator=g),
        "values": torch.randn(steps, batch, generator=g),
        "bootstrap_value": torch.randn(batch, generator=g),
        "discounts": GAMMA * (~done).float(),
    }


def _bootstrapped_returns(
    rewards: torch.Tensor,
    values: torch.Tensor,
    bootstrap_value: torch.Tensor,
    discounts: torch.Tensor,
) -> torch.Tensor:
    """sum_k (prod_{i<k} d_{t+i}) r_{t+k} + (prod d) bootstrap, summed term by term."""
    del values
    steps = rewards.shape[0]
    out = torch.zeros_like(rewards)
    for t in range(steps):
        scale = torch.ones_like(bootstrap_value)
        for k in range(t, steps):
            out[t] += scale * rewards[k]
            scale = scale * discounts[k]
        out[t] += scale * bootstrap_value
    return out


@pytest.mark.parametrize("clip", [1.0, 3.0])
def test_vtrace_on_policy_targets_are_the_n_step_bootstrapped_returns(clip: float) -> None:
    unroll = _random_unroll(seed=1)
    log_probs = torch.log(torch.rand(6, 5, generator=torch.Generator().manual_seed(2)))
    result = vtrace(
        log_probs, log_probs, **unroll, clip_rho=clip, clip_pg_rho=clip, clip_c=clip, lam=1.0
    )
    expected = _bootstrapped_returns(**unroll)
    torch.testing.assert_close(result.vs, expected)
    torch.testing.assert_close(result.clipped_rhos, torch.ones(6, 5))
    next_vs = torch.cat([expected[1:], unroll["bootstrap_value"][None]])
    torch.testing.assert_close(
        result.pg_advantages,
        unroll["rewards"] + unroll["discounts"] * next_vs - unroll["values"],
    )
    # The same as GAE with lambda 1, which is the on-policy special case.
    _, gae_returns = gae(**unroll, lam=1.0)
    torch.testing.assert_close(result.vs, gae_returns)


def test_vtrace_one_step_off_policy_truncates_the_ratio() -> None:
    # pi/mu = 2 (clipped to 1.5 in the targets, 1.2 in the advantage).
    behaviour, target = torch.log(torch.tensor([[0.25]])), torch.log(torch.tensor([[0.5]]))
    rewards, values = torch.tensor([[1.0]]), torch.tensor([[0.2]])
    bootstrap, discounts = torch.tensor([0.4]), torch.tensor([[GAMMA]])
    result = vtrace(
        behaviour, target, rewards, values, bootstrap, discounts, clip_rho=1.5, clip_pg_rho=1.2
    )
    td = 1.0 + GAMMA * 0.4 - 0.2
    torch.testing.assert_close(result.vs, torch.tensor([[0.2 + 1.5 * td]]))
    torch.testing.assert_close(result.pg_advantages, torch.tensor([[1.2 * td]]))
    torch.testing.assert_close(result.clipped_rhos, torch.tensor([[1.5]]))


def test_a_done_cuts_bootstrapping_in_gae_and_vtrace() -> None:
    unroll = _random_unroll(seed=3, steps=4, batch=1)
    unroll["discounts"] = torch.tensor([[GAMMA], [0.0], [GAMMA], [GAMMA]])  # step 1 ends
    changed = dict(unroll)
    changed["rewards"] = unroll["rewards"].clone()
    changed["rewards"][2:] += 100.0
    changed["values"] = unroll["values"].clone()
    changed["values"][2:] -= 50.0
    changed["bootstrap_value"] = unroll["bootstrap_value"] + 100.0
    log_probs = torch.zeros(4, 1)
    for lam in (0.0, 0.7, 1.0):
        first, _ = gae(**unroll, lam=lam)
        second, _ = gae(**changed, lam=lam)
        torch.testing.assert_close(first[:2], second[:2])
        assert not torch.allclose(first[2:], second[2:])
        first_vt = vtrace(log_probs, log_probs, **unroll, lam=lam)
        second_vt = vtrace(log_probs, log_probs, **changed, lam=lam)
        torch.testing.assert_close(first_vt.vs[:2], second_vt.vs[:2])
    _, returns = gae(**unroll, lam=1.0)
    torch.testing.assert_close(returns[1], unroll["rewards"][1])  # the last step's reward only


def test_targets_carry_no_gradient() -> None:
    unroll = {k: v.requires_grad_() for k, v in _random_unroll(seed=4).items()}
    log_probs = torch.zeros(6, 5, requires_grad=True)
    assert not any(t.requires_grad for t in gae(**unroll, lam=0.9))
    assert not any(t.requires_grad for t in vtrace(log_probs, log_probs, **unroll))


def test_shape_mismatch_is_refused() -> None:
    unroll = _random_unroll(seed=5)
    unroll["bootstrap_value"] = torch.zeros(6)
    with pytest.raises(ValueError, match="bootstrap_value"):
        gae(**unroll, lam=0.9)
