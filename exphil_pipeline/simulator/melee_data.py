"""The game data the built-in simulator is driven by, read from libmelee's own tables.

* Characters (``SIM_CHARACTERS``, ``CharacterData``): movement attributes from libmelee's
  ``characterdata.csv``; where it is silent (jumps, dashing, jumpsquat, weight) an approximation
  table of Melee's published attributes (community frame data, rounded).
* Attacks (``melee_attacks``): timing and hitboxes from libmelee's ``framedata.csv``; damage,
  knockback and landing lag from approximation tables.
* Stages (``melee_stages``, ``runtime.stage_geometry``): blast zones, edges and platforms from
  ``melee.stages``.
* ``sim_tables()``: all of it packed into numpy arrays for an engine vectorized over games x
  players, indexed by character slot (0..C-1, the position in ``SIM_CHARACTERS``), attack index
  (0..A-1, the position in ``ATTACKS``), animation frame (0..F-1, frame ``f + 1`` of the move)
  and stage slot (0..S-1, the position in ``SIM_STAGES``).

Units throughout: distances in Melee units, speeds in units per frame, accelerations in units
per frame per frame, times in frames (1/60 s).
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass, fields
from pathlib import Path

import melee
import numpy as np
from melee.enums import Action, Character, Stage

from exphil_pipeline.simulator.melee_attacks import (
    AERIALS,
    ATTACKS,
    AttackData,
    action_state,
    load_attacks,
)
from exphil_pipeline.simulator.melee_stages import SIM_STAGES, external_stage_id, stage_slot
from runtime.stage_geometry import StageData, randall, stage_data

__all__ = [
    "AERIALS",
    "ATTACKS",
    "SIM_CHARACTERS",
    "SIM_STAGES",
    "AttackData",
    "CharacterArrays",
    "CharacterData",
    "SimTables",
    "StageData",
    "action_state",
    "attack_data",
    "attack_slot",
    "character_data",
    "character_slot",
    "external_stage_id",
    "randall",
    "sim_tables",
    "stage_data",
    "stage_slot",
]

CHARACTERDATA_CSV = Path(melee.__file__).resolve().parent / "characterdata.csv"

SIM_CHARACTERS: tuple[Character, ...] = (
    Character.FOX,
    Character.MEWTWO,
    Character.GAMEANDWATCH,
    Character.LINK,
    Character.GANONDORF,
    Character.ZELDA,
    Character.SHEIK,
)
"""The simulated characters (libmelee's ``Character``, i.e. Melee's internal ids); a
character's position here is its character slot."""
SIMULATED_NAMES = tuple(c.name for c in SIM_CHARACTERS)


def check_simulated(field: str, name: str) -> str:
    """``name`` if the simulator plays that character, else an error naming ``field``."""
    if name not in SIMULATED_NAMES:
        raise ValueError(f"{field} {name!r}: the simulator plays {SIMULATED_NAMES}")
    return name


# Approximations of Melee's published character attributes (community frame data, rounded):
# (full-hop jump speed, short-hop jump speed, initial dash speed, run speed,
#  initial dash frames, jumpsquat frames, weight).
_APPROXIMATE_ATTRIBUTES: dict[Character, tuple[float, float, float, float, int, int, int]] = {
    Character.FOX: (3.68, 2.1, 2.02, 2.2, 11, 3, 75),
    Character.MEWTWO: (2.3, 1.4, 1.7, 1.6, 15, 5, 85),
    Character.GAMEANDWATCH: (2.5, 1.6, 1.5, 1.4, 14, 4, 60),
    Character.LINK: (2.5, 1.5, 1.5, 1.3, 14, 6, 104),
    Character.GANONDORF: (2.6, 1.9, 1.5, 1.35, 15, 6, 109),
    Character.ZELDA: (2.1, 1.4, 1.4, 1.2, 15, 6, 90),
    Character.SHEIK: (2.8, 2.1, 1.9, 2.13, 14, 3, 90),
}


