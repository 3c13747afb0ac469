"""Small exported artifacts for the runtime player's tests (untrained: protocol, not play)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class ExportedPolicy:
    """An artifact on disk and the PyTorch policy it was exported from."""

    path: Path
    policy: object  # models.Policy; torch stays out of this module's import time


def export_small_policy(folder: Path, backbone: str, frame_delay: int) -> ExportedPolicy:
    import torch

    from exphil_pipeline.artifacts.onnx_export import export_policy, manifest_for
    from models import Policy, PolicyConfig, categorical_columns
    from runtime.embedding_spec import EMBEDDING_SPEC

    torch.manual_seed(0)
    config = PolicyConfig(
        input_dim=EMBEDDING_SPEC.dim,
        embedding_spec_hash=EMBEDDING_SPEC.content_hash,
        categorical=categorical_columns(list(EMBEDDING_SPEC.categorical), max_embedding_dim=8),
        backbone=backbone,
        hidden_dim=32,
        num_layers=1,
        head_mlp_dim=32,
    )
    policy = Policy.from_config(config).eval()
    path = folder / f"{backbone}.onnx"
    export_policy(policy, path, manifest_for(policy, "FOX", frame_delay))
    return ExportedPolicy(path, policy)


@pytest.fixture(scope="session")
def mlp_artifact(tmp_path_factory: pytest.TempPathFactory) -> ExportedPolicy:
    return export_small_policy(tmp_path_factory.mktemp("mlp-artifact"), "mlp", frame_delay=0)


@pytest.fixture(scope="session")
def gru_artifact(tmp_path_factory: pytest.TempPathFactory) -> ExportedPolicy:
    return export_small_policy(tmp_path_factory.mktemp("gru-artifact"), "gru", frame_delay=2)
