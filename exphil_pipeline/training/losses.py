"""The behavioral-cloning loss: per-head cross-entropy on valid frames, with label smoothing per
head and focal or positive-weighted terms for the binary button heads.

With :meth:`HeadLossOptions.plain` (every option off) the loss is the sum over heads of the
mean negative log-likelihood of the recorded class, exactly as before these options existed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from runtime.controller_spec import CONTROLLER_SPEC, ControllerSpec


@dataclass(frozen=True)
class HeadLossOptions:
    """One value per controller head, in ``ControllerSpec.heads`` order."""

    smoothing: tuple[float, ...]
    """Share of the target mass spread uniformly over the head's classes (0: none)."""
    focal_gamma: tuple[float, ...]
    """Each frame's loss times ``(1 - p)^gamma``, p the probability of the recorded class."""
    positive_weight: tuple[float, ...]
    """Weight of frames whose recorded class is 1 (a pressed button); 1: unweighted."""

    def __post_init__(self) -> None:
        lengths = {len(self.smoothing), len(self.focal_gamma), len(self.positive_weight)}
        if len(lengths) != 1:
            raise ValueError(f"HeadLossOptions needs one value per head for every option: {self}")

    @classmethod
    def plain(cls, spec: ControllerSpec = CONTROLLER_SPEC) -> HeadLossOptions:
        heads = spec.num_heads
        return cls((0.0,) * heads, (0.0,) * heads, (1.0,) * heads)

    @classmethod
    def by_group(
        cls,
        *,
        sticks: float = 0.0,
        shoulder: float = 0.0,
        buttons: float = 0.0,
        button_focal_gamma: float = 0.0,
        button_positive_weight: float = 1.0,
        spec: ControllerSpec = CONTROLLER_SPEC,
    ) -> HeadLossOptions:
        """Smoothing by head group (the four stick axes, the shoulder, the buttons); focal
        and positive weights on the buttons only, the heads with two classes."""
        smoothing, gamma, weight = [], [], []
        for name in spec.heads:
            is_button = name in spec.buttons
            smoothing.append(buttons if is_button else sticks if name in spec.axes else shoulder)
            gamma.append(button_focal_gamma if is_button else 0.0)
            weight.append(button_positive_weight if is_button else 1.0)
        return cls(tuple(smoothing), tuple(gamma), tuple(weight))


def head_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    smoothing: float = 0.0,
    focal_gamma: float = 0.0,
    positive_weight: float = 1.0,
) -> torch.Tensor:
    """Per-frame loss ``[N]`` of one head: ``logits[N, classes]`` against ``targets[N]``."""
    losses = F.cross_entropy(logits, targets, reduction="none", label_smoothing=smoothing)
    if focal_gamma:
        recorded = F.log_softmax(logits, dim=-1).gather(-1, targets[:, None]).squeeze(-1)
        losses = losses * (1 - recorded.exp()).pow(focal_gamma)
    if positive_weight != 1.0:
        losses = losses * torch.where(targets == 1, positive_weight, 1.0)
    return losses


def masked_loss(
    logits: list[torch.Tensor],
    targets: torch.Tensor,
    mask: torch.Tensor,
    options: HeadLossOptions | None = None,
) -> torch.Tensor:
    """Sum over heads of the mean per-frame loss on valid frames (idle lanes and chunk tails
    excluded); ``logits[h]`` is ``[..., classes_h]``, ``targets`` ``[..., heads]``."""
    options = options or HeadLossOptions.plain()
    if len(options.smoothing) != len(logits):
        raise ValueError(f"{len(logits)} heads of logits but loss options for {options}")
    weights = mask.reshape(-1).float()
    count = weights.sum().clamp(min=1.0)
    total = torch.zeros((), device=targets.device)
    for head, head_logits in enumerate(logits):
        losses = head_loss(
            head_logits.reshape(-1, head_logits.shape[-1]).float(),
            targets[..., head].reshape(-1).long(),
            options.smoothing[head],
            options.focal_gamma[head],
            options.positive_weight[head],
        )
        total = total + (losses * weights).sum() / count
    return total