@dataclass(frozen=True)
class CharacterData:
    """One character's movement attributes (Melee units, frames).

    From libmelee's ``characterdata.csv``: ``jumps`` through ``double_jump_x``. Approximations
    (``_APPROXIMATE_ATTRIBUTES``, Melee's published values rounded): ``jump_speed`` through
    ``weight``. Where the CSV's double-jump speed is 0 (Mewtwo: his double jump is a special
    rising animation, not a set launch speed) ``double_jump_speed`` falls back to
    ``jump_speed``.
    """

    jumps: int
    """Mid-air jumps after leaving the ground (CSV ``Jumps``)."""
    friction: float
    """Ground traction: horizontal deceleration on the ground, units/frame^2 (``Friction``)."""
    size: float
    """Character size, units (``size``; roughly the body's half height)."""
    gravity: float
    """Downward acceleration in the air, units/frame^2 (``Gravity``)."""
    terminal_velocity: float
    """Maximum falling speed, units/frame (``TerminalVelocity``)."""
    fast_fall_speed: float
    """Falling speed while fast-falling, units/frame (``FastFallSpeed``)."""
    max_walk_speed: float
    """Top walking speed, units/frame (``MaxWalkSpeed``)."""
    air_speed: float
    """Top horizontal speed in the air, units/frame (``AirSpeed``)."""
    air_friction: float
    """Horizontal deceleration in the air without input, units/frame^2 (``AirFriction``)."""
    air_mobility: float
    """Horizontal acceleration in the air with full input, units/frame^2 (``AirMobility``)."""
    double_jump_speed: float
    """Initial upward speed of the mid-air jump, units/frame (``InitDJSpeed``; see above)."""
    double_jump_x: float
    """Horizontal speed multiplier of the mid-air jump with full input (``InitDJSpeed_x``)."""
    jump_speed: float
    """Initial upward speed of a full hop, units/frame (approximation)."""
    short_hop_speed: float
    """Initial upward speed of a short hop, units/frame (approximation)."""
    dash_speed: float
    """Speed of the initial dash, units/frame (approximation)."""
    run_speed: float
    """Top running speed, units/frame (approximation)."""
    dash_frames: int
    """Length of the initial dash before it becomes a run, frames (approximation)."""
    jumpsquat: int
    """Frames on the ground between the jump input and leaving the ground (approximation)."""
    weight: int
    """Weight in Melee's knockback formula (approximation of the published weights)."""


@dataclass(frozen=True)
class CharacterArrays:
    """Every ``CharacterData`` field as a read-only float32 array of shape (C,), by slot."""

    jumps: np.ndarray
    friction: np.ndarray
    size: np.ndarray
    gravity: np.ndarray
    terminal_velocity: np.ndarray
    fast_fall_speed: np.ndarray
    max_walk_speed: np.ndarray
    air_speed: np.ndarray
    air_friction: np.ndarray
    air_mobility: np.ndarray
    double_jump_speed: np.ndarray
    double_jump_x: np.ndarray
    jump_speed: np.ndarray
    short_hop_speed: np.ndarray
    dash_speed: np.ndarray
    run_speed: np.ndarray
    dash_frames: np.ndarray
    jumpsquat: np.ndarray
    weight: np.ndarray


def character_slot(character: Character) -> int:
    """The character slot (position in ``SIM_CHARACTERS``); ValueError if not simulated."""
    if character not in SIM_CHARACTERS:
        supported = ", ".join(c.name for c in SIM_CHARACTERS)
        name = getattr(character, "name", repr(character))
        raise ValueError(f"character {name} is not simulated; supported characters: {supported}")
    return SIM_CHARACTERS.index(character)


def attack_slot(attack: Action) -> int:
    """The attack index (position in ``ATTACKS``); ValueError if not simulated."""
    if attack not in ATTACKS:
        supported = ", ".join(a.name for a in ATTACKS)
        raise ValueError(f"attack {attack!r} is not simulated; supported attacks: {supported}")
    return ATTACKS.index(attack)


@functools.cache
def _csv_rows() -> dict[int, dict[str, str]]:
    """``characterdata.csv`` rows by ``CharacterIndex`` (the internal character id)."""
    with CHARACTERDATA_CSV.open(newline="") as handle:
        return {int(row["CharacterIndex"]): row for row in csv.DictReader(handle)}


