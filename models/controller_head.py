"""The autoregressive controller head: hidden vector -> one class per controller head.

Components are predicted in a fixed order: the buttons as one group (independent given the
hidden vector), then main x, main y, C x, C y, shoulder, each one conditioned on the hidden
vector plus the classes chosen before it. Conditioning is what lets the head express joint
structure a factorised head cannot (a stick held diagonally is one decision, not two
independent coin flips).

Sampling is inverse-CDF on caller-supplied uniforms, so it is deterministic given the noise and
exports to ONNX as plain tensor arithmetic. The head runs once per frame of play, so it is laid
out for few operations per step: one matrix multiply for every group's first layer, and one
vectorised draw per group rather than per head.
"""

from __future__ import annotations

import itertools
import math
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
    Returns the classes (long) and their probability under the untempered softmax, i.e. the
    policy's own belief in what was picked.
    """
    greedy = temperature <= 0
    inverse_temperature = torch.reciprocal(torch.where(greedy, 1.0, temperature))
    chosen = draw_classes(
        logits, uniforms[..., None], inverse_temperature[..., None], greedy[..., None]
    )
    probability = torch.softmax(logits, dim=-1).gather(-1, chosen)
    return chosen.squeeze(-1), probability.squeeze(-1)


def draw_classes(
    logits: Tensor, uniforms: Tensor, inverse_temperature: Tensor, greedy: Tensor
) -> Tensor:
    """The classes of :func:`sample_inverse_cdf`, ``[..., 1]``, with the temperature prepared
    by the caller (once for many draws).

    ``logits[..., classes]``; ``uniforms``, ``inverse_temperature`` and ``greedy`` broadcast
    against ``logits[..., :1]``.

    The class drawn is the number of CDF entries ``<= u`` among those below the CDF's end, so
    ``u = 0`` picks the first class with nonzero probability, and a ``u`` at or past the end (a
    CDF that rounding left short of 1) picks the last class that raises the CDF: never a class
    the tempered softmax gives no mass.
    """
    cdf = torch.cumsum(torch.softmax(logits * inverse_temperature, dim=-1), dim=-1)
    below = (cdf <= uniforms) & (cdf < cdf[..., -1:])
    return torch.where(greedy, logits.argmax(-1, keepdim=True), below.sum(-1, keepdim=True))


class AutoregressiveControllerHead(nn.Module):
    """Hidden vectors ``[..., hidden_dim]`` to logits for every controller head.

    Heads ``0 .. joint_heads - 1`` form the first group and are predicted together from the
    hidden vector alone (the buttons). Every later head is its own group, conditioned on the
    hidden vector and the classes of all earlier heads.

    Each group is an MLP with one ReLU hidden layer of ``mlp_dim`` units. All groups' first
    layers read the same normalised hidden vector, so they are one Linear (``first_layers``).
    Earlier heads' classes enter a later group through its first layer too:
    ``conditioning[k]`` maps the one-hot classes of group ``k``'s heads to the first-layer
    pre-activations of all groups after ``k``, side by side.
    """

    def __init__(
        self,
        hidden_dim: int,
        head_classes: Sequence[int],
        joint_heads: int,
        mlp_dim: int,
    ) -> None:
        super().__init__()
        if len(set(head_classes[:joint_heads])) > 1:
            raise ValueError("heads predicted together must have the same number of classes")
        self.head_classes = tuple(head_classes)
        self.num_heads = len(self.head_classes)
        self.mlp_dim = mlp_dim
        joint_group = (tuple(range(joint_heads)),) if joint_heads else ()
        self.groups: tuple[tuple[int, ...], ...] = joint_group + tuple(
            (head,) for head in range(joint_heads, self.num_heads)
        )
        self.group_sizes = tuple(len(group) for group in self.groups)
        self.group_classes = tuple(self.head_classes[group[0]] for group in self.groups)
        self.norm = nn.LayerNorm(hidden_dim)
        self.first_layers = nn.Linear(hidden_dim, len(self.groups) * mlp_dim)
        self.group_logits = nn.ModuleList(
            nn.Linear(mlp_dim, sum(self.head_classes[h] for h in group)) for group in self.groups
        )
        # Head k of the joint group has its classes' weight columns at k * classes onwards.
        offsets = torch.arange(joint_heads) * (self.head_classes[0] if joint_heads else 0)
        self.register_buffer("class_offsets", offsets[:, None], persistent=False)
        later_groups = len(self.groups) - 1
        self.conditioning = nn.ModuleList(
            nn.Linear(
                sum(self.head_classes[h] for h in group),
                (later_groups - index) * mlp_dim,
                bias=False,
            )
            for index, group in enumerate(self.groups[:-1])
        )
        # Scaled for one active input per conditioning head: all conditioning inputs together
        # start out moving a pre-activation about as much as the hidden vector does.
        self.conditioning_heads = self.num_heads - len(self.groups[-1])
        for layer in self.conditioning:
            nn.init.uniform_(
                layer.weight, -(self.conditioning_heads**-0.5), self.conditioning_heads**-0.5
            )
        # Where each conditioning head's classes start in the one-hot of all of them.
        starts = [0, *itertools.accumulate(self.head_classes[: self.conditioning_heads])]
        self.register_buffer("one_hot_starts", torch.tensor(starts[:-1]), persistent=False)
        self.one_hot_width = starts[-1]

    def forward(self, hidden: Tensor, targets: Tensor) -> list[Tensor]:
        """Teacher forcing: each group conditioned on the target classes of earlier groups.

        ``hidden[..., H]``, ``targets[..., num_heads]`` (uint8 or long) to one logits tensor
        ``[..., classes_i]`` per head.

        Every group's first layer and every conditioning layer run as two matrix multiplies
        over all frames at once (:meth:`_conditioning_matrix`) rather than a multiply, a split
        and an add per group: fewer and larger operations, forwards and backwards.
        """
        leading = hidden.shape[:-1]
        pre_activations = self.first_layers(self.norm(hidden).reshape(-1, hidden.shape[-1]))
        # In place: nothing keeps the pre-activations for the backward pass (the first layer
        # keeps its input, the conditioning multiply the one-hots), and the ReLU keeps its
        # output; this spares two frames x groups x mlp_dim buffers per pass.
        if self.conditioning:
            earlier = targets.reshape(-1, self.num_heads)[:, : self.conditioning_heads]
            one_hot = self._one_hot(earlier, pre_activations.dtype)
            conditioning = self._conditioning_matrix().to(pre_activations.dtype)
            pre_activations.addmm_(one_hot, conditioning)
        logits: list[Tensor] = []
        groups = F.relu_(pre_activations).split(self.mlp_dim, dim=-1)
        for classes, group_logits, group in zip(
            self.group_classes, self.group_logits, groups, strict=True
        ):
            logits.extend(group_logits(group).view(*leading, -1).split(classes, dim=-1))
        return logits

    def sample(
        self, hidden: Tensor, uniforms: Tensor, temperature: Tensor
    ) -> tuple[Tensor, Tensor]:
        """:meth:`sample_with_logits` without the logits."""
        classes, probs, _ = self.sample_with_logits(hidden, uniforms, temperature)
        return classes, probs

    def sample_with_logits(
        self, hidden: Tensor, uniforms: Tensor, temperature: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Sample every group in order, feeding each group's choice to the later ones.

        ``hidden[B, H]``, ``uniforms[B, num_heads]`` in ``[0, 1)``, ``temperature`` scalar or
        ``[B]`` (<= 0 means argmax). Returns ``classes long[B, num_heads]``,
        ``probs float[B, num_heads]`` (each chosen class's untempered probability) and
        ``logits float[B, sum(head_classes)]``: every head's untempered logits given the
        classes chosen before it, concatenated in head order (what :meth:`forward` gives with
        the chosen classes as targets).
        """
        batch = hidden.shape[0]
        temperature = temperature.reshape(-1, 1, 1)
        greedy = temperature <= 0
        inverse_temperature = torch.reciprocal(torch.where(greedy, 1.0, temperature))
        group_uniforms = uniforms[..., None].split(self.group_sizes, dim=1)
        # First-layer pre-activations of the groups not sampled yet, side by side.
        pending = self.first_layers(self.norm(hidden))
        classes, logits, padded_logits = [], [], []
        for index, (group_logits, group_uniform) in enumerate(
            zip(self.group_logits, group_uniforms, strict=True)
        ):
            later_width = (len(self.groups) - 1 - index) * self.mlp_dim
            current, pending = pending.split([self.mlp_dim, later_width], dim=-1)
            flat_logits = group_logits(F.relu(current))
            head_logits = flat_logits.view(batch, self.group_sizes[index], -1)
            chosen = draw_classes(head_logits, group_uniform, inverse_temperature, greedy)
            classes.append(chosen)
            logits.append(flat_logits)
            missing = max(self.group_classes) - self.group_classes[index]
            if missing:
                head_logits = F.pad(head_logits, (0, missing), value=-math.inf)
            padded_logits.append(head_logits)
            if later_width:
                pending = self._condition_sampled(index, chosen, pending)
        # Every head's probabilities at once: padding with -inf gives the padding no mass.
        chosen_classes = torch.cat(classes, dim=1)
        all_probabilities = torch.softmax(torch.cat(padded_logits, dim=1), dim=-1)
        probs = all_probabilities.gather(-1, chosen_classes)
        return chosen_classes.squeeze(-1), probs.squeeze(-1), torch.cat(logits, dim=-1)

    def _one_hot(self, classes: Tensor, dtype: torch.dtype) -> Tensor:
        """``classes[N, conditioning heads]`` to their one-hot encodings side by side,
        ``[N, one_hot_width]``, in head order."""
        columns = classes.long() + self.one_hot_starts
        one_hot = torch.zeros(len(classes), self.one_hot_width, dtype=dtype, device=classes.device)
        return one_hot.scatter_(1, columns, 1.0)

    def _conditioning_matrix(self) -> Tensor:
        """Every ``conditioning`` layer as one ``[one_hot_width, groups * mlp_dim]`` matrix:
        the rows of group ``k``'s classes hold zeros for the groups up to ``k`` and
        ``conditioning[k]``'s weight for the later ones, so one-hots times it give what every
        earlier group adds to every group's first-layer pre-activation."""
        return torch.cat(
            [
                F.pad(layer.weight.T, ((index + 1) * self.mlp_dim, 0))
                for index, layer in enumerate(self.conditioning)
            ]
        )

    def _condition_sampled(self, index: int, classes: Tensor, pending: Tensor) -> Tensor:
        """``pending[B, later groups * mlp_dim]``, the later groups' pre-activations, plus
        what group ``index``'s sampled ``classes[B, group size, 1]`` add to them.

        A one-head group gathers that head's row of ``conditioning[index]``'s weight, which
        for a single frame is fewer ONNX nodes than building a one-hot and multiplying. The
        joint group (one row per button) multiplies its multi-hot instead: gathering and
        summing eight rows per frame took a tenth of a batched step's time in onnxruntime.
        The sum is the linear's bias, so it exports as one Gemm that keeps the weight's name
        (the INT8 methods that keep the head in float find it by that name).
        """
        layer = self.conditioning[index]
        if self.group_sizes[index] == 1:
            return pending + F.embedding(classes, layer.weight.T).sum(dim=(-3, -2))
        columns = torch.arange(layer.in_features, device=classes.device)
        multi_hot = (classes + self.class_offsets == columns).sum(dim=-2)
        return F.linear(multi_hot.to(pending.dtype), layer.weight, pending)
