"""Left/right mirroring of embedded frames and their actions, for augmentation.

Mirroring a game means x -> -x: positions, x velocities, facing, relative x distances of the
opponent and of items (``NEGATE`` columns of the embedding spec), and the x classes of both
sticks, in the previous-input columns and in the targets (``REFLECT``: class c -> 16 - c).
Everything else (heights, percent, action states, which are relative to facing, and the stage
geometry features, which depend on |x| only) is unchanged. That holds exactly only on stages
whose geometry is symmetric (``runtime.embedding_spec.MIRROR_STAGES``); frames on other stages
are left as they are. Mirroring twice gives back the same bits, and a mirrored frame equals
the embedding of the mirrored game state read through libmelee
(``exphil parity --mirror``; ``mirror_gamestate``).
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from runtime.controller_spec import CONTROLLER_SPEC
from runtime.embedding_spec import EMBEDDING_SPEC, MIRROR_STAGES, STAGES

_STAGE_COLUMN = EMBEDDING_SPEC.names.index("stage")
_MIRROR_STAGE_IDS = np.array([STAGES.index(name) for name in MIRROR_STAGES], dtype=np.float32)
_TARGET_HEADS = np.array([CONTROLLER_SPEC.heads.index(h) for h in CONTROLLER_SPEC.mirrored_heads])
_TARGET_TOP = np.array([CONTROLLER_SPEC.head_classes[i] - 1 for i in _TARGET_HEADS], dtype=np.int16)


_NEGATE, _REFLECT, _VOCAB = EMBEDDING_SPEC.mirror_plan


def _flip(frames, negate, reflect, top) -> None:
    """Mirror ``frames[..., columns]`` in place; numpy arrays and torch tensors alike."""
    frames[..., negate] = -frames[..., negate]
    frames[..., reflect] = top - frames[..., reflect]


def mirrorable(features: np.ndarray) -> np.ndarray:
    """``bool[...]``: which frames of ``features[..., D]`` are on a symmetric stage."""
    return np.isin(features[..., _STAGE_COLUMN], _MIRROR_STAGE_IDS)


def mirror_features(features: np.ndarray) -> np.ndarray:
    """A mirrored copy of ``features[..., D]`` (every frame; see ``mirrorable``)."""
    out = features.copy()
    _flip(out, _NEGATE, _REFLECT, _VOCAB - 1)
    return out


def mirror_targets(targets: np.ndarray) -> np.ndarray:
    """A mirrored copy of controller classes ``targets[..., heads]``."""
    out = targets.astype(np.int16)
    _flip(out, [], _TARGET_HEADS, _TARGET_TOP)
    return out.astype(targets.dtype)


def mirrored_episodes(count: int, probability: float, seed: int, epoch: int) -> np.ndarray:
    """``bool[count]``: the episodes mirrored in ``epoch``, a pure function of its arguments
    (so a resumed run mirrors the same ones)."""
    return np.random.default_rng([seed, epoch, 0x4D49]).random(count) < probability


def mirror_lanes(features: torch.Tensor, targets: torch.Tensor, lanes: torch.Tensor) -> None:
    """Mirror in place the frames of ``features[B, T, D]`` / ``targets[B, T, heads]`` in the
    lanes flagged by ``lanes[B]`` that are on a symmetric stage."""
    stages = torch.as_tensor(_MIRROR_STAGE_IDS, device=features.device)
    rows = lanes[:, None] & torch.isin(features[..., _STAGE_COLUMN], stages)
    if not bool(rows.any()):
        return
    device = features.device
    chosen = features[rows]
    _flip(
        chosen,
        torch.as_tensor(_NEGATE, device=device),
        torch.as_tensor(_REFLECT, device=device),
        torch.as_tensor(_VOCAB - 1, device=device),
    )
    features[rows] = chosen
    actions = targets[rows].long()
    _flip(
        actions,
        [],
        torch.as_tensor(_TARGET_HEADS, device=device),
        torch.as_tensor(_TARGET_TOP, device=device, dtype=torch.long),
    )
    targets[rows] = actions.to(targets.dtype)


def mirror_gamestate(gamestate: object) -> object:
    """A mirrored deep copy of a libmelee ``GameState``: what the mirrored game would show."""
    out = copy.deepcopy(gamestate)
    for player in out.players.values():
        for character in (player, player.nana):
            if character is None:
                continue
            character.position.x = -character.position.x
            character.facing = not character.facing
            character.speed_air_x_self = -character.speed_air_x_self
            character.speed_ground_x_self = -character.speed_ground_x_self
            character.speed_x_attack = -character.speed_x_attack
    for projectile in out.projectiles:
        projectile.position.x = -projectile.position.x
        projectile.speed.x = -projectile.speed.x
    return out
