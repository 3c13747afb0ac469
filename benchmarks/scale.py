"""Ingest cost as the corpus grows: frames/s and peak memory per corpus size.

    python benchmarks/scale.py [--sizes 50 200 800] [--frames 8000] [--workers N]

For each size, generates that many sample games (cached under --cache between runs), ingests
them into a fresh data root in a child process, and records wall time and the child's peak
resident memory (parser workers included). Prints one JSON object. Cost should grow linearly
(flat frames/s) and peak memory should stay flat, since each worker holds one game at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from exphil_pipeline.simulator.sample_replays import write_sample_replays

_CHILD = """
import json, sys
from pathlib import Path
from exphil_pipeline.storage.layout import DataLayout
from exphil_pipeline.replays.ingest import IngestSettings, ingest_batch
from exphil_pipeline.replays.batches import ReplayBatch

if __name__ == "__main__":
    folder, home, workers = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    settings = IngestSettings(workers=workers)
    result = ingest_batch(ReplayBatch("scale", folder), DataLayout(home), settings)
    print(json.dumps({"frames": result.frames, "seconds": result.seconds,
                      "output_bytes": result.output_bytes, "input_bytes": result.input_bytes}))
"""


def corpus(cache: Path, games: int, frames: int) -> Path:
    folder = cache / f"games-{games}-frames-{frames}"
    if not (folder / ".complete").exists():
        write_sample_replays(folder, games=games, frames=frames, seed=games)
        (folder / ".complete").touch()
    return folder


def measure(folder: Path, workers: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as home:
        script = Path(home) / "ingest_child.py"
        script.write_text(_CHILD)
        began = time.perf_counter()
        out = subprocess.run(
            [sys.executable, str(script), str(folder), home, str(workers)],
            capture_output=True,
            text=True,
            check=True,
        )
        wall = time.perf_counter() - began
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return {
        **result,
        "wall_seconds": round(wall, 2),
        "frames_per_s": round(result["frames"] / result["seconds"]),
        # ru_maxrss of all children so far: the largest process, in KiB on Linux.
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 200, 800])
    parser.add_argument("--frames", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=0, help="0: one per core.")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "exphil-scale")
    args = parser.parse_args()
    rows = []
    for games in sorted(args.sizes):
        folder = corpus(args.cache, games, args.frames)
        rows.append({"games": games, **measure(folder, args.workers)})
        print(json.dumps(rows[-1]), file=sys.stderr)
    base = rows[0]
    for row in rows:
        row["seconds_per_game_vs_smallest"] = round(
            (row["seconds"] / row["games"]) / (base["seconds"] / base["games"]), 2
        )
    print(
        json.dumps(
            {
                "command": "python benchmarks/scale.py " + " ".join(sys.argv[1:]),
                "cores": os.cpu_count(),
                "frames_per_game": args.frames,
                "sizes": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
