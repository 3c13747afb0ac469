"""The simulated attacks of every character, read from libmelee's ``framedata.csv``.

libmelee's frame table lists, per (internal character id, action state, 1-based frame), up to
four hitboxes (active flag, radius, and x/y offset from the character's position, x positive =
the direction the character faces, y positive = up), the frame's locomotion and whether it is
interruptible (IASA). From it this module takes, per (character, attack), the animation length,
the first IASA frame and, per frame, whether a hitbox is out and the largest active one.

Mr. Game & Watch's jab, down tilt, forward smash and neutral, back and up airs are his own
action states in Melee (341, 345, 346, 347, 348, 349: the moves that draw his props); libmelee's
``Action`` enum names those numbers after other characters' specials. ``AttackData.action_state``
is the state a replay shows for the attack, so the simulator reports it rather than the
generic ``Action``. An attack absent from the table is kept with ``available=False`` and zero
frames; with libmelee 0.47.6 every simulated attack is present.

The tables say nothing of damage, knockback or landing lag: those come from the approximation
tables below (community frame data, rounded; not Melee's exact per-hitbox values).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import melee
from melee.enums import Action, Character

FRAMEDATA_CSV = Path(melee.__file__).resolve().parent / "framedata.csv"

ATTACKS: tuple[Action, ...] = (
    Action.NEUTRAL_ATTACK_1,
    Action.FTILT_MID,
    Action.UPTILT,
    Action.DOWNTILT,
    Action.FSMASH_MID,
    Action.UPSMASH,
    Action.DOWNSMASH,
    Action.DASH_ATTACK,
    Action.NAIR,
    Action.FAIR,
    Action.BAIR,
    Action.UAIR,
    Action.DAIR,
)
"""The simulated attacks; an attack's position here is its attack index in ``SimTables``."""

AERIALS: tuple[Action, ...] = (Action.NAIR, Action.FAIR, Action.BAIR, Action.UAIR, Action.DAIR)
"""The aerial attacks (the ones with landing lag), a subset of ``ATTACKS``."""

# Action states that differ from the generic ``Action`` value, per character (see above).
_ACTION_STATE_OVERRIDES: dict[Character, dict[Action, int]] = {
    Character.GAMEANDWATCH: {
        Action.NEUTRAL_ATTACK_1: 341,
        Action.DOWNTILT: 345,
        Action.FSMASH_MID: 346,
        Action.NAIR: 347,
        Action.BAIR: 348,
        Action.UAIR: 349,
    },
}

# Approximations of Melee's aerial landing lag in frames (NAIR, FAIR, BAIR, UAIR, DAIR), from
# community frame data, rounded. A successful L-cancel halves it (rounded down), except for
# Mr. Game & Watch's neutral, back and up airs, which cannot be L-cancelled. G&W's back-air
# landing matches the 17 frames of his landing state (351) in libmelee's table.
_LANDING_LAG: dict[Character, tuple[int, int, int, int, int]] = {
    Character.FOX: (15, 22, 20, 18, 18),
    Character.MEWTWO: (15, 16, 18, 18, 20),
    Character.GAMEANDWATCH: (18, 20, 17, 18, 30),
    Character.LINK: (15, 24, 20, 30, 40),
    Character.GANONDORF: (15, 25, 20, 20, 25),
    Character.ZELDA: (25, 25, 20, 30, 30),
    Character.SHEIK: (15, 15, 15, 18, 32),
}
_NO_L_CANCEL: frozenset[tuple[Character, Action]] = frozenset(
    (Character.GAMEANDWATCH, action) for action in (Action.NAIR, Action.BAIR, Action.UAIR)
)

