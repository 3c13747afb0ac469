"""Embedding speed of both entry points of ``runtime.embedding_spec`` on real replays.

    python benchmarks/embed.py REPLAY_DIR [--games N]

Ingests up to N replays into a scratch folder, then prints one JSON object:

- ``vectorized``: ``embed_batch`` over every (game, player), columns already in memory, one
  thread; frames/s (target >= 1,000,000 per core);
- ``single_frame``: ``embed_gamestate`` on every frame of libmelee's file console; p50/p99/max
  microseconds per call (target p99 <= 50 us).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from exphil_pipeline.evaluation.parity import runtime_gamestates
from exphil_pipeline.replays.batches import ReplayBatch, list_replay_files
from exphil_pipeline.replays.ingest import IngestSettings, ingest_batch
from exphil_pipeline.storage.layout import DataLayout
from exphil_pipeline.training.examples import GameFrames
from runtime.controller_spec import CONTROLLER_SPEC
from runtime.embedding_spec import GameColumns, embed_batch, embed_gamestate


def _batch_inputs(layout: DataLayout, games: list) -> list[GameColumns]:
    inputs = []
    for record in games:
        if record.status == "quarantined":
            continue
        frames = layout.game_file("frames", "bench", record.game_id)
        items = layout.game_file("items", "bench", record.game_id)
        game = GameFrames.read(frames, items, record.stage or 0)
        ports = game.leader_ports
        for port in ports:
            opponent = next((p for p in ports if p != port), 0)
            neutral = np.broadcast_to(CONTROLLER_SPEC.neutral(), (len(game), 13))
            inputs.append(game.columns(port, opponent, neutral))
    return inputs


def vectorized(inputs: list[GameColumns], repeat: int) -> dict[str, float]:
    frames = sum(len(columns.slots[0].present) for columns in inputs)
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        for columns in inputs:
            embed_batch(columns)
        best = min(best, time.perf_counter() - began)
    return {"frames": frames, "seconds": round(best, 4), "frames_per_s": round(frames / best)}


def single_frame(files: list[Path], limit: int) -> dict[str, float]:
    durations = []
    previous = CONTROLLER_SPEC.neutral()
    for path in files:
        try:
            states = runtime_gamestates(path)
        except Exception:
            continue
        for state in states.values():
            ports = sorted(state.players)
            if len(ports) < 2:
                continue
            began = time.perf_counter_ns()
            embed_gamestate(state, ports[0], ports[1], previous)
            durations.append(time.perf_counter_ns() - began)
        if len(durations) >= limit:
            break
    micros = np.asarray(durations) / 1000
    return {
        "calls": len(micros),
        "p50_us": round(float(np.percentile(micros, 50)), 2),
        "p99_us": round(float(np.percentile(micros, 99)), 2),
        "max_us": round(float(micros.max()), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("replays", type=Path)
    parser.add_argument("--games", type=int, default=40, help="Replays to use.")
    parser.add_argument("--repeat", type=int, default=3, help="Vectorized passes (best kept).")
    parser.add_argument("--frames", type=int, default=50_000, help="Single-frame calls.")
    args = parser.parse_args()
    files = list_replay_files(args.replays)[: args.games]
    with tempfile.TemporaryDirectory() as home:
        subset = Path(home) / "replays"
        subset.mkdir()
        for path in files:
            (subset / path.name).symlink_to(path.resolve())
        layout = DataLayout(Path(home))
        result = ingest_batch(ReplayBatch("bench", subset), layout, IngestSettings(workers=1))
        inputs = _batch_inputs(layout, result.games)
        report = {
            "command": "python benchmarks/embed.py " + str(args.replays),
            "cores": os.cpu_count(),
            "replays": len(files),
            "vectorized": {**vectorized(inputs, args.repeat), "target_frames_per_s": 1_000_000},
            "single_frame": {**single_frame(files, args.frames), "target_p99_us": 50},
        }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
