"""The autoregressive controller head: hidden vector -> one class per controller head.

Components are predicted in a fixed order: the buttons as one group (independent given the
hidden vector), then main x, main y, C x, C y, shoulder, each one conditioned on the hidden
vector plus embeddings of every class chosen before it. Conditioning is what lets the head
express joint structure a factorised head cannot (a stick held diagonally is one decision, not
two independent coin flips).

Sampling is inverse-CDF on caller-supplied uniforms, so it is deterministic given the noise and
exports to ONNX as plain tensor arithmetic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class HeadMetrics:
    """Per-head results of teacher-forced logits against targets."""

    nll: Tensor
    """Mean negative log-likelihood per head ``[num_heads]`` (differentiable)."""
    accuracy: Tensor
    """Top-1 accuracy per head ``[num_heads]`` (no gradient)."""

    @property
    def loss(self) -> Tensor:
        """The training loss: the sum of the per-head NLLs."""
        return self.nll.sum()


def controller_metrics(
    logits: Sequence[Tensor], targets: Tensor, mask: Tensor | None = None
) -> HeadMetrics:
    """NLL and accuracy per head for ``logits[i][..., classes_i]`` and ``targets[..., num_heads]``.

    ``mask[...]`` (bool, optional) selects the frames that count, e.g. to skip padding.
    """
    targets = targets.long()
    nll, accuracy = [], []
    for head, head_logits in enumerate(logits):
        flat_logits = head_logits.reshape(-1, head_logits.shape[-1])
        flat_targets = targets[..., head].reshape(-1)
        losses = F.cross_entropy(flat_logits, flat_targets, reduction="none")
        correct = (flat_logits.detach().argmax(-1) == flat_targets).float()
        if mask is None:
            nll.append(losses.mean())
            accuracy.append(correct.mean())
        else:
            weights = mask.reshape(-1).float()
            count = weights.sum().clamp(min=1.0)
            nll.append((losses * weights).sum() / count)
            accuracy.append((correct * weights).sum() / count)
    return HeadMetrics(nll=torch.stack(nll), accuracy=torch.stack(accuracy))


def sample_inverse_cdf(
    logits: Tensor, uniforms: Tensor, temperature: Tensor
) -> tuple[Tensor, Tensor]:
    """One class per row of ``logits[..., classes]`` from ``uniforms[...]`` in ``[0, 1)``.

    ``temperature`` broadcasts against ``uniforms``; where it is <= 0 the argmax is taken.
    The class is the number of CDF entries ``<= u``, so ``u = 0`` picks the first class with
    nonzero probability, and the result is clamped to the last such class in case rounding left
    the CDF's end below ``u``. Returns the classes (long) and their probability under the
    untempered softmax, i.e. the policy's own belief in what was picked.
    """
    greedy = temperature <= 0
    safe_temperature = torch.where(greedy, torch.ones_like(temperature), temperature)
    tempered = torch.softmax(logits / safe_temperature[..., None], dim=-1)
    cdf = torch.cumsum(tempered, dim=-1)
    threshold = uniforms[..., None] * cdf[..., -1:]
    drawn = (cdf <= threshold).sum(-1)
    class_ids = torch.arange(logits.shape[-1], device=logits.device)
    last_possible = (class_ids * (tempered > 0)).amax(-1)
    drawn = torch.minimum(drawn, last_possible)
    chosen = torch.where(greedy, logits.argmax(-1), drawn)
    probability = torch.softmax(logits, dim=-1).gather(-1, chosen[..., None]).squeeze(-1)
    return chosen, probability


class AutoregressiveControllerHead(nn.Module):
    """Hidden vectors ``[..., hidden_dim]`` to logits for every controller head.

    Heads ``0 .. joint_heads - 1`` form the first group and are predicted together from the
    hidden vector alone (the buttons). Every later head is its own group, conditioned on the
    hidden vector plus the summed class embeddings of all earlier heads.
    """

    class_offsets: Tensor

    def __init__(
        self,
        hidden_dim: int,
        head_classes: Sequence[int],
        joint_heads: int,
        mlp_dim: int,
    ) -> None:
        super().__init__()
        self.head_classes = tuple(head_classes)
        self.num_heads = len(self.head_classes)
        joint_group = (tuple(range(joint_heads)),) if joint_heads else ()
        self.groups: tuple[tuple[int, ...], ...] = joint_group + tuple(
            (head,) for head in range(joint_heads, self.num_heads)
        )
        self.group_logits = nn.ModuleList(
            nn.Sequential(
                nn.LayerNorm(hidden_dim),
                nn.Linear(hidden_dim, mlp_dim),
                nn.GELU(),
                nn.Linear(mlp_dim, sum(self.head_classes[h] for h in group)),
            )
            for group in self.groups
        )
        # One table for the classes of every head that conditions a later one (all but the last
        # group); head h's class c lives at row class_offsets[h] + c.
        conditioning_heads = self.num_heads - len(self.groups[-1])
        offsets = [0]
        for classes in self.head_classes[:conditioning_heads]:
            offsets.append(offsets[-1] + classes)
        self.register_buffer("class_offsets", torch.tensor(offsets[:-1], dtype=torch.long))
        self.class_embedding = nn.Embedding(offsets[-1], hidden_dim)

    def forward(self, hidden: Tensor, targets: Tensor) -> list[Tensor]:
        """Teacher forcing: each group conditioned on the target classes of earlier groups.

        ``hidden[..., H]``, ``targets[..., num_heads]`` (uint8 or long) to one logits tensor
        ``[..., classes_i]`` per head.
        """
        targets = targets.long()
        logits: list[Tensor] = []
        context = hidden
        for group, group_logits in zip(self.groups, self.group_logits, strict=True):
            logits.extend(self._split_group(group, group_logits(context)))
            if group != self.groups[-1]:
                context = context + self._embed(group, targets[..., list(group)])
        return logits

    def sample(
        self, hidden: Tensor, uniforms: Tensor, temperature: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Sample every head in order, feeding each group's choice to the next.

        ``hidden[B, H]``, ``uniforms[B, num_heads]`` in ``[0, 1)``, ``temperature`` scalar or
        ``[B]`` (<= 0 means argmax). Returns ``classes long[B, num_heads]`` and
        ``probs float[B, num_heads]``, each chosen class's untempered probability.
        """
        temperature = temperature.reshape(-1).expand(hidden.shape[0])
        classes: list[Tensor] = []
        probs: list[Tensor] = []
        context = hidden
        for group, group_logits in zip(self.groups, self.group_logits, strict=True):
            chosen_in_group = []
            for head, head_logits in zip(
                group, self._split_group(group, group_logits(context)), strict=True
            ):
                chosen, probability = sample_inverse_cdf(
                    head_logits, uniforms[:, head], temperature
                )
                chosen_in_group.append(chosen)
                probs.append(probability)
            classes.extend(chosen_in_group)
            if group != self.groups[-1]:
                context = context + self._embed(group, torch.stack(chosen_in_group, dim=-1))
        return torch.stack(classes, dim=-1), torch.stack(probs, dim=-1)

    def _split_group(self, group: tuple[int, ...], flat: Tensor) -> list[Tensor]:
        return list(flat.split([self.head_classes[h] for h in group], dim=-1))

    def _embed(self, group: tuple[int, ...], classes: Tensor) -> Tensor:
        """Summed embeddings of ``classes[..., len(group)]`` for the heads in ``group``."""
        rows = classes + self.class_offsets[list(group)]
        return self.class_embedding(rows).sum(dim=-2)
