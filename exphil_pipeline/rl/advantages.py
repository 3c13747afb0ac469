"""Advantage and value targets over time-major trajectories ``[T, B]``.

``discounts[t]`` is ``gamma * (1 - done[t])``: 0 where step ``t`` ended its episode, so no
value from after the end (the next episode's first state) leaks back. ``bootstrap_value[B]``
is the value of the state after the last step. Both estimators run backwards over ``T`` and
return targets without gradients: they are regression targets and weights, not losses.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


def _check_time_major(
    rewards: Tensor, values: Tensor, bootstrap: Tensor, discounts: Tensor
) -> None:
    if rewards.dim() < 1 or values.shape != rewards.shape or discounts.shape != rewards.shape:
        raise ValueError(
            f"rewards, values and discounts must share a [T, B] shape: {tuple(rewards.shape)}, "
            f"{tuple(values.shape)}, {tuple(discounts.shape)}"
        )
    if bootstrap.shape != rewards.shape[1:]:
        raise ValueError(
            f"bootstrap_value must be {tuple(rewards.shape[1:])} (one per trajectory), "
            f"got {tuple(bootstrap.shape)}"
        )


@torch.no_grad()
def gae(
    rewards: Tensor, values: Tensor, bootstrap_value: Tensor, discounts: Tensor, lam: float
) -> tuple[Tensor, Tensor]:
    """Generalized advantage estimation (Schulman et al. 2016): ``(advantages, returns)``,
    both ``[T, B]``, with ``returns = advantages + values`` (the lambda-returns).

    ``A_t = delta_t + discounts_t * lam * A_{t+1}``, ``delta_t = r_t + discounts_t *
    V_{t+1} - V_t``. ``lam = 1`` gives the Monte Carlo return minus the value, ``lam = 0``
    the one-step TD error.
    """
    _check_time_major(rewards, values, bootstrap_value, discounts)
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    next_values = torch.cat([values[1:], bootstrap_value[None]], dim=0)
    deltas = rewards + discounts * next_values - values
    advantages = torch.zeros_like(deltas)
    running = torch.zeros_like(bootstrap_value)
    for t in reversed(range(rewards.shape[0])):
        running = deltas[t] + discounts[t] * lam * running
        advantages[t] = running
    return advantages, advantages + values


class VTraceReturns(NamedTuple):
    """V-trace targets, each ``[T, B]`` and without gradients."""

    vs: Tensor
    """Value targets ``v_s`` for the value function."""
    pg_advantages: Tensor
    """Policy-gradient advantages ``rho_s (r_s + gamma_s v_{s+1} - V(x_s))``, already
    weighted by the truncated importance ratio: multiply by ``log pi(a_s)`` and ascend."""
    clipped_rhos: Tensor
    """``min(clip_rho, pi/mu)``: the truncated ratios the targets used."""


@torch.no_grad()
def vtrace(
    behaviour_log_probs: Tensor,
    target_log_probs: Tensor,
    rewards: Tensor,
    values: Tensor,
    bootstrap_value: Tensor,
    discounts: Tensor,
    clip_rho: float = 1.0,
    clip_pg_rho: float = 1.0,
    clip_c: float = 1.0,
    lam: float = 1.0,
) -> VTraceReturns:
    """V-trace (Espeholt et al. 2018, IMPALA) for trajectories played by a behaviour policy
    ``mu`` (``behaviour_log_probs``, e.g. an actor's stale parameters) and learned for a target
    policy ``pi`` (``target_log_probs``), log-probabilities of the actions taken, ``[T, B]``.

    ``v_s = V(x_s) + sum_t (prod_{i<t} c_i) rho_t delta_t`` with ``rho_t = min(clip_rho,
    pi/mu)``, ``c_i = lam * min(clip_c, pi/mu)`` and ``delta_t = r_t + gamma_t V(x_{t+1}) -
    V(x_t)``, computed by the recursion ``v_s - V(x_s) = delta_s' + gamma_s c_s (v_{s+1} -
    V(x_{s+1}))``. When ``pi == mu``, ``lam = 1`` and the clips are >= 1, ``v_s`` is the
    n-step bootstrapped return. ``clip_rho`` sets the fixed point (the value of a policy
    between ``mu`` and ``pi``), ``clip_c`` the contraction speed.
    """
    _check_time_major(rewards, values, bootstrap_value, discounts)
    if behaviour_log_probs.shape != rewards.shape or target_log_probs.shape != rewards.shape:
        raise ValueError("behaviour_log_probs and target_log_probs must be [T, B] like rewards")
    if min(clip_rho, clip_pg_rho, clip_c) <= 0:
        raise ValueError(f"clips must be > 0: {clip_rho=}, {clip_pg_rho=}, {clip_c=}")
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")
    rhos = torch.exp(target_log_probs - behaviour_log_probs)
    clipped_rhos = rhos.clamp(max=clip_rho)
    cs = lam * rhos.clamp(max=clip_c)
    next_values = torch.cat([values[1:], bootstrap_value[None]], dim=0)
    deltas = clipped_rhos * (rewards + discounts * next_values - values)
    vs_minus_values = torch.zeros_like(deltas)
    running = torch.zeros_like(bootstrap_value)
    for t in reversed(range(rewards.shape[0])):
        running = deltas[t] + discounts[t] * cs[t] * running
        vs_minus_values[t] = running
    vs = vs_minus_values + values
    next_vs = torch.cat([vs[1:], bootstrap_value[None]], dim=0)
    pg_advantages = rhos.clamp(max=clip_pg_rho) * (rewards + discounts * next_vs - values)
    return VTraceReturns(vs=vs, pg_advantages=pg_advantages, clipped_rhos=clipped_rhos)
