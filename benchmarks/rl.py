"""Reinforcement learning from the demo's imitation teacher, with a fixed budget.

    python benchmarks/rl.py [--home data] [--experiment demo] [--steps 15000000]
                            [--actors 2] [--games-per-actor 512] [--minibatches 4]
                            [--cluster local] [--eval-games 100] [--set FIELD=VALUE ...]

Needs a trained imitation teacher (``make demo`` writes ``data/teachers/demo``). Trains the RL
teacher of experiment ``<experiment>-rl`` from it (fresh, no resume), then plays the arena:
the RL teacher against its imitation base (``--eval-games`` games, ports alternating) and both
against the strongest scripted level. Prints one JSON object:

- ``env_frames_per_s``: environment frames the learning policy played per second of training,
  end to end (actors, learner and hand-offs; the final arena games not counted);
- ``actor_frames_per_s``, ``learner_frames_per_s``: each part on its own (recent updates);
- ``win_rate_vs_base``, ``ci_low``, ``ci_high``, ``games``: the RL teacher against its base
  (a draw counts half; Wilson 95% interval);
- ``kl_to_teacher``: mean KL(policy || teacher) per frame over the last updates;
- ``sd_per_minute_base``, ``sd_per_minute_rl``: self-destructs per minute against scripted:3;
- ``win_rate_vs_scripted_base``, ``win_rate_vs_scripted_rl``;
- ``opponent_games``: finished training games against each opponent of the pool (each game
  draws its opponent when it starts; a 4-stock game lasts up to a minute, so a short run
  finishes few);
- ``seconds``: the whole run, arena included.

Targets on this 2-core machine: >= 20k env frames/s, the RL teacher winning >= 75 of 100 games
against its base, all within 15 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from exphil_pipeline.rl.rl_config import RLConfig
from exphil_pipeline.rl.rl_trainer import train_rl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("EXPHIL_HOME", "data")))
    parser.add_argument("--experiment", default="demo")
    parser.add_argument("--steps", type=int, default=15_000_000)
    parser.add_argument("--actors", type=int, default=2)
    # 512 games a step spread the per-call cost of each policy in the pool over twice the games
    # of 256 (an actor against seven opponents: 17.3k -> 22.1k frames/s); 4 minibatches keep
    # each gradient step at 8,192 frames.
    parser.add_argument("--games-per-actor", type=int, default=512)
    parser.add_argument("--minibatches", type=int, default=4)
    parser.add_argument("--unroll", type=int, default=32)
    parser.add_argument("--cluster", default="local", choices=["inline", "local", "ray"])
    parser.add_argument("--eval-games", type=int, default=100)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="Any other RLConfig field (JSON value), e.g. --set learning_rate=0.001.",
    )
    parser.add_argument("--quiet", action="store_true", help="No per-update log on stderr.")
    args = parser.parse_args()
    overrides = {}
    for item in args.set:
        name, _, value = item.partition("=")
        try:
            overrides[name] = json.loads(value)
        except json.JSONDecodeError:
            overrides[name] = value
    config = RLConfig(
        **{
            "imitation_experiment": args.experiment,
            "steps": args.steps,
            "actors": args.actors,
            "games_per_actor": args.games_per_actor,
            "minibatches": args.minibatches,
            "unroll": args.unroll,
            "cluster": args.cluster,
            "eval_games": args.eval_games,
            "checkpoint_every": 50,
            "resume": False,
            **overrides,
        }
    )
    began = time.perf_counter()

    def log(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    result = train_rl(config, args.home, f"{args.experiment}-rl", log=log)
    rl, _ = result.versus_base.players
    print(
        json.dumps(
            {
                "command": "python " + " ".join(sys.argv),
                "cores": os.cpu_count(),
                "env_frames": result.progress.frames,
                "updates": result.progress.updates,
                "env_frames_per_s": round(result.env_frames_per_s),
                "actor_frames_per_s": round(result.actor_frames_per_s),
                "learner_frames_per_s": round(result.learner_frames_per_s),
                "win_rate_vs_base": round(rl.win_rate, 4),
                "ci_low": round(rl.ci_low, 4),
                "ci_high": round(rl.ci_high, 4),
                "games": result.versus_base.games,
                "kl_to_teacher": round(result.kl_to_teacher, 5),
                "sd_per_minute_base": round(result.base_vs_scripted.sd_per_minute, 4),
                "sd_per_minute_rl": round(result.rl_vs_scripted.sd_per_minute, 4),
                "win_rate_vs_scripted_base": round(result.base_vs_scripted.win_rate, 4),
                "win_rate_vs_scripted_rl": round(result.rl_vs_scripted.win_rate, 4),
                "opponent_games": result.opponent_games,
                "seconds": round(time.perf_counter() - began, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
