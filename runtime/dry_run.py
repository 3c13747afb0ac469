"""Play a recorded game without Dolphin: the replay's frames in, a real controller pipe out.

libmelee's file console reads the replay one ``GameState`` at a time; the agent answers each
as it would live and its actions go through a real ``melee.Controller`` into a FIFO
(:class:`~runtime.pipe_capture.PipeCapture`). The report gives:

- ``frames``: the replay's in-game frames where the agent's port has a character;
- ``latency_us``: per frame, from the GameState in hand to the controller flushed (embed,
  policy, decode, pipe writes), p50/p99/max in microseconds;
- ``agreement``: the training pairing. The action chosen from the state of frame ``t`` is the
  policy's guess for frame ``t + d`` (``d`` the frame delay), so it is compared with the
  input the human on that port recorded on frame ``t + d`` (encoded with the controller spec),
  for every ``t`` where frame ``t + d`` exists. ``per_head`` is the rate of equal classes per
  head, ``all_heads`` the rate of frames where all 13 are equal. The "previous input" the
  policy sees is its own last choice, as in live play, not the human's;
- ``pipe``: whether every line read back is a libmelee command, with one ``FLUSH`` per frame.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import melee
import numpy as np

from runtime.agent import Agent, AgentConfig, delay_input, hold_frames
from runtime.controller_output import check_pipe_commands, send_action
from runtime.controller_spec import CONTROLLER_SPEC
from runtime.onnx_policy import OnnxPolicy
from runtime.pipe_capture import PipeCapture


@dataclass(frozen=True)
class DryRunConfig:
    port: int
    opponent_port: int | None  # None: the lowest other port in the replay
    temperature: float
    frame_delay: int
    action_repeat: int = 1
    seed: int | None = None


@dataclass
class Agreement:
    compared: int = 0
    all_heads: float = 0.0
    per_head: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, equal: np.ndarray) -> Agreement:
        """From ``equal[frames, heads]``: where the policy's class matched the recorded one."""
        if len(equal) == 0:
            return cls()
        return cls(
            compared=len(equal),
            all_heads=float(equal.all(axis=1).mean()),
            per_head={
                head: float(rate)
                for head, rate in zip(CONTROLLER_SPEC.heads, equal.mean(axis=0), strict=True)
            },
        )


@dataclass
class PipeReport:
    well_formed: bool
    bytes: int
    commands: int
    flushes: int
    malformed: int
    first_malformed: str | None


@dataclass
class DryRunReport:
    replay: str
    port: int
    opponent_port: int
    frame_delay: int
    temperature: float
    frames: int
    latency_us: dict[str, float]
    agreement: Agreement
    pipe: PipeReport

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def summary(self) -> str:
        latency = self.latency_us
        lines = [
            f"replay       {self.replay} (port {self.port} vs {self.opponent_port})",
            f"frames       {self.frames}",
            f"step latency p50 {latency['p50']:.0f} us, p99 {latency['p99']:.0f} us, "
            f"max {latency['max']:.0f} us",
            f"agreement    {self.agreement.all_heads:.3f} all heads over "
            f"{self.agreement.compared} frames (frame delay {self.frame_delay})",
            "  per head   "
            + ", ".join(f"{head} {rate:.3f}" for head, rate in self.agreement.per_head.items()),
            f"pipe         {'well-formed' if self.pipe.well_formed else 'MALFORMED'}: "
            f"{self.pipe.commands} commands, {self.pipe.flushes} flushes, "
            f"{self.pipe.malformed} malformed",
        ]
        return "\n".join(lines)


def replay_gamestates(replay: Path) -> Iterator[melee.GameState]:
    """The replay's in-game frames, in order, as libmelee's file console presents them."""
    console = melee.Console(is_dolphin=False, path=str(replay), allow_old_version=True)
    console.connect()
    while (gamestate := console.step()) is not None:
        if gamestate.menu_state == melee.Menu.IN_GAME and gamestate.players:
            yield gamestate


def latency_summary(nanoseconds: list[int]) -> dict[str, float]:
    if not nanoseconds:
        return {"p50": 0.0, "p99": 0.0, "max": 0.0}
    micro = np.asarray(nanoseconds, dtype=np.float64) / 1e3
    return {
        "p50": float(np.percentile(micro, 50)),
        "p99": float(np.percentile(micro, 99)),
        "max": float(micro.max()),
    }


def agreement(
    chosen: dict[int, np.ndarray], recorded: dict[int, np.ndarray], delay: int
) -> Agreement:
    pairs = [
        (classes, recorded[frame + delay])
        for frame, classes in chosen.items()
        if frame + delay in recorded
    ]
    if not pairs:
        return Agreement()
    bot = np.stack([p[0] for p in pairs])
    human = np.stack([p[1] for p in pairs])
    return Agreement.of(bot == human)


def _opponent_of(port: int, gamestate: melee.GameState) -> int:
    others = sorted(p for p in gamestate.players if p != port)
    if not others:
        raise ValueError(f"the replay has no opponent for port {port}")
    return int(others[0])


def dry_run(policy: OnnxPolicy, replay: Path, config: DryRunConfig) -> DryRunReport:
    """Play ``replay``'s frames for ``config.port``; ValueError if that port never plays."""
    agent: Agent | None = None
    chosen: dict[int, np.ndarray] = {}
    recorded: dict[int, np.ndarray] = {}
    latencies: list[int] = []
    ports_seen: set[int] = set()
    with PipeCapture(config.port) as capture:
        controller = capture.controller
        for gamestate in replay_gamestates(replay):
            ports_seen.update(int(p) for p in gamestate.players)
            player = gamestate.players.get(config.port)
            if player is None:
                continue
            if agent is None:
                agent = Agent(
                    policy,
                    AgentConfig(
                        port=config.port,
                        opponent_port=config.opponent_port or _opponent_of(config.port, gamestate),
                        temperature=config.temperature,
                        hold_frames=hold_frames(config.frame_delay),
                        delay_input=delay_input(
                            config.frame_delay, policy.manifest.frame_delay_range
                        ),
                        action_repeat=config.action_repeat,
                        seed=config.seed,
                    ),
                )
            start = time.perf_counter_ns()
            output = agent.act(gamestate)
            send_action(controller, output.send)
            controller.flush()
            latencies.append(time.perf_counter_ns() - start)
            frame = int(gamestate.frame)
            chosen[frame] = output.decision.classes
            recorded[frame] = CONTROLLER_SPEC.encode_controller_state(player.controller_state)
    if agent is None:
        raise ValueError(
            f"port {config.port} has no player in {replay} (ports: {sorted(ports_seen)})"
        )
    check = check_pipe_commands(capture.data)
    return DryRunReport(
        replay=str(replay),
        port=config.port,
        opponent_port=agent.config.opponent_port,
        frame_delay=config.frame_delay,
        temperature=config.temperature,
        frames=len(latencies),
        latency_us=latency_summary(latencies),
        agreement=agreement(chosen, recorded, config.frame_delay),
        pipe=PipeReport(
            well_formed=check.well_formed(len(latencies)),
            bytes=check.bytes,
            commands=check.commands,
            flushes=check.flushes,
            malformed=check.malformed,
            first_malformed=check.first_malformed,
        ),
    )
