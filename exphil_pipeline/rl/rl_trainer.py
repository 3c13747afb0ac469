"""One reinforcement-learning run: from an imitation teacher to an RL teacher.

The learning policy starts as a copy of the imitation teacher with a new value head; the
teacher itself stays frozen as the KL anchor. Actors (:mod:`~exphil_pipeline.rl.actor_pool`)
play chunks against opponents drawn game by game from the self-play pool; each batch of as many
chunks as there are actors is one learner update, after which the new weights (and the pool's
new odds) go out with the next requests under a new version number. Every
``checkpoint_every`` updates ``last.pt`` is written (weights, optimizer, progress, the pool's
scores, random state), the finished games go to the ``matches`` table (``run_kind`` ``rl``)
and, for self-play, a snapshot joins the pool. A killed run resumes from ``last.pt``, losing at
most the updates since.

At the end the policy is saved as ``best.pt`` in the teacher's checkpoint format with the
imitation teacher's policy contract (frame delay, character, spec hashes), so distillation and
export take it like any teacher, and the arena measures it: against its imitation base, and
both against the strongest scripted level (self-destructs per minute are the reward-hacking
guard: they must not rise above the base's).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from exphil_pipeline.environments.base import GameResult
from exphil_pipeline.evaluation.arena import (
    ArenaConfig,
    ArenaReport,
    Match,
    PlayerStats,
    play_arena,
    player_stats,
)
from exphil_pipeline.evaluation.matches import write_matches
from exphil_pipeline.evaluation.players import ScriptedPlayer, TeacherPlayer
from exphil_pipeline.rl.actor import ActorSpec, Rollout, RolloutRequest
from exphil_pipeline.rl.actor_pool import actor_pool
from exphil_pipeline.rl.learner import Learner
from exphil_pipeline.rl.opponent_pool import OpponentPool
from exphil_pipeline.rl.rl_config import RLConfig
from exphil_pipeline.simulator.melee_data import SIMULATED_NAMES
from exphil_pipeline.simulator.scripted_players import STRONGEST
from exphil_pipeline.storage.atomic import atomic_path
from exphil_pipeline.storage.layout import DataLayout, ExperimentPaths
from exphil_pipeline.training.process_memory import retain_freed_memory
from exphil_pipeline.training.teacher_checkpoint import TeacherCheckpoint
from models import Policy, PolicyConfig

RUN_KIND = "rl"
WINDOW = 10
"""Updates averaged for the final figures (KL, reward)."""
QUEUED_REQUESTS = 2
"""Requests each overlapping actor holds: the chunk it plays and the next one."""


@dataclass
class RLProgress:
    """Where a run stands; saved in last.pt so a resumed run continues."""

    updates: int = 0
    frames: int = 0
    seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class RLResult:
    checkpoint: Path
    progress: RLProgress
    env_frames_per_s: float
    actor_frames_per_s: float
    learner_frames_per_s: float
    kl_to_teacher: float
    versus_base: ArenaReport  # A: the RL teacher, B: its imitation base
    base_vs_scripted: PlayerStats
    rl_vs_scripted: PlayerStats
    curves_png: bytes
    opponent_games: dict[str, int]
    """Finished training games against each opponent of the pool: which ones the run met."""

    @property
    def kl_within_bound(self) -> bool:
        return bool(self.kl_to_teacher <= self.progress.history[-1]["kl_bound"])

    @property
    def self_destructs_held(self) -> bool:
        """Self-destructs per minute against scripted:3 did not rise above the base's."""
        return self.rl_vs_scripted.sd_per_minute <= self.base_vs_scripted.sd_per_minute + 1e-9


