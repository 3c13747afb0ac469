"""The scripted controller that plays the simulated games.

Each player's controller follows a fixed script, ``decide``, which reads only what a replay
shows about the previous frame (both players' positions, facing, action states, percent,
shield, jumps and vertical speed), a style (``Traits``) and one uniform draw per frame. The
first player always plays the reference style, ``REFERENCE_TRAITS``, whose choices never depend
on the draw, so its input is a deterministic function of the previous frame's visible state:
an imitation learner has an exact right answer (with frame delay 1). The second player's style
is drawn from the game's seed (``draw_opponent_traits``) and its choices use the draw, so games
differ:

- before control starts, dead or descending on the revival platform: let go of the controller;
- off stage: hold the stick up and toward the stage, and jump (X) while falling with a jump left;
- in the air: press R to L-cancel a falling neutral air near the ground (with the trait's
  probability), press A for a neutral air when the opponent is close, else drift toward them;
- on the ground: hold R to shield while the opponent attacks nearby (keep holding once up,
  otherwise with the trait's probability); within the trait's spacing, turn toward the opponent,
  then forward smash with the C-stick once their percent reaches the trait's kill percent or
  jab (A) below it; jump (X) toward an opponent well above, or with the trait's probability
  toward one within jumping range; sometimes hesitate; stop at the ledge rather than run off;
  else walk (half tilt) or, when far, dash toward the opponent.

The engine ignores inputs while a player cannot act, but the script still answers every frame.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from melee.enums import Action

from exphil_pipeline.simulator.attacks import MOVES
from exphil_pipeline.simulator.fighter import (
    FULL_TILT,
    NO_CONTROL,
    SHIELD_ACTIONS,
    STAGE_EDGE_X,
    Fighter,
    Inputs,
)

_HALF = 40
_DIAGONAL = 56  # about 45 degrees at full tilt

# Script distances, in stage units.
_GROUND_ATTACK_HEIGHT = 10.0
_NAIR_RANGE = 14.0
_SHIELD_RANGE = 25.0
_MIN_SHIELD_TO_BLOCK = 20.0  # above the largest hit, so the shield never breaks
_L_CANCEL_HEIGHT = 12.0
_JUMP_HEIGHT_GAP = 20.0
_JUMP_RANGE = 40.0
_RUN_DISTANCE = 45.0
_LEDGE_MARGIN = 2.0


@dataclass(frozen=True)
class Traits:
    """Per-player style, drawn once per game; rates are chances per frame."""

    spacing: float  # horizontal distance under which the player attacks on the ground
    kill_percent: float  # opponent percent from which forward smash replaces jab
    shield_rate: float  # of raising shield against a nearby attack
    l_cancel_rate: float  # of pressing R while a neutral air falls near the ground
    aerial_rate: float  # of jumping toward an opponent within jumping range
    hesitation_rate: float  # of letting go of the controller instead of approaching


# The first player's style in every game: no chance involved (rates 0 or 1), so its inputs are
# a function of the previous frame's visible state alone.
REFERENCE_TRAITS = Traits(
    spacing=11.0,
    kill_percent=100.0,
    shield_rate=0.0,
    l_cancel_rate=1.0,
    aerial_rate=0.0,
    hesitation_rate=0.0,
)


def draw_opponent_traits(rng: random.Random) -> Traits:
    """The second player's style, drawn from ``rng`` (six uniform draws)."""
    return Traits(
        spacing=rng.uniform(9.0, 13.0),
        kill_percent=rng.uniform(60.0, 130.0),
        shield_rate=rng.uniform(0.1, 0.5),
        l_cancel_rate=rng.uniform(0.3, 0.9),
        aerial_rate=rng.uniform(0.02, 0.08),
        hesitation_rate=rng.uniform(0.0, 0.1),
    )


def choose_inputs(
    fighters: list[Fighter], traits: list[Traits], rng: random.Random
) -> list[Inputs]:
    """Both players' inputs for the next frame: one draw per player, then ``decide``."""
    rolls = [rng.random() for _ in fighters]
    opponents = fighters[::-1]
    return [
        decide(me, opp, style, roll)
        for me, opp, style, roll in zip(fighters, opponents, traits, rolls, strict=True)
    ]


def decide(me: Fighter, opp: Fighter, traits: Traits, roll: float) -> Inputs:
    """The scripted controller: a function of the visible state, traits and one draw."""
    if me.action in NO_CONTROL:
        return Inputs()
    dx = opp.x - me.x
    dy = opp.y - me.y
    toward = 1 if dx >= 0 else -1
    if abs(me.x) > STAGE_EDGE_X:
        home = -1 if me.x > 0 else 1
        return Inputs(home * _DIAGONAL, _DIAGONAL, jump=me.vy <= 0 and me.jumps > 0)
    if me.airborne:
        landing_nair = me.action == Action.NAIR and me.vy < 0 and me.y < _L_CANCEL_HEIGHT
        if landing_nair and roll < traits.l_cancel_rate:
            return Inputs(toward * FULL_TILT, shield=True)
        if abs(dx) < _NAIR_RANGE and abs(dy) < _NAIR_RANGE:
            return Inputs(a=True)
        return Inputs(toward * FULL_TILT)
    can_block = (
        opp.action in MOVES and abs(dx) < _SHIELD_RANGE and me.shield >= _MIN_SHIELD_TO_BLOCK
    )
    if can_block and (me.action in SHIELD_ACTIONS or roll < traits.shield_rate):
        return Inputs(shield=True)
    if abs(dx) < traits.spacing and abs(dy) < _GROUND_ATTACK_HEIGHT:
        if me.facing != toward:
            return Inputs(toward * _HALF)
        if opp.percent >= traits.kill_percent:
            return Inputs(cstick_x=toward * FULL_TILT)
        return Inputs(a=True)
    if dy > _JUMP_HEIGHT_GAP and abs(dx) < _JUMP_RANGE:
        return Inputs(toward * FULL_TILT, jump=True)
    if roll < traits.aerial_rate and abs(dx) < _JUMP_RANGE:
        return Inputs(toward * FULL_TILT, jump=True)
    if roll >= 1.0 - traits.hesitation_rate:
        return Inputs()
    if abs(me.x) >= STAGE_EDGE_X - _LEDGE_MARGIN and me.x * toward > 0:
        return Inputs()
    return Inputs(toward * (FULL_TILT if abs(dx) > _RUN_DISTANCE else _HALF))
