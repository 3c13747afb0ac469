"""The ``rl_teacher`` stage's one config: base policy, games, opponents, budget, coefficients.

The learner's PPO and reward settings are the domain dataclasses
(:class:`~exphil_pipeline.rl.ppo_loss.PPOConfig`,
:class:`~exphil_pipeline.rl.rewards.RewardConfig`); this config holds their fields flat, as the
Dagster UI edits them, and builds them once.
"""

from __future__ import annotations

from typing import Literal

from dagster import Config
from pydantic import Field, field_validator, model_validator

from exphil_pipeline.rl.ppo_loss import PPOConfig
from exphil_pipeline.rl.rewards import RewardConfig
from exphil_pipeline.simulator.melee_data import SIM_STAGES, check_simulated
from exphil_pipeline.simulator.scripted_players import LEVELS

OPPONENT_KINDS = "scripted:LEVEL, teacher (the imitation base) or self (earlier RL checkpoints)"
RESUMABLE_FIELDS = frozenset(
    {"steps", "resume", "device", "actors", "cluster", "eval_games", "checkpoint_every"}
)
"""Fields that may change between a run and its resumption: budget and machinery only."""


class RLConfig(Config):
    """Reinforcement learning from an imitation teacher in the built-in simulator."""

    imitation_experiment: str = Field(
        default="",
        description="Experiment whose imitation teacher (teacher/<name>/best.pt) is both the "
        "starting policy and the KL anchor; empty: this experiment's own teacher.",
    )
    opponent_character: str = Field(
        default="FOX", description="The opponents' character (libmelee name)."
    )
    stage: str = Field(default="FINAL_DESTINATION", description="A simulated legal stage.")
    stocks: int = Field(default=4, ge=1, description="Stocks per player.")
    max_game_frames: int = Field(
        default=3600,
        ge=60,
        description="Timer of each game in frames (60 per second); a timeout is a draw on "
        "stocks and percent, rewarded only by what happened before it.",
    )
    opponents: list[str] = Field(
        default=["scripted:3", "scripted:2", "teacher", "self"],
        description=f"The self-play pool: {OPPONENT_KINDS}.",
    )
    steps: int = Field(
        default=2_000_000, ge=1, description="Environment frames the learning policy plays."
    )
    actors: int = Field(default=2, ge=1, description="Actor processes (or Ray actors).")
    games_per_actor: int = Field(default=64, ge=1, description="Games each actor steps at once.")
    unroll: int = Field(
        default=64, ge=2, description="Frames per trajectory chunk (truncated BPTT length)."
    )
    cluster: Literal["inline", "local", "ray"] = Field(
        default="local",
        description="inline: actors in the learner's process, on-policy; local: one process "
        "per actor; ray: Ray actors (pip install 'exphil[cluster]').",
    )
    learning_rate: float = Field(default=3e-4, gt=0)
    epochs_per_batch: int = Field(default=1, ge=1, description="PPO passes over each batch.")
    minibatches: int = Field(default=2, ge=1, description="Minibatches per pass (by game).")
    value_warmup_updates: int = Field(
        default=10,
        ge=0,
        description="First updates train only the new value head: the policy moves once its "
        "advantages mean something.",
    )
    max_grad_norm: float = Field(default=1.0, gt=0)
    train_periodic_frequencies: bool = Field(
        default=False,
        description="Let PPO move the frequencies of the periodic encodings learned in "
        "imitation. Kept as learned by default, as an input representation: their backward "
        "pass took about an eighth of a learner update.",
    )
    clip: float = Field(default=0.2, gt=0, description="PPO ratio clip.")
    value_coef: float = Field(default=0.5, ge=0)
    entropy_coef: float = Field(default=0.003, ge=0)
    teacher_kl_forward: float = Field(default=0.0, ge=0, description="KL(teacher || policy).")
    teacher_kl_reverse: float = Field(default=0.1, ge=0, description="KL(policy || teacher).")
    teacher_kl_games: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Share of each update's games the teacher KLs are measured on, drawn anew "
        "every update: an unbiased estimate of the same penalty. The teacher's forward pass "
        "over every game took about a quarter of a learner update.",
    )
    gamma: float = Field(default=0.995, gt=0, le=1)
    lam: float = Field(default=0.95, ge=0, le=1)
    vtrace: bool = Field(
        default=True, description="Correct actor lag with V-trace; false: plain on-policy PPO."
    )
    reward_stock: float = Field(default=1.0, description="Per stock taken, minus per stock lost.")
    reward_damage: float = Field(default=0.01, description="Per percent dealt, minus taken.")
    reward_approach: float = Field(default=0.0)
    reward_ledge: float = Field(default=0.0)
    reward_self_destruct: float = Field(default=0.0)
    reward_combo: float = Field(default=0.0)
    reward_character: float = Field(
        default=0.0, description="Weight of the learning character's own shaping hook."
    )
    kl_bound: float = Field(
        default=0.5,
        gt=0,
        description="The guard: mean KL(policy || teacher) per frame must stay below this.",
    )
    eval_games: int = Field(
        default=32, ge=2, description="Arena games of the final policy against each rival."
    )
    checkpoint_every: int = Field(default=20, ge=1, description="Updates between last.pt saves.")
    device: str = Field(default="cpu", description="The learner's torch device.")
    seed: int = Field(default=0)
    resume: bool = Field(default=True, description="Continue from last.pt when it exists.")

    @field_validator("opponent_character")
    @classmethod
    def _simulated_character(cls, value: str) -> str:
        return check_simulated("opponent_character", value)

    @field_validator("stage")
    @classmethod
    def _simulated_stage(cls, value: str) -> str:
        stages = [s.name for s in SIM_STAGES]
        if value not in stages:
            raise ValueError(f"stage {value!r}: the simulator has {stages}")
        return value

    @field_validator("opponents")
    @classmethod
    def _known_opponents(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError(f"opponents is empty: name at least one of {OPPONENT_KINDS}")
        for spec in value:
            kind, _, level = spec.partition(":")
            scripted = kind == "scripted" and level.isdigit() and int(level) in LEVELS
            if not (scripted or spec in ("teacher", "self")):
                raise ValueError(f"opponent {spec!r}: use {OPPONENT_KINDS}")
        return value

    @model_validator(mode="after")
    def _minibatches_fit(self) -> RLConfig:
        if self.minibatches > self.actors * self.games_per_actor:
            raise ValueError(
                f"minibatches ({self.minibatches}) exceeds the games of one batch "
                f"({self.actors} actors x {self.games_per_actor})"
            )
        return self

    def ppo(self) -> PPOConfig:
        return PPOConfig(
            clip=self.clip,
            value_coef=self.value_coef,
            entropy_coef=self.entropy_coef,
            teacher_kl_forward=self.teacher_kl_forward,
            teacher_kl_reverse=self.teacher_kl_reverse,
            gamma=self.gamma,
            lam=self.lam,
            vtrace=self.vtrace,
        )

    def rewards(self) -> RewardConfig:
        return RewardConfig(
            stock=self.reward_stock,
            damage=self.reward_damage,
            approach=self.reward_approach,
            ledge=self.reward_ledge,
            self_destruct=self.reward_self_destruct,
            combo=self.reward_combo,
            character_weight=self.reward_character,
        )

    def resume_conflicts(self, saved: dict) -> list[str]:
        """Fields that differ from the run saved in last.pt and forbid resuming it."""
        return sorted(
            name
            for name, value in self.model_dump().items()
            if name not in RESUMABLE_FIELDS and saved.get(name) != value
        )
