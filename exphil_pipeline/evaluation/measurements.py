"""Measurements that accept, refuse or compare policies: what an artifact chooses, how often
two policies choose the same action, and how long one decision takes on one thread."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from models import Policy
from runtime.artifact_manifest import read_manifest
from runtime.controller_spec import CONTROLLER_SPEC
from runtime.onnx_policy import single_thread_session


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


@torch.no_grad()
def teacher_forced_nll(policy: Policy, features: np.ndarray, human: np.ndarray) -> np.ndarray:
    """``float32[N, heads]``: the stateless policy's NLL of the human's class in nats, each head
    conditioned on the human's classes of the heads before it."""
    policy.eval()
    targets = torch.from_numpy(np.asarray(human)).long()
    logits, _ = policy(torch.from_numpy(features).unsqueeze(1), targets[:, None])
    return torch.stack(
        [
            F.cross_entropy(head.squeeze(1), targets[:, i], reduction="none")
            for i, head in enumerate(logits)
        ],
        dim=-1,
    ).numpy()


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


def torch_step_latency(
    policy: Policy, calls: int = 300, threads: int | None = 1
) -> dict[str, float]:
    """p50/p99 µs of ``Policy.step`` on one frame (batch 1), on ``threads`` torch threads
    (None: leave torch's setting alone); the first tenth of the calls warms caches up."""
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        policy.eval()
        state = policy.initial_state(1)
        features = torch.zeros(1, policy.config.input_dim)
        uniforms = torch.full((1, len(policy.config.head_classes)), 0.5)
        durations = []
        with torch.no_grad():
            for _ in range(calls):
                began = time.perf_counter_ns()
                _, _, state = policy.step(features, state, uniforms, torch.tensor(1.0))
                durations.append(time.perf_counter_ns() - began)
    finally:
        torch.set_num_threads(previous_threads)
    micros = np.asarray(durations[calls // 10 :]) / 1000
    return {
        "p50_us": round(float(np.percentile(micros, 50)), 1),
        "p99_us": round(float(np.percentile(micros, 99)), 1),
    }
