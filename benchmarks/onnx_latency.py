"""Latency of one ``session.run`` of an exported policy on one thread.

    python benchmarks/onnx_latency.py ARTIFACT.onnx [--calls N]

Feeds valid frame vectors (every id column inside its range), neutral noise and the artifact's
state, with intra/inter op threads = 1. Prints one JSON object with p50/p99/max µs; targets:
INT8 student p99 <= 100 µs, single-step teacher p99 <= 1 ms.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from exphil_pipeline.evaluation.measurements import latency_us
from runtime.artifact_manifest import read_manifest
from runtime.embedding_spec import EMBEDDING_SPEC


def valid_frames(count: int, seed: int = 0) -> np.ndarray:
    """Random vectors inside every column's clip range, ids as exact integers."""
    rng = np.random.default_rng(seed)
    columns = EMBEDDING_SPEC.columns
    low = np.array([c.low for c in columns], dtype=np.float32)
    high = np.array([c.high for c in columns], dtype=np.float32)
    frames = rng.uniform(low, high, size=(count, len(columns))).astype(np.float32)
    for index, _ in EMBEDDING_SPEC.categorical:
        frames[:, index] = np.round(frames[:, index])
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", type=Path)
    parser.add_argument("--calls", type=int, default=5000)
    args = parser.parse_args()
    manifest = read_manifest(args.artifact)
    result = latency_us(args.artifact, valid_frames(1000), calls=args.calls)
    target = 100 if manifest.model_kind == "stateless" else 1000
    print(
        json.dumps(
            {
                "command": f"python benchmarks/onnx_latency.py {args.artifact}",
                "cores": os.cpu_count(),
                "threads": 1,
                "artifact": str(args.artifact),
                "precision": manifest.precision,
                "model_kind": manifest.model_kind,
                "backbone": manifest.backbone,
                "bytes": args.artifact.stat().st_size,
                "calls": args.calls,
                **result,
                "target_p99_us": target,
            }
        )
    )


if __name__ == "__main__":
    main()
