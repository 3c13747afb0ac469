"""The six legal stages' geometry, read from libmelee's ``melee.stages``.

The simulator builds its stages from it and the embedding spec its stage features.

Distances are Melee units; the stage's main floor is at height 0 and centred on x = 0, and
every stage is left-right symmetric (libmelee gives the right edge; the left one is its
negative). Stages are named by libmelee's ``melee.enums.Stage``, whose values are libmelee's
own; Slippi replays (and peppi) carry the *external* stage id, given by ``external_stage_id``
(the same ids as ``runtime.melee_ids.STAGE_NAMES``, a literal table checked in the tests).

Two stages have moving parts that libmelee does not give as fixed platforms:

* Fountain of Dreams' side platforms rise and sink. ``StageData.platforms`` holds them at a
  default resting position, an approximation (height 27.5, x from 21 to 49.75 on each side),
  and ``StageData.moving_platforms`` is True.
* Yoshi's Story's Randall, the cloud circling the stage, is not a platform of ``StageData``;
  ``randall(frame)`` gives where it is (libmelee's own extrapolation of its path).
"""

from __future__ import annotations

from dataclasses import dataclass

from melee import stages
from melee.enums import Stage

LEGAL_STAGES: tuple[Stage, ...] = (
    Stage.BATTLEFIELD,
    Stage.FINAL_DESTINATION,
    Stage.DREAMLAND,
    Stage.FOUNTAIN_OF_DREAMS,
    Stage.POKEMON_STADIUM,
    Stage.YOSHIS_STORY,
)
"""The tournament-legal stages, the ones with geometry here."""

# libmelee stage -> the external stage id of Slippi replays (see ``runtime.melee_ids``).
_EXTERNAL_STAGE_IDS: dict[Stage, int] = {
    Stage.FOUNTAIN_OF_DREAMS: 2,
    Stage.POKEMON_STADIUM: 3,
    Stage.YOSHIS_STORY: 8,
    Stage.DREAMLAND: 28,
    Stage.BATTLEFIELD: 31,
    Stage.FINAL_DESTINATION: 32,
}

Platform = tuple[float, float, float]
"""A platform: (height, left x, right x), Melee units."""

# Approximate resting position of Fountain of Dreams' moving side platforms (libmelee has none).
FOUNTAIN_SIDE_PLATFORM_HEIGHT = 27.5
FOUNTAIN_SIDE_PLATFORM_INNER_X = 21.0
FOUNTAIN_SIDE_PLATFORM_OUTER_X = 49.75


@dataclass(frozen=True)
class StageData:
    """One stage's geometry (Melee units; x = 0 is the stage's centre, y = 0 its floor)."""

    stage: Stage
    external_id: int
    """The stage id Slippi replays carry."""
    blast_left: float
    """x beyond which (to the left) a player is KO'd."""
    blast_right: float
    """x beyond which (to the right) a player is KO'd."""
    blast_top: float
    """y above which a player is KO'd (in Melee, only a player in hitstun)."""
    blast_bottom: float
    """y below which a player is KO'd."""
    edge_x: float
    """Where the main floor ends (libmelee's ``EDGE_GROUND_POSITION``; left edge: -edge_x)."""
    ledge_x: float
    """x of a player hanging from the ledge (libmelee's ``EDGE_POSITION``; left: -ledge_x)."""
    top_platform: Platform | None
    """The top platform, None when the stage has none."""
    left_platform: Platform | None
    """The left side platform, None when the stage has none."""
    right_platform: Platform | None
    """The right side platform, None when the stage has none."""
    moving_platforms: bool
    """True on Fountain of Dreams: its side platforms move; they are given at rest here."""
    has_randall: bool
    """True on Yoshi's Story: a moving cloud platform, see ``randall``."""

    @property
    def platforms(self) -> tuple[Platform, ...]:
        """The platforms that exist, in the order top, left, right."""
        candidates = (self.top_platform, self.left_platform, self.right_platform)
        return tuple(platform for platform in candidates if platform is not None)


def _platform(position: tuple[float | None, float | None, float | None]) -> Platform | None:
    """libmelee's (height, left, right), or None where it reports (None, None, None)."""
    height, left, right = position
    if height is None or left is None or right is None:
        return None
    return (float(height), float(left), float(right))


def _side_platforms(stage: Stage) -> tuple[Platform | None, Platform | None]:
    """(left, right) side platforms; Fountain of Dreams' at their approximate rest position."""
    if stage == Stage.FOUNTAIN_OF_DREAMS:
        inner, outer = FOUNTAIN_SIDE_PLATFORM_INNER_X, FOUNTAIN_SIDE_PLATFORM_OUTER_X
        height = FOUNTAIN_SIDE_PLATFORM_HEIGHT
        return (height, -outer, -inner), (height, inner, outer)
    return (
        _platform(stages.left_platform_position(stage)),
        _platform(stages.right_platform_position(stage)),
    )


def stage_data(stage: Stage) -> StageData:
    """The geometry of one of ``LEGAL_STAGES``; ValueError for any other stage."""
    if stage not in LEGAL_STAGES:
        supported = ", ".join(s.name for s in LEGAL_STAGES)
        name = getattr(stage, "name", repr(stage))
        raise ValueError(f"stage {name} has no geometry here; legal stages: {supported}")
    left, right, top, bottom = stages.BLASTZONES[stage]
    left_platform, right_platform = _side_platforms(stage)
    return StageData(
        stage=stage,
        external_id=_EXTERNAL_STAGE_IDS[stage],
        blast_left=float(left),
        blast_right=float(right),
        blast_top=float(top),
        blast_bottom=float(bottom),
        edge_x=float(stages.EDGE_GROUND_POSITION[stage]),
        ledge_x=float(stages.EDGE_POSITION[stage]),
        top_platform=_platform(stages.top_platform_position(stage)),
        left_platform=left_platform,
        right_platform=right_platform,
        moving_platforms=stage == Stage.FOUNTAIN_OF_DREAMS,
        has_randall=stage == Stage.YOSHIS_STORY,
    )


def randall(frame: int) -> Platform:
    """Yoshi's Story's Randall at game frame ``frame``: (height, left x, right x).

    libmelee's extrapolation of the cloud's 1200-frame loop (it says within 0.001 units).
    """
    height, left, right = stages.randall_position(frame)
    return (float(height), float(left), float(right))