# Approximate hit properties per attack kind, the same for every character: damage (percent),
# base knockback, knockback growth, and launch angle (degrees above the horizontal, measured
# from the side of the attacker the defender is on: 90 = straight up, 270 = straight down).
# Rounded from typical Melee values (community frame data); not any one character's move.
_HIT_BY_KIND: dict[Action, tuple[float, float, float, float]] = {
    Action.NEUTRAL_ATTACK_1: (4.0, 10.0, 50.0, 70.0),
    Action.FTILT_MID: (9.0, 10.0, 100.0, 38.0),
    Action.UPTILT: (9.0, 20.0, 110.0, 90.0),
    Action.DOWNTILT: (10.0, 20.0, 80.0, 80.0),
    Action.FSMASH_MID: (15.0, 25.0, 100.0, 40.0),
    Action.UPSMASH: (16.0, 30.0, 100.0, 85.0),
    Action.DOWNSMASH: (14.0, 20.0, 90.0, 25.0),
    Action.DASH_ATTACK: (8.0, 25.0, 70.0, 70.0),
    Action.NAIR: (10.0, 10.0, 100.0, 45.0),
    Action.FAIR: (11.0, 10.0, 100.0, 45.0),
    Action.BAIR: (12.0, 10.0, 100.0, 40.0),
    Action.UAIR: (12.0, 20.0, 100.0, 85.0),
    Action.DAIR: (12.0, 20.0, 80.0, 290.0),
}

# Per-character damage multiplier (approximation: light, fast characters hit softer,
# Ganondorf much harder).
_DAMAGE_SCALE: dict[Character, float] = {
    Character.FOX: 0.9,
    Character.MEWTWO: 1.0,
    Character.GAMEANDWATCH: 1.0,
    Character.LINK: 1.15,
    Character.GANONDORF: 1.4,
    Character.ZELDA: 1.05,
    Character.SHEIK: 0.9,
}

# Known exceptions (approximations): the meteor down airs, Link's upward-sending down air and
# Zelda's sweet-spotted Lightning Kicks. Values replace the kind's (damage is not rescaled).
_HIT_OVERRIDES: dict[tuple[Character, Action], tuple[float, float, float, float]] = {
    (Character.GANONDORF, Action.DAIR): (17.0, 20.0, 100.0, 270.0),
    (Character.MEWTWO, Action.DAIR): (12.0, 10.0, 100.0, 270.0),
    (Character.GAMEANDWATCH, Action.DAIR): (12.0, 10.0, 100.0, 270.0),
    (Character.ZELDA, Action.DAIR): (12.0, 10.0, 100.0, 270.0),
    (Character.LINK, Action.DAIR): (16.0, 20.0, 80.0, 75.0),
    (Character.ZELDA, Action.FAIR): (20.0, 20.0, 100.0, 40.0),
    (Character.ZELDA, Action.BAIR): (20.0, 20.0, 100.0, 40.0),
}


@dataclass(frozen=True)
class AttackData:
    """One character's attack: timing from libmelee's frame table, hits from approximations.

    Per-frame tuples have one entry per animation frame; entry ``k`` is frame ``k + 1``
    (libmelee's frames are 1-based). Distances are Melee units, relative to the character's
    position, x positive = forward; frames are game frames (1/60 s).
    """

    character: Character
    attack: Action
    """The generic attack (an entry of ``ATTACKS``)."""
    action_state: int
    """The action state a replay shows for it (differs from ``attack`` for some of G&W's)."""
    available: bool
    """False when libmelee's table lacks the action: then every count and tuple is empty."""
    frames: int
    """Animation length: the last frame listed."""
    iasa: int
    """First interruptible (IASA) frame, 0 when the animation must run to its end."""
    active: tuple[bool, ...]
    """Per frame: whether any hitbox is active."""
    hit_x: tuple[float, ...]
    """Per frame: forward offset of the largest active hitbox's centre (0 when inactive)."""
    hit_y: tuple[float, ...]
    """Per frame: upward offset of the largest active hitbox's centre (0 when inactive)."""
    hit_radius: tuple[float, ...]
    """Per frame: radius of the largest active hitbox (0 when inactive)."""
    landing_lag: int
    """Aerials: frames of lag on landing during the move (approximation); 0 for ground moves."""
    l_cancel_lag: int
    """Aerials: landing lag after a successful L-cancel (half, rounded down, where allowed)."""
    damage: float
    """Damage dealt, percent (approximation)."""
    base_knockback: float
    """Melee's base knockback (approximation)."""
    knockback_growth: float
    """Melee's knockback growth (approximation)."""
    angle: float
    """Launch angle in degrees above the horizontal away from the attacker (approximation)."""

    @property
    def first_active(self) -> int:
        """First frame with a hitbox out (1-based), 0 when none."""
        return self.active.index(True) + 1 if True in self.active else 0

    @property
    def last_active(self) -> int:
        """Last frame with a hitbox out (1-based), 0 when none."""
        if True not in self.active:
            return 0
        return len(self.active) - self.active[::-1].index(True)


