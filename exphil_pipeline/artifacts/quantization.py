"""INT8 quantization of an FP32 policy artifact.

There are six candidates; the ``policy_int8`` asset measures them all and keeps the most
quantized (smallest) one that holds its agreement gate, or the most faithful when none does:

- dynamic: weights of MatMul/Gemm to int8 per channel, activations quantized on the fly;
- static QDQ: weights and activations of MatMul/Gemm quantized with scales calibrated on
  training-set frames (the sampling ops at the end of the graph stay in float, since they
  compare probabilities against uniforms and must not be rounded);
- dynamic with FP32 logits: as dynamic, but the controller head's last layers (the Gemms that
  produce each head group's logits) stay in float. Rounding there moves logits directly, and
  two nearly tied classes flip;
- dynamic with an FP32 head: the whole autoregressive head stays in float, only the backbone
  is int8;
- blockwise with an FP32 head: the backbone's weights int8 in blocks of ``BLOCK`` inputs
  (onnxruntime's ``MatMulNBits``), each with its own scale, and the activations quantized per
  block of the same size as the int8 multiply runs (``accuracy_level`` 4): far finer than one
  scale for a whole activation row;
- weight-only with an FP32 head: the same int8 weight blocks, multiplied in float (no
  activation rounding at all), the most faithful and the slowest.

Why so many: at temperature 0 a head whose two best classes are nearly tied flips under any
rounding, and a student trained on few games has many such frames (a binary button at
p = 0.5). Measured on the demo's students (``exphil demo --frames 1800`` with 6 and 12
generated games; the share of 3,000 held-out actions that agree with FP32): dynamic
0.931 / 0.973, static QDQ 0.965 / 0.953, FP32 logits 0.953 / 0.977, FP32 head 0.991 / 0.977,
blockwise 0.991 / 0.993, weight-only 0.998 / 0.994. The flips fall on the A button and the
main stick's x, the two decisions the scripted player takes at thresholds. One agreement
figure on 3,000 frames has a standard error of about 0.002 near the gate, and the best
6-game candidate has ranged from 0.989 to 0.998 over builds that changed only the training
arithmetic: a 6-game student passes the gate or fails it by chance.

"Better" is the held-out agreement with the FP32 artifact: the same action on every controller
head at temperature 0 (:mod:`exphil_pipeline.evaluation.measurements`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np

from exphil_pipeline.artifacts.onnx_export import write_manifest
from exphil_pipeline.storage.atomic import atomic_path
from runtime.artifact_manifest import ArtifactManifest, read_manifest

QUANTIZED_OPS = ["MatMul", "Gemm"]
METHODS = (
    "dynamic",
    "static_qdq",
    "dynamic_fp32_logits",
    "dynamic_fp32_head",
    "blockwise_fp32_head",
    "weight_only_fp32_head",
)
BLOCK = 32
"""Inputs per int8 block of the blockwise methods (a multiple of 16, as MatMulNBits needs)."""
BLOCKWISE_ACCURACY = {"blockwise_fp32_head": 4, "weight_only_fp32_head": 0}
"""MatMulNBits ``accuracy_level`` per blockwise method: 4 multiplies in int8 (activations
quantized per block), 0 in float."""
FLOAT_LAYERS = {
    "dynamic": None,
    "dynamic_fp32_logits": "head.group_logits.",
    "dynamic_fp32_head": "head.",
}
"""Per dynamic method, part of the weight names (``models.controller_head``) of the layers it
keeps in float (None: none)."""


def float_layers(model_path: Path, weights: str) -> list[str]:
    """Names of the MatMul/Gemm nodes whose weight name contains ``weights``."""
    import onnx

    graph = onnx.load(str(model_path)).graph
    names = [
        node.name
        for node in graph.node
        if node.op_type in QUANTIZED_OPS and any(weights in i for i in node.input)
    ]
    if not names:
        raise ValueError(f"{model_path}: no {weights}* layer found to keep in FP32")
    # onnxruntime's quantizer first splits a Gemm into a MatMul named "<gemm>_MatMul" and an
    # Add, and matches the exclusions against the new names.
    return names + [f"{name}_MatMul" for name in names]


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


def quantize_candidates(
    fp32: Path, targets: Mapping[str, Path], calibration: np.ndarray
) -> dict[str, Path]:
    """Write the INT8 candidate of every method in ``METHODS`` to ``targets[method]``;
    returns {method: path}."""
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
    paths = {method: targets[method] for method in METHODS}
    # Shape inference and graph cleanup first, as onnxruntime's quantizers expect.
    prepared = fp32.with_name(f".{fp32.stem}.prepared.onnx")
    quant_pre_process(str(fp32), str(prepared))
    try:
        for method, weights in FLOAT_LAYERS.items():
            with atomic_path(paths[method]) as tmp:
                quantize_dynamic(
                    str(prepared),
                    str(tmp),
                    weight_type=QuantType.QInt8,
                    per_channel=True,
                    op_types_to_quantize=QUANTIZED_OPS,
                    nodes_to_exclude=float_layers(prepared, weights) if weights else [],
                )
        for method, accuracy in BLOCKWISE_ACCURACY.items():
            with atomic_path(paths[method]) as tmp:
                _quantize_blockwise(prepared, tmp, accuracy)
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


def _quantize_blockwise(prepared: Path, target: Path, accuracy_level: int) -> None:
    """The backbone's MatMuls as 8-bit ``MatMulNBits`` (blocks of ``BLOCK`` inputs), the head
    (every layer under ``head.``) left in float."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )
    from onnxruntime.quantization.onnx_model import ONNXModel

    # MatMulNBits replaces MatMuls only: the exported Linears are Gemms.
    model = ONNXModel(onnx.load(str(prepared)))
    model.replace_gemm_with_matmul()
    matmuls = prepared.with_name(f".{prepared.stem}.matmul.onnx")
    model.save_model_to_file(str(matmuls))
    try:
        config = DefaultWeightOnlyQuantConfig(
            block_size=BLOCK, is_symmetric=True, bits=8, accuracy_level=accuracy_level
        )
        quantizer = MatMulNBitsQuantizer(
            onnx.load(str(matmuls)),
            bits=8,
            block_size=BLOCK,
            is_symmetric=True,
            accuracy_level=accuracy_level,
            nodes_to_exclude=float_layers(matmuls, "head."),
            algo_config=config,
        )
        quantizer.process()
        quantizer.model.save_model_to_file(str(target), False)
    finally:
        matmuls.unlink(missing_ok=True)
