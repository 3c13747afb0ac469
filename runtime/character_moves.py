"""Per-character special-move groups and the charge each frame proves, for the embedding.

Melee numbers the action states every character shares 0..340; from 341 on each character
has its own list, so the same id means different moves for different characters (and
libmelee's ``Action`` names above 340 are one character's names applied to all). This module
maps each target character's own states to a small global vocabulary of named groups, a
categorical feature that sits beside the raw action state:

- ``SPECIAL_MOVES`` is the documented table: character -> groups, each group listing its
  action-state ids with the motion-state names of the Melee decompilation;
- ``SPECIAL_GROUPS`` is the vocabulary (index 0 is ``"none"``), in table order;
- ``SPECIAL_GROUP_TABLE[character, action_state]`` (uint8, internal character ids as in the
  Slippi post-frame and ``melee.Character``) is the group index, 0 for everything not listed;
- ``UNGROUPED_STATES`` lists the character-specific states deliberately left at 0, with why.

Where the ids come from: the order of each character's motion-state table in the Melee
decompilation (doldecomp/melee, ``src/melee/ft/chara/<fighter>/*_Init.c``, whose entries are
annotated ``ftMt_MS_SpecialNStart = 341`` and so on; Ganondorf reuses Captain Falcon's
``ftCa_MS_*`` table), cross-checked with libmelee's ``framedata.csv`` (row counts, hitbox and
projectile flags per character and state) and with the real replays: every special state a
target character enters there from a non-special state starts on a frame where B is pressed
with the stick in that group's direction (``tests/runtime/test_character_moves.py``).

Charge (``charge_progress``) is the fraction of a move's charge that one frame shows:
``min(action_frame / CHARGE_FRAMES, 1)`` (at least 0; a NaN frame gives 0) for the (character,
action state) pairs ``CHARGE_RULES`` lists, 0 everywhere else, so the embedding may equally
compute it from ``CHARGE_FRAMES`` itself. Each rule carries the sentence that derives it.

Left out, because one frame does not show them:

- the charge of a Shadow Ball still growing: its charge loop restarts the action frame every 8
  frames (seen in the real replays) while the charge counter lives in the fighter's private
  variables, and a charge stored by an earlier cancel carries over. A full ball has its own
  states (``mewtwo_shadow_ball_hold``), so full charge is the group, not a charge value (they
  carry on the loop's restarting action frame, so no frame count could express it);
- Sheik's needle count: one needle per 18-frame cycle of the loop (its action frame restarts
  each cycle), starting from any stored needles;
- Oil Panic's fill: the number of projectiles absorbed since the last spill;
- Din's Fire's travel: the fireball's own timer;
- Link's bow hold after the draw (always full, but whether its action frame restarts is not
  confirmed: no real replay in the corpus plays Link).

The misc field (Slippi "misc action state", libmelee ``hitstun_frames_left``) holds integer
motion variables in these states, e.g. Mewtwo's teleport travel counter, but both embedding
paths read it as a float, where such integers are denormals that truncate to 0. Jumps left
after a tether are already the ``jumps_left`` feature.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runtime.melee_ids import INTERNAL_CHARACTER_NAMES

CHARACTER_LIMIT = 256
ACTION_LIMIT = 1024
FIRST_CHARACTER_STATE = 341


@dataclass(frozen=True)
class SpecialGroup:
    """One named group of a character's own action states.

    ``name`` is the vocabulary entry; ``stick`` is the input that starts the move (B with the
    stick ``"neutral"``, ``"side"``, ``"up"`` or ``"down"``; ``"air_grab"`` for Link's
    hookshot); ``states`` maps each action-state id to its decompilation motion-state name.
    """

    name: str
    stick: str
    states: dict[int, str]


SPECIAL_MOVES: dict[str, tuple[SpecialGroup, ...]] = {
    "MEWTWO": (
        SpecialGroup(
            "mewtwo_shadow_ball_charge",
            "neutral",
            {
                341: "SpecialNStart",
                342: "SpecialNLoop",
                346: "SpecialAirNStart",
                347: "SpecialAirNLoop",
            },
        ),
        # Entered only when the charge counter reaches its maximum: holding a full ball.
        SpecialGroup(
            "mewtwo_shadow_ball_hold",
            "neutral",
            {343: "SpecialNLoopFull", 348: "SpecialAirNLoopFull"},
        ),
        SpecialGroup(
            "mewtwo_shadow_ball_release", "neutral", {345: "SpecialNEnd", 350: "SpecialAirNEnd"}
        ),
        # Shield, roll or (in the air) shield press: the charge is stored for later.
        SpecialGroup(
            "mewtwo_shadow_ball_cancel",
            "neutral",
            {344: "SpecialNCancel", 349: "SpecialAirNCancel"},
        ),
        SpecialGroup("mewtwo_confusion", "side", {351: "SpecialS", 352: "SpecialAirS"}),
        SpecialGroup(
            "mewtwo_teleport_start", "up", {353: "SpecialHiStart", 356: "SpecialAirHiStart"}
        ),
        # "Lost": Mewtwo is invisible and moving.
        SpecialGroup(
            "mewtwo_teleport_travel", "up", {354: "SpecialHiLost", 357: "SpecialAirHiLost"}
        ),
        SpecialGroup("mewtwo_teleport_end", "up", {355: "SpecialHi", 358: "SpecialAirHi"}),
        SpecialGroup("mewtwo_disable", "down", {359: "SpecialLw", 360: "SpecialAirLw"}),
    ),
    "GAMEANDWATCH": (
        SpecialGroup("gnw_chef", "neutral", {353: "SpecialN", 354: "SpecialAirN"}),
        # The number drawn is the state itself: 355 + n - 1 on the ground, 364 + n - 1 in the air.
        SpecialGroup(
            "gnw_judgement",
            "side",
            {
                **{355 + n: f"SpecialS{n + 1}" for n in range(9)},
                **{364 + n: f"SpecialAirS{n + 1}" for n in range(9)},
            },
        ),
        SpecialGroup("gnw_fire", "up", {373: "SpecialHi", 374: "SpecialAirHi"}),
        SpecialGroup("gnw_oil_panic", "down", {375: "SpecialLw", 378: "SpecialAirLw"}),
        # A projectile landed in the bucket (one step of the fill, which itself needs history).
        SpecialGroup(
            "gnw_oil_panic_absorb", "down", {376: "SpecialLwCatch", 379: "SpecialAirLwCatch"}
        ),
        SpecialGroup(
            "gnw_oil_panic_spill", "down", {377: "SpecialLwShoot", 380: "SpecialAirLwShoot"}
        ),
    ),
    "LINK": (
        SpecialGroup(
            "link_bow",
            "neutral",
            {
                344: "SpecialNStart",
                345: "SpecialNLoop",
                346: "SpecialNEnd",
                347: "SpecialAirNStart",
                348: "SpecialAirNLoop",
                349: "SpecialAirNEnd",
            },
        ),
        SpecialGroup(
            "link_boomerang",
            "side",
            {
                350: "SpecialS1",
                351: "SpecialS2",
                352: "SpecialS1Empty",
                353: "SpecialAirS1",
                354: "SpecialAirS2",
                355: "SpecialAirS1Empty",
            },
        ),
        SpecialGroup("link_spin_attack", "up", {356: "SpecialHi", 357: "SpecialAirHi"}),
        SpecialGroup("link_bomb_pull", "down", {358: "SpecialLw", 359: "SpecialAirLw"}),
        # The aerial hookshot, which is also the ledge tether; the grounded grab is a common state.
        SpecialGroup("link_hookshot", "air_grab", {360: "AirCatch", 361: "AirCatchHit"}),
    ),
    "GANONDORF": (
        SpecialGroup("ganondorf_warlock_punch", "neutral", {347: "SpecialN", 348: "SpecialAirN"}),
        SpecialGroup(
            "ganondorf_flame_choke",
            "side",
            {
                349: "SpecialSStart",
                350: "SpecialS",
                351: "SpecialAirSStart",
                352: "SpecialAirS",
            },
        ),
        SpecialGroup(
            "ganondorf_dark_dive",
            "up",
            {
                353: "SpecialHi",
                354: "SpecialAirHi",
                355: "SpecialHiCatch",
                356: "SpecialHiThrow",
                363: "SpecialHiThrow1",
            },
        ),
        SpecialGroup(
            "ganondorf_wizards_foot",
            "down",
            {
                357: "SpecialLw",
                358: "SpecialLwEnd",
                359: "SpecialAirLw",
                360: "SpecialAirLwEnd",
                361: "SpecialAirLwEndAir",
                362: "SpecialLwEndAir",
            },
        ),
    ),
    "ZELDA": (
        SpecialGroup("zelda_nayrus_love", "neutral", {341: "SpecialN", 342: "SpecialAirN"}),
        SpecialGroup(
            "zelda_dins_fire",
            "side",
            {
                343: "SpecialSStart",
                344: "SpecialSLoop",
                345: "SpecialSEnd",
                346: "SpecialAirSStart",
                347: "SpecialAirSLoop",
                348: "SpecialAirSEnd",
            },
        ),
        SpecialGroup(
            "zelda_farores_wind",
            "up",
            {
                349: "SpecialHiStart_0",
                350: "SpecialHiStart_1",
                351: "SpecialHi",
                352: "SpecialAirHiStart_0",
                353: "SpecialAirHiStart_1",
                354: "SpecialAirHi",
            },
        ),
        # The first half plays as Zelda; the post-frame character then turns to Sheik, who
        # finishes in her SpecialLw2 / SpecialAirLw2 (362 / 364), and the reverse for Sheik.
        SpecialGroup(
            "zelda_transform",
            "down",
            {355: "SpecialLw", 356: "SpecialLw2", 357: "SpecialAirLw", 358: "SpecialAirLw2"},
        ),
    ),
    "SHEIK": (
        SpecialGroup(
            "sheik_needle_charge",
            "neutral",
            {
                341: "SpecialNStart",
                342: "SpecialNLoop",
                345: "SpecialAirNStart",
                346: "SpecialAirNLoop",
            },
        ),
        # B released during the charge: the needles are thrown.
        SpecialGroup("sheik_needle_throw", "neutral", {344: "SpecialNEnd", 348: "SpecialAirNEnd"}),
        # Shield pressed during the charge: the needles are stored.
        SpecialGroup(
            "sheik_needle_cancel", "neutral", {343: "SpecialNCancel", 347: "SpecialAirNCancel"}
        ),
        SpecialGroup(
            "sheik_chain",
            "side",
            {
                349: "SpecialSStart",
                350: "SpecialS",
                351: "SpecialSEnd",
                352: "SpecialAirSStart",
                353: "SpecialAirS",
                354: "SpecialAirSEnd",
            },
        ),
        SpecialGroup(
            "sheik_vanish",
            "up",
            {
                355: "SpecialHiStart_0",
                356: "SpecialHiStart_1",
                357: "SpecialHi",
                358: "SpecialAirHiStart_0",
                359: "SpecialAirHiStart_1",
                360: "SpecialAirHi",
            },
        ),
        SpecialGroup(
            "sheik_transform",
            "down",
            {361: "SpecialLw", 362: "SpecialLw2", 363: "SpecialAirLw", 364: "SpecialAirLw2"},
        ),
    ),
}

# Character-specific states (>= 341) of the target characters that are not special moves;
# the raw action state already names them, so they keep group 0.
UNGROUPED_STATES: dict[str, dict[int, str]] = {
    "GAMEANDWATCH": {
        341: "Attack11 (jab)",
        342: "Attack100Start (rapid jab)",
        343: "Attack100Loop (rapid jab)",
        344: "Attack100End (rapid jab)",
        345: "AttackLw3 (down tilt)",
        346: "AttackS4 (forward smash)",
        347: "AttackAirN (neutral air)",
        348: "AttackAirB (back air)",
        349: "AttackAirHi (up air)",
        350: "LandingAirN (neutral air landing lag)",
        351: "LandingAirB (back air landing lag)",
        352: "LandingAirHi (up air landing lag)",
    },
    "LINK": {
        341: "AttackS42 (second forward smash)",
        342: "AppealSR (taunt)",
        343: "AppealSL (taunt)",
    },
    "GANONDORF": {
        341: "SwordSwing4 (beam sword smash)",
        342: "BatSwing4 (home-run bat smash)",
        343: "ParasolSwing4 (parasol smash)",
        344: "HarisenSwing4 (fan smash)",
        345: "StarRodSwing4 (star rod smash)",
        346: "LipstickSwing4 (lip's stick smash)",
    },
}

SPECIAL_GROUPS: tuple[str, ...] = (
    "none",
    *(group.name for groups in SPECIAL_MOVES.values() for group in groups),
)

CHARACTER_IDS: dict[str, int] = {name: cid for cid, name in INTERNAL_CHARACTER_NAMES.items()}


@dataclass(frozen=True)
class ChargeRule:
    """States whose action frame counts a charge: ``full_frames`` is the frame counted as full."""

    character: str
    states: tuple[int, ...]
    full_frames: int
    derivation: str


CHARGE_RULES: tuple[ChargeRule, ...] = (
    ChargeRule(
        "LINK",
        (344, 347),
        60,
        "The bow's draw (SpecialNStart / SpecialAirNStart, action frames 1-59 in libmelee's "
        "framedata.csv) ends in the fully charged hold on frame 60 (community frame data, "
        "wiki.imain.link 'arrows'), so the value is the draw's progress; the arrow's power "
        "itself only grows from frame 18, one level every 4 frames, so below 0.3 it is none.",
    ),
)


def _group_table() -> np.ndarray:
    table = np.zeros((CHARACTER_LIMIT, ACTION_LIMIT), dtype=np.uint8)
    for character, groups in SPECIAL_MOVES.items():
        cid = CHARACTER_IDS[character]
        for group in groups:
            index = SPECIAL_GROUPS.index(group.name)
            for state in group.states:
                if not FIRST_CHARACTER_STATE <= state < ACTION_LIMIT:
                    raise ValueError(f"{character} state {state} is not a character's own state")
                if table[cid, state]:
                    raise ValueError(f"{character} state {state} is listed in two groups")
                table[cid, state] = index
    return table


def _charge_table() -> np.ndarray:
    table = np.zeros((CHARACTER_LIMIT, ACTION_LIMIT), dtype=np.float32)
    for rule in CHARGE_RULES:
        if rule.full_frames <= 0:
            raise ValueError(f"charge rule for {rule.character}: full_frames must be positive")
        for state in rule.states:
            table[CHARACTER_IDS[rule.character], state] = rule.full_frames
    return table


SPECIAL_GROUP_TABLE = _group_table()
CHARGE_FRAMES = _charge_table()
SPECIAL_GROUP_TABLE.setflags(write=False)
CHARGE_FRAMES.setflags(write=False)


def _indices(values: object, limit: int, field: str) -> np.ndarray:
    array = np.asarray(values)
    integral = array.dtype.kind in "iu" or (
        array.dtype.kind == "f" and bool(np.all(array == np.trunc(array)))
    )
    if not integral:
        raise ValueError(f"{field} must hold integer ids, got {array.dtype} values {array!r}")
    array = array.astype(np.int64)
    if array.size and (array.min() < 0 or array.max() >= limit):
        raise ValueError(
            f"{field} must lie in [0, {limit}), got [{array.min()}, {array.max()}]; "
            "clamp it the way the embedding clamps ids"
        )
    return array


def special_group(character: object, action_state: object) -> np.ndarray:
    """Group index (uint8) of each (internal character id, action state) pair."""
    return SPECIAL_GROUP_TABLE[
        _indices(character, CHARACTER_LIMIT, "character"),
        _indices(action_state, ACTION_LIMIT, "action_state"),
    ]


def charge_progress(character: object, action_state: object, action_frame: object) -> np.ndarray:
    """``min(action_frame / CHARGE_FRAMES, 1)`` (float32, at least 0) where a rule applies, else 0.

    Arguments broadcast like numpy arrays; ``action_frame`` is the embedding's action frame
    (libmelee's ``action_frame``), and a NaN frame (replays before Slippi 0.2) gives 0.
    Elementwise float32 arithmetic only, so a batch and its single rows give the same bits.
    """
    full = CHARGE_FRAMES[
        _indices(character, CHARACTER_LIMIT, "character"),
        _indices(action_state, ACTION_LIMIT, "action_state"),
    ]
    frame = np.asarray(action_frame, dtype=np.float32)
    counted = full > 0
    quotient = frame / np.where(counted, full, np.float32(1))
    # fmax / fmin send a NaN frame to the low bound instead of propagating it.
    progress = np.fmin(np.fmax(quotient, np.float32(0)), np.float32(1))
    return np.where(counted, progress, np.float32(0)).astype(np.float32)
