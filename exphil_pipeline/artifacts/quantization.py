"""FP32 and INT8 ONNX artifacts of a policy, and the measurements that accept or refuse them.

Quantization has two candidates, both measured, the better one kept:

- dynamic: weights of MatMul/Gemm to int8 per channel, activations quantized on the fly;
- static QDQ: weights and activations of MatMul/Gemm quantized with scales calibrated on
  training-set frames (the sampling ops at the end of the graph stay in float, since they
  compare probabilities against uniforms and must not be rounded).

"Better" is the held-out agreement with the FP32 artifact: the same action on every controller
head at temperature 0.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from exphil_pipeline.artifacts.onnx_export import write_manifest
from exphil_pipeline.storage.atomic import atomic_path
from models import Policy
from runtime.artifact_manifest import ArtifactManifest, read_manifest
from runtime.controller_spec import CONTROLLER_SPEC
from runtime.onnx_policy import single_thread_session

QUANTIZED_OPS = ["MatMul", "Gemm"]


@dataclass
class ArtifactOutputs:
    """What an artifact chose for N consecutive frames at one temperature."""

    classes: np.ndarray  # int64[N, heads]
    logits: np.ndarray  # float32[N, sum(classes)]


def run_artifact(
    path: Path, features: np.ndarray, temperature: float = 0.0, seed: int = 0
) -> ArtifactOutputs:
    """Run the artifact frame by frame over ``features[N, D]`` (state carried throughout)."""
    session = single_thread_session(path)
    manifest = read_manifest(path)
    state = {s.input: np.zeros(s.shape, dtype=np.float32) for s in manifest.state}
    rng = np.random.default_rng(seed)
    heads = len(manifest.controller_heads)
    wanted = ["classes", "logits", *(s.output for s in manifest.state)]
    classes, logits = [], []
    for row in features:
        feeds = {
            "features": row[None].astype(np.float32),
            "uniforms": rng.random((1, heads), dtype=np.float32),
            "temperature": np.array(temperature, dtype=np.float32),
            **state,
        }
        chosen, head_logits, *next_state = session.run(wanted, feeds)
        state = {s.input: v for s, v in zip(manifest.state, next_state, strict=True)}
        classes.append(chosen[0])
        logits.append(head_logits[0])
    return ArtifactOutputs(np.asarray(classes), np.asarray(logits, dtype=np.float32))


@torch.no_grad()
def pytorch_path_logits(policy: Policy, features: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """The stateless policy's logits along the path ``classes`` (teacher-forced with them)."""
    policy.eval()
    logits, _ = policy(torch.from_numpy(features).unsqueeze(1), torch.from_numpy(classes)[:, None])
    return torch.cat([head.squeeze(1) for head in logits], dim=-1).numpy()


def action_agreement(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Share of frames with the same class per head, and with the same whole action."""
    same = a == b
    per_head = {h: float(same[:, i].mean()) for i, h in enumerate(CONTROLLER_SPEC.heads)}
    return {"action": float(same.all(axis=1).mean()), **per_head}


def latency_us(path: Path, features: np.ndarray, calls: int = 2000) -> dict[str, float]:
    """p50/p99/max microseconds per ``session.run`` on one thread (intra/inter op = 1)."""
    session = single_thread_session(path)
    manifest = read_manifest(path)
    state = {s.input: np.zeros(s.shape, dtype=np.float32) for s in manifest.state}
    uniforms = np.full((1, len(manifest.controller_heads)), 0.5, dtype=np.float32)
    rows = features[np.arange(calls) % len(features)].astype(np.float32)
    durations = []
    for row in rows:
        feeds = {
            "features": row[None],
            "uniforms": uniforms,
            "temperature": np.array(1, dtype=np.float32),
            **state,
        }
        began = time.perf_counter_ns()
        session.run(None, feeds)
        durations.append(time.perf_counter_ns() - began)
    micros = np.asarray(durations[calls // 10 :]) / 1000  # the first runs warm caches up
    return {
        "p50_us": round(float(np.percentile(micros, 50)), 1),
        "p99_us": round(float(np.percentile(micros, 99)), 1),
        "max_us": round(float(micros.max()), 1),
    }


def _calibration_feeds(
    features: np.ndarray, manifest: ArtifactManifest
) -> list[dict[str, np.ndarray]]:
    """Training-set frames with neutral noise, as the static quantizer's calibration inputs."""
    heads = len(manifest.controller_heads)
    state = {s.input: np.zeros(s.shape, dtype=np.float32) for s in manifest.state}
    return [
        {
            "features": row[None],
            "uniforms": np.full((1, heads), 0.5, dtype=np.float32),
            "temperature": np.array(0, dtype=np.float32),
            **state,
        }
        for row in features.astype(np.float32)
    ]


def quantize_candidates(fp32: Path, folder: Path, calibration: np.ndarray) -> dict[str, Path]:
    """Write both INT8 candidates beside each other; returns {method: path}."""
    # Imported here: onnxruntime.quantization puts onnxruntime/transformers on sys.path, whose
    # "models" folder would shadow this project's models package if it were not loaded yet.
    from onnxruntime.quantization import (
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
    from onnxruntime.quantization.calibrate import CalibrationDataReader
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class FrameCalibration(CalibrationDataReader):
        def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
            self._feeds = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._feeds, None)

    manifest = read_manifest(fp32)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "dynamic": folder / "policy_int8_dynamic.onnx",
        "static_qdq": folder / "policy_int8_qdq.onnx",
    }
    # Shape inference and graph cleanup first, as onnxruntime's quantizers expect.
    prepared = folder / ".policy_fp32.prepared.onnx"
    quant_pre_process(str(fp32), str(prepared))
    try:
        with atomic_path(paths["dynamic"]) as tmp:
            quantize_dynamic(
                str(prepared),
                str(tmp),
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=QUANTIZED_OPS,
            )
        with atomic_path(paths["static_qdq"]) as tmp:
            quantize_static(
                str(prepared),
                str(tmp),
                FrameCalibration(_calibration_feeds(calibration, manifest)),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=QUANTIZED_OPS,
            )
    finally:
        prepared.unlink(missing_ok=True)
    for method, path in paths.items():
        write_manifest(path, replace(manifest, precision=f"int8-{method}"))
    return paths
