"""Per-character reward shaping: one function per target character.

Each function takes the two frames of a transition (``RewardFrames`` ``before`` and
``after``, ``[..., 2]``) and returns an unweighted float32 ``[..., 2]`` term for *both*
players as if both were that character; :func:`character_shaping` keeps each player's own
character's term and zeroes the rest. ``RewardConfig.character_weight`` scales the sum.

Special-move action states are character-specific ids from 341 on (Melee's own numbering,
as in the melee decompilation's per-fighter motion-state enums); libmelee's ``Action`` names
for that range belong to other characters, so the ids are listed here by what they are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np
from melee.enums import Action, Character

if TYPE_CHECKING:
    from exphil_pipeline.rl.rewards import RewardFrames

CharacterShaping = Callable[["RewardFrames", "RewardFrames"], np.ndarray]
"""``(before, after) -> float32[..., 2]``, the unweighted term for each player."""

MEWTWO_TELEPORT = tuple(range(353, 359))
"""Mewtwo's Teleport: SpecialHi start/travel/lost (353-355), SpecialAirHi (356-358)."""
ZELDA_FARORES_WIND = tuple(range(349, 355))
"""Zelda's Farore's Wind: SpecialHiStart x2, SpecialHi, SpecialAirHiStart x2, SpecialAirHi."""
SHEIK_VANISH = tuple(range(355, 361))
"""Sheik's Vanish: SpecialHiStart x2, SpecialHi, SpecialAirHiStart x2, SpecialAirHi."""
GANONDORF_DARK_DIVE = tuple(range(353, 357))
"""Ganondorf's Dark Dive: SpecialHi, SpecialAirHi, the catch and the throw."""
LEDGE_CATCH = Action.EDGE_CATCHING.value
FLOOR_Y = 0.0
"""Height of every legal stage's main floor: a player below it is recovering."""


def _entered(before: RewardFrames, after: RewardFrames, states: tuple[int, ...]) -> np.ndarray:
    """The player entered one of ``states`` this frame (was in none of them before)."""
    return np.isin(after.action_state, states) & ~np.isin(before.action_state, states)


def _recovered_with(
    before: RewardFrames, after: RewardFrames, states: tuple[int, ...]
) -> np.ndarray:
    """+1 on the frame a player below the floor starts one of ``states`` (its recovery)."""
    return (_entered(before, after, states) & (before.y < FLOOR_Y)).astype(np.float32)


def mewtwo_shaping(before: RewardFrames, after: RewardFrames) -> np.ndarray:
    """+1 each time Mewtwo, below the stage's floor, starts Teleport: Mewtwo's recovery is
    the teleport, and a bot that drifts down without using it loses stocks for free."""
    return _recovered_with(before, after, MEWTWO_TELEPORT)


def gameandwatch_shaping(before: RewardFrames, after: RewardFrames) -> np.ndarray:
    """-1 per percent taken: Mr. Game & Watch is the lightest character, so each percent
    brings his next stock loss closer than it does for anyone else."""
    return -np.maximum(after.percent - before.percent, 0).astype(np.float32) * (
        after.stocks == before.stocks
    )


def link_shaping(before: RewardFrames, after: RewardFrames) -> np.ndarray:
    """+1 per ledge catch from below the floor: Link's tether (air grab) and Spin Attack
    recoveries end on the ledge, which the generic ``ledge`` penalty would otherwise teach
    him to avoid."""
    return ((after.action_state == LEDGE_CATCH) & (before.action_state != LEDGE_CATCH)) * (
        before.y < FLOOR_Y
    ).astype(np.float32)


def ganondorf_shaping(before: RewardFrames, after: RewardFrames) -> np.ndarray:
    """-1 per stock lost during Dark Dive: diving off stage after an opponent (or missing
    the ledge with it) is Ganondorf's classic self-destruct."""
    lost = np.maximum(before.stocks.astype(np.int32) - after.stocks, 0)
    return -(lost * np.isin(before.action_state, GANONDORF_DARK_DIVE)).astype(np.float32)


def zelda_shaping(before: RewardFrames, after: RewardFrames) -> np.ndarray:
    """+1 each time Zelda, below the floor, starts Farore's Wind (her teleport recovery)."""
    return _recovered_with(before, after, ZELDA_FARORES_WIND)


def sheik_shaping(before: RewardFrames, after: RewardFrames) -> np.ndarray:
    """+1 each time Sheik, below the floor, starts Vanish (her teleport recovery)."""
    return _recovered_with(before, after, SHEIK_VANISH)


CHARACTER_SHAPING: Mapping[str, CharacterShaping] = {
    Character.MEWTWO.name: mewtwo_shaping,
    Character.GAMEANDWATCH.name: gameandwatch_shaping,
    Character.LINK.name: link_shaping,
    Character.GANONDORF.name: ganondorf_shaping,
    Character.ZELDA.name: zelda_shaping,
    Character.SHEIK.name: sheik_shaping,
}
"""Shaping function by libmelee ``Character`` name; characters not listed get none."""


def character_shaping(before: RewardFrames, after: RewardFrames) -> np.ndarray:
    """Each player's own character's term, float32 ``[..., 2]``; the character is read from
    ``before`` (Zelda and Sheik transform into each other between frames)."""
    total = np.zeros(before.stocks.shape, dtype=np.float32)
    for name, shaping in CHARACTER_SHAPING.items():
        playing = before.character == Character[name].value
        if playing.any():
            total += np.where(playing, shaping(before, after), np.float32(0))
    return total
