"""Training-time noise on the "previous input" feature, against the copycat shortcut.

A cloned policy that sees its last action learns mostly to repeat it: players hold inputs for
many frames, so "same as before" is right on most frames and cheaper to learn than the state.
In play the policy then sees its *own* last action, and one wrong choice is copied frame after
frame. Replacing a share of the training frames' previous input with the previous input of
another frame of the same batch keeps every value realistic (the real marginal distribution)
while making it unreliable on its own, so the policy must read the state to be right.
"""

from __future__ import annotations

import torch
from torch import Tensor

from runtime.embedding_spec import PREVIOUS_INPUT_COLUMNS


def shuffle_previous_input(features: Tensor, rate: float, valid: Tensor | None = None) -> Tensor:
    """``features[..., D]`` with each frame's previous input replaced, with probability
    ``rate``, by that of a random valid frame of the batch (``valid``: bool like
    ``features[..., 0]``; None: all frames). Draws from torch's global RNG, so resumed
    training (which restores it) repeats the same noise. ``rate <= 0`` returns ``features``."""
    if rate <= 0:
        return features
    flat = features.reshape(-1, features.shape[-1])
    donors = (
        torch.arange(len(flat), device=flat.device)
        if valid is None
        else torch.nonzero(valid.reshape(-1)).squeeze(1)
    )
    if len(donors) == 0:
        return features
    replaced = torch.rand(len(flat), device=flat.device) < rate
    picks = donors[torch.randint(len(donors), (int(replaced.sum()),), device=flat.device)]
    noisy = flat.clone()
    noisy[replaced, PREVIOUS_INPUT_COLUMNS] = flat[picks, PREVIOUS_INPUT_COLUMNS]
    return noisy.reshape(features.shape)
