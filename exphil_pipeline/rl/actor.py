"""An actor: N simulated games, the learning policy on one port, opponents on the other.

Each :meth:`Actor.rollout` plays ``unroll`` frames of all its games with the weights it was
last sent and returns a :class:`Rollout`: what the policy saw, chose and earned, with the
log-probability of each choice under those weights (the behaviour policy V-trace corrects
for), the recurrent state it started from, and every game that ended, with its opponent.

Timing is the arena's (:class:`~exphil_pipeline.evaluation.players.PolicyPlayer`): a policy
trained with frame delay ``d`` chooses from frame ``t``'s state the input applied ``d`` frames
later, through a queue; its "previous input" feature is its own last choice. Each game draws
its opponent from the pool the latest request carried when it starts
(:class:`~exphil_pipeline.rl.opponent_mix.OpponentMix`), so a chunk mixes the whole pool and
the odds follow the learner's scores game by game. Games never stop for a new opponent: one
that ends restarts at once against a new draw. Actor ``i`` plays port ``i % 2``, so an even
number of actors plays both ports equally.

An actor is a plain object: the same class runs in the learner's process, in a process of its
own, or as a Ray actor (:mod:`exphil_pipeline.rl.actor_pool`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from exphil_pipeline.environments.base import GameResult
from exphil_pipeline.environments.simulator_env import SimulatorConfig, SimulatorEnvironment
from exphil_pipeline.evaluation.players import DelayedInputs
from exphil_pipeline.rl.opponent_mix import OpponentMix, OpponentOdds
from exphil_pipeline.rl.rewards import RewardConfig, frame_rewards, reward_frames_from_engine
from exphil_pipeline.training.teacher_evaluation import batch_dims, zero_games
from models import Policy, PolicyConfig
from runtime.controller_spec import CONTROLLER_SPEC

HEADS = CONTROLLER_SPEC.num_heads
Weights = dict[str, np.ndarray]


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
    """What the learner asks of an actor: one chunk, with new weights and pool odds if given."""

    version: int
    weights: Weights | None = None
    opponents: OpponentOdds | None = None  # for the games that start from now on


@dataclass(frozen=True)
class FinishedGame:
    """A game that ended during a chunk, and who the learning policy played in it."""

    opponent: str
    result: GameResult


@dataclass
class Rollout:
    """One chunk of ``T`` frames of ``B`` games (time-major arrays)."""

    actor: int
    version: int  # the weights' version that chose the actions
    port: int  # the learning policy's port (0 or 1) in every game of the chunk
    features: np.ndarray  # float32[T + 1, B, D], the last row is the bootstrap frame
    actions: np.ndarray  # uint8[T, B, heads]
    log_probs: np.ndarray  # float32[T, B], behaviour log-probability of the actions
    rewards: np.ndarray  # float32[T, B]
    dones: np.ndarray  # bool[T, B], the game ended after frame t
    initial_state: tuple[np.ndarray, ...]  # the policy's state before frame 0
    finished: list[FinishedGame] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def frames(self) -> int:
        return int(self.actions.shape[0] * self.actions.shape[1])


class Actor:
    """Plays chunks of games for the learner (see the module docstring)."""

    def __init__(self, spec: ActorSpec) -> None:
        torch.set_num_threads(1)
        self.spec = spec
        self.port = spec.index % 2
        self.policy = Policy.from_config(PolicyConfig.from_dict(spec.policy)).eval()
        self.version = -1
        self.odds: OpponentOdds | None = None
        self._rng = np.random.default_rng(spec.seed)
        self._env: SimulatorEnvironment | None = None
        self._batch_dims = batch_dims(self.policy)

    def handle(self, request: RolloutRequest) -> Rollout:
        """Apply the request's weights and pool odds, then play one chunk."""
        if request.weights is not None:
            self.policy.load_state_dict(
                {k: torch.from_numpy(v) for k, v in request.weights.items()}
            )
            self.version = request.version
        if request.opponents is not None:
            self.odds = request.opponents
        if self._env is None:
            self._start()
        return self.rollout()

    def _start(self) -> None:
        if not self.odds:
            raise RuntimeError("an actor needs the opponents' odds before its first chunk")
        spec, port = self.spec, self.port
        characters = [spec.character, spec.opponent_character]
        if port == 1:
            characters.reverse()
        # Saved policies in the pool read the opponent port's features; only RL snapshots
        # join later, and a pool with "self" starts with the teacher in their place.
        policies = any(o.checkpoint for o in self.odds)
        self._env = SimulatorEnvironment(
            SimulatorConfig(
                games=spec.games,
                characters=(characters[0], characters[1]),
                stage=spec.stage,
                stocks=spec.stocks,
                max_frames=spec.max_game_frames,
                observe=(0, 1) if policies else (port,),
            )
        )
        seeds = self._rng.integers(0, 2**31, 2)
        self._features = self._env.reset(int(seeds[0]))
        self._opponents = OpponentMix(spec.games, 1 - port, int(seeds[1]))
        self._opponents.draw(np.arange(spec.games), self.odds)
        self._state = self.policy.initial_state(spec.games)
        self._inputs = DelayedInputs(spec.frame_delay, spec.games, spec.frame_delay_range)

    def rollout(self) -> Rollout:
        """Play ``unroll`` frames of every game with the current weights and opponents."""
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
        finished: list[FinishedGame] = []
        one = torch.tensor(1.0)
        for t in range(steps):
            own = self._inputs.observation(self._features[:, port])
            features[t] = own
            uniforms = torch.from_numpy(self._rng.random((games, HEADS), dtype=np.float32))
            with torch.no_grad():
                classes, probs, self._state = self.policy.step(
                    torch.from_numpy(own), self._state, uniforms, one
                )
                # At temperature 1 each head's probability is the behaviour policy's own.
                log_probs[t] = probs.log().sum(-1).numpy()
            actions[t] = classes.numpy()
            both[:, port] = self._inputs.push(actions[t].copy())
            both[:, 1 - port] = self._opponents.act(env, self._features[:, 1 - port])
            before = reward_frames_from_engine(env.state)
            out = env.step(both)
            after = reward_frames_from_engine(env.state)
            ended = np.flatnonzero(out.done)
            if len(ended):
                _overwrite(after, ended, reward_frames_from_engine(env.ended))
                finished += [
                    FinishedGame(self._opponents.assigned[r.game].name, r) for r in out.results
                ]
                self._forget(ended)
            rewards[t] = frame_rewards(before, after, spec.rewards)[:, port]
            dones[t] = out.done
            self._features = out.features
        features[steps] = self._inputs.observation(self._features[:, port])
        return Rollout(
            actor=spec.index,
            version=self.version,
            port=port,
            features=features,
            actions=actions,
            log_probs=log_probs,
            rewards=rewards,
            dones=dones,
            initial_state=initial_state,
            finished=finished,
            seconds=time.perf_counter() - began,
        )

    def _forget(self, games: np.ndarray) -> None:
        """Games that ended restarted: their inputs and recurrent state start over."""
        self._inputs.reset(games)
        self._opponents.draw(games, self.odds)
        zero_games(self._state, self._batch_dims, games)


def _overwrite(frames, games: np.ndarray, ended) -> None:
    """Put the ended games' last frame into ``frames`` (the environment already restarted
    them, so ``frames`` holds their next game's first frame)."""
    for name, values in vars(ended).items():
        getattr(frames, name)[games] = values
