"""Sample replays that ship with the project: files of scripted games, identical per seed.

They stand in for real replays wherever none are at hand (the demo, tests, benchmarks), so the
whole chain from replays to a bot runs without downloading anything.
"""

from __future__ import annotations

import random
from pathlib import Path

from exphil_pipeline.simulator.game_assembly import generate_games
from exphil_pipeline.simulator.slp_writer import write_slp


def write_sample_replays(out_dir: str | Path, games: int, frames: int, seed: int) -> list[Path]:
    """Write ``games`` scripted replays named ``sample-{i:04d}.slp`` into ``out_dir``.

    Each game's seed is drawn from ``seed``, so the same arguments give identical files.
    """
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    game_seeds = random.Random(seed)
    seeds = [game_seeds.getrandbits(64) for _ in range(games)]
    paths = []
    for index, game in enumerate(generate_games(seeds, frames)):
        path = folder / f"sample-{index:04d}.slp"
        write_slp(path, game)
        paths.append(path)
    return paths
