"""Simulator fidelity on real games: recorded inputs replayed from recorded action starts.

    python benchmarks/fidelity.py [DIR] [--horizon K]

DIR defaults to ``$EXPHIL_REAL_REPLAYS``. Every replay under it is tried; those that cannot be
measured (not Final Destination, Slippi before 3.5, unreadable) are listed with the reason.
Prints one JSON object: the command, the cores, the seconds, and per simulated character and
overall the mean and 90th percentile absolute x and y error at frames 0..K after each re-seat
and the fraction of frames 1..K within 1 and 5 units
(:mod:`exphil_pipeline.simulator.fidelity`). A fidelity measure, not a gate.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

from exphil_pipeline.replays.batches import list_replay_files
from exphil_pipeline.simulator.fidelity import DEFAULT_HORIZON, fidelity_report

REAL_REPLAYS_ENV = "EXPHIL_REAL_REPLAYS"


def _finite(value: object) -> object:
    """JSON has no NaN: an empty summary's figures print as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, nargs="?", default=os.environ.get(REAL_REPLAYS_ENV))
    parser.add_argument("--horizon", type=int, default=DEFAULT_HORIZON, help="frames per segment")
    args = parser.parse_args()
    if args.dir is None:
        parser.error(f"give DIR or set {REAL_REPLAYS_ENV} to a folder of .slp replays")
    if not args.dir.is_dir():
        parser.error(f"{args.dir} is not a folder")
    began = time.perf_counter()
    report = fidelity_report(list_replay_files(args.dir), args.horizon)
    figures = dataclasses.asdict(report)
    print(
        json.dumps(
            _finite(
                {
                    "command": " ".join([Path(sys.executable).name, *sys.argv]),
                    "cores": os.cpu_count(),
                    "seconds": round(time.perf_counter() - began, 3),
                    **figures,
                }
            )
        )
    )


if __name__ == "__main__":
    main()