@functools.cache
def character_data(character: Character) -> CharacterData:
    """The movement attributes of one of ``SIM_CHARACTERS`` (see ``CharacterData``)."""
    character_slot(character)
    row = _csv_rows()[character.value]
    jump, short_hop, dash, run, dash_frames, jumpsquat, weight = _APPROXIMATE_ATTRIBUTES[character]
    double_jump = float(row["InitDJSpeed"]) or jump
    return CharacterData(
        jumps=int(row["Jumps"]),
        friction=float(row["Friction"]),
        size=float(row["size"]),
        gravity=float(row["Gravity"]),
        terminal_velocity=float(row["TerminalVelocity"]),
        fast_fall_speed=float(row["FastFallSpeed"]),
        max_walk_speed=float(row["MaxWalkSpeed"]),
        air_speed=float(row["AirSpeed"]),
        air_friction=float(row["AirFriction"]),
        air_mobility=float(row["AirMobility"]),
        double_jump_speed=double_jump,
        double_jump_x=float(row["InitDJSpeed_x"]),
        jump_speed=jump,
        short_hop_speed=short_hop,
        dash_speed=dash,
        run_speed=run,
        dash_frames=dash_frames,
        jumpsquat=jumpsquat,
        weight=weight,
    )


@functools.cache
def _all_attacks() -> dict[tuple[Character, Action], AttackData]:
    return load_attacks(SIM_CHARACTERS)


def attack_data(character: Character, attack: Action) -> AttackData:
    """One simulated character's simulated attack (see ``melee_attacks.AttackData``)."""
    character_slot(character)
    attack_slot(attack)
    return _all_attacks()[(character, attack)]


@dataclass(frozen=True)
class SimTables:
    """Everything above as read-only numpy arrays, built once by ``sim_tables()``.

    Shapes: C = len(SIM_CHARACTERS), A = len(ATTACKS), F = ``max_frames`` (the longest
    attack; index f is frame f + 1), S = len(SIM_STAGES). Unavailable attacks and frames past
    an attack's end are zeros / False.
    """

    characters: tuple[Character, ...]
    """``SIM_CHARACTERS``: the character of each slot."""
    attacks: tuple[Action, ...]
    """``ATTACKS``: the attack of each attack index."""
    stages: tuple[Stage, ...]
    """``SIM_STAGES``: the stage of each stage slot."""
    max_frames: int
    """F: the longest attack's animation length, frames."""
    character: CharacterArrays
    """(C,) float32 per ``CharacterData`` field."""
    attack_frames: np.ndarray
    """(C, A) int16: animation length, frames."""
    attack_iasa: np.ndarray
    """(C, A) int16: first interruptible frame, 0 = none."""
    attack_available: np.ndarray
    """(C, A) bool: libmelee's table has the attack."""
    attack_action_state: np.ndarray
    """(C, A) int16: the action state a replay shows (``AttackData.action_state``)."""
    landing_lag: np.ndarray
    """(C, A) int16: aerial landing lag, frames (approximation); 0 for ground attacks."""
    l_cancel_lag: np.ndarray
    """(C, A) int16: aerial landing lag after a successful L-cancel; 0 for ground attacks."""
    damage: np.ndarray
    """(C, A) float32: percent (approximation)."""
    base_knockback: np.ndarray
    """(C, A) float32 (approximation)."""
    knockback_growth: np.ndarray
    """(C, A) float32 (approximation)."""
    angle: np.ndarray
    """(C, A) float32: launch angle, degrees above the horizontal away from the attacker."""
    hit_active: np.ndarray
    """(C, A, F) bool: a hitbox is out on frame f + 1."""
    hit_x: np.ndarray
    """(C, A, F) float32: forward offset of the largest active hitbox, units (0 if none)."""
    hit_y: np.ndarray
    """(C, A, F) float32: upward offset of the largest active hitbox, units (0 if none)."""
    hit_radius: np.ndarray
    """(C, A, F) float32: radius of the largest active hitbox, units (0 if none)."""
    blast_left: np.ndarray
    """(S,) float32 blast zones, units; likewise ``blast_right``, ``blast_top``, ..."""
    blast_right: np.ndarray
    blast_top: np.ndarray
    blast_bottom: np.ndarray
    edge_x: np.ndarray
    """(S,) float32: where the main floor ends (the left end is -edge_x)."""
    ledge_x: np.ndarray
    """(S,) float32: x of a player hanging from the ledge (left: -ledge_x)."""
    platforms: np.ndarray
    """(S, 3, 3) float32: rows top, left, right platform; columns height, left x, right x;
    NaN where the stage has no such platform. Fountain of Dreams' moving side platforms are
    at their approximate rest position; Yoshi's Story's Randall is not included."""
    stage_external_id: np.ndarray
    """(S,) int16: the stage id Slippi replays carry."""


