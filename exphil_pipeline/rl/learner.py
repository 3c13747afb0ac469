"""The learner: PPO on actors' chunks, anchored to the frozen imitation teacher.

One :meth:`Learner.update` takes a batch of :class:`~exphil_pipeline.rl.actor.Rollout`s
(games side by side) and runs ``epochs_per_batch`` passes of ``minibatches`` minibatches
(split by game, so each keeps its whole chunk for the recurrent state). Each minibatch's one
forward pass gives both the loss and, detached, its targets: V-trace (which corrects for the
actors having played older weights) or GAE for plain on-policy PPO. The loss is the
clipped-ratio surrogate with a value loss, an entropy bonus and KL penalties to the teacher
(measured on a share of the games drawn anew each update, ``teacher_kl_games``); the ratio is
taken against the behaviour policy's log-probabilities, the ones the actor sampled with.

Sequences: a stateless backbone (MLP) encodes a whole chunk at once; a recurrent one starts
from the state the actor had at the chunk's first frame and is stepped frame by frame, its
state zeroed after a game ends, as truncated BPTT does in imitation. The teacher is stepped
the same way but from a zero state at each chunk start (it is not carried by the actors).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from exphil_pipeline.rl.actor import Rollout
from exphil_pipeline.rl.advantages import gae, vtrace
from exphil_pipeline.rl.ppo_loss import PPOConfig, action_log_probs, entropy, ppo_loss, teacher_kl
from exphil_pipeline.rl.rl_config import RLConfig
from exphil_pipeline.training.teacher_evaluation import batch_dims, reset_lanes
from models import Policy


@dataclass(frozen=True)
class Batch:
    """Rollouts side by side, batch-major tensors ``[B, T(+1), ...]``."""

    features: Tensor  # [B, T + 1, D]
    actions: Tensor  # long [B, T, heads]
    log_probs: Tensor  # [B, T]
    rewards: Tensor  # [B, T]
    dones: Tensor  # bool [B, T]
    initial_state: tuple[Tensor, ...]

    @classmethod
    def of(cls, rollouts: Sequence[Rollout], batch_axes: Sequence[int], device: str) -> Batch:
        def stacked(name: str, dtype: torch.dtype) -> Tensor:
            array = np.concatenate([getattr(r, name) for r in rollouts], axis=1)
            return torch.from_numpy(np.ascontiguousarray(array.swapaxes(0, 1))).to(device, dtype)

        states = tuple(
            torch.from_numpy(np.concatenate([r.initial_state[i] for r in rollouts], axis=axis)).to(
                device
            )
            for i, axis in enumerate(batch_axes)
        )
        return cls(
            features=stacked("features", torch.float32),
            actions=stacked("actions", torch.long),
            log_probs=stacked("log_probs", torch.float32),
            rewards=stacked("rewards", torch.float32),
            dones=stacked("dones", torch.bool),
            initial_state=states,
        )

    @property
    def games(self) -> int:
        return self.features.shape[0]

    def select(self, games: Tensor, batch_axes: Sequence[int]) -> Batch:
        return Batch(
            features=self.features[games],
            actions=self.actions[games],
            log_probs=self.log_probs[games],
            rewards=self.rewards[games],
            dones=self.dones[games],
            initial_state=tuple(
                s.index_select(axis, games)
                for s, axis in zip(self.initial_state, batch_axes, strict=True)
            ),
        )


def encode(
    policy: Policy,
    features: Tensor,
    state: tuple[Tensor, ...],
    dones: Tensor,
    axes: Sequence[int],
) -> Tensor:
    """Backbone outputs ``[B, T + 1, hidden]`` for ``features[B, T + 1, D]`` from ``state``,
    zeroing each game's state after the frames where ``dones[B, T]`` says it ended.

    A backbone that starts with a Linear has it fused with the feature input over the whole
    chunk (:meth:`~models.feature_input.FeatureInput.project`): a PPO update of the demo's
    teacher takes about a fifth less time than through the embedded frame vectors."""
    if not axes:
        return policy.encode(features, state)[0]
    layer = policy.backbone.input_layer
    if layer is None:
        inputs, step = policy.features(features), policy.backbone.step
    else:
        inputs, step = policy.features.project(features, layer), policy.backbone.step_projected
    outputs = []
    for t in range(features.shape[1]):
        hidden, state = step(inputs[:, t], state)
        outputs.append(hidden)
        if t < dones.shape[1]:
            state = reset_lanes(state, dones[:, t], list(axes))
    return torch.stack(outputs, dim=1)


class Learner:
    """Holds the learning policy, the frozen teacher and the optimizer."""

    def __init__(self, policy: Policy, teacher: Policy, config: RLConfig) -> None:
        self.policy, self.teacher, self.config = policy, teacher.eval(), config
        self.ppo: PPOConfig = config.ppo()
        for parameter in self.teacher.parameters():
            parameter.requires_grad_(False)
        periodic = policy.features.periodic
        if periodic is not None and not config.train_periodic_frequencies:
            periodic.frequencies.requires_grad_(False)
        trained = [parameter for parameter in policy.parameters() if parameter.requires_grad]
        self.optimizer = torch.optim.Adam(trained, lr=config.learning_rate)
        self.axes = batch_dims(policy)
        self.teacher_axes = batch_dims(teacher)
        self.updates = 0
        self._generator = torch.Generator().manual_seed(config.seed)

    def weights(self) -> dict[str, np.ndarray]:
        """The current weights as numpy arrays, cheap to pickle to actors."""
        return {k: v.detach().cpu().numpy().copy() for k, v in self.policy.state_dict().items()}

    def update(self, rollouts: Sequence[Rollout]) -> dict[str, float]:
        """One PPO update on ``rollouts``; returns its losses, KLs and frames/s."""
        began = time.perf_counter()
        device = self.config.device
        batch = Batch.of(rollouts, self.axes, device)
        steps = batch.actions.shape[1]
        # The anchor's games: the teacher reads only these (see RLConfig.teacher_kl_games).
        count = math.ceil(self.config.teacher_kl_games * batch.games)
        anchored = torch.randperm(batch.games, generator=self._generator)[:count].to(device)
        is_anchored = torch.zeros(batch.games, dtype=torch.bool, device=device)
        is_anchored[anchored] = True
        with torch.no_grad():
            teacher_state = self.teacher.initial_state(count, device)
            teacher_hidden = encode(
                self.teacher,
                batch.features[anchored],
                teacher_state,
                batch.dones[anchored],
                self.teacher_axes,
            )
            anchored_logits = self.teacher.head(teacher_hidden[:, :steps], batch.actions[anchored])
        # Full-size, rows of other games left empty, so minibatches index them like the batch.
        teacher_logits = [
            logits.new_zeros((batch.games, *logits.shape[1:])).index_copy_(0, anchored, logits)
            for logits in anchored_logits
        ]
        warmup = self.updates < self.config.value_warmup_updates
        totals: dict[str, float] = {}
        passes = 0
        for _ in range(self.config.epochs_per_batch):
            order = torch.randperm(batch.games, generator=self._generator)
            for games in order.chunk(self.config.minibatches):
                stats = self._step(
                    batch.select(games, self.axes),
                    [logits[games] for logits in teacher_logits],
                    is_anchored[games],
                    warmup,
                )
                for key, value in stats.items():
                    totals[key] = totals.get(key, 0.0) + value
                passes += 1
        self.updates += 1
        metrics = {key: value / passes for key, value in totals.items()}
        metrics["reward_per_frame"] = float(batch.rewards.mean())
        metrics["learner_frames_per_s"] = batch.rewards.numel() / (time.perf_counter() - began)
        return metrics

    def _targets(self, batch: Batch, log_probs: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
        """Advantages and value targets ``[B, T]`` from the minibatch's own forward pass
        (``log_probs[B, T]`` of the taken actions, ``values[B, T + 1]``), without gradient.
        Games are independent, so a minibatch of whole games needs nothing from the others."""
        steps = batch.actions.shape[1]
        discounts = self.ppo.gamma * (~batch.dones).float()
        log_probs, values = log_probs.detach(), values.detach()

        def time_major(t: Tensor) -> Tensor:
            return t.transpose(0, 1)

        if self.ppo.vtrace:
            result = vtrace(
                time_major(batch.log_probs),
                time_major(log_probs),
                time_major(batch.rewards),
                time_major(values[:, :steps]),
                values[:, steps],
                time_major(discounts),
                clip_rho=self.ppo.clip_rho,
                clip_c=self.ppo.clip_c,
                lam=self.ppo.lam,
            )
            advantages, returns = result.pg_advantages, result.vs
        else:
            advantages, returns = gae(
                time_major(batch.rewards),
                time_major(values[:, :steps]),
                values[:, steps],
                time_major(discounts),
                self.ppo.lam,
            )
        advantages, returns = time_major(advantages), time_major(returns)
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        return advantages, returns

    def _step(
        self, batch: Batch, teacher_logits: list[Tensor], anchored: Tensor, warmup: bool
    ) -> dict[str, float]:
        steps = batch.actions.shape[1]
        hidden = encode(self.policy, batch.features, batch.initial_state, batch.dones, self.axes)
        logits = self.policy.head(hidden[:, :steps], batch.actions)
        log_probs = action_log_probs(logits, batch.actions)
        values = self.policy.predict_value(hidden)
        advantages, returns = self._targets(batch, log_probs, values)
        kl_forward, kl_reverse = _anchor_kl(logits, teacher_logits, anchored)
        loss, stats = ppo_loss(
            log_probs,
            batch.log_probs,
            advantages,
            values[:, :steps],
            returns,
            entropy(logits),
            kl_forward,
            kl_reverse,
            self.ppo,
        )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if warmup:
            # Only the new value head learns until its advantages mean something.
            for name, parameter in self.policy.named_parameters():
                if not name.startswith("value."):
                    parameter.grad = None
        torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        return stats


def _anchor_kl(
    logits: list[Tensor], teacher_logits: list[Tensor], anchored: Tensor
) -> tuple[Tensor, Tensor]:
    """The teacher KLs over the games ``anchored`` (bool, per game) of a minibatch; zero when
    it holds none of them (a tiny batch)."""
    if not anchored.any():
        zero = logits[0].new_zeros(1)
        return zero, zero
    return teacher_kl([p[anchored] for p in logits], [t[anchored] for t in teacher_logits])
