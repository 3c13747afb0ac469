"""What goes into a training set: the one config of the ``training_set`` stage."""

from __future__ import annotations

import hashlib

from dagster import Config
from pydantic import Field, field_validator, model_validator

from runtime.embedding_spec import MAX_FRAME_DELAY
from runtime.melee_ids import EXTERNAL_CHARACTER_NAMES, STAGE_NAMES

TARGET_CHARACTERS: tuple[str, ...] = (
    "MEWTWO",
    "GAMEANDWATCH",
    "LINK",
    "GANONDORF",
    "ZELDA",
    "SHEIK",
)
ALL_CHARACTERS = "all"
ALL_STAGES = "all"
LEGAL_STAGES: tuple[str, ...] = (
    "BATTLEFIELD",
    "FINAL_DESTINATION",
    "DREAMLAND",
    "FOUNTAIN_OF_DREAMS",
    "POKEMON_STADIUM",
    "YOSHIS_STORY",
)


def version_tuple(version: str) -> tuple[int, ...]:
    """``"3.19.1"`` -> ``(3, 19, 1)``, so versions compare numerically (3.9 < 3.19)."""
    return tuple(int(part) for part in version.split("."))


# Zelda and Sheik are one player who transforms mid-game (the games table records the form
# the game started in), so asking for either form selects both.
OTHER_FORM: dict[str, str] = {"ZELDA": "SHEIK", "SHEIK": "ZELDA"}


def _named(character: str, names: list[str]) -> bool:
    return character in names or OTHER_FORM.get(character) in names


