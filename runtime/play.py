"""``exphil-play``: play an exported policy in Slippi Dolphin, or dry-run it over a replay.

Exit codes: 0 done, 1 failed while running (Dolphin unreachable, wrong character in game, a
malformed controller pipe in a dry run), 2 refused before starting (bad arguments, missing
files, an artifact this runtime cannot play).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import melee

from runtime.agent import Agent, AgentConfig, delay_input, effective_delay, hold_frames
from runtime.artifact_manifest import ArtifactError
from runtime.dry_run import DryRunConfig, dry_run
from runtime.live_play import DolphinNotFoundError, LiveConfig, WrongCharacterError, play_live
from runtime.melee_ids import EXTERNAL_CHARACTER_NAMES, EXTERNAL_TO_INTERNAL_CHARACTER
from runtime.onnx_policy import OnnxPolicy

PORTS = (1, 2, 3, 4)
LIVE_OPPONENT_PORT = 2
SLIPPI_ONLINE_DELAY = 2  # Slippi's default online input delay, in frames
MAX_CPU_LEVEL = 9

LOG = logging.getLogger("exphil-play")


class Refusal(Exception):
    """Why the player will not start; exit code 2."""


@dataclass(frozen=True)
class Opponent:
    cpu_level: int  # 0: human

    @classmethod
    def parse(cls, text: str) -> Opponent:
        if text == "human":
            return cls(0)
        kind, _, level = text.partition(":")
        if kind == "cpu" and level.isdigit() and 1 <= int(level) <= MAX_CPU_LEVEL:
            return cls(int(level))
        raise Refusal(f"--opponent must be 'human' or 'cpu:LEVEL' with LEVEL 1-9, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="exphil-play",
        description="Play an exphil ONNX artifact in Slippi Dolphin through libmelee, or "
        "dry-run it over a replay (--replay) without Dolphin.",
    )
    parser.add_argument("--artifact", type=Path, required=True, help="exported .onnx policy")
    parser.add_argument("--dolphin", type=Path, help="Slippi Dolphin folder or executable")
    parser.add_argument("--iso", type=Path, help="Melee 1.02 NTSC ISO")
    parser.add_argument("--port", type=int, choices=PORTS, default=1, help="the agent's port")
    parser.add_argument(
        "--opponent-port",
        type=int,
        choices=PORTS,
        help=f"default {LIVE_OPPONENT_PORT}; in a dry run, the replay's other player",
    )
    parser.add_argument("--opponent", default="human", help="human (default) or cpu:LEVEL")
    parser.add_argument("--opponent-character", help="a CPU opponent's character (default: ours)")
    parser.add_argument("--character", help="default: the artifact's")
    parser.add_argument("--stage", default="final_destination", help="libmelee stage name")
    parser.add_argument(
        "--frame-delay",
        type=int,
        help="default: the artifact's; online play subtracts the console's own delay",
    )
    parser.add_argument(
        "--online-delay",
        type=int,
        default=SLIPPI_ONLINE_DELAY,
        help="Slippi's online input delay in frames (with --connect-code)",
    )
    parser.add_argument("--temperature", type=float, help="default: the artifact's")
    parser.add_argument("--deterministic", action="store_true", help="argmax every head")
    parser.add_argument("--mode", choices=("sync", "async"), default="sync")
    parser.add_argument(
        "--action-repeat", type=int, default=1, help="sync: choose every N frames, repeat between"
    )
    parser.add_argument("--on-game-end", choices=("restart", "stop"), default="restart")
    parser.add_argument("--connect-code", help="Slippi online direct connect code")
    parser.add_argument("--seed", type=int, help="seed of the sampling noise")
    parser.add_argument("--replay", type=Path, help="dry run: play this .slp's frames")
    parser.add_argument("--json", action="store_true", help="dry run: print the report as JSON")
    return parser


def resolve_character(name: str) -> melee.Character:
    """A character from an exphil (external) name like ``FALCON`` or a libmelee name."""
    wanted = name.strip().upper()
    external = {value: key for key, value in EXTERNAL_CHARACTER_NAMES.items()}
    if wanted in external:
        return melee.Character(EXTERNAL_TO_INTERNAL_CHARACTER[external[wanted]])
    try:
        return melee.Character[wanted]
    except KeyError:
        raise Refusal(
            f"unknown character {name!r}; use one of {sorted(external)} (or pass --character)"
        ) from None


def resolve_stage(name: str) -> melee.Stage:
    try:
        return melee.Stage[name.strip().upper()]
    except KeyError:
        names = [stage.name.lower() for stage in melee.Stage if stage != melee.Stage.NO_STAGE]
        raise Refusal(f"unknown stage {name!r}; use one of {names}") from None


def _temperature(args: argparse.Namespace, default: float) -> float:
    if args.deterministic:
        return 0.0
    temperature = default if args.temperature is None else args.temperature
    if temperature <= 0:
        raise Refusal(
            f"temperature must be > 0 (got {temperature}); use --deterministic for argmax"
        )
    return temperature


def _check_arguments(args: argparse.Namespace) -> None:
    if args.opponent_port == args.port or (
        args.replay is None and args.opponent_port is None and args.port == LIVE_OPPONENT_PORT
    ):
        raise Refusal(
            f"the agent and its opponent are both on port {args.port}; pass --opponent-port"
        )
    if args.frame_delay is not None and args.frame_delay < 0:
        raise Refusal(f"--frame-delay must be >= 0, got {args.frame_delay}")
    if args.online_delay < 0:
        raise Refusal(f"--online-delay must be >= 0, got {args.online_delay}")
    if args.action_repeat < 1:
        raise Refusal(f"--action-repeat must be >= 1, got {args.action_repeat}")
    if args.action_repeat > 1 and args.mode == "async":
        raise Refusal("--action-repeat applies to --mode sync only")
    if args.replay is not None:
        if not args.replay.is_file():
            raise Refusal(f"replay {args.replay} not found")
        return
    if args.json:
        raise Refusal("--json applies to a dry run (--replay) only")
    if args.dolphin is None or not args.dolphin.exists():
        raise Refusal(f"Slippi Dolphin not found at {args.dolphin} (pass --dolphin PATH)")
    if args.iso is None or not args.iso.is_file():
        raise Refusal(f"Melee ISO not found at {args.iso} (pass --iso PATH)")


def _dry_run(args: argparse.Namespace, policy: OnnxPolicy) -> int:
    config = DryRunConfig(
        port=args.port,
        opponent_port=args.opponent_port,
        temperature=_temperature(args, policy.manifest.temperature),
        frame_delay=policy.manifest.frame_delay if args.frame_delay is None else args.frame_delay,
        action_repeat=args.action_repeat,
        seed=args.seed,
    )
    try:
        report = dry_run(policy, args.replay, config)
    except ValueError as error:
        raise Refusal(str(error)) from None
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.summary())
    return 0 if report.pipe.well_formed else 1


def _live(args: argparse.Namespace, policy: OnnxPolicy) -> int:
    manifest = policy.manifest
    character = resolve_character(args.character or manifest.character)
    opponent = Opponent.parse(args.opponent)
    if opponent.cpu_level and args.connect_code:
        raise Refusal("--connect-code plays someone online; it cannot be combined with a CPU")
    console_delay = args.online_delay if args.connect_code else 0
    frame_delay = manifest.frame_delay if args.frame_delay is None else args.frame_delay
    hold = hold_frames(frame_delay, console_delay)
    if frame_delay < 1 + console_delay:
        LOG.warning(
            "actions land %d frame(s) later than the artifact's frame delay %d: libmelee adds 1 "
            "and the console %d",
            1 + console_delay - frame_delay,
            frame_delay,
            console_delay,
        )
    opponent_port = args.opponent_port or LIVE_OPPONENT_PORT
    agent = Agent(
        policy,
        AgentConfig(
            port=args.port,
            opponent_port=opponent_port,
            temperature=_temperature(args, manifest.temperature),
            hold_frames=hold,
            delay_input=delay_input(
                effective_delay(frame_delay, console_delay), manifest.frame_delay_range
            ),
            action_repeat=args.action_repeat,
            seed=args.seed,
        ),
    )
    config = LiveConfig(
        dolphin=args.dolphin,
        iso=args.iso,
        port=args.port,
        opponent_port=opponent_port,
        character=character,
        stage=resolve_stage(args.stage),
        cpu_level=opponent.cpu_level,
        opponent_character=resolve_character(args.opponent_character)
        if args.opponent_character
        else character,
        mode=args.mode,
        on_game_end=args.on_game_end,
        connect_code=args.connect_code,
        online_delay=console_delay,
    )
    try:
        return play_live(agent, config)
    except DolphinNotFoundError as error:
        raise Refusal(str(error)) from None
    except WrongCharacterError as error:
        LOG.error("%s", error)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        _check_arguments(args)
        try:
            policy = OnnxPolicy.load(args.artifact)
        except ArtifactError as error:
            raise Refusal(str(error)) from None
        return _dry_run(args, policy) if args.replay is not None else _live(args, policy)
    except Refusal as error:
        print(f"exphil-play: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
