"""The embedding spec: one definition of the policy's input vector, with two entry points.

``embed_batch`` embeds whole games from the ``frames`` Parquet columns (the pipeline);
``embed_gamestate`` embeds one libmelee ``GameState`` (the runtime). Every feature below is
declared once, with its Parquet extractor and its libmelee extractor side by side, and both
paths finish through the same float32 scale-and-clip step, so a frame read either way gives
the same bits (``exphil parity`` proves it on real replays).

The vector is ego-centric and compact: float32 ``[D]`` where categorical features hold exact
integer ids (the network expands them in its first layer). Layout, in order:

1. four character slots: ``self``, ``self_nana``, ``opponent``, ``opponent_nana``
   (each ``exists`` + the player features; zeros when the slot is empty);
2. ``stage`` and the opponent's position relative to the target;
3. stage geometry around the target and around the opponent (``self_*``, ``opponent_*``);
4. the ``ITEM_SLOTS`` items nearest to the target (type, position, owner, velocity, state,
   timer, position relative to its owner);
5. the frame delay the policy plays at, then the target's previous controller input in the
   controller spec's classes.

One table, every column of the vector (Slippi field / libmelee attribute it comes from):

| feature            | kind  | scale | clip / ids | source (Slippi / libmelee)                   |
|--------------------|-------|-------|------------|----------------------------------------------|
| {slot}_exists      | 0/1   | 1     | [0, 1]     | slot has data this frame / player or .nana   |
| {slot}_x, _y       | float | 0.01  | [-5, 5]    | position / position.x, .y                    |
| {slot}_percent     | float | 0.01  | [0, 10]    | percent / percent                            |
| {slot}_shield      | float | 1/60  | [0, 1]     | shield / shield_strength                     |
| {slot}_stocks      | float | 0.25  | [0, 4]     | stocks / stock                               |
| {slot}_facing      | ±1    | 1     | [-1, 1]    | direction > 0 / facing                       |
| {slot}_on_ground   | 0/1   | 1     | [0, 1]     | not airborne [a] / on_ground                 |
| {slot}_invulnerable| 0/1   | 1     | [0, 1]     | hurtbox state != 0 [a] / invulnerable        |
| {slot}_action_frame| float | 1/32  | [-1, 8]    | trunc(state age) [b] / action_frame          |
| {slot}_hitlag      | float | 1/16  | [0, 4]     | trunc(hitlag) [c] / hitlag_left              |
| {slot}_hitstun     | float | 1/64  | [-1, 4]    | trunc(misc AS) [c] / hitstun_frames_left     |
| {slot}_vel_*  (5)  | float | 0.25  | [-10, 10]  | velocities [d] / speed_* [d]                 |
| {slot}_jumps_left  | id    | 1     | 0..7       | jumps [a] / jumps_left                       |
| {slot}_action_state| id    | 1     | 0..399     | action state, clamped / action.value         |
| {slot}_character   | id    | 1     | 0..33      | internal id [e] / character.value            |
| {slot}_special     | id    | 1     | 0..G-1     | special-move group of (character, action) [g]|
| {slot}_charge      | float | 1     | [0, 1]     | action frame / frames to full charge [g]     |
| stage              | id    | 1     | 0..6       | index in STAGES [f] / stage.name             |
| opponent_dx, _dy   | float | 0.05  | [-5, 5]    | opponent position minus target position      |
| {p}_edge_distance  | float | 0.01  | [-5, 5]    | abs(x) minus the main floor's half width [h] |
| {p}_over_stage     | 0/1   | 1     | [0, 1]     | abs(x) <= the main floor's half width [h]    |
| {p}_blast_side     | float | 0.01  | [-1, 5]    | x to the nearer side blast zone [h]          |
| {p}_blast_top      | float | 0.01  | [-1, 5]    | top blast zone minus y [h]                   |
| {p}_blast_bottom   | float | 0.01  | [-1, 5]    | y minus bottom blast zone [h]                |
| {p}_platform_below | 0/1   | 1     | [0, 1]     | a platform spans x at or below y [h]         |
| {p}_platform_dy    | float | 0.02  | [0, 5]     | y minus that platform's height [h]           |
| {p}_platform_height| float | 0.02  | [-1, 5]    | that platform's height (Randall: below 0) [h]|
| item{k}_type       | id    | 1     | 0..255     | 0 empty, else item type + 1 (max 255)        |
| item{k}_dx, _dy    | float | 0.01  | [-5, 5]    | item position minus target position          |
| item{k}_owner      | id    | 1     | 0..2       | 1 target's, 2 opponent's, 0 otherwise        |
| item{k}_vx, _vy    | float | 0.25  | [-10, 10]  | velocity / speed                             |
| item{k}_state      | id    | 1     | 0..255     | item state / subtype (the same byte)         |
| item{k}_timer      | float | 1/64  | [-1, 8]    | trunc(timer) / expiration_frames             |
| item{k}_owner_dx,dy| float | 0.01  | [-5, 5]    | item minus its owner's position (0 unowned)  |
| frame_delay        | float | 1/16  | [0, 4]     | frames between the state and the action [i]  |
| prev_A … prev_D_UP | 0/1   | 1     | [0, 1]     | previous input's buttons (controller spec)   |
| prev_main_x … c_y  | id    | 1     | 0..16      | previous input's stick classes               |
| prev_shoulder      | id    | 1     | 0..4       | previous input's shoulder class              |

``{slot}`` is each of ``self``, ``self_nana``, ``opponent``, ``opponent_nana``; ``{p}`` is
``self`` and ``opponent``; ``k`` is 0..ITEM_SLOTS-1. Notes: [a] before Slippi 3.0 libmelee
reports on_ground 1, invulnerable 0, jumps 1; [b] +1 on the (character, action) pairs
libmelee calls zero-indexed, for leaders only (its ``actiondata.csv``, part of the hash);
[c] NaN as 0; [d] self_x_air, self_y, knockback_x, knockback_y, self_x_ground =
speed_air_x_self, speed_y_self, speed_x_attack, speed_y_attack, speed_ground_x_self, 0 before
3.5; [e] *internal* character ids (post-frame byte; ``melee.Character`` values are
internal), never the external ids of the game start;
[f] 0 for every stage libmelee does not name (external ids via ``melee_ids.STAGE_NAMES``);
[g] ``runtime.character_moves``: the named special-move group of the special action states
of Mewtwo, Mr. Game & Watch, Link, Ganondorf, Zelda and Sheik, 0 for every other state and
character; charge is the (leader-adjusted, as [b]) action frame over the frames that count as
full for the charge states that table lists, 0 elsewhere. The character column is the post-frame
character, so a Zelda who transformed reads as Sheik on that frame (same player slot);
[h] ``runtime.stage_geometry`` for the six legal stages, all zero on any other stage. The main
floor's surface is y = 0 on all six, so ``{slot}_y`` is the height above it. Platforms are
the top and side platforms, Fountain of Dreams' side platforms at their approximate resting
position (their moves, recorded only from Slippi 3.18, are not read) and Yoshi's Story's
Randall where libmelee's extrapolation puts it on that frame; a platform counts as below
from ``PLATFORM_CATCH`` units under its surface (a player standing on it is on it);
[i] the delay d of the pair (the state of frame t - d, the action of frame t): the delay a
training pair was built at (``GameColumns.frame_delay``), and in play the delay the policy
plays at, held inside the range it was trained over (``runtime.agent.delay_input``,
``embed_gamestate(frame_delay=)``); at most ``MAX_FRAME_DELAY``.
Any other NaN lands on its feature's low clip bound.

Items are ranked by squared distance to the target (float32), ties by spawn id. The
"previous input" is the last action the policy sent: in training, the target's recorded input
on the frame before the action it learns (see ``exphil_pipeline.training.examples``).

libmelee presents some Slippi fields converted (``int()`` on float counters, defaults for fields
older replays lack, +1 on the action frames of actions it calls zero-indexed); the batch path
applies the same conversions, so the spec follows what the runtime can actually see.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.resources
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from melee import stages as melee_stages
from melee.enums import Stage

from runtime.character_moves import CHARGE_FRAMES, SPECIAL_GROUP_TABLE, SPECIAL_GROUPS
from runtime.controller_spec import CONTROLLER_SPEC, ControllerSpec
from runtime.melee_ids import STAGE_NAMES
from runtime.stage_geometry import LEGAL_STAGES, stage_data

SPEC_VERSION = 3
ITEM_SLOTS = 4
RELATIVE_SCALE = 0.05
ACTION_STATE_LIMIT = 399
CHARACTER_LIMIT = 33
STAGES: tuple[str, ...] = (
    "OTHER",
    "FINAL_DESTINATION",
    "BATTLEFIELD",
    "POKEMON_STADIUM",
    "DREAMLAND",
    "FOUNTAIN_OF_DREAMS",
    "YOSHIS_STORY",
)
SLOT_NAMES: tuple[str, ...] = ("self", "self_nana", "opponent", "opponent_nana")
MIRROR_STAGES: tuple[str, ...] = ("FINAL_DESTINATION", "BATTLEFIELD")
"""Stages on which a frame may be mirrored left/right: their geometry is exactly symmetric.
Dream Land's platforms are not (by a tenth of a unit) and Whispy blows; Yoshi's Story's blast
zones and Randall, Fountain of Dreams' moving platforms and Pokémon Stadium's transformations
are asymmetric; other stages are unknown to the geometry features."""


@dataclass(frozen=True)
class SlotColumns:
    """One character slot over N frames, as stored in ``frames`` (nulls already filled).

    Field names are the ``frames`` column names; fill nulls with :data:`SLOT_NULL_FILL`.
    """

    present: np.ndarray
    character: np.ndarray
    action_state: np.ndarray
    action_frame: np.ndarray
    x: np.ndarray
    y: np.ndarray
    percent: np.ndarray
    shield: np.ndarray
    stocks: np.ndarray
    facing: np.ndarray
    airborne: np.ndarray
    jumps_left: np.ndarray
    hitlag: np.ndarray
    hitstun_misc: np.ndarray
    vel_self_x_air: np.ndarray
    vel_self_y: np.ndarray
    vel_knockback_x: np.ndarray
    vel_knockback_y: np.ndarray
    vel_self_x_ground: np.ndarray
    hurtbox_state: np.ndarray


# What libmelee reports when a replay predates a field (and harmless values for empty slots).
SLOT_NULL_FILL: dict[str, float | int | bool] = {
    "present": False,
    "character": 0,
    "action_state": 0,
    "action_frame": 0.0,
    "x": 0.0,
    "y": 0.0,
    "percent": 0.0,
    "shield": 0.0,
    "stocks": 0,
    "facing": 0,
    "airborne": False,
    "jumps_left": 1,
    "hitlag": 0.0,
    "hitstun_misc": 0.0,
    "vel_self_x_air": 0.0,
    "vel_self_y": 0.0,
    "vel_knockback_x": 0.0,
    "vel_knockback_y": 0.0,
    "vel_self_x_ground": 0.0,
    "hurtbox_state": 0,
}


@dataclass(frozen=True)
class ItemColumns:
    """Items in long format: one row per (frame, item), ``frame_index`` into the N frames."""

    frame_index: np.ndarray
    item_type: np.ndarray
    x: np.ndarray
    y: np.ndarray
    owner: np.ndarray  # port index 0-3, -1 unowned or unknown (before 3.6)
    spawn_id: np.ndarray
    vel_x: np.ndarray
    vel_y: np.ndarray
    state: np.ndarray
    timer: np.ndarray

    @classmethod
    def empty(cls) -> ItemColumns:
        return cls(*(np.zeros(0, dtype=np.float32) for _ in range(10)))


@dataclass(frozen=True)
class GameColumns:
    """Everything ``embed_batch`` needs for N frames of one (target, opponent) pairing.

    ``previous_input`` holds the controller classes of the last action sent before each
    frame's action (``uint8[N, heads]``); ``target_port``/``opponent_port`` are 1-4;
    ``frames`` the game frame ids (Randall's position follows them); ``frame_delay`` the delay
    the policy is told it plays at (0 for a policy not trained with it as input).
    """

    slots: tuple[SlotColumns, SlotColumns, SlotColumns, SlotColumns]
    external_stage: int
    items: ItemColumns
    previous_input: np.ndarray
    target_port: int
    opponent_port: int
    frames: np.ndarray
    frame_delay: int = 0


# How a column changes when the game is mirrored left/right (x -> -x): unchanged, negated, or
# an id reflected (class c -> vocab - 1 - c, the stick's x classes). See ``mirror_columns``.
KEEP, NEGATE, REFLECT = "keep", "negate", "reflect"


@dataclass(frozen=True)
class PlayerFeature:
    """One per-slot feature: its transform and its two extractors (Parquet and libmelee)."""

    name: str
    scale: float
    low: float
    high: float
    vocab: int
    batch: Callable[[SlotColumns, bool], np.ndarray] = field(repr=False, compare=False)
    live: Callable[[object], float] = field(repr=False, compare=False)
    mirror: str = KEEP


def _trunc(values: np.ndarray) -> np.ndarray:
    """libmelee's ``int(float)``: toward zero; NaN as 0 (libmelee's hitstun fallback)."""
    truncated = np.trunc(values.astype(np.float32, copy=False))
    np.copyto(truncated, np.float32(0), where=np.isnan(truncated))
    return truncated


def _continuous(
    name: str,
    scale: float,
    low: float,
    high: float,
    batch: Callable[[SlotColumns, bool], np.ndarray],
    live: Callable[[object], float],
    mirror: str = KEEP,
) -> PlayerFeature:
    return PlayerFeature(name, scale, low, high, 0, batch, live, mirror)


def _categorical(
    name: str,
    vocab: int,
    batch: Callable[[SlotColumns, bool], np.ndarray],
    live: Callable[[object], float],
) -> PlayerFeature:
    return PlayerFeature(name, 1.0, 0.0, float(vocab - 1), vocab, batch, live)


def _zero_indexed_actions() -> np.ndarray:
    """libmelee's table of (character, action) pairs whose action frame it shifts by one."""
    table = np.zeros((256, 1024), dtype=np.bool_)
    with importlib.resources.files("melee").joinpath("actiondata.csv").open() as handle:
        for row in csv.DictReader(handle):
            if row["zeroindex"] == "True":
                table[int(row["character"]), int(row["action"])] = True
    return table


