"""An actor: N simulated games, the learning policy on one port, an opponent on the other.

Each :meth:`Actor.rollout` plays ``unroll`` frames of all its games with the weights it was
last sent and returns a :class:`Rollout`: what the policy saw, chose and earned, with the
log-probability of each choice under those weights (the behaviour policy V-trace corrects
for), the recurrent state it started from, and every game that ended.

Timing is the arena's (:class:`~exphil_pipeline.evaluation.players.PolicyPlayer`): a policy
trained with frame delay ``d`` chooses from frame ``t``'s state the input applied ``d`` frames
later, through a queue; its "previous input" feature is its own last choice. The learning
policy's port, the characters and the opponent stay fixed for a round, which lasts until every
game of the actor has ended at least once (games that end early start again and play on); the
learner then starts a new round, with the next opponent and the learning policy on the other
port, whose fresh games replace the ones in play (those are cut off, bootstrapped by value).

An actor is a plain object: the same class runs in the learner's process, in a process of its
own, or as a Ray actor (:mod:`exphil_pipeline.rl.actor_pool`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from exphil_pipeline.environments.base import GameResult
from exphil_pipeline.environments.simulator_env import SimulatorConfig, SimulatorEnvironment
from exphil_pipeline.evaluation.players import (
    DelayedInputs,
    Player,
    ScriptedPlayer,
    TeacherPlayer,
)
from exphil_pipeline.rl.ppo_loss import action_log_probs
from exphil_pipeline.rl.rewards import RewardConfig, frame_rewards, reward_frames_from_engine
from exphil_pipeline.training.teacher_evaluation import batch_dims
from models import Policy, PolicyConfig
from runtime.controller_spec import CONTROLLER_SPEC

HEADS = CONTROLLER_SPEC.num_heads
Weights = dict[str, np.ndarray]


@dataclass(frozen=True)
class OpponentSpec:
    """Who plays the other port: a scripted level or a saved policy (teacher format)."""

    name: str
    level: int | None = None
    checkpoint: str | None = None

    def player(self) -> Player:
        if self.level is not None:
            return ScriptedPlayer(self.level)
        return TeacherPlayer(Path(self.checkpoint), name=self.name)


@dataclass(frozen=True)
class ActorSpec:
    """Everything an actor needs to build itself; picklable, so it crosses processes."""

    index: int
    policy: dict  # PolicyConfig.to_dict() of the learning policy
    frame_delay: int
    frame_delay_range: tuple[int, int]  # the delays the policy learned from
    character: str  # the learning policy's libmelee character name
    opponent_character: str
    stage: str
    stocks: int
    max_game_frames: int
    games: int
    unroll: int
    rewards: RewardConfig
    seed: int


@dataclass
class RolloutRequest:
    """What the learner asks of an actor: one chunk, with new weights and opponent if given."""

    version: int
    weights: Weights | None = None
    opponent: OpponentSpec | None = None
    new_round: bool = False


@dataclass
class Rollout:
    """One chunk of ``T`` frames of ``B`` games (time-major arrays)."""

    actor: int
    version: int  # the weights' version that chose the actions
    opponent: str
    port: int  # the learning policy's port (0 or 1) in every game of the chunk
    features: np.ndarray  # float32[T + 1, B, D], the last row is the bootstrap frame
    actions: np.ndarray  # uint8[T, B, heads]
    log_probs: np.ndarray  # float32[T, B], behaviour log-probability of the actions
    rewards: np.ndarray  # float32[T, B]
    dones: np.ndarray  # bool[T, B], the game ended after frame t
    initial_state: tuple[np.ndarray, ...]  # the policy's state before frame 0
    results: list[GameResult] = field(default_factory=list)
    round_over: bool = False  # every game of the round has ended at least once
    seconds: float = 0.0

    @property
    def frames(self) -> int:
        return int(self.actions.shape[0] * self.actions.shape[1])


class Actor:
    """Plays chunks of games for the learner (see the module docstring)."""

    def __init__(self, spec: ActorSpec) -> None:
        torch.set_num_threads(1)
        self.spec = spec
        self.policy = Policy.from_config(PolicyConfig.from_dict(spec.policy)).eval()
        self.version = -1
        self.opponent: OpponentSpec | None = None
        self.rounds = 0
        self._rng = np.random.default_rng(spec.seed)
        self._env: SimulatorEnvironment | None = None
        self._batch_dims = batch_dims(self.policy)

    def handle(self, request: RolloutRequest) -> Rollout:
        """Apply the request's weights and opponent, then play one chunk."""
        if request.weights is not None:
            self.policy.load_state_dict(
                {k: torch.from_numpy(v) for k, v in request.weights.items()}
            )
            self.version = request.version
        if request.opponent is not None:
            self.opponent = request.opponent
        if request.new_round or self._env is None:
            self._new_round()
        return self.rollout()

    def _new_round(self) -> None:
        if self.opponent is None:
            raise RuntimeError("an actor needs an opponent before its first chunk")
        spec = self.spec
        self.port = (spec.index + self.rounds) % 2
        self.rounds += 1
        characters = [spec.character, spec.opponent_character]
        if self.port == 1:
            characters.reverse()
        self._opponent_player = self.opponent.player()
        observe = {self.port} | ({1 - self.port} if self._opponent_player.reads_features else set())
        self._env = SimulatorEnvironment(
            SimulatorConfig(
                games=spec.games,
                characters=(characters[0], characters[1]),
                stage=spec.stage,
                stocks=spec.stocks,
                max_frames=spec.max_game_frames,
                observe=tuple(sorted(observe)),
            )
        )
        seeds = self._rng.integers(0, 2**31, 2)
        self._features = self._env.reset(int(seeds[0]))
        self._opponent_player.start(np.full(spec.games, 1 - self.port), int(seeds[1]))
        self._state = self.policy.initial_state(spec.games)
        self._inputs = DelayedInputs(spec.frame_delay, spec.games, spec.frame_delay_range)
        self._ended_once = np.zeros(spec.games, dtype=bool)

    def rollout(self) -> Rollout:
        """Play ``unroll`` frames of every game with the current weights and opponent."""
        began = time.perf_counter()
        spec, env, port = self.spec, self._env, self.port
        games, steps = spec.games, spec.unroll
        features = np.empty((steps + 1, games, self._features.shape[-1]), np.float32)
        actions = np.empty((steps, games, HEADS), np.uint8)
        log_probs = np.empty((steps, games), np.float32)
        rewards = np.empty((steps, games), np.float32)
        dones = np.empty((steps, games), bool)
        initial_state = tuple(t.numpy().copy() for t in self._state)
        both = np.empty((games, 2, HEADS), np.uint8)
        results: list[GameResult] = []
        one = torch.tensor(1.0)
        for t in range(steps):
            own = self._inputs.observation(self._features[:, port])
            features[t] = own
            uniforms = torch.from_numpy(self._rng.random((games, HEADS), dtype=np.float32))
            with torch.no_grad():
                classes, _, logits, self._state = self.policy.step_with_logits(
                    torch.from_numpy(own), self._state, uniforms, one
                )
                per_head = torch.split(logits, list(self.policy.config.head_classes), dim=-1)
                log_probs[t] = action_log_probs(list(per_head), classes).numpy()
            actions[t] = classes.numpy()
            both[:, port] = self._inputs.push(actions[t].copy())
            both[:, 1 - port] = self._opponent_player.act(env, self._features[:, 1 - port])
            before = reward_frames_from_engine(env.state)
            out = env.step(both)
            after = reward_frames_from_engine(env.state)
            ended = np.flatnonzero(out.done)
            if len(ended):
                _overwrite(after, ended, reward_frames_from_engine(env.ended))
                results += out.results
                self._forget(ended)
            rewards[t] = frame_rewards(before, after, spec.rewards)[:, port]
            dones[t] = out.done
            self._ended_once |= out.done
            self._features = out.features
        features[steps] = self._inputs.observation(self._features[:, port])
        return Rollout(
            actor=spec.index,
            version=self.version,
            opponent=self.opponent.name,
            port=port,
            features=features,
            actions=actions,
            log_probs=log_probs,
            rewards=rewards,
            dones=dones,
            initial_state=initial_state,
            results=results,
            round_over=bool(self._ended_once.all()),
            seconds=time.perf_counter() - began,
        )

    def _forget(self, games: np.ndarray) -> None:
        """Games that ended restarted: their inputs and recurrent state start over."""
        self._inputs.reset(games)
        self._opponent_player.reset_games(games)
        index = torch.from_numpy(games.astype(np.int64))
        for tensor, dim in zip(self._state, self._batch_dims, strict=True):
            tensor.index_fill_(dim, index, 0.0)


def _overwrite(frames, games: np.ndarray, ended) -> None:
    """Put the ended games' last frame into ``frames`` (the environment already restarted
    them, so ``frames`` holds their next game's first frame)."""
    for name, values in vars(ended).items():
        getattr(frames, name)[games] = values
