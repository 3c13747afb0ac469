"""Sequence backbones behind one interface (:class:`Backbone`): sequence mode for training,
step mode for play, and a fixed-shape state tuple that both share."""

from models.backbones.attention import WindowedAttentionBackbone, alibi_slopes
from models.backbones.base import Backbone, State, StateTensorSpec
from models.backbones.hybrid import HybridBackbone
from models.backbones.mamba import (
    MambaBackbone,
    parallel_selective_scan,
    selective_scan,
    selective_scan_step,
)
from models.backbones.mlp import MLPBackbone
from models.backbones.recurrent import GRUBackbone, LSTMBackbone

__all__ = [
    "Backbone",
    "GRUBackbone",
    "HybridBackbone",
    "LSTMBackbone",
    "MLPBackbone",
    "MambaBackbone",
    "State",
    "StateTensorSpec",
    "WindowedAttentionBackbone",
    "alibi_slopes",
    "parallel_selective_scan",
    "selective_scan",
    "selective_scan_step",
]