ZERO_INDEXED_ACTIONS = _zero_indexed_actions()


def _action_frame(columns: SlotColumns, is_leader: bool) -> np.ndarray:
    frames = _trunc(columns.action_frame)
    if not is_leader:
        # libmelee applies its re-indexing to the players it lists, never to Nana.
        return frames
    action = np.minimum(columns.action_state.astype(np.int64), ZERO_INDEXED_ACTIONS.shape[1] - 1)
    character = columns.character.astype(np.int64) & 0xFF
    return frames + ZERO_INDEXED_ACTIONS[character, action]


_LAST_MOVE_ACTION = SPECIAL_GROUP_TABLE.shape[1] - 1
"""The last action both move tables hold; later actions read its row."""
assert CHARGE_FRAMES.shape == SPECIAL_GROUP_TABLE.shape
# The live path reads the tables as nested lists, and enum ids as ``_value_`` (a plain
# attribute; ``value`` is a property): one frame's extractors then cost a fraction of the
# numpy scalar indexing and property calls. The same numbers, so parity is untouched.
_SPECIAL_GROUP_ROWS: list[list[int]] = SPECIAL_GROUP_TABLE.tolist()
_CHARGE_ROWS: list[list[float]] = CHARGE_FRAMES.tolist()


def _action_id(player: object) -> int:
    """The id of ``player.action``: an ``Action`` member's, or that of libmelee's
    ``UnknownAnimation``, which it reports for ids it does not name (``value`` only)."""
    action = player.action
    try:
        return action._value_
    except AttributeError:
        return action.value


