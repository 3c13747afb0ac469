"""One exported policy behind one onnxruntime session, stepped one frame at a time.

The session runs on one thread (intra- and inter-op): a frame is a handful of small matrix
products, where thread hand-offs cost more than they save, and the game itself needs the rest
of the machine. Outputs are fetched by name, so graphs that add outputs (``logits``) still play.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime

from runtime.artifact_manifest import ArtifactError, ArtifactManifest, read_manifest
from runtime.controller_spec import CONTROLLER_SPEC
from runtime.embedding_spec import EMBEDDING_SPEC

REQUIRED_INPUTS = ("features", "uniforms", "temperature")
CLASSES_OUTPUT = "classes"


def single_thread_session(artifact: Path | bytes) -> onnxruntime.InferenceSession:
    """A session for the graph at ``artifact`` (a path, or the serialized graph itself)."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    source = artifact if isinstance(artifact, bytes) else str(artifact)
    return onnxruntime.InferenceSession(
        source, sess_options=options, providers=["CPUExecutionProvider"]
    )


class OnnxPolicy:
    """``step(features, uniforms, temperature) -> classes uint8[heads]``, carrying any
    recurrent state from one call to the next until :meth:`reset`."""

    def __init__(self, manifest: ArtifactManifest, session: onnxruntime.InferenceSession) -> None:
        _check_graph(manifest, session)
        self.manifest = manifest
        self._session = session
        self._features = np.zeros((1, EMBEDDING_SPEC.dim), dtype=np.float32)
        self._uniforms = np.zeros((1, CONTROLLER_SPEC.num_heads), dtype=np.float32)
        self._temperature = np.zeros((), dtype=np.float32)
        self._state = {
            tensor.input: np.zeros(tensor.shape, np.float32) for tensor in manifest.state
        }
        self._feeds: dict[str, np.ndarray] = {
            "features": self._features,
            "uniforms": self._uniforms,
            "temperature": self._temperature,
            **self._state,
        }
        self._outputs = [CLASSES_OUTPUT, *(tensor.output for tensor in manifest.state)]

    @classmethod
    def load(cls, artifact: Path) -> OnnxPolicy:
        """The artifact at ``artifact``; :class:`ArtifactError` unless this runtime can play it."""
        manifest = read_manifest(artifact)
        manifest.check_compatible()
        return cls(manifest, single_thread_session(artifact))

    def another_player(self) -> OnnxPolicy:
        """The same artifact on the same session with a state of its own, at the initial
        state: several games played side by side."""
        return OnnxPolicy(self.manifest, self._session)

    def reset(self) -> None:
        """Back to the initial (zero) state: a recurrent policy starts every game from it."""
        for tensor in self._state.values():
            tensor.fill(0)

    def step(self, features: np.ndarray, uniforms: np.ndarray, temperature: float) -> np.ndarray:
        """Classes ``uint8[heads]`` for one frame; ``temperature <= 0`` picks each argmax."""
        self._features[0] = features
        self._uniforms[0] = uniforms
        self._temperature[...] = temperature
        classes, *next_state = self._session.run(self._outputs, self._feeds)
        # In place: the feed dict holds these very arrays (outputs come in manifest order).
        for tensor, value in zip(self._state.values(), next_state, strict=True):
            tensor[...] = value
        return classes[0].astype(np.uint8)


def _check_graph(manifest: ArtifactManifest, session: onnxruntime.InferenceSession) -> None:
    """Refuse graphs that do not keep the contract in ``runtime.artifact_manifest``."""
    if tuple(manifest.controller_classes) != CONTROLLER_SPEC.head_classes:
        raise ArtifactError(
            f"the artifact predicts classes {list(manifest.controller_classes)}, this runtime "
            f"decodes {list(CONTROLLER_SPEC.head_classes)}; re-export the artifact"
        )
    inputs = {node.name: node for node in session.get_inputs()}
    outputs = {node.name for node in session.get_outputs()}
    wanted_inputs = [*REQUIRED_INPUTS, *(tensor.input for tensor in manifest.state)]
    wanted_outputs = [CLASSES_OUTPUT, *(tensor.output for tensor in manifest.state)]
    missing = [name for name in wanted_inputs if name not in inputs]
    missing += [name for name in wanted_outputs if name not in outputs]
    if missing:
        raise ArtifactError(f"the ONNX graph lacks the tensors its manifest names: {missing}")
    width = inputs["features"].shape[-1]
    if width != EMBEDDING_SPEC.dim:
        raise ArtifactError(
            f"the graph takes {width} features per frame, the embedding spec has "
            f"{EMBEDDING_SPEC.dim}"
        )