class TrainingSetConfig(Config):
    """Which games, players and frames become (embedded state, controller target) pairs.

    Games are curated first (1v1, humans only, legal stages, Slippi version, length, how the
    game ended, damage on both sides, one recording per match); then players are chosen by
    character and connect code, never by port. Every skipped game is counted under its first
    failing rule in the manifest's ``games_skipped`` and the asset's metadata. The set is
    written to the experiment's ``training_sets/<experiment>/`` folder.
    """

    characters: list[str] = Field(
        default=list(TARGET_CHARACTERS),
        description=f"External character names of the players to learn from, or "
        f"[{ALL_CHARACTERS!r}] for any; ZELDA and SHEIK each select both forms.",
    )
    connect_codes: list[str] = Field(
        default=[],
        description="If set, only players with one of these netplay codes (e.g. ABCD#123).",
    )
    opponent_characters: list[str] = Field(
        default=[], description="If set, only games whose opponent plays one of these."
    )
    frame_delay: int = Field(
        default=0,
        ge=0,
        le=MAX_FRAME_DELAY,
        description="d: the state of frame t - d is paired with the action of "
        "frame t (18 for online play).",
    )
    frame_delay_range: list[int] = Field(
        default=[],
        description="[low, high]: learn one policy for every delay in this range. Each "
        "training episode (one player in one game) is paired at a delay drawn uniformly from "
        "it (inclusive; a function of its game id and port, so a rebuild gives the same set), "
        "and the network reads the delay as an input feature. Held-out games stay at "
        "frame_delay, which must lie in the range; the artifact records the range and play "
        "passes the delay it actually plays at. [] learns frame_delay alone.",
    )
    min_frames: int = Field(
        default=300,
        ge=0,
        description="Games with fewer frames than this are skipped. 1800 (30 s) suits human "
        "replays (the presets use it); the default 300 (5 s) keeps the 600-frame generated "
        "sample games the tests use.",
    )
    allow_cpu: bool = Field(
        default=False,
        description="Keep games with a CPU on either port; by default only human-vs-human "
        "games are used (generated sample games are recorded as two humans).",
    )
    require_damage_both: bool = Field(
        default=True,
        description="Skip games in which a player never took damage (a handwarmer, a quit "
        "before contact). Games ingested before games.damaged_ports existed are skipped as "
        "'damage not recorded' until their batch is re-ingested.",
    )
    keep_lras: bool = Field(
        default=False,
        description="Keep games quit with L+R+A+Start (end method NO_CONTEST with an LRAS "
        "initiator). Games a stock loss or the timer ended (GAME, TIME) are always kept. Where "
        "how a game ended is unknown it is kept too, since no one is known to have quit: no "
        "game-end event (a cut-off recording), Slippi before 2.0 (RESOLVED/UNRESOLVED only) and "
        "NO_CONTEST without an initiator (a disconnect; the generated sample games, cut at "
        "their frame budget); min_frames and require_damage_both drop the short or one-sided "
        "ones among them.",
    )
    min_slippi_version: str = Field(
        default="0.0.0",
        pattern=r"^\d+(\.\d+)*$",
        description="Skip replays recorded by an older Slippi (compared numerically: "
        "3.9.0 < 3.19.0). '3.0.0' keeps replays with frame bookends only.",
    )
    stages: list[str] = Field(
        default=list(LEGAL_STAGES),
        description=f"libmelee stage names to keep, or [{ALL_STAGES!r}] for any; default the "
        "six tournament-legal stages (the generated sample games are on FINAL_DESTINATION).",
    )
    dedupe_matches: bool = Field(
        default=True,
        description="Keep one recording of a game both players recorded: same Slippi match id, "
        "game number and tiebreaker number where recorded (3.14+ online), else the same start "
        "time, characters by port, frame count and random seed (the seed tells apart the "
        "generated sample games, which share a start time). The recording with the smallest "
        "game id is kept. Byte-identical files are already one game (content hash).",
    )
    character_weights: dict[str, float] = Field(
        default={},
        description="Per-character balancing weight written to each episode's 'weight' column "
        "in episodes.parquet (characters not listed weigh 1.0), for samplers that draw "
        "episodes in proportion to it.",
    )
    heldout_fraction: float = Field(
        default=0.1,
        ge=0.0,
        lt=1.0,
        description="Share of games (decided by game id) kept out of training for evaluation.",
    )
    include_countdown: bool = Field(
        default=False,
        description="Also learn the inputs of the countdown frames before the first playable "
        "frame (-39), when inputs do nothing.",
    )
    shard_frames: int = Field(
        default=262_144,
        ge=1,
        description="Pairs per shard file (episodes never span shards, so shards may be larger).",
    )

    @field_validator("characters", "opponent_characters")
    @classmethod
    def _known_characters(cls, names: list[str]) -> list[str]:
        known = set(EXTERNAL_CHARACTER_NAMES.values())
        unknown = sorted(set(names) - known - {ALL_CHARACTERS})
        if unknown:
            raise ValueError(
                f"unknown character names {unknown}; use {ALL_CHARACTERS!r} or one of "
                f"{sorted(known)}"
            )
        return names

    @field_validator("stages")
    @classmethod
    def _known_stages(cls, names: list[str]) -> list[str]:
        known = set(STAGE_NAMES.values())
        unknown = sorted(set(names) - known - {ALL_STAGES})
        if unknown:
            raise ValueError(
                f"unknown stage names {unknown}; use {ALL_STAGES!r} or one of {sorted(known)}"
            )
        if not names:
            raise ValueError(f"name at least one stage, or {ALL_STAGES!r}")
        return names

    @field_validator("character_weights")
    @classmethod
    def _weighted_characters(cls, weights: dict[str, float]) -> dict[str, float]:
        known = set(EXTERNAL_CHARACTER_NAMES.values())
        unknown = sorted(set(weights) - known)
        if unknown:
            raise ValueError(f"character_weights: unknown character names {unknown}")
        negative = sorted(name for name, weight in weights.items() if not weight >= 0)
        if negative:
            raise ValueError(f"character_weights: weights of {negative} must be >= 0")
        return weights

    @model_validator(mode="after")
    def _delay_in_range(self) -> TrainingSetConfig:
        if not self.frame_delay_range:
            return self
        if len(self.frame_delay_range) != 2:
            raise ValueError(
                f"frame_delay_range is [low, high] or [], got {self.frame_delay_range}"
            )
        low, high = self.frame_delay_range
        if not 0 <= low <= self.frame_delay <= high <= MAX_FRAME_DELAY:
            raise ValueError(
                f"frame_delay_range {self.frame_delay_range} must hold frame_delay "
                f"{self.frame_delay} (the held-out games' delay) within [0, {MAX_FRAME_DELAY}]; "
                f"e.g. frame_delay: {low} with frame_delay_range: [{low}, {max(low, high)}]"
            )
        return self

    @field_validator("characters")
    @classmethod
    def _some_character(cls, names: list[str]) -> list[str]:
        if not names:
            raise ValueError(f"name at least one character, or {ALL_CHARACTERS!r}")
        return names

    def wants(self, character: str, connect_code: str | None) -> bool:
        if ALL_CHARACTERS not in self.characters and not _named(character, self.characters):
            return False
        return not self.connect_codes or connect_code in self.connect_codes

    def opponent_ok(self, character: str) -> bool:
        return not self.opponent_characters or _named(character, self.opponent_characters)

    def stage_ok(self, stage_name: str | None) -> bool:
        return ALL_STAGES in self.stages or stage_name in self.stages

    def version_ok(self, version: str | None) -> bool:
        """Unknown versions pass only when no minimum is asked for."""
        minimum = version_tuple(self.min_slippi_version)
        if version is None:
            return not any(minimum)
        return version_tuple(version) >= minimum

    @property
    def trained_delays(self) -> tuple[int, int]:
        """The delays of the training pairs, ``(low, high)``."""
        if self.frame_delay_range:
            low, high = self.frame_delay_range
            return low, high
        return self.frame_delay, self.frame_delay

    def episode_delay(self, game_id: str, port: int, heldout: bool) -> int:
        """The delay one player's game is paired at: ``frame_delay`` for held-out games (one
        delay to compare runs by), else drawn from ``frame_delay_range`` by a hash of the game
        id and port."""
        low, high = self.trained_delays
        if heldout or low == high:
            return self.frame_delay
        digest = hashlib.sha256(f"{game_id}/{port}".encode()).digest()
        return low + int.from_bytes(digest[:8], "little") % (high - low + 1)

    def weight(self, character: str) -> float:
        return self.character_weights.get(character, 1.0)

    @property
    def character(self) -> str:
        """The one character this set learns, or ``any`` when it names several."""
        return self.characters[0] if len(self.characters) == 1 else "any"