def _special_group(columns: SlotColumns, _: bool) -> np.ndarray:
    action = np.minimum(columns.action_state.astype(np.int64), _LAST_MOVE_ACTION)
    return SPECIAL_GROUP_TABLE[columns.character.astype(np.int64) & 0xFF, action]


def _special_group_live(player: object) -> float:
    action = min(_action_id(player), _LAST_MOVE_ACTION)
    return float(_SPECIAL_GROUP_ROWS[player.character._value_ & 0xFF][action])


def _charge(columns: SlotColumns, is_leader: bool) -> np.ndarray:
    action = np.minimum(columns.action_state.astype(np.int64), _LAST_MOVE_ACTION)
    full = CHARGE_FRAMES[columns.character.astype(np.int64) & 0xFF, action]
    frames = _action_frame(columns, is_leader)
    # The clip to [0, 1] in ``_finish`` caps a charge held past full.
    return np.divide(frames, full, out=np.zeros_like(frames), where=full > 0)


def _charge_live(player: object) -> float:
    action = min(_action_id(player), _LAST_MOVE_ACTION)
    full = float(_CHARGE_ROWS[player.character._value_ & 0xFF][action])
    # One float64 division of float32 values rounds to the float32 quotient: same bits.
    return player.action_frame / full if full > 0 else 0.0


