"""Latency of one runtime step on one CPU core: GameState in hand -> controller flushed.

    python benchmarks/runtime_step.py ARTIFACT [--replay FILE.slp] [--passes N] [--port P]

A step is what the live player does per frame: ``embed_gamestate``, one ``session.run``,
decoding, and every controller command of the frame written and flushed into a FIFO drained by
a reader thread. Frames come from ``--replay`` (default: a generated sample game). The
process is pinned to one core first. Prints one JSON object with p50/p99/max microseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from runtime.agent import Agent, AgentConfig
from runtime.controller_output import send_action
from runtime.dry_run import latency_summary, replay_gamestates
from runtime.onnx_policy import OnnxPolicy
from runtime.pipe_capture import PipeCapture

WARMUP_FRAMES = 50


def _sample_replay(folder: Path) -> Path:
    from exphil_pipeline.simulator.sample_replays import write_sample_replays

    return write_sample_replays(folder, games=1, frames=3600, seed=11)[0]


def measure(artifact: Path, replay: Path, port: int, opponent_port: int, passes: int) -> dict:
    policy = OnnxPolicy.load(artifact)
    states = [s for s in replay_gamestates(replay) if port in s.players]
    agent = Agent(policy, AgentConfig(port, opponent_port, temperature=1.0, seed=0))
    latencies: list[int] = []
    with PipeCapture(port) as capture:
        controller = capture.controller
        for _ in range(passes):
            agent.new_game()
            for index, state in enumerate(states):
                start = time.perf_counter_ns()
                send_action(controller, agent.act(state).send)
                controller.flush()
                elapsed = time.perf_counter_ns() - start
                if index >= WARMUP_FRAMES:
                    latencies.append(elapsed)
    return {
        "artifact": str(artifact),
        "backbone": policy.manifest.backbone,
        "replay": str(replay),
        "frames": len(latencies),
        "core": sorted(os.sched_getaffinity(0)),
        "step_latency_us": latency_summary(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", type=Path)
    parser.add_argument("--replay", type=Path)
    parser.add_argument("--port", type=int, default=1)
    parser.add_argument("--opponent-port", type=int, default=2)
    parser.add_argument("--passes", type=int, default=1)
    args = parser.parse_args()
    # One core, like a player next to Dolphin: the pipe reader thread shares it too.
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    with tempfile.TemporaryDirectory(prefix="exphil-bench-") as scratch:
        replay = args.replay or _sample_replay(Path(scratch))
        result = measure(args.artifact, replay, args.port, args.opponent_port, args.passes)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