def _save(path: Path, payload: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


class RLTrainer:
    """One run of :func:`train_rl` (see the module docstring)."""

    def __init__(
        self, config: RLConfig, layout: DataLayout, experiment: str, log: Callable[[str], None]
    ) -> None:
        self.config, self.layout, self.log = config, layout, log
        self.paths: ExperimentPaths = layout.experiment(experiment)
        base = layout.experiment(config.imitation_experiment or experiment)
        self.base = TeacherCheckpoint.load(base.teacher_best)
        self.character = self.base.contract.character
        if self.character not in SIMULATED_NAMES:
            raise ValueError(
                f"the imitation teacher {base.teacher_best} plays {self.character!r}; RL needs "
                f"one simulated character ({', '.join(SIMULATED_NAMES)}): build its training set "
                "with characters: [ONE_OF_THEM]"
            )
        torch.manual_seed(config.seed)
        settings = {**self.base.policy.config.to_dict(), "value_head": True}
        self.policy = Policy.from_config(PolicyConfig.from_dict(settings))
        missing, unexpected = self.policy.load_state_dict(
            self.base.policy.state_dict(), strict=False
        )
        if unexpected or any(not name.startswith("value.") for name in missing):
            raise ValueError(f"{base.teacher_best}: weights do not fit its own config")
        self.policy.to(config.device)
        self.learner = Learner(self.policy, self.base.policy.to(config.device), config)
        self.opponents = OpponentPool(config.opponents, base.teacher_best)
        self.progress = RLProgress()
        self._pending_matches: dict[str, list[tuple[int, GameResult]]] = {}

    def resume(self) -> None:
        """Continue from last.pt, or refuse when it was written by a different run."""
        last = self.paths.rl_teacher_last
        if not (self.config.resume and last.exists()):
            return
        checkpoint = torch.load(last, weights_only=False, map_location=self.config.device)
        conflicts = self.config.resume_conflicts(checkpoint["rl_config"])
        if checkpoint["contract"] != self.base.contract.to_dict():
            conflicts.append("imitation teacher (retrained since last.pt was written)")
        if conflicts:
            raise ValueError(
                f"{last} was trained with other {', '.join(conflicts)}; set resume: false to "
                "start over, or train under a new experiment name"
            )
        self.policy.load_state_dict(checkpoint["policy"]["state_dict"])
        self.learner.optimizer.load_state_dict(checkpoint["optimizer"])
        self.progress = RLProgress(**checkpoint["progress"])
        self.learner.updates = self.progress.updates
        self.opponents.load_state(checkpoint["opponents"])
        torch.set_rng_state(checkpoint["torch_rng"])
        self.log(f"resumed at update {self.progress.updates} ({self.progress.frames:,} frames)")

    def _specs(self) -> list[ActorSpec]:
        c = self.config
        return [
            ActorSpec(
                index=i,
                policy=self.policy.config.to_dict(),
                frame_delay=self.base.contract.frame_delay,
                frame_delay_range=self.base.contract.frame_delay_range,
                character=self.character,
                opponent_character=c.opponent_character,
                stage=c.stage,
                stocks=c.stocks,
                max_game_frames=c.max_game_frames,
                games=c.games_per_actor,
                unroll=c.unroll,
                rewards=c.rewards(),
                seed=int(
                    np.random.SeedSequence([c.seed, self.progress.updates, i]).generate_state(1)[0]
                ),
            )
            for i in range(c.actors)
        ]

    def run(self, halt_after_updates: int | None = None) -> bool:
        """Train until the frame budget is spent; returns False when halted early (as a killed
        process would stop: no checkpoint written since the last one)."""
        c = self.config
        pool = actor_pool(c.cluster, self._specs())
        weights = self.learner.weights()

        def request() -> RolloutRequest:
            return RolloutRequest(self.progress.updates, weights, self.opponents.odds())

        began = time.perf_counter()
        seconds_before = self.progress.seconds
        updates_here = 0
        try:
            # Overlapping actors get a second request queued behind the first, so one never
            # waits for the learner to ask again: its next chunk is always under way.
            for _ in range(QUEUED_REQUESTS if pool.overlaps else 1):
                for actor in range(c.actors):
                    pool.submit(actor, request())
            while self.progress.frames < c.steps:
                rollouts = []
                for _ in range(c.actors):
                    rollout = pool.next()
                    rollouts.append(rollout)
                    if pool.overlaps:
                        pool.submit(rollout.actor, request())
                metrics = self.learner.update(rollouts)
                weights = self.learner.weights()
                if not pool.overlaps:
                    for rollout in rollouts:
                        pool.submit(rollout.actor, request())
                self.progress.seconds = seconds_before + time.perf_counter() - began
                self._record(rollouts, metrics)
                updates_here += 1
                if halt_after_updates is not None and updates_here >= halt_after_updates:
                    return False
                if self.progress.updates % c.checkpoint_every == 0:
                    self.save_last()
        finally:
            pool.close()
        self.save_last()
        return True

    def _record(self, rollouts: list[Rollout], metrics: dict[str, float]) -> None:
        c = self.config
        frames = sum(r.frames for r in rollouts)
        self.progress.updates += 1
        self.progress.frames += frames
        for rollout in rollouts:
            own = rollout.port
            for game in rollout.finished:
                winner = game.result.winner
                score = 1.0 if winner == own else 0.5 if winner == -1 else 0.0
                self.opponents.record(game.opponent, score)
                self._pending_matches.setdefault(game.opponent, []).append((own, game.result))
        lag = [self.progress.updates - 1 - r.version for r in rollouts]
        entry = {
            "update": self.progress.updates,
            "frames": self.progress.frames,
            "seconds": round(self.progress.seconds, 3),
            "actor_frames_per_s": frames / max(sum(r.seconds for r in rollouts), 1e-9),
            "mean_lag": float(np.mean(lag)),
            "kl_bound": c.kl_bound,
            "scores": {
                name: round(self.opponents.score(name), 4) for name in self.opponents.scores
            },
            **metrics,
        }
        self.progress.history.append(entry)
        done = self.progress.frames / c.steps
        rate = self.progress.frames / max(self.progress.seconds, 1e-9)
        eta = (c.steps - self.progress.frames) / max(rate, 1e-9)
        self.log(
            f"update {self.progress.updates}: {self.progress.frames:,}/{c.steps:,} frames "
            f"({done:.0%}, {rate:,.0f} frames/s, ETA {eta:,.0f} s), reward/frame "
            f"{metrics['reward_per_frame']:+.5f}, KL to teacher {metrics['kl_reverse']:.4f}, "
            f"value loss {metrics['value_loss']:.4f}"
        )

    def save_last(self) -> None:
        """last.pt, the pending matches and (self-play) a snapshot for the pool."""
        self.paths.rl_teacher.mkdir(parents=True, exist_ok=True)
        if self.opponents.self_play and self.progress.updates:
            snapshot = self.paths.rl_snapshot(self.progress.updates)
            snapshot.parent.mkdir(parents=True, exist_ok=True)
            _save(snapshot, self._teacher_payload())
            self.opponents.add_snapshot(snapshot)
        self._flush_matches()
        _save(
            self.paths.rl_teacher_last,
            {
                **self._teacher_payload(),
                "optimizer": self.learner.optimizer.state_dict(),
                "progress": asdict(self.progress),
                "opponents": self.opponents.state(),
                "torch_rng": torch.get_rng_state(),
            },
        )

    def _teacher_payload(self) -> dict[str, Any]:
        """The teacher checkpoint format (:class:`TeacherCheckpoint`), plus the RL run."""
        return {
            "policy": self.policy.checkpoint(),
            "config": self.base.config.model_dump(),
            "contract": self.base.contract.to_dict(),
            "rl_config": self.config.model_dump(),
            "rl_updates": self.progress.updates,
            "rl_frames": self.progress.frames,
        }

    def _arena(self, opponent_character: str, parallel: int) -> ArenaConfig:
        """The games' settings, as the arena and the matches table name them."""
        c = self.config
        return ArenaConfig(
            characters=(self.character, opponent_character),
            stage=c.stage,
            stocks=c.stocks,
            max_frames=c.max_game_frames,
            parallel=parallel,
        )

    def _flush_matches(self) -> None:
        for opponent, games in self._pending_matches.items():
            arena = self._arena(self.config.opponent_character, self.config.games_per_actor)
            matches = tuple(
                Match(number, port, result) for number, (port, result) in enumerate(games)
            )
            names = (f"rl:{self.paths.name}", opponent)
            stats = tuple(
                player_stats(names[role], arena.characters[role], role, matches, np.zeros(0))
                for role in (0, 1)
            )
            report = ArenaReport(
                games=len(matches),
                env="simulator",
                config=arena,
                seed=self.config.seed,
                matches=matches,
                players=stats,
                seconds=0.0,
            )
            write_matches(self.layout, report, datetime.now(UTC), run_kind=RUN_KIND)
        self._pending_matches = {}

    def finish(self) -> RLResult:
        """best.pt, history, curves and the arena's verdict."""
        c = self.config
        best = self.paths.rl_teacher_best
        _save(best, self._teacher_payload())
        history = self.progress.history
        self.paths.rl_teacher_history.write_text(json.dumps(history, indent=1))
        png = rl_curves_png(history, self.paths.rl_teacher_curves)
        arena = self._arena(self.character, c.eval_games)
        rl_name, base_name = f"rl:{self.paths.name}", "imitation teacher"
        versus_base = play_arena(
            TeacherPlayer(best, name=rl_name),
            TeacherPlayer(self.base.path, name=base_name),
            c.eval_games,
            arena,
            c.seed,
        )
        write_matches(self.layout, versus_base, datetime.now(UTC), run_kind=RUN_KIND)
        scripted = self._arena(c.opponent_character, c.eval_games)
        against = {}
        for name, path in ((base_name, self.base.path), (rl_name, best)):
            report = play_arena(
                TeacherPlayer(path, name=name),
                ScriptedPlayer(STRONGEST),
                c.eval_games,
                scripted,
                c.seed,
            )
            write_matches(self.layout, report, datetime.now(UTC), run_kind=RUN_KIND)
            against[name] = report.players[0]
        recent = history[-WINDOW:]
        seconds = max(self.progress.seconds, 1e-9)
        return RLResult(
            checkpoint=best,
            progress=self.progress,
            env_frames_per_s=self.progress.frames / seconds,
            actor_frames_per_s=float(np.mean([h["actor_frames_per_s"] for h in recent])),
            learner_frames_per_s=float(np.mean([h["learner_frames_per_s"] for h in recent])),
            kl_to_teacher=float(np.mean([h["kl_reverse"] for h in recent])),
            versus_base=versus_base,
            base_vs_scripted=against[base_name],
            rl_vs_scripted=against[rl_name],
            curves_png=png,
            opponent_games=dict(self.opponents.games),
        )


def rl_curves_png(history: list[dict[str, Any]], path: Path) -> bytes:
    """Reward, KL to the teacher, value loss and the score against each opponent over
    training, written to ``path``; returns the PNG."""
    figure = Figure(figsize=(12, 7))
    axes = figure.subplots(2, 2).ravel()
    frames = [h["frames"] for h in history]
    for axis, key, label in (
        (axes[0], "reward_per_frame", "reward per frame"),
        (axes[1], "kl_reverse", "KL(policy || teacher) per frame"),
        (axes[2], "value_loss", "value loss"),
    ):
        axis.plot(frames, [h[key] for h in history], linewidth=0.8)
        axis.set_title(label)
        axis.set_xlabel("environment frames")
    if history:
        axes[1].axhline(history[-1]["kl_bound"], color="red", linestyle="--", label="bound")
        axes[1].legend()
    opponents = sorted({name for h in history for name in h["scores"]})
    for name in opponents:
        points = [(h["frames"], h["scores"][name]) for h in history if name in h["scores"]]
        axes[3].plot(*zip(*points, strict=True), label=name, linewidth=0.8)
    axes[3].set_ylim(0, 1)
    axes[3].set_title("score against each opponent (moving average)")
    axes[3].set_xlabel("environment frames")
    if opponents:
        axes[3].legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=80)
    return path.read_bytes()


def train_rl(
    config: RLConfig,
    home: Path,
    experiment: str,
    log: Callable[[str], None] = print,
    halt_after_updates: int | None = None,
) -> RLResult | None:
    """Train (or resume) the RL teacher of ``experiment``; see the module docstring.

    ``halt_after_updates`` stops abruptly after that many updates of this call, the way a
    killed process would (tests use it to prove resumption); then nothing is returned.
    """
    retain_freed_memory()
    trainer = RLTrainer(config, DataLayout(home), experiment, log)
    trainer.resume()
    if not trainer.run(halt_after_updates):
        return None
    return trainer.finish()