def _velocity(column: str, attribute: str, mirror: str) -> PlayerFeature:
    return _continuous(
        column,
        0.25,
        -10,
        10,
        lambda c, _: getattr(c, column),
        lambda p: getattr(p, attribute),
        mirror,
    )


PLAYER_FEATURES: tuple[PlayerFeature, ...] = (
    _continuous("exists", 1, 0, 1, lambda c, _: c.present, lambda p: 1.0),
    _continuous("x", 0.01, -5, 5, lambda c, _: c.x, lambda p: p.position.x, NEGATE),
    _continuous("y", 0.01, -5, 5, lambda c, _: c.y, lambda p: p.position.y),
    _continuous("percent", 0.01, 0, 10, lambda c, _: c.percent, lambda p: p.percent),
    _continuous("shield", 1 / 60, 0, 1, lambda c, _: c.shield, lambda p: p.shield_strength),
    _continuous("stocks", 0.25, 0, 4, lambda c, _: c.stocks, lambda p: p.stock),
    _continuous(
        "facing",
        1,
        -1,
        1,
        lambda c, _: np.where(c.facing > 0, np.float32(1), np.float32(-1)),
        lambda p: 1.0 if p.facing else -1.0,
        NEGATE,
    ),
    _continuous("on_ground", 1, 0, 1, lambda c, _: ~c.airborne, lambda p: p.on_ground),
    _continuous(
        "invulnerable", 1, 0, 1, lambda c, _: c.hurtbox_state != 0, lambda p: p.invulnerable
    ),
    _continuous("action_frame", 1 / 32, -1, 8, _action_frame, lambda p: p.action_frame),
    _continuous("hitlag", 1 / 16, 0, 4, lambda c, _: _trunc(c.hitlag), lambda p: p.hitlag_left),
    _continuous(
        "hitstun",
        1 / 64,
        -1,
        4,
        lambda c, _: _trunc(c.hitstun_misc),
        lambda p: p.hitstun_frames_left,
    ),
    _velocity("vel_self_x_air", "speed_air_x_self", NEGATE),
    _velocity("vel_self_y", "speed_y_self", KEEP),
    _velocity("vel_knockback_x", "speed_x_attack", NEGATE),
    _velocity("vel_knockback_y", "speed_y_attack", KEEP),
    _velocity("vel_self_x_ground", "speed_ground_x_self", NEGATE),
    _categorical("jumps_left", 8, lambda c, _: c.jumps_left, lambda p: p.jumps_left),
    _categorical(
        "action_state",
        ACTION_STATE_LIMIT + 1,
        lambda c, _: c.action_state,
        _action_id,
    ),
    _categorical(
        "character", CHARACTER_LIMIT + 1, lambda c, _: c.character, lambda p: p.character._value_
    ),
    _categorical("special", len(SPECIAL_GROUPS), _special_group, _special_group_live),
    _continuous("charge", 1, 0, 1, _charge, _charge_live),
)


# -- stage geometry ------------------------------------------------------------------------------

GEOMETRY_PLAYERS: tuple[str, ...] = ("self", "opponent")
GEOMETRY_FEATURES: tuple[tuple[str, float, float, float], ...] = (
    # (name, scale, low, high); computed by ``_geometry_batch`` / ``_geometry_live``.
    ("edge_distance", 0.01, -5, 5),
    ("over_stage", 1, 0, 1),
    ("blast_side", 0.01, -1, 5),
    ("blast_top", 0.01, -1, 5),
    ("blast_bottom", 0.01, -1, 5),
    ("platform_below", 1, 0, 1),
    ("platform_dy", 0.02, 0, 5),
    ("platform_height", 0.02, -1, 5),
)
PLATFORM_CATCH = 1.0
"""How far under a platform's surface a player still counts as on or above it (units)."""


def _f32(value: float) -> float:
    """``value`` rounded to float32, kept as a Python float.

    Both paths compute each geometry feature as one subtraction of float32 values (the batch
    path in float32, the live path in float64 then stored as float32); for one +, -, * or /
    the float64 result rounds to exactly the float32 result, so the bits agree.
    """
    return float(np.float32(value))


