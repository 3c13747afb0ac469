"""PyTorch policy networks: frame vectors in, controller classes out.

No file I/O here: checkpoints are plain dicts (:meth:`Policy.checkpoint`) that callers save.
"""

from models.backbones import (
    Backbone,
    GRUBackbone,
    HybridBackbone,
    LSTMBackbone,
    MambaBackbone,
    MLPBackbone,
    State,
    StateTensorSpec,
    WindowedAttentionBackbone,
)
from models.controller_head import (
    AutoregressiveControllerHead,
    HeadMetrics,
    controller_metrics,
    sample_inverse_cdf,
)
from models.feature_input import CategoricalColumn, FeatureInput, categorical_columns
from models.policy import BACKBONE_KINDS, Policy, PolicyConfig, build_backbone
from models.step_graph import PolicyStepGraph

__all__ = [
    "BACKBONE_KINDS",
    "AutoregressiveControllerHead",
    "Backbone",
    "CategoricalColumn",
    "FeatureInput",
    "GRUBackbone",
    "HeadMetrics",
    "HybridBackbone",
    "LSTMBackbone",
    "MLPBackbone",
    "MambaBackbone",
    "Policy",
    "PolicyConfig",
    "PolicyStepGraph",
    "State",
    "StateTensorSpec",
    "WindowedAttentionBackbone",
    "build_backbone",
    "categorical_columns",
    "controller_metrics",
    "sample_inverse_cdf",
]
