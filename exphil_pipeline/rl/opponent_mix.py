"""The opponents of one actor's N games: each game draws its own from the self-play pool when
it starts, so every chunk mixes the whole pool in the proportions the pool asks for.

Scripted levels share one :class:`~exphil_pipeline.simulator.scripted_players.ScriptedPlayers`
with a level per game, computed in one call; each saved policy (the imitation teacher, an RL
snapshot) is loaded once and stepped in one batch over the games it plays, its input queue
(and recurrent state) kept per game. A policy that left the pool is dropped once its last game
ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from exphil_pipeline.artifacts.onnx_export import inference_session
from exphil_pipeline.environments.simulator_env import SimulatorEnvironment
from exphil_pipeline.evaluation.players import TEACHER_TEMPERATURE, DelayedInputs
from exphil_pipeline.simulator.scripted_players import STRONGEST, ScriptedPlayers
from exphil_pipeline.training.teacher_checkpoint import TeacherCheckpoint
from exphil_pipeline.training.teacher_evaluation import batch_dims, zero_games
from runtime.controller_spec import CONTROLLER_SPEC

HEADS = CONTROLLER_SPEC.num_heads


@dataclass(frozen=True)
class OpponentSpec:
    """Who plays the other port: a scripted level or a saved policy (teacher format)."""

    name: str
    level: int | None = None
    checkpoint: str | None = None


OpponentOdds = dict[OpponentSpec, float]
"""The pool as an actor gets it: each opponent with the probability a new game draws it."""


class PolicyOpponent:
    """A saved policy playing whichever of the N games are given to it, frame by frame, with
    the arena's timing (:class:`~exphil_pipeline.evaluation.players.DelayedInputs`).

    A stateless policy runs as its exported step graph in onnxruntime
    (:func:`~exphil_pipeline.artifacts.onnx_export.inference_session`): several of them each
    decide for a few dozen games every frame, where onnxruntime's fixed cost per call is a
    quarter of PyTorch's: in an actor against five saved policies the opponents took a third
    less time. A recurrent policy steps in PyTorch, its state gathered and scattered per game.
    """

    def __init__(self, checkpoint: Path, games: int, seed: int) -> None:
        teacher = TeacherCheckpoint.load(checkpoint)
        contract = teacher.contract
        self.policy = teacher.policy.eval()
        self._inputs = DelayedInputs(contract.frame_delay, games, contract.frame_delay_range)
        self._state = self.policy.initial_state(games)
        self._dims = batch_dims(self.policy)
        self._session = None if self._state else inference_session(self.policy)
        self._rng = np.random.default_rng(seed)
        self._temperature = np.array(TEACHER_TEMPERATURE, np.float32)

    def act(self, features: np.ndarray, games: np.ndarray) -> np.ndarray:
        """Classes ``uint8[len(games), heads]`` of the games ``games``, from their rows of
        ``features``."""
        rows = self._inputs.observation(features, games)
        uniforms = self._rng.random((len(games), HEADS), dtype=np.float32)
        if self._session is not None:
            feeds = {"features": rows, "uniforms": uniforms, "temperature": self._temperature}
            classes = self._session.run(["classes"], feeds)[0]
        else:
            classes = self._step_recurrent(rows, uniforms, games)
        return self._inputs.push(classes.astype(np.uint8), games)

    def _step_recurrent(
        self, rows: np.ndarray, uniforms: np.ndarray, games: np.ndarray
    ) -> np.ndarray:
        index = torch.from_numpy(games)
        state = tuple(
            t.index_select(dim, index) for t, dim in zip(self._state, self._dims, strict=True)
        )
        with torch.no_grad():
            classes, _, state = self.policy.step(
                torch.from_numpy(rows),
                state,
                torch.from_numpy(uniforms),
                torch.from_numpy(self._temperature),
            )
        for tensor, new, dim in zip(self._state, state, self._dims, strict=True):
            tensor.index_copy_(dim, index, new)
        return classes.numpy()

    def reset(self, games: np.ndarray) -> None:
        """The games ``games`` start anew with this policy."""
        self._inputs.reset(games)
        zero_games(self._state, self._dims, games)


class OpponentMix:
    """The opponents of N games on port ``port`` (see the module docstring)."""

    def __init__(self, games: int, port: int, seed: int) -> None:
        self.port = port
        self.games = games
        self.assigned: list[OpponentSpec | None] = [None] * games
        seeds = np.random.SeedSequence(seed).generate_state(3)
        self._rng = np.random.default_rng(seeds[0])
        self._policy_seeds = np.random.SeedSequence(seeds[1])
        self._scripted = ScriptedPlayers(np.full((games, 2), STRONGEST), int(seeds[2]))
        self._policies: dict[OpponentSpec, PolicyOpponent] = {}
        self._groups: dict[OpponentSpec, np.ndarray] = {}  # the games each opponent plays
        self._scripted_games = np.zeros(0, np.int64)

    def draw(self, games: np.ndarray, odds: OpponentOdds) -> None:
        """Games ``games`` start anew, each against an opponent drawn from ``odds``."""
        specs = list(odds)
        weights = np.array([odds[s] for s in specs], dtype=np.float64)
        drawn = self._rng.choice(len(specs), size=len(games), p=weights / weights.sum())
        games = np.asarray(games, dtype=np.int64)
        for spec_index in np.unique(drawn):
            spec = specs[spec_index]
            chosen = games[drawn == spec_index]
            for game in chosen:
                self.assigned[game] = spec
            if spec.level is not None:
                self._scripted.set_level(chosen, spec.level)
            else:
                self._policy(spec).reset(chosen)
        groups: dict[OpponentSpec, list[int]] = {}
        for game, spec in enumerate(self.assigned):
            groups.setdefault(spec, []).append(game)
        self._groups = {s: np.array(g, dtype=np.int64) for s, g in groups.items()}
        self._scripted_games = np.concatenate(
            [g for s, g in self._groups.items() if s.level is not None] or [np.zeros(0, np.int64)]
        )
        self._policies = {s: p for s, p in self._policies.items() if s in self._groups or s in odds}

    def act(self, env: SimulatorEnvironment, features: np.ndarray) -> np.ndarray:
        """This frame's classes ``uint8[N, heads]`` of every game's opponent, from the
        opponent port's ``features[N, D]`` (unread when only scripted levels play)."""
        classes = np.empty((self.games, HEADS), np.uint8)
        if len(self._scripted_games):
            both = self._scripted.inputs(env.state, env.tables).to_classes()
            classes[self._scripted_games] = both[self._scripted_games, self.port]
        for spec, games in self._groups.items():
            if spec.checkpoint is not None:
                classes[games] = self._policies[spec].act(features[games], games)
        return classes

    def _policy(self, spec: OpponentSpec) -> PolicyOpponent:
        if spec not in self._policies:
            seed = int(self._policy_seeds.spawn(1)[0].generate_state(1)[0])
            self._policies[spec] = PolicyOpponent(Path(spec.checkpoint), self.games, seed)
        return self._policies[spec]
