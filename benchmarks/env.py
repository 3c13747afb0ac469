"""Simulator throughput: scripted players only, and a policy choosing port 1's inputs.

    python benchmarks/env.py [--artifact data/artifacts/demo/policy_int8.onnx]
                             [--games 4096] [--frames 300]

Prints one JSON object. ``scripted_frames_per_s``: game frames per second with the reference
script on both ports (no embedding: scripted players read the engine's state).
``policy_frames_per_s``: the same with the artifact (a stateless one, by default the demo's INT8
student from ``make demo``) choosing port 1's inputs in every game: each frame embeds port 1 of
every game and runs one batched ``session.run`` over the games, port 2 scripted. Each figure is
given on one core (``_one_core``: one process, one ONNX thread) and on all cores (one process
per core, same games each, frames summed over the wall time). ``dolphin_frames_per_s``: game
frames per second of one headless, fast-forwarded Dolphin (random inputs on port 1, Melee's
level-9 CPU on port 2, menus not counted) when ``EXPHIL_DOLPHIN`` and ``EXPHIL_ISO`` are set,
else null. Targets on 2 cores: >= 500k scripted, >= 100k policy frames/s.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path

import numpy as np

from exphil_pipeline.environments.dolphin_env import (
    DolphinConfig,
    DolphinEnvironment,
    dolphin_paths_from_env,
)
from exphil_pipeline.environments.simulator_env import SimulatorConfig, SimulatorEnvironment
from exphil_pipeline.simulator.scripted_players import STRONGEST, ScriptedPlayers
from runtime.artifact_manifest import read_manifest
from runtime.controller_spec import CONTROLLER_SPEC
from runtime.onnx_policy import single_thread_session

WARMUP_FRAMES = 30


def scripted_run(games: int, frames: int) -> float:
    """Frames per second of ``games`` scripted games over ``frames`` steps."""
    env = SimulatorEnvironment(SimulatorConfig(games=games, observe=()))
    env.reset(0)
    players = ScriptedPlayers(np.full((games, 2), STRONGEST), seed=0)
    for _ in range(WARMUP_FRAMES):
        env.step_pads(players.inputs(env.state, env.tables))
    began = time.perf_counter()
    for _ in range(frames):
        env.step_pads(players.inputs(env.state, env.tables))
    return games * frames / (time.perf_counter() - began)


def policy_run(artifact: str, games: int, frames: int) -> float:
    """Frames per second with the artifact on port 1 of every game (embedding included)."""
    session = single_thread_session(Path(artifact))
    temperature = np.array(read_manifest(Path(artifact)).temperature, dtype=np.float32)
    env = SimulatorEnvironment(SimulatorConfig(games=games, observe=(0,)))
    features = env.reset(0)
    players = ScriptedPlayers(np.full((games, 2), STRONGEST), seed=0)
    rng = np.random.default_rng(0)

    def frame(features: np.ndarray) -> np.ndarray:
        pad = players.inputs(env.state, env.tables)
        actions = pad.to_classes()
        uniforms = rng.random((games, CONTROLLER_SPEC.num_heads), dtype=np.float32)
        feeds = {"features": features[:, 0], "uniforms": uniforms, "temperature": temperature}
        actions[:, 0] = session.run(["classes"], feeds)[0]
        return env.step(actions).features

    for _ in range(WARMUP_FRAMES):
        features = frame(features)
    began = time.perf_counter()
    for _ in range(frames):
        features = frame(features)
    return games * frames / (time.perf_counter() - began)


def dolphin_run(frames: int) -> float | None:
    """Frames per second of one Dolphin (see the module docstring); None unless configured."""
    paths = dolphin_paths_from_env()
    if paths is None:
        return None
    env = DolphinEnvironment(DolphinConfig(dolphin=paths[0], iso=paths[1], cpu_levels=(0, 9)))
    rng = np.random.default_rng(0)
    limits = np.asarray(CONTROLLER_SPEC.head_classes)
    try:
        env.reset(0)
        began = time.perf_counter()
        for _ in range(frames):
            env.step(rng.integers(0, limits, size=(1, 2, len(limits))).astype(np.uint8))
        return frames / (time.perf_counter() - began)
    finally:
        env.close()


def all_cores(function, *args: object) -> float:
    """The summed frames/s of one process per core running ``function(*args)`` at once."""
    cores = os.cpu_count() or 1
    with multiprocessing.get_context("spawn").Pool(cores) as pool:
        return float(sum(pool.starmap(function, [args] * cores)))


def _rounded(value: float | None) -> int | None:
    return None if value is None else round(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", default="data/artifacts/demo/policy_int8.onnx")
    parser.add_argument("--games", type=int, default=4096)
    parser.add_argument("--frames", type=int, default=300)
    args = parser.parse_args()
    if not Path(args.artifact).is_file():
        sys.exit(f"no artifact at {args.artifact}: run `make demo` first or pass --artifact")
    if read_manifest(Path(args.artifact)).state:
        sys.exit(f"{args.artifact} is recurrent: pass a stateless artifact (a student)")
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "cores": os.cpu_count(),
        "games": args.games,
        "frames": args.frames,
        "artifact": args.artifact,
        "scripted_frames_per_s_one_core": round(scripted_run(args.games, args.frames)),
        "scripted_frames_per_s": round(all_cores(scripted_run, args.games, args.frames)),
        "policy_frames_per_s_one_core": round(policy_run(args.artifact, args.games, args.frames)),
        "policy_frames_per_s": round(all_cores(policy_run, args.artifact, args.games, args.frames)),
        "dolphin_frames_per_s": _rounded(dolphin_run(args.frames)),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
