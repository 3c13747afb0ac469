"""Groups of Melee action states the simulator treats alike, as lookup tables.

``GROUP[state.action]`` says, for every player at once, whether its action is in the group:
several times faster than ``np.isin`` on every frame.
"""

from __future__ import annotations

import numpy as np
from melee.enums import Action

from exphil_pipeline.simulator.melee_data import AERIALS, ATTACKS

A = Action
ACTION_IDS = 0x400  # every action state id is below this (see replays.game_validation)


def action_set(*actions: int) -> np.ndarray:
    """A lookup table ``bool[ACTION_IDS]`` true on ``actions``."""
    table = np.zeros(ACTION_IDS, dtype=np.bool_)
    table[list(actions)] = True
    return table


ENTRY = action_set(A.ENTRY.value, A.ENTRY_START.value, A.ENTRY_END.value)
DEAD = action_set(A.DEAD_DOWN.value, A.DEAD_LEFT.value, A.DEAD_RIGHT.value, A.DEAD_UP.value)
HALO = action_set(A.ON_HALO_DESCENT.value, A.ON_HALO_WAIT.value)
UNTOUCHABLE = ENTRY | DEAD | HALO
"""No attack can hit these players and no blast zone can kill them."""
SHIELDING = action_set(A.SHIELD_START.value, A.SHIELD.value, A.SHIELD_STUN.value)
AERIAL_INDEX = np.array([ATTACKS.index(a) for a in AERIALS], dtype=np.int16)
"""Indices of the aerials among ``ATTACKS`` (they come last)."""
AERIAL_LANDING = np.array([A.NAIR_LANDING.value + i for i in range(len(AERIALS))], np.int16)
"""Landing actions of the aerials, in ``AERIALS`` order (Melee's NAIR_LANDING ... DAIR_LANDING)."""
LAG = action_set(A.LANDING.value, A.SHIELD_RELEASE.value, *AERIAL_LANDING.tolist())
RISING = action_set(
    A.JUMPING_FORWARD.value,
    A.JUMPING_BACKWARD.value,
    A.JUMPING_ARIAL_FORWARD.value,
    A.JUMPING_ARIAL_BACKWARD.value,
)
GROUND_MOVING = action_set(A.WALK_MIDDLE.value, A.DASHING.value, A.RUNNING.value)
DASHING_OR_RUNNING = action_set(A.DASHING.value, A.RUNNING.value)