@dataclass(frozen=True)
class StageGeometry:
    """One stage's numbers as the embedding uses them (float32 values; see note [h])."""

    edge: float
    blast_left: float
    blast_right: float
    blast_top: float
    blast_bottom: float
    platforms: tuple[tuple[float, float, float, float], ...]  # (catch y, height, left, right)
    randall: bool

    @classmethod
    def of(cls, stage: Stage) -> StageGeometry:
        data = stage_data(stage)
        return cls(
            edge=_f32(data.edge_x),
            blast_left=_f32(data.blast_left),
            blast_right=_f32(data.blast_right),
            blast_top=_f32(data.blast_top),
            blast_bottom=_f32(data.blast_bottom),
            platforms=tuple(
                (_f32(_f32(h) - PLATFORM_CATCH), _f32(h), _f32(left), _f32(right))
                for h, left, right in data.platforms
            ),
            randall=data.has_randall,
        )

    def to_list(self) -> list[object]:
        return [
            self.edge,
            self.blast_left,
            self.blast_right,
            self.blast_top,
            self.blast_bottom,
            [list(p) for p in self.platforms],
            self.randall,
        ]


def _randall_table() -> np.ndarray:
    """``float32[period, 4]``: Randall's (catch y, height, left, right) on each frame of its loop,
    from libmelee's extrapolation (the loop repeats, so frame ``f`` reads row ``f % period``)."""
    rows = []
    for frame in range(melee_stages.RANDALL_INTERVAL):
        height, left, right = (_f32(v) for v in melee_stages.randall_position(frame))
        rows.append((_f32(height - PLATFORM_CATCH), height, left, right))
    return np.array(rows, dtype=np.float32)


RANDALL = _randall_table()
STAGE_GEOMETRY: tuple[StageGeometry | None, ...] = tuple(
    StageGeometry.of(Stage[name]) if name != "OTHER" else None for name in STAGES
)
"""Per index of ``STAGES``: its geometry, None for the stages without (all features zero)."""
assert {Stage[name] for name in STAGES[1:]} == set(LEGAL_STAGES)


def _sparse(table: np.ndarray) -> list[list[float]]:
    """The nonzero entries of a lookup table as (flat index, value) pairs, for the hash."""
    flat = table.reshape(-1)
    nonzero = np.flatnonzero(flat)
    return [[int(i), float(flat[i])] for i in nonzero]


@dataclass(frozen=True)
class FeatureColumn:
    """One column of the output vector."""

    name: str
    scale: float
    low: float
    high: float
    vocab: int  # 0 for continuous features
    mirror: str = KEEP

    @property
    def is_categorical(self) -> bool:
        return self.vocab > 0


def _item_columns(slot: int) -> list[FeatureColumn]:
    prefix = f"item{slot}_"
    return [
        FeatureColumn(prefix + "type", 1, 0, 255, 256),
        FeatureColumn(prefix + "dx", 0.01, -5, 5, 0, NEGATE),
        FeatureColumn(prefix + "dy", 0.01, -5, 5, 0),
        FeatureColumn(prefix + "owner", 1, 0, 2, 3),
        FeatureColumn(prefix + "vx", 0.25, -10, 10, 0, NEGATE),
        FeatureColumn(prefix + "vy", 0.25, -10, 10, 0),
        FeatureColumn(prefix + "state", 1, 0, 255, 256),
        FeatureColumn(prefix + "timer", 1 / 64, -1, 8, 0),
        FeatureColumn(prefix + "owner_dx", 0.01, -5, 5, 0, NEGATE),
        FeatureColumn(prefix + "owner_dy", 0.01, -5, 5, 0),
    ]


ITEM_WIDTH = 10
"""Columns per item slot, in the order of ``_item_columns``."""
FRAME_DELAY_SCALE = 1 / 16
MAX_FRAME_DELAY = 64
"""The largest frame delay the ``frame_delay`` feature tells apart (online play uses ~18)."""


def _previous_input_columns(controller: ControllerSpec) -> list[FeatureColumn]:
    columns = []
    for head, classes in zip(controller.heads, controller.head_classes, strict=True):
        if classes == 2:
            columns.append(FeatureColumn(f"prev_{head}", 1, 0, 1, 0))
        else:
            mirror = REFLECT if head in controller.mirrored_heads else KEEP
            columns.append(FeatureColumn(f"prev_{head}", 1, 0, classes - 1, classes, mirror))
    return columns


