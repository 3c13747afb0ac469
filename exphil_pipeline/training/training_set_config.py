"""What goes into a training set: the one config of the ``training_set`` stage."""

from __future__ import annotations

from dagster import Config
from pydantic import Field, field_validator

from runtime.melee_ids import EXTERNAL_CHARACTER_NAMES

TARGET_CHARACTERS: tuple[str, ...] = (
    "MEWTWO",
    "GAMEANDWATCH",
    "LINK",
    "GANONDORF",
    "ZELDA",
    "SHEIK",
)
ALL_CHARACTERS = "all"


class TrainingSetConfig(Config):
    """Which players and frames become (embedded state, controller target) pairs.

    Players are chosen by character and connect code, never by port; the set is written to
    the experiment's ``training_sets/<experiment>/`` folder.
    """

    characters: list[str] = Field(
        default=list(TARGET_CHARACTERS),
        description=f"External character names of the players to learn from, or "
        f"[{ALL_CHARACTERS!r}] for any.",
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
        description="d: the state of frame t - d is paired with the action of "
        "frame t (18 for online play).",
    )
    min_frames: int = Field(default=300, ge=0, description="Games shorter than this are skipped.")
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

    @field_validator("characters")
    @classmethod
    def _some_character(cls, names: list[str]) -> list[str]:
        if not names:
            raise ValueError(f"name at least one character, or {ALL_CHARACTERS!r}")
        return names

    def wants(self, character: str, connect_code: str | None) -> bool:
        if ALL_CHARACTERS not in self.characters and character not in self.characters:
            return False
        return not self.connect_codes or connect_code in self.connect_codes

    def opponent_ok(self, character: str) -> bool:
        return not self.opponent_characters or character in self.opponent_characters

    @property
    def character(self) -> str:
        """The one character this set learns, or ``any`` when it names several."""
        return self.characters[0] if len(self.characters) == 1 else "any"
