"""The PPO objective over the autoregressive controller head, with a KL anchor to a teacher.

The policy's teacher-forced logits (``models.policy.Policy.forward(features, actions)``) are
one ``[..., classes_i]`` tensor per controller head, each head conditioned on the classes of
the heads before it. With the taken actions as the targets, head ``i``'s softmax is
``p(a_i | a_<i, state)``, so the sum over heads of each head's log-softmax at the taken
class is the joint log-probability of the action, and sums over heads of per-head entropies
and KLs are those of the joint distribution along the taken path (the chain rule, estimated
at the sampled prefix).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


def action_log_probs(logits: Sequence[Tensor], actions: Tensor) -> Tensor:
    """Joint log-probability ``[...]`` of ``actions[..., heads]`` (long) under the
    teacher-forced ``logits`` (one ``[..., classes_i]`` per head)."""
    if actions.shape[-1] != len(logits):
        raise ValueError(f"actions has {actions.shape[-1]} heads, logits {len(logits)}")
    actions = actions.long()
    return sum(
        F.log_softmax(head, dim=-1).gather(-1, actions[..., i, None]).squeeze(-1)
        for i, head in enumerate(logits)
    )


def entropy(logits: Sequence[Tensor]) -> Tensor:
    """Sum over heads of each head's entropy ``[...]``, along the taken path."""
    total = 0
    for head in logits:
        log_p = F.log_softmax(head, dim=-1)
        total = total - (log_p.exp() * log_p).sum(-1)
    return total


def teacher_kl(
    policy_logits: Sequence[Tensor], teacher_logits: Sequence[Tensor]
) -> tuple[Tensor, Tensor]:
    """``(KL(teacher || policy), KL(policy || teacher))``, each summed over heads, ``[...]``.

    The forward KL is the imitation loss (up to the teacher's entropy): it keeps every move
    the teacher would make possible. The reverse KL keeps the policy from putting mass where
    the teacher puts none. Both heads' logits must be teacher-forced on the same actions.
    """
    if len(policy_logits) != len(teacher_logits):
        raise ValueError(f"{len(policy_logits)} policy heads vs {len(teacher_logits)} teacher")
    forward = reverse = 0
    for policy, teacher in zip(policy_logits, teacher_logits, strict=True):
        log_p = F.log_softmax(policy, dim=-1)
        log_q = F.log_softmax(teacher, dim=-1)
        forward = forward + (log_q.exp() * (log_q - log_p)).sum(-1)
        reverse = reverse + (log_p.exp() * (log_p - log_q)).sum(-1)
    return forward, reverse


@dataclass(frozen=True)
class PPOConfig:
    """Coefficients of the PPO loss and of its advantage targets."""

    clip: float = 0.2
    """Probability-ratio clip epsilon: the surrogate stops rewarding a ratio past 1 +/- clip."""
    value_coef: float = 0.5
    """Weight of the value loss (mean squared error to the returns)."""
    entropy_coef: float = 0.01
    """Weight of the entropy bonus (subtracted from the loss)."""
    teacher_kl_forward: float = 0.0
    """Weight of KL(teacher || policy) per frame."""
    teacher_kl_reverse: float = 0.1
    """Weight of KL(policy || teacher) per frame: the anchor to the imitation policy."""
    gamma: float = 0.995
    """Discount per frame (0.995: a half-life of about 140 frames, 2.3 seconds)."""
    lam: float = 0.95
    """GAE lambda, or V-trace's trace lambda when ``vtrace`` is set."""
    vtrace: bool = True
    """Targets from V-trace (correcting actors that lag the learner) instead of GAE."""
    clip_rho: float = 1.0
    """V-trace's clip of the importance ratio in the targets and policy-gradient advantages."""
    clip_c: float = 1.0
    """V-trace's clip of the trace coefficients."""

    def __post_init__(self) -> None:
        problems = []
        if not 0 < self.clip < 1:
            problems.append(f"clip must be in (0, 1), got {self.clip}")
        for name in ("value_coef", "entropy_coef", "teacher_kl_forward", "teacher_kl_reverse"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.gamma <= 1:
            problems.append(f"gamma must be in (0, 1], got {self.gamma}")
        if not 0 <= self.lam <= 1:
            problems.append(f"lam must be in [0, 1], got {self.lam}")
        if self.clip_rho <= 0 or self.clip_c <= 0:
            problems.append(f"clip_rho and clip_c must be > 0: {self.clip_rho}, {self.clip_c}")
        if problems:
            raise ValueError("invalid PPOConfig: " + "; ".join(problems))


def ppo_loss(
    new_log_probs: Tensor,
    old_log_probs: Tensor,
    advantages: Tensor,
    values: Tensor,
    returns: Tensor,
    entropy: Tensor,
    kl_forward: Tensor,
    kl_reverse: Tensor,
    config: PPOConfig,
) -> tuple[Tensor, dict[str, float]]:
    """The loss to minimise and its parts, every input ``[...]`` per position.

    ``old_log_probs`` are the behaviour policy's (the actor's) log-probabilities of the
    taken actions; ``advantages`` and ``returns`` are targets (GAE, or V-trace's
    ``pg_advantages`` and ``vs``) and get no gradient. Loss: the negated clipped surrogate
    ``min(ratio * A, clip(ratio, 1 - clip, 1 + clip) * A)``, plus ``value_coef`` times the
    values' mean squared error, minus ``entropy_coef`` times the mean entropy, plus the
    teacher KLs times their weights. ``approx_kl`` is ``mean((ratio - 1) - log ratio)``, an
    unbiased, non-negative estimate of KL(old || new).
    """
    advantages, returns, old_log_probs = (
        advantages.detach(),
        returns.detach(),
        old_log_probs.detach(),
    )
    log_ratio = new_log_probs - old_log_probs
    ratio = log_ratio.exp()
    clipped = ratio.clamp(1 - config.clip, 1 + config.clip)
    policy_loss = -torch.minimum(ratio * advantages, clipped * advantages).mean()
    value_loss = (values - returns).pow(2).mean()
    mean_entropy = entropy.mean()
    mean_kl_forward, mean_kl_reverse = kl_forward.mean(), kl_reverse.mean()
    loss = (
        policy_loss
        + config.value_coef * value_loss
        - config.entropy_coef * mean_entropy
        + config.teacher_kl_forward * mean_kl_forward
        + config.teacher_kl_reverse * mean_kl_reverse
    )
    with torch.no_grad():
        stats = {
            "policy_loss": policy_loss.item(),
            "value_loss": value_loss.item(),
            "entropy": mean_entropy.item(),
            "kl_forward": mean_kl_forward.item(),
            "kl_reverse": mean_kl_reverse.item(),
            "clip_fraction": ((ratio - 1).abs() > config.clip).float().mean().item(),
            "approx_kl": ((ratio - 1) - log_ratio).mean().item(),
        }
    return loss, stats
