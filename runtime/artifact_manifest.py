"""The artifact manifest: what an ONNX policy promises about itself.

Every exported policy carries its manifest twice: as JSON in the ONNX ``metadata_props`` under
``exphil_manifest`` (read back through onnxruntime, so the runtime needs no ``onnx`` package)
and as ``<artifact>.json`` beside the file. The runtime refuses an artifact whose embedding
spec hash is not the one it computes, because a policy fed vectors of another layout plays
garbage without any error.

Graph contract (batch size 1, one ``session.run`` per frame):

- inputs: ``features`` float32 ``[1, D]``, ``uniforms`` float32 ``[1, heads]`` (one uniform
  draw per controller head), ``temperature`` float32 scalar (<= 0: argmax), then one
  ``state_in.<name>`` per state tensor;
- outputs: ``classes`` int64 ``[1, heads]``, ``probs`` float32 ``[1, heads]`` (probability of
  each chosen class), ``logits`` float32 ``[1, sum(classes)]`` (the heads' logits along the
  chosen path), then one ``state_out.<name>`` per state tensor.

A stateless artifact (MLP) has no state tensors; a recurrent one starts every game from zeros.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from runtime.controller_spec import CONTROLLER_SPEC
from runtime.embedding_spec import EMBEDDING_SPEC

METADATA_KEY = "exphil_manifest"
FORMAT_VERSION = 1
MODEL_KINDS = ("stateless", "recurrent")


class ArtifactError(Exception):
    """The artifact cannot be played by this runtime; the message says why and what to do."""


@dataclass(frozen=True)
class StateTensor:
    """One recurrent state tensor: its input and output names and its shape (batch 1)."""

    input: str
    output: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class ArtifactManifest:
    """Everything a player needs to know to drive an ONNX policy correctly."""

    embedding_spec_version: int
    embedding_spec_hash: str
    controller_spec_hash: str
    controller_heads: tuple[str, ...]
    controller_classes: tuple[int, ...]
    model_kind: str
    backbone: str
    character: str
    frame_delay: int
    frame_delay_range: tuple[int, int]
    """The delays it learned from, ``(low, high)``; ``(frame_delay, frame_delay)`` for a policy
    trained at one delay."""
    temperature: float
    precision: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    state: tuple[StateTensor, ...] = ()
    metrics: dict[str, float] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.model_kind not in MODEL_KINDS:
            raise ValueError(f"model_kind must be one of {MODEL_KINDS}, got {self.model_kind!r}")
        low, high = self.frame_delay_range
        if not 0 <= low <= self.frame_delay <= high:
            raise ValueError(
                f"frame_delay {self.frame_delay} must lie in frame_delay_range "
                f"{self.frame_delay_range}"
            )
        if (self.model_kind == "recurrent") != bool(self.state):
            raise ValueError("a recurrent artifact has state tensors, a stateless one has none")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ArtifactManifest:
        data = json.loads(text)
        data["controller_heads"] = tuple(data["controller_heads"])
        data["controller_classes"] = tuple(data["controller_classes"])
        # Manifests written before ranged delays trained at frame_delay alone.
        data["frame_delay_range"] = tuple(
            data.get("frame_delay_range", (data["frame_delay"], data["frame_delay"]))
        )
        data["inputs"] = tuple(data["inputs"])
        data["outputs"] = tuple(data["outputs"])
        data["state"] = tuple(
            StateTensor(s["input"], s["output"], tuple(s["shape"])) for s in data["state"]
        )
        return cls(**data)

    def check_compatible(self) -> None:
        """Raise :class:`ArtifactError` unless this runtime embeds and decodes as it expects."""
        if self.embedding_spec_hash != EMBEDDING_SPEC.content_hash:
            raise ArtifactError(
                f"embedding spec mismatch: the artifact was trained on spec "
                f"{self.embedding_spec_hash[:12]} (v{self.embedding_spec_version}), this runtime "
                f"computes {EMBEDDING_SPEC.content_hash[:12]} (v{EMBEDDING_SPEC.version}); "
                "rebuild it from its replays with this version (`exphil train --character C "
                "--replays PATH`, or re-materialize training_set through policy_int8 for its "
                "experiment), or play it with the exphil version it was built with"
            )
        if self.controller_spec_hash != CONTROLLER_SPEC.content_hash:
            raise ArtifactError(
                f"controller spec mismatch: artifact {self.controller_spec_hash[:12]}, runtime "
                f"{CONTROLLER_SPEC.content_hash[:12]}; re-export the artifact"
            )


def sidecar_path(artifact: Path) -> Path:
    return artifact.with_suffix(".json")


def read_manifest(artifact: Path) -> ArtifactManifest:
    """The manifest embedded in ``artifact`` (an ``.onnx`` file); ArtifactError if absent."""
    import onnxruntime

    if not artifact.is_file():
        raise ArtifactError(f"artifact {artifact} does not exist")
    try:
        session = onnxruntime.InferenceSession(str(artifact), providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types
        raise ArtifactError(f"{artifact} is not a loadable ONNX model: {error}") from None
    text = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if text is None:
        raise ArtifactError(
            f"{artifact} has no {METADATA_KEY!r} metadata: it was not exported by exphil "
            "(materialize policy_onnx / policy_int8 to get a playable artifact)"
        )
    return ArtifactManifest.from_json(text)