def action_state(character: Character, attack: Action) -> int:
    """The action state id ``character`` uses for ``attack`` in Melee (and in replays)."""
    return _ACTION_STATE_OVERRIDES.get(character, {}).get(attack, attack.value)


def _read_frame_rows(wanted: set[tuple[int, int]]) -> dict[tuple[int, int], list[dict[str, str]]]:
    """Rows of ``framedata.csv`` for the (character id, action state) pairs in ``wanted``."""
    rows: dict[tuple[int, int], list[dict[str, str]]] = {}
    with FRAMEDATA_CSV.open(newline="") as handle:
        for row in csv.DictReader(handle):
            key = (int(row["character"]), int(row["action"]))
            if key in wanted:
                rows.setdefault(key, []).append(row)
    return rows


_Hitbox = tuple[float, float, float]  # (radius, x, y)


def _largest_hitbox(row: dict[str, str]) -> _Hitbox | None:
    """The largest active hitbox of one frame's row, None when no hitbox is active."""
    largest: _Hitbox | None = None
    for box in range(1, 5):
        if row[f"hitbox_{box}_status"] != "True":
            continue
        radius = float(row[f"hitbox_{box}_size"])
        if largest is None or radius > largest[0]:
            largest = (radius, float(row[f"hitbox_{box}_x"]), float(row[f"hitbox_{box}_y"]))
    return largest


def _frame_hitboxes(rows: list[dict[str, str]]) -> tuple[int, int, list[_Hitbox | None]]:
    """(frames, first IASA frame or 0, per frame the largest active hitbox or None)."""
    frames = max(int(row["frame"]) for row in rows)
    largest: list[_Hitbox | None] = [None] * frames
    for row in rows:
        largest[int(row["frame"]) - 1] = _largest_hitbox(row)
    iasa = min((int(row["frame"]) for row in rows if row["iasa"] == "True"), default=0)
    return frames, iasa, largest


def _hit_properties(character: Character, attack: Action) -> tuple[float, float, float, float]:
    """(damage, base knockback, knockback growth, angle): approximations, see the tables."""
    if (character, attack) in _HIT_OVERRIDES:
        return _HIT_OVERRIDES[(character, attack)]
    damage, base, growth, angle = _HIT_BY_KIND[attack]
    return damage * _DAMAGE_SCALE[character], base, growth, angle


def _landing_lags(character: Character, attack: Action) -> tuple[int, int]:
    """(landing lag, L-cancelled landing lag) of an aerial; (0, 0) for a ground attack."""
    if attack not in AERIALS:
        return 0, 0
    lag = _LANDING_LAG[character][AERIALS.index(attack)]
    return lag, lag if (character, attack) in _NO_L_CANCEL else lag // 2


def _attack_data(
    character: Character, attack: Action, rows: list[dict[str, str]] | None
) -> AttackData:
    """One attack's data from its rows of the frame table (None when the table lacks it)."""
    damage, base, growth, angle = _hit_properties(character, attack)
    landing, l_cancel = _landing_lags(character, attack)
    frames, iasa, largest = _frame_hitboxes(rows) if rows else (0, 0, [])
    boxes = [box or (0.0, 0.0, 0.0) for box in largest]
    return AttackData(
        character=character,
        attack=attack,
        action_state=action_state(character, attack),
        available=frames > 0,
        frames=frames,
        iasa=iasa,
        active=tuple(box is not None for box in largest),
        hit_x=tuple(x for _, x, _ in boxes),
        hit_y=tuple(y for _, _, y in boxes),
        hit_radius=tuple(radius for radius, _, _ in boxes),
        landing_lag=landing,
        l_cancel_lag=l_cancel,
        damage=damage,
        base_knockback=base,
        knockback_growth=growth,
        angle=angle,
    )


def load_attacks(characters: tuple[Character, ...]) -> dict[tuple[Character, Action], AttackData]:
    """Every attack of ``ATTACKS`` for each of ``characters``, read in one pass over the table."""
    keys = {(c, a): (c.value, action_state(c, a)) for c in characters for a in ATTACKS}
    rows = _read_frame_rows(set(keys.values()))
    return {
        (character, attack): _attack_data(character, attack, rows.get(key))
        for (character, attack), key in keys.items()
    }