@dataclass(frozen=True)
class EmbeddingSpec:
    """The versioned feature layout. ``content_hash`` changes whenever any feature does."""

    version: int = SPEC_VERSION
    item_slots: int = ITEM_SLOTS
    controller: ControllerSpec = CONTROLLER_SPEC

    @cached_property
    def columns(self) -> tuple[FeatureColumn, ...]:
        columns = [
            FeatureColumn(f"{slot}_{f.name}", f.scale, f.low, f.high, f.vocab, f.mirror)
            for slot in SLOT_NAMES
            for f in PLAYER_FEATURES
        ]
        columns.append(FeatureColumn("stage", 1, 0, len(STAGES) - 1, len(STAGES)))
        # The opponent relative to the target at a finer scale than absolute positions:
        # spacing decisions hinge on a few units of distance.
        columns.append(FeatureColumn("opponent_dx", RELATIVE_SCALE, -5, 5, 0, NEGATE))
        columns.append(FeatureColumn("opponent_dy", RELATIVE_SCALE, -5, 5, 0))
        for player in GEOMETRY_PLAYERS:
            columns.extend(
                FeatureColumn(f"{player}_{name}", scale, low, high, 0)
                for name, scale, low, high in GEOMETRY_FEATURES
            )
        for slot in range(self.item_slots):
            columns.extend(_item_columns(slot))
        delay_high = round(MAX_FRAME_DELAY * FRAME_DELAY_SCALE)
        columns.append(FeatureColumn("frame_delay", FRAME_DELAY_SCALE, 0, delay_high, 0))
        columns.extend(_previous_input_columns(self.controller))
        return tuple(columns)

    @cached_property
    def dim(self) -> int:
        return len(self.columns)

    @cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @cached_property
    def mirror_plan(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(negated column indices, reflected column indices, their vocabulary sizes)."""
        negate = [i for i, c in enumerate(self.columns) if c.mirror == NEGATE]
        reflect = [i for i, c in enumerate(self.columns) if c.mirror == REFLECT]
        vocab = [self.columns[i].vocab for i in reflect]
        return np.array(negate), np.array(reflect), np.array(vocab, dtype=np.float32)

    @property
    def categorical(self) -> tuple[tuple[int, int], ...]:
        """(column index, vocabulary size) of every id column, for the network's first layer."""
        return tuple((i, c.vocab) for i, c in enumerate(self.columns) if c.is_categorical)

    def to_dict(self) -> dict[str, object]:
        return {
            "version": self.version,
            "item_slots": self.item_slots,
            "columns": [[c.name, c.scale, c.low, c.high, c.vocab] for c in self.columns],
            "stages": list(STAGES),
            "zero_indexed_actions": np.flatnonzero(ZERO_INDEXED_ACTIONS).tolist(),
            "special_groups": list(SPECIAL_GROUPS),
            "special_group_table": _sparse(SPECIAL_GROUP_TABLE),
            "charge_frames": _sparse(CHARGE_FRAMES),
            "stage_geometry": [g and g.to_list() for g in STAGE_GEOMETRY],
            "randall": RANDALL.tolist(),
            "controller_hash": self.controller.content_hash,
        }

    @cached_property
    def content_hash(self) -> str:
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


EMBEDDING_SPEC = EmbeddingSpec()
_COLUMNS = EMBEDDING_SPEC.columns
_DIM = len(_COLUMNS)
_SCALE = np.array([c.scale for c in _COLUMNS], dtype=np.float32)
_LOW = np.array([c.low for c in _COLUMNS], dtype=np.float32)
_HIGH = np.array([c.high for c in _COLUMNS], dtype=np.float32)
_STAGE = EMBEDDING_SPEC.names.index("stage")
_RELATIVE = _STAGE + 1
_GEOMETRY_START = _RELATIVE + 2
_GEOMETRY_WIDTH = len(GEOMETRY_FEATURES)
_ITEM_START = _GEOMETRY_START + len(GEOMETRY_PLAYERS) * _GEOMETRY_WIDTH
_DELAY = _ITEM_START + ITEM_WIDTH * ITEM_SLOTS
_PREVIOUS_START = _DELAY + 1
_PACK_VALUES = struct.Struct(f"{_PREVIOUS_START}d").pack
PREVIOUS_INPUT_COLUMNS = slice(_PREVIOUS_START, _DIM)
"""Where a frame vector holds the previous input's controller classes."""
FRAME_DELAY_COLUMN = _DELAY
"""Where a frame vector holds the frame delay feature."""


def frame_delay_feature(frame_delay: int) -> np.float32:
    """The ``frame_delay`` column's value for delay ``frame_delay``, as both paths compute it."""
    raw = np.float32(frame_delay) * _SCALE[_DELAY]
    return np.fmin(np.fmax(raw, _LOW[_DELAY]), _HIGH[_DELAY])


assert EMBEDDING_SPEC.names[_ITEM_START] == "item0_type"
assert EMBEDDING_SPEC.names[_DELAY] == "frame_delay"


def _finish(raw: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The one transform both paths share: scale, then clip, in float32; in place, or with
    the result written to ``out``.

    ``fmax``/``fmin`` return the non-NaN operand, so a NaN lands on the low clip bound.
    """
    np.multiply(raw, _SCALE, out=raw)
    np.fmax(raw, _LOW, out=raw)
    return np.fmin(raw, _HIGH, out=raw if out is None else out)


def stage_index(stage_name: str) -> int:
    """Index of a stage name in ``STAGES`` (0 for every stage libmelee does not name)."""
    return STAGES.index(stage_name) if stage_name in STAGES else 0


def _owner_relation(owner_port: np.ndarray, target_port: int, opponent_port: int) -> np.ndarray:
    relation = np.zeros(owner_port.shape, dtype=np.float32)
    relation[owner_port == target_port] = 1
    relation[owner_port == opponent_port] = 2
    return relation


# -- the pipeline path: whole games, vectorized ------------------------------------------------


def embed_batch(columns: GameColumns) -> np.ndarray:
    """Embed N frames at once: ``float32[N, EMBEDDING_SPEC.dim]``, no Python loop per frame."""
    n = len(columns.slots[0].present)
    # Built column by column, so stored column-major: each column is then one contiguous
    # write rather than N writes a frame vector apart; one transposing copy at the end.
    raw = np.zeros((n, _DIM), dtype=np.float32, order="F")
    block = len(PLAYER_FEATURES)
    for slot_index, slot in enumerate(columns.slots):
        is_leader = slot_index % 2 == 0
        present = slot.present.astype(np.bool_, copy=False)
        if not present.any():
            continue  # a Nana slot in a game without one: its columns stay zero
        everywhere = bool(present.all())
        for offset, feature in enumerate(PLAYER_FEATURES):
            values = feature.batch(slot, is_leader)
            column = slot_index * block + offset
            raw[:, column] = values if everywhere else np.where(present, values, np.float32(0))
    stage = stage_index(STAGE_NAMES.get(columns.external_stage, "OTHER"))
    raw[:, _STAGE] = stage
    target, opponent = columns.slots[0], columns.slots[2]
    both = target.present.astype(np.bool_) & opponent.present.astype(np.bool_)
    for offset, axis in enumerate(("x", "y")):
        difference = getattr(opponent, axis).astype(np.float32) - getattr(target, axis).astype(
            np.float32
        )
        raw[:, _RELATIVE + offset] = np.where(both, difference, np.float32(0))
    geometry = STAGE_GEOMETRY[stage]
    if geometry is not None:
        for index, slot in enumerate((target, opponent)):
            start = _GEOMETRY_START + index * _GEOMETRY_WIDTH
            values = _geometry_batch(geometry, slot, columns.frames)
            present = slot.present.astype(np.bool_, copy=False)
            raw[:, start : start + _GEOMETRY_WIDTH] = np.where(present[:, None], values, 0)
    _nearest_items_batch(raw, columns)
    raw[:, _DELAY] = columns.frame_delay
    raw[:, _PREVIOUS_START:] = columns.previous_input
    # The last step of _finish writes the frame-major result: the transpose rides on a pass
    # the transform makes anyway.
    return _finish(raw, out=np.empty((n, _DIM), dtype=np.float32))


def _geometry_batch(geometry: StageGeometry, slot: SlotColumns, frames: np.ndarray) -> np.ndarray:
    """``float32[N, len(GEOMETRY_FEATURES)]`` for one player (see ``_geometry_live``)."""
    x = slot.x.astype(np.float32, copy=False)
    y = slot.y.astype(np.float32, copy=False)
    out = np.empty((len(x), len(GEOMETRY_FEATURES)), dtype=np.float32)
    distance = np.abs(x)
    out[:, 0] = distance - np.float32(geometry.edge)
    out[:, 1] = distance <= geometry.edge
    left, right = np.float32(geometry.blast_left), np.float32(geometry.blast_right)
    out[:, 2] = np.minimum(x - left, right - x)
    out[:, 3] = np.float32(geometry.blast_top) - y
    out[:, 4] = y - np.float32(geometry.blast_bottom)
    best = np.full(len(x), -np.inf, dtype=np.float32)
    platforms = [np.asarray(p, dtype=np.float32)[:, None] for p in geometry.platforms]
    if geometry.randall:
        platforms.append(RANDALL[np.mod(frames, len(RANDALL))].T)
    for catch, height, left, right in platforms:
        below = (x >= left) & (x <= right) & (y >= catch) & (height > best)
        best = np.where(below, height, best)
    found = best > -np.inf
    out[:, 5] = found
    out[:, 6] = np.where(found, y - best, np.float32(0))
    out[:, 7] = np.where(found, best, np.float32(0))
    return out


def _nearest_items_batch(raw: np.ndarray, columns: GameColumns) -> None:
    items = columns.items
    if len(items.frame_index) == 0:
        return
    target, opponent = columns.slots[0], columns.slots[2]
    frame_index = items.frame_index.astype(np.int64)
    item_x, item_y = items.x.astype(np.float32), items.y.astype(np.float32)
    dx = item_x - target.x.astype(np.float32)[frame_index]
    dy = item_y - target.y.astype(np.float32)[frame_index]
    distance = dx * dx + dy * dy
    order = np.lexsort((items.spawn_id, distance, frame_index))
    sorted_frames = frame_index[order]
    first_of_frame = np.searchsorted(sorted_frames, sorted_frames, side="left")
    rank = np.arange(len(order)) - first_of_frame
    keep = rank < ITEM_SLOTS
    rows, chosen, slot = sorted_frames[keep], order[keep], rank[keep]
    base = _ITEM_START + ITEM_WIDTH * slot
    item_type = np.minimum(items.item_type[chosen].astype(np.float32), 254) + 1
    owner_port = items.owner[chosen].astype(np.int64) + 1
    relation = _owner_relation(owner_port, columns.target_port, columns.opponent_port)
    raw[rows, base] = item_type
    raw[rows, base + 1] = dx[chosen]
    raw[rows, base + 2] = dy[chosen]
    raw[rows, base + 3] = relation
    raw[rows, base + 4] = items.vel_x[chosen]
    raw[rows, base + 5] = items.vel_y[chosen]
    raw[rows, base + 6] = items.state[chosen]
    raw[rows, base + 7] = _trunc(items.timer[chosen])
    # An item's position relative to its owner: the target's (dx, dy) already, the opponent's
    # while the opponent is in the frame, nothing for unowned items.
    mine = relation == 1
    theirs = (relation == 2) & opponent.present.astype(np.bool_)[rows]
    opponent_x = opponent.x.astype(np.float32)[rows]
    opponent_y = opponent.y.astype(np.float32)[rows]
    raw[rows, base + 8] = np.where(
        mine, dx[chosen], np.where(theirs, item_x[chosen] - opponent_x, np.float32(0))
    )
    raw[rows, base + 9] = np.where(
        mine, dy[chosen], np.where(theirs, item_y[chosen] - opponent_y, np.float32(0))
    )


# -- the runtime path: one libmelee GameState ---------------------------------------------------


def embed_gamestate(
    gamestate: object,
    port: int,
    opponent_port: int,
    previous_input: np.ndarray,
    frame_delay: int = 0,
) -> np.ndarray:
    """Embed one libmelee ``GameState`` for the player on ``port``: ``float32[dim]``.

    ``previous_input`` is the controller classes of the last action the policy sent
    (``CONTROLLER_SPEC.neutral()`` on a game's first frame); ``frame_delay`` the delay the
    policy reads as input (``runtime.agent.delay_input``).
    """
    players = gamestate.players
    target = players.get(port)
    if target is None:
        raise KeyError(f"port {port} has no player in this frame (ports: {sorted(players)})")
    opponent = players.get(opponent_port)
    values: list[float] = []
    for player in (target, target.nana, opponent, opponent.nana if opponent else None):
        if player is None:
            values.extend([0.0] * len(PLAYER_FEATURES))
        else:
            values.extend([feature.live(player) for feature in PLAYER_FEATURES])
    stage = stage_index(gamestate.stage.name)
    values.append(float(stage))
    if opponent is None:
        values.extend((0.0, 0.0))
    else:
        # libmelee's positions are float32 values held in Python floats. Their difference in
        # float64, rounded to float32 when packed below, is the float32 difference the batch
        # path computes: rounding twice is harmless when the wider format has at least
        # 2 x 24 + 2 bits of precision (float64 has 53), and numpy scalars cost 10x the time.
        target_position, opponent_position = target.position, opponent.position
        values.append(opponent_position.x - target_position.x)
        values.append(opponent_position.y - target_position.y)
    geometry = STAGE_GEOMETRY[stage]
    for player in (target, opponent):
        if geometry is None or player is None:
            values.extend([0.0] * _GEOMETRY_WIDTH)
        else:
            values.extend(_geometry_live(geometry, player, int(gamestate.frame)))
    values.extend(_nearest_items_live(gamestate.projectiles, target, opponent, port, opponent_port))
    values.append(float(frame_delay))
    raw = np.empty(_DIM, dtype=np.float32)
    # Packed as float64 and cast by numpy: the same rounding as assigning the floats one by
    # one, in a third of the time.
    raw[:_PREVIOUS_START] = np.frombuffer(_PACK_VALUES(*values))
    raw[_PREVIOUS_START:] = previous_input
    return _finish(raw)


def _geometry_live(geometry: StageGeometry, player: object, frame: int) -> list[float]:
    """The stage geometry features of one player; the same arithmetic as ``_geometry_batch``."""
    x, y = float(player.position.x), float(player.position.y)
    distance = abs(x)
    best = None
    platforms = list(geometry.platforms)
    if geometry.randall:
        platforms.append(tuple(RANDALL[frame % len(RANDALL)].tolist()))
    for catch, height, left, right in platforms:
        if left <= x <= right and y >= catch and (best is None or height > best):
            best = height
    return [
        distance - geometry.edge,
        float(distance <= geometry.edge),
        min(x - geometry.blast_left, geometry.blast_right - x),
        geometry.blast_top - y,
        y - geometry.blast_bottom,
        float(best is not None),
        y - best if best is not None else 0.0,
        best if best is not None else 0.0,
    ]


def _nearest_items_live(
    projectiles: list, target: object, opponent: object, port: int, opponent_port: int
) -> list[float]:
    values = [0.0] * (ITEM_WIDTH * ITEM_SLOTS)
    if not projectiles:
        return values
    target_x, target_y = np.float32(target.position.x), np.float32(target.position.y)
    ranked = []
    for projectile in projectiles:
        dx = np.float32(projectile.position.x) - target_x
        dy = np.float32(projectile.position.y) - target_y
        ranked.append((dx * dx + dy * dy, int(projectile.spawn_id), dx, dy, projectile))
    ranked.sort(key=lambda entry: (entry[0], entry[1]))
    for slot, (_, _, dx, dy, projectile) in enumerate(ranked[:ITEM_SLOTS]):
        owner = projectile.owner
        relation = 1 if owner == port else 2 if owner == opponent_port else 0
        if relation == 1:
            owner_dx, owner_dy = float(dx), float(dy)
        elif relation == 2 and opponent is not None:
            owner_dx = float(projectile.position.x) - float(opponent.position.x)
            owner_dy = float(projectile.position.y) - float(opponent.position.y)
        else:
            owner_dx = owner_dy = 0.0
        values[ITEM_WIDTH * slot : ITEM_WIDTH * (slot + 1)] = [
            float(min(projectile.type.value, 254) + 1),
            float(dx),
            float(dy),
            float(relation),
            float(projectile.speed.x),
            float(projectile.speed.y),
            float(projectile.subtype),
            float(projectile.expiration_frames),
            owner_dx,
            owner_dy,
        ]
    return values
