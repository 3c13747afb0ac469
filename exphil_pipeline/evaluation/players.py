"""Who plays one side of the arena's games: a scripted level, Melee's CPU, random inputs, an
ONNX artifact or a PyTorch teacher, all behind one small interface.

A :class:`Player` drives one side of all N games of an environment (the simulator, or Dolphin
for the players whose ``environments`` name it): port 1 or port 2 in each game (``ports
int[N]``, fixed from :meth:`Player.start` on, so the arena can seat it on either port in one
environment). Every frame it gets its side's features ``float32[N, D]`` and the environment
itself (scripted players read the simulator engine's state, which is what they were written
against, so they play in the simulator only; ``cpu:LEVEL`` is Melee's own CPU, so Dolphin
only) and returns its side's controller classes ``uint8[N, heads]``. Games that end restart
at once; :meth:`Player.reset_games` names them, so per-game memory (held inputs, recurrent
state, queued actions) starts over.

Policies keep ``runtime.agent``'s timing: one trained with frame delay ``d`` chooses from frame
``t``'s state the input of frame ``t + d``; the environment applies an action chosen after
frame ``t`` on its next step, so it waits ``max(d - 1, 0)`` frames in a queue (neutral at a
game's start). Their "previous input" feature is the last action the policy *chose*, not the
one applied, as in training; the environment fills those columns with the applied one, so they
are overwritten (they hold raw class ids, ``runtime.embedding_spec`` scales them by 1).

Every player records its decision latency: microseconds per decision of one game on one
frame. A batched player (scripted, random, teacher) records each call's time divided by its
games; the ONNX player, which runs its batch-1 graph game by game, records each run.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from exphil_pipeline.simulator.scripted_players import LEVELS, ScriptedPlayers, random_inputs
from exphil_pipeline.storage.layout import DataLayout
from runtime.agent import delay_input, effective_delay, hold_frames
from runtime.controller_spec import CONTROLLER_SPEC
from runtime.embedding_spec import (
    FRAME_DELAY_COLUMN,
    PREVIOUS_INPUT_COLUMNS,
    frame_delay_feature,
)

if TYPE_CHECKING:
    from exphil_pipeline.environments.base import GameEnvironment
    from exphil_pipeline.environments.simulator_env import SimulatorEnvironment

NEUTRAL = CONTROLLER_SPEC.neutral()
HEADS = CONTROLLER_SPEC.num_heads
TEACHER_TEMPERATURE = 1.0
"""Sampling temperature of a teacher: the one policy artifacts ship with unless configured
otherwise (``assets.policy_artifacts``)."""
SPECS = (
    "scripted:LEVEL (0-3, 3 the reference script), random, an .onnx artifact, a .pt teacher "
    "checkpoint, the name of an experiment with a trained teacher, or cpu:LEVEL (Dolphin only)"
)


class PlayerSpecError(ValueError):
    """A player spec names nothing this arena can play; the message lists what it can."""


class Player(ABC):
    """One side of N games (see the module docstring)."""

    reads_features = False
    """Whether :meth:`act` reads the features; the environment embeds only ports that do."""
    character: str | None = None
    """The character it was trained to play, where known (libmelee ``Character`` name)."""
    environments: tuple[str, ...] = ("simulator", "dolphin")
    """Where it can play (the arena's ``env`` values)."""
    cpu_level = 0
    """Melee's CPU level that plays its port in Dolphin; 0: it plays through its actions."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._latency_us: list[np.ndarray] = []

    def start(self, ports: np.ndarray, seed: int) -> None:
        """Get ready to play port ``ports[g]`` (0 or 1) of each of ``len(ports)`` new games,
        drawing any randomness from ``seed``; forgets earlier games and latency samples."""
        self._latency_us = []
        self._rows = np.arange(len(ports))
        self._ports = np.asarray(ports, dtype=np.int64)
        self._start(len(ports), seed)

    @abstractmethod
    def _start(self, games: int, seed: int) -> None: ...

    @abstractmethod
    def act(self, env: GameEnvironment, features: np.ndarray) -> np.ndarray:
        """This frame's classes ``uint8[N, heads]`` for its side, given that side's features
        ``float32[N, D]`` and the environment they came from."""

    @abstractmethod
    def reset_games(self, games: np.ndarray) -> None:
        """The games at indices ``games`` restarted: forget what was held for them."""

    def latencies_us(self) -> np.ndarray:
        """Decision latency samples since :meth:`start`, microseconds per game-frame."""
        if not self._latency_us:
            return np.zeros(0)
        return np.concatenate(self._latency_us)

    def _record_batch(self, began: float, games: int) -> None:
        elapsed_us = (time.perf_counter() - began) * 1e6
        self._latency_us.append(np.array([elapsed_us / games]))


class ScriptedPlayer(Player):
    """``scripted:LEVEL``: the simulator's scripted player at one of ``LEVELS``
    (``exphil_pipeline.simulator.scripted_players`` documents how each level falls short)."""

    environments = ("simulator",)

    def __init__(self, level: int) -> None:
        if level not in LEVELS:
            raise PlayerSpecError(
                f"scripted level {level}: choose one of {sorted(LEVELS)} "
                f"({max(LEVELS)}: the reference script)"
            )
        super().__init__(f"scripted:{level}")
        self.level = level

    def _start(self, games: int, seed: int) -> None:
        # Both ports at this level; the opponent's port's inputs are computed and dropped.
        self._script = ScriptedPlayers(np.full((games, 2), self.level), seed)

    def act(self, env: SimulatorEnvironment, features: np.ndarray) -> np.ndarray:  # type: ignore[override]
        began = time.perf_counter()
        both = self._script.inputs(env.state, env.tables).to_classes()
        classes = both[self._rows, self._ports]
        self._record_batch(began, len(classes))
        return classes

    def reset_games(self, games: np.ndarray) -> None:
        self._script.reset_games(games)


class CpuPlayer(Player):
    """``cpu:LEVEL``: Melee's built-in CPU at level 1-9, in Dolphin only. The environment sets
    the level on the character select screen and sends its port nothing; :meth:`act` returns
    neutral inputs that the environment drops."""

    environments = ("dolphin",)

    def __init__(self, level: int) -> None:
        super().__init__(f"cpu:{level}")
        self.cpu_level = level

    def _start(self, games: int, seed: int) -> None:
        self._neutral = np.tile(NEUTRAL, (games, 1))

    def act(self, env: GameEnvironment, features: np.ndarray) -> np.ndarray:
        return self._neutral

    def reset_games(self, games: np.ndarray) -> None:
        """Nothing to forget: Melee's CPU keeps its own state."""


class RandomPlayer(Player):
    """``random``: a uniformly random controller state every frame (``random_inputs``: every
    stick position, button state and shoulder level equally likely). Uniform classes per head
    would instead hold the shield on about 90% of frames, since L, R and the analog shoulder
    each raise it."""

    def __init__(self) -> None:
        super().__init__("random")

    def _start(self, games: int, seed: int) -> None:
        self._rng = np.random.default_rng(seed)

    def act(self, env: GameEnvironment, features: np.ndarray) -> np.ndarray:
        began = time.perf_counter()
        classes = random_inputs(len(self._rows), self._rng).to_classes()[self._rows, self._ports]
        self._record_batch(began, len(classes))
        return classes

    def reset_games(self, games: np.ndarray) -> None:
        """Nothing to forget: every frame is drawn afresh."""


class DelayedInputs:
    """A policy's choices on their way to the controller, for N games: a choice made after
    frame ``t`` is sent ``hold_frames(frame_delay)`` frames later (neutral until then and at
    each game's start). ``chosen`` is the last choice, the policy's "previous input";
    ``trained_delays`` the delays the policy learned from, ``(low, high)``."""

    def __init__(self, frame_delay: int, games: int, trained_delays: tuple[int, int]) -> None:
        self.hold = hold_frames(frame_delay)
        told = delay_input(effective_delay(frame_delay), trained_delays)
        self.delay_feature = frame_delay_feature(told)
        self.chosen = np.tile(NEUTRAL, (games, 1))
        self._queue = np.tile(NEUTRAL, (self.hold, games, 1))

    def observation(self, features: np.ndarray, games: np.ndarray | None = None) -> np.ndarray:
        """What the policy reads: a copy of the environment's ``features[N, D]`` with each
        game's previous input and the frame delay it plays at. With ``games`` (indices),
        ``features`` holds those games' rows only."""
        rows = np.array(features, dtype=np.float32)
        rows[:, PREVIOUS_INPUT_COLUMNS] = self.chosen if games is None else self.chosen[games]
        rows[:, FRAME_DELAY_COLUMN] = self.delay_feature
        return rows

    def push(self, chosen: np.ndarray, games: np.ndarray | None = None) -> np.ndarray:
        """Record this frame's choices ``uint8[N, heads]`` (or those of ``games`` only);
        returns the inputs to send now."""
        lanes = slice(None) if games is None else games
        self.chosen[lanes] = chosen
        if not self.hold:
            return chosen
        send = self._queue[0, lanes].copy()
        self._queue[:-1, lanes] = self._queue[1:, lanes]
        self._queue[-1, lanes] = chosen
        return send

    def reset(self, games: np.ndarray) -> None:
        """The games at indices ``games`` restarted."""
        self.chosen[games] = NEUTRAL
        self._queue[:, games] = NEUTRAL


class PolicyPlayer(Player):
    """A trained policy with ``runtime.agent``'s timing: the frame-delay queue and the
    previous-input override (see the module docstring). Subclasses run the network."""

    reads_features = True

    def __init__(
        self, name: str, frame_delay: int, trained_delays: tuple[int, int], temperature: float
    ) -> None:
        super().__init__(name)
        self.frame_delay = frame_delay
        self.trained_delays = trained_delays
        self.temperature = temperature

    def _start(self, games: int, seed: int) -> None:
        self._rng = np.random.default_rng(seed)
        self._inputs = DelayedInputs(self.frame_delay, games, self.trained_delays)
        self._load(games)

    @abstractmethod
    def _load(self, games: int) -> None:
        """Build the network's per-game state for ``games`` games."""

    @abstractmethod
    def _choose(self, rows: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
        """Classes ``uint8[N, heads]`` for ``rows[N, D]``; records latency; steps the state."""

    @abstractmethod
    def _forget(self, games: np.ndarray) -> None:
        """Zero the network state of ``games``."""

    def act(self, env: GameEnvironment, features: np.ndarray) -> np.ndarray:
        rows = self._inputs.observation(features)
        uniforms = self._rng.random((len(rows), HEADS), dtype=np.float32)
        return self._inputs.push(self._choose(rows, uniforms))

    def reset_games(self, games: np.ndarray) -> None:
        self._inputs.reset(games)
        self._forget(games)


class OnnxPlayer(PolicyPlayer):
    """An exported artifact (``.onnx``) at the manifest's frame delay and temperature. A
    stateless graph exported with a free batch dimension decides for every game in one
    ``session.run``; a recurrent artifact keeps one :class:`~runtime.onnx_policy.OnnxPolicy`
    (one state) per game, all on one session, as does a graph fixed at batch 1."""

    def __init__(self, artifact: Path) -> None:
        from runtime.artifact_manifest import read_manifest

        manifest = read_manifest(artifact)
        manifest.check_compatible()
        super().__init__(
            str(artifact), manifest.frame_delay, manifest.frame_delay_range, manifest.temperature
        )
        self.artifact = artifact
        self.manifest = manifest
        self.character = manifest.character if manifest.character != "any" else None

    def _load(self, games: int) -> None:
        from runtime.onnx_policy import OnnxPolicy, single_thread_session

        session = single_thread_session(self.artifact)
        self._session = session
        batch = session.get_inputs()[0].shape[0]
        self._batched = self.manifest.model_kind != "recurrent" and not isinstance(batch, int)
        count = games if self.manifest.model_kind == "recurrent" else 1
        self._policies = [OnnxPolicy(self.manifest, session) for _ in range(count)]

    def _choose(self, rows: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
        if self._batched:
            began = time.perf_counter()
            feeds = {
                "features": rows.astype(np.float32, copy=False),
                "uniforms": uniforms.astype(np.float32, copy=False),
                "temperature": np.array(self.temperature, dtype=np.float32),
            }
            classes = self._session.run(["classes"], feeds)[0].astype(np.uint8)
            per_game = (time.perf_counter() - began) * 1e6 / max(len(rows), 1)
            self._latency_us.append(np.full(len(rows), per_game))
            return classes
        classes = np.empty((len(rows), HEADS), dtype=np.uint8)
        latency = np.empty(len(rows))
        policies = self._policies
        for game, row in enumerate(rows):
            began = time.perf_counter()
            policy = policies[game] if len(policies) > 1 else policies[0]
            classes[game] = policy.step(row, uniforms[game], self.temperature)
            latency[game] = (time.perf_counter() - began) * 1e6
        self._latency_us.append(latency)
        return classes

    def _forget(self, games: np.ndarray) -> None:
        if len(self._policies) > 1:
            for game in games:
                self._policies[game].reset()


class TeacherPlayer(PolicyPlayer):
    """A PyTorch teacher checkpoint, stepped for all games in one batch; each game's state is
    carried from frame to frame and zeroed when the game restarts."""

    def __init__(
        self,
        checkpoint: Path,
        temperature: float = TEACHER_TEMPERATURE,
        name: str | None = None,
    ) -> None:
        from exphil_pipeline.training.teacher_checkpoint import TeacherCheckpoint

        teacher = TeacherCheckpoint.load(checkpoint)
        contract = teacher.contract
        super().__init__(
            name or str(checkpoint), contract.frame_delay, contract.frame_delay_range, temperature
        )
        self.policy = teacher.policy.eval()
        self.character = contract.character if contract.character != "any" else None

    def _load(self, games: int) -> None:
        import torch

        from exphil_pipeline.training.teacher_evaluation import batch_dims

        self._state = self.policy.initial_state(games)
        self._batch_dims = batch_dims(self.policy)
        self._temperature = torch.tensor(self.temperature)

    def _choose(self, rows: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
        import torch

        began = time.perf_counter()
        # One intra-op thread, as onnxruntime gets in runtime.onnx_policy: a frame of a few
        # hundred games is too small to split, and on a loaded 2-core machine OpenMP's hand-offs
        # made a 6-game arena 15x slower (30 s against 2 s). Restored after the step.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.no_grad():
                classes, _, self._state = self.policy.step(
                    torch.from_numpy(rows),
                    self._state,
                    torch.from_numpy(uniforms),
                    self._temperature,
                )
        finally:
            torch.set_num_threads(threads)
        chosen = classes.numpy().astype(np.uint8)
        self._record_batch(began, len(rows))
        return chosen

    def _forget(self, games: np.ndarray) -> None:
        from exphil_pipeline.training.teacher_evaluation import zero_games

        zero_games(self._state, self._batch_dims, games)


def check_environment(player: Player, env: str) -> None:
    """PlayerSpecError unless ``player`` can play in environment ``env``."""
    if env in player.environments:
        return
    if isinstance(player, CpuPlayer):
        raise PlayerSpecError(
            f"player {player.name!r} is Melee's built-in CPU, which only Dolphin runs "
            "(--env dolphin); in the simulator use scripted:LEVEL (0-3)"
        )
    if isinstance(player, ScriptedPlayer):
        raise PlayerSpecError(
            f"player {player.name!r} reads the simulator's engine state, which Dolphin does not "
            "have; in Dolphin use cpu:LEVEL (1-9), Melee's built-in CPU"
        )
    raise PlayerSpecError(f"player {player.name!r} cannot play in {env}")


def parse_player(spec: str, layout: DataLayout, env: str = "simulator") -> Player:
    """The player a command-line spec names (``SPECS`` lists them) for environment ``env``
    (``simulator`` or ``dolphin``); a mirror match is the same spec twice, which builds two
    independent players."""
    player = _build_player(spec, layout)
    check_environment(player, env)
    return player


def _build_player(spec: str, layout: DataLayout) -> Player:
    kind, _, argument = spec.partition(":")
    if kind == "scripted":
        return ScriptedPlayer(_level(spec, argument))
    if kind == "cpu":
        return CpuPlayer(_level(spec, argument, allowed=range(1, 10)))
    if spec == "random":
        return RandomPlayer()
    path = Path(spec)
    if path.suffix in (".onnx", ".pt"):
        if not path.is_file():
            raise PlayerSpecError(f"player {spec!r}: no such file")
        return OnnxPlayer(path) if path.suffix == ".onnx" else TeacherPlayer(path)
    try:
        checkpoint = layout.experiment(spec).teacher_best
    except ValueError:
        raise PlayerSpecError(f"player {spec!r}: expected {SPECS}") from None
    if not checkpoint.is_file():
        raise PlayerSpecError(
            f"player {spec!r}: no trained teacher at {checkpoint} (materialize the teacher of "
            f"experiment {spec!r}, or pass {SPECS})"
        )
    return TeacherPlayer(checkpoint, name=spec)


def _level(spec: str, argument: str, allowed: range | None = None) -> int:
    allowed = allowed or range(min(LEVELS), max(LEVELS) + 1)
    if not argument.isdigit() or int(argument) not in allowed:
        raise PlayerSpecError(
            f"player {spec!r}: the level must be an integer in {allowed.start}-{allowed.stop - 1}"
        )
    return int(argument)