def _frozen(values: object, dtype: type) -> np.ndarray:
    array = np.asarray(values, dtype=dtype)
    array.flags.writeable = False
    return array


def _character_arrays() -> CharacterArrays:
    datas = [character_data(character) for character in SIM_CHARACTERS]
    return CharacterArrays(
        **{
            field.name: _frozen([getattr(data, field.name) for data in datas], np.float32)
            for field in fields(CharacterData)
        }
    )


def _attack_arrays() -> dict[str, np.ndarray]:
    """The (C, A) and (C, A, F) fields of ``SimTables``."""
    grid = [[attack_data(c, a) for a in ATTACKS] for c in SIM_CHARACTERS]
    max_frames = max(data.frames for row in grid for data in row)
    per_frame = {
        name: np.zeros((len(SIM_CHARACTERS), len(ATTACKS), max_frames), np.float32)
        for name in ("hit_x", "hit_y", "hit_radius")
    }
    active = np.zeros((len(SIM_CHARACTERS), len(ATTACKS), max_frames), bool)
    for c, row in enumerate(grid):
        for a, data in enumerate(row):
            active[c, a, : data.frames] = data.active
            for name, values in per_frame.items():
                values[c, a, : data.frames] = getattr(data, name)

    def table(attribute: str, dtype: type) -> np.ndarray:
        return _frozen([[getattr(data, attribute) for data in row] for row in grid], dtype)

    return {
        "attack_frames": table("frames", np.int16),
        "attack_iasa": table("iasa", np.int16),
        "attack_available": table("available", bool),
        "attack_action_state": table("action_state", np.int16),
        "landing_lag": table("landing_lag", np.int16),
        "l_cancel_lag": table("l_cancel_lag", np.int16),
        "damage": table("damage", np.float32),
        "base_knockback": table("base_knockback", np.float32),
        "knockback_growth": table("knockback_growth", np.float32),
        "angle": table("angle", np.float32),
        "hit_active": _frozen(active, bool),
        **{name: _frozen(values, np.float32) for name, values in per_frame.items()},
    }


def _stage_arrays() -> dict[str, np.ndarray]:
    """The (S, ...) fields of ``SimTables``."""
    datas = [stage_data(stage) for stage in SIM_STAGES]
    nan_platform = (np.nan, np.nan, np.nan)
    platforms = [
        [
            platform or nan_platform
            for platform in (d.top_platform, d.left_platform, d.right_platform)
        ]
        for d in datas
    ]
    per_stage = ("blast_left", "blast_right", "blast_top", "blast_bottom", "edge_x", "ledge_x")
    return {
        **{name: _frozen([getattr(d, name) for d in datas], np.float32) for name in per_stage},
        "platforms": _frozen(platforms, np.float32),
        "stage_external_id": _frozen([d.external_id for d in datas], np.int16),
    }


@functools.cache
def sim_tables() -> SimTables:
    """The packed tables (built on first call, then shared: the arrays are read-only)."""
    attack_arrays = _attack_arrays()
    return SimTables(
        characters=SIM_CHARACTERS,
        attacks=ATTACKS,
        stages=SIM_STAGES,
        max_frames=int(attack_arrays["hit_active"].shape[-1]),
        character=_character_arrays(),
        **attack_arrays,
        **_stage_arrays(),
    )
