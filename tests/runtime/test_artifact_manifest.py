"""The artifact manifest: JSON round trip, compatibility checks, validation."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from runtime.artifact_manifest import ArtifactError, ArtifactManifest, StateTensor
from runtime.controller_spec import CONTROLLER_SPEC
from runtime.embedding_spec import EMBEDDING_SPEC


def _manifest(**overrides: object) -> ArtifactManifest:
    fields = {
        "embedding_spec_version": EMBEDDING_SPEC.version,
        "embedding_spec_hash": EMBEDDING_SPEC.content_hash,
        "controller_spec_hash": CONTROLLER_SPEC.content_hash,
        "controller_heads": CONTROLLER_SPEC.heads,
        "controller_classes": CONTROLLER_SPEC.head_classes,
        "model_kind": "recurrent",
        "backbone": "gru",
        "character": "MEWTWO",
        "frame_delay": 2,
        "frame_delay_range": (2, 2),
        "temperature": 1.0,
        "precision": "fp32",
        "inputs": ("features", "uniforms", "temperature", "state_in.h"),
        "outputs": ("classes", "probs", "logits", "state_out.h"),
        "state": (StateTensor("state_in.h", "state_out.h", (1, 1, 8)),),
        "metrics": {"agreement_A": 0.99},
    }
    return ArtifactManifest(**{**fields, **overrides})


def test_json_round_trip_is_exact() -> None:
    manifest = _manifest()
    assert ArtifactManifest.from_json(manifest.to_json()) == manifest


def test_a_matching_manifest_is_compatible() -> None:
    _manifest().check_compatible()


def test_a_different_embedding_spec_is_refused_with_both_hashes() -> None:
    with pytest.raises(ArtifactError, match="embedding spec mismatch") as raised:
        _manifest(embedding_spec_hash="0" * 64).check_compatible()
    assert EMBEDDING_SPEC.content_hash[:12] in str(raised.value)


def test_an_artifact_built_on_spec_v2_is_refused_with_how_to_rebuild() -> None:
    v2 = _manifest(embedding_spec_version=2, embedding_spec_hash="5" * 64)
    with pytest.raises(ArtifactError) as raised:
        v2.check_compatible()
    message = str(raised.value)
    assert "555555555555 (v2)" in message and f"(v{EMBEDDING_SPEC.version})" in message
    assert "rebuild" in message and "exphil train" in message


def test_a_different_controller_spec_is_refused() -> None:
    with pytest.raises(ArtifactError, match="controller spec mismatch"):
        _manifest(controller_spec_hash="1" * 64).check_compatible()


def test_kind_and_state_must_agree() -> None:
    with pytest.raises(ValueError, match="recurrent artifact has state"):
        replace(_manifest(), model_kind="stateless")
    with pytest.raises(ValueError, match="model_kind"):
        _manifest(model_kind="lstm")


def test_a_manifest_written_before_delay_ranges_reads_as_its_one_delay() -> None:
    data = json.loads(_manifest().to_json())
    del data["frame_delay_range"]
    assert ArtifactManifest.from_json(json.dumps(data)).frame_delay_range == (2, 2)


def test_the_frame_delay_must_lie_in_the_trained_range() -> None:
    assert _manifest(frame_delay_range=(0, 18)).frame_delay_range == (0, 18)
    with pytest.raises(ValueError, match=r"frame_delay 2 must lie in frame_delay_range \(3, 18\)"):
        _manifest(frame_delay_range=(3, 18))
