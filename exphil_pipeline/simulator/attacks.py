"""The simulated attacks, and what happens when one connects.

Every character has the same three attacks, a jab, a forward smash and a neutral air, each a
box of reach in front of the attacker (around it, for the neutral air) during its active
frames. Attack ids are Slippi's, reported as "last attack landed". A hit follows Melee's
conventions: hitlag for both players, then either shield damage and shield stun for a
shielding defender, or damage and knockback from Melee's formula, with launch speed and hitstun
proportional to the knockback and a tumble from knockback 80 on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from melee.enums import Action

from exphil_pipeline.simulator.fighter import (
    SHIELD_ACTIONS,
    UNTOUCHABLE,
    Fighter,
    enter,
    sign,
)

_MAX_PERCENT = 999.0

# Melee's knockback conventions: launch speed and hitstun scale with knockback, and knockback
# of 80 or more sends a player tumbling. (Launch speed then decays in ``physics``.)
_LAUNCH_SPEED_PER_KNOCKBACK = 0.03
_HITSTUN_PER_KNOCKBACK = 0.4
_TUMBLE_KNOCKBACK = 80.0


@dataclass(frozen=True)
class Move:
    """An attack, the same for every character."""

    action: Action
    attack_id: int  # Slippi's attack id, reported as "last attack landed"
    damage: float
    first_active: int  # frames of the action during which the hitbox is out
    last_active: int
    duration: int
    reach_x: float  # hitbox reach from the attacker's position
    reach_y: float
    base_knockback: float
    knockback_growth: float
    angle: float  # launch angle in degrees above horizontal
    hits_behind: bool


JAB = Move(
    action=Action.NEUTRAL_ATTACK_1,
    attack_id=2,
    damage=4.0,
    first_active=2,
    last_active=3,
    duration=17,
    reach_x=14.0,
    reach_y=10.0,
    base_knockback=5.0,
    knockback_growth=30.0,
    angle=20.0,
    hits_behind=False,
)
FSMASH = Move(
    action=Action.FSMASH_MID,
    attack_id=10,
    damage=16.0,
    first_active=12,
    last_active=15,
    duration=45,
    reach_x=18.0,
    reach_y=12.0,
    base_knockback=30.0,
    knockback_growth=100.0,
    angle=40.0,
    hits_behind=False,
)
NAIR = Move(
    action=Action.NAIR,
    attack_id=13,
    damage=10.0,
    first_active=4,
    last_active=12,
    duration=30,
    reach_x=12.0,
    reach_y=12.0,
    base_knockback=10.0,
    knockback_growth=100.0,
    angle=45.0,
    hits_behind=True,
)
MOVES = {move.action: move for move in (JAB, FSMASH, NAIR)}
"""Each attack by its action state."""


def start_move(f: Fighter, move: Move) -> None:
    """Begin ``move``; it may hit once."""
    enter(f, move.action)
    f.move_connected = False


def touching_move(attacker: Fighter, defender: Fighter) -> Move | None:
    """The attacker's move if one of its active frames reaches the defender."""
    move = MOVES.get(attacker.action)
    if move is None or attacker.move_connected:
        return None
    if not move.first_active <= attacker.age <= move.last_active:
        return None
    if defender.action in UNTOUCHABLE or defender.invulnerable:
        return None
    dx = defender.x - attacker.x
    if abs(dx) > move.reach_x or abs(defender.y - attacker.y) > move.reach_y:
        return None
    return move if move.hits_behind or dx * attacker.facing >= 0 else None


def _knockback(move: Move, percent: float, weight: float) -> float:
    """Melee's knockback formula for a hit that left the defender at ``percent``."""
    scaled = (percent / 10 + percent * move.damage / 20) * 200 / (weight + 100) * 1.4 + 18
    return scaled * move.knockback_growth / 100 + move.base_knockback


def apply_hit(attacker: Fighter, defender: Fighter, move: Move) -> None:
    """Resolve ``move`` connecting with ``defender``, on its shield or on its body."""
    attacker.move_connected = True
    attacker.hitlag = defender.hitlag = int(move.damage / 3 + 3)
    if defender.action in SHIELD_ACTIONS:
        defender.shield -= move.damage
        enter(defender, Action.SHIELD_STUN)
        defender.timer = int(move.damage * 0.45) + 2
        return
    direction = sign(defender.x - attacker.x) if move.hits_behind else attacker.facing
    attacker.combo = attacker.combo + 1 if defender.hitstun else 1
    attacker.last_attack_landed = move.attack_id
    defender.last_hit_by = attacker.port
    defender.percent = min(defender.percent + move.damage, _MAX_PERCENT)
    knockback = _knockback(move, defender.percent, defender.physics.weight)
    speed = knockback * _LAUNCH_SPEED_PER_KNOCKBACK
    defender.kb_x = direction * speed * math.cos(math.radians(move.angle))
    defender.kb_y = speed * math.sin(math.radians(move.angle))
    defender.vx = defender.vy = 0.0
    defender.facing = -direction
    defender.hitstun = int(knockback * _HITSTUN_PER_KNOCKBACK)
    if knockback >= _TUMBLE_KNOCKBACK:
        defender.airborne = True
        enter(defender, Action.DAMAGE_FLY_NEUTRAL)
    elif defender.airborne:
        enter(defender, Action.DAMAGE_AIR_1)
    else:
        defender.kb_y = 0.0  # a weak hit slides a grounded player along the floor
        enter(defender, Action.DAMAGE_NEUTRAL_1)
