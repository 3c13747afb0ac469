"""The ``frames`` and ``items`` table contracts, and their construction from peppi's Arrow data.

peppi returns a whole game as one Arrow struct array (frames x ports x leader/follower x
pre/post). Flattening it is pure Arrow work: no Python loop per frame.

Row layout of ``frames``: one row per (game_id, frame, port, is_follower), for every frame of
the game and every character slot that appears in it (each port's leader, plus the follower
for Ice Climbers' Nana). A slot with no data on a frame (a doubles player already eliminated,
a dead Nana) keeps its row with ``present = false`` and null state, so every game has exactly
frames x slots rows. Rows are stored sorted by (port, is_follower, frame): each column is a
time series, which is what makes the Parquet small.

Rollback frames (netplay): the replay holds every simulated copy of a frame id; we keep the
*last* copy written, which is the one the game settled on after its inputs were confirmed
(earlier copies were predictions that a rollback overwrote).

Ports are 1-4 as players and libmelee number them (peppi's P1..P4).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from exphil_pipeline.replays.slot_frames import realignment


@dataclass(frozen=True)
class Column:
    """One stored column: its name, Arrow type, where peppi has it, and what it means."""

    name: str
    type: pa.DataType
    source: tuple[str, ...]
    doc: str


# Post-frame (state after the frame's update), then pre-frame (the inputs of the frame).
STATE_COLUMNS: tuple[Column, ...] = (
    Column(
        "character", pa.uint8(), ("post", "character"), "internal character id (runtime.melee_ids)"
    ),
    Column("action_state", pa.uint16(), ("post", "state"), "action state id"),
    Column("action_frame", pa.float32(), ("post", "state_age"), "frames into the action state"),
    Column("x", pa.float32(), ("post", "position", "x"), "position x"),
    Column("y", pa.float32(), ("post", "position", "y"), "position y"),
    Column("percent", pa.float32(), ("post", "percent"), "damage percent"),
    Column("shield", pa.float32(), ("post", "shield"), "shield health (60 = full)"),
    Column("stocks", pa.uint8(), ("post", "stocks"), "stocks remaining"),
    Column("facing", pa.int8(), ("post", "direction"), "+1 facing right, -1 facing left"),
    Column("airborne", pa.bool_(), ("post", "airborne"), "in the air (3.0+)"),
    Column("ground_id", pa.uint16(), ("post", "ground"), "last ground touched (3.0+)"),
    Column("jumps_left", pa.uint8(), ("post", "jumps"), "jumps remaining (3.0+)"),
    Column("hitlag", pa.float32(), ("post", "hitlag"), "hitlag frames left (3.8+)"),
    Column(
        "hitstun_misc", pa.float32(), ("post", "misc_as"), "hitstun left while in hitstun (2.0+)"
    ),
    Column("vel_self_x_air", pa.float32(), ("post", "velocities", "self_x_air"), "(3.5+)"),
    Column("vel_self_y", pa.float32(), ("post", "velocities", "self_y"), "(3.5+)"),
    Column("vel_knockback_x", pa.float32(), ("post", "velocities", "knockback_x"), "(3.5+)"),
    Column("vel_knockback_y", pa.float32(), ("post", "velocities", "knockback_y"), "(3.5+)"),
    Column("vel_self_x_ground", pa.float32(), ("post", "velocities", "self_x_ground"), "(3.5+)"),
    Column(
        "hurtbox_state",
        pa.uint8(),
        ("post", "hurtbox_state"),
        "0 vulnerable, 1 invulnerable, 2 intangible (3.0+)",
    ),
    Column("l_cancel", pa.uint8(), ("post", "l_cancel"), "0 none, 1 success, 2 miss (3.0+)"),
    Column("last_attack_landed", pa.uint8(), ("post", "last_attack_landed"), "attack id"),
    Column("last_hit_by", pa.uint8(), ("post", "last_hit_by"), "port index that last hit"),
    Column("combo_count", pa.uint8(), ("post", "combo_count"), "combo counter"),
    Column("state_flags_1", pa.uint8(), ("post", "state_flags", "0"), "state bit flags 1 (2.0+)"),
    Column("state_flags_2", pa.uint8(), ("post", "state_flags", "1"), "state bit flags 2 (2.0+)"),
    Column("state_flags_3", pa.uint8(), ("post", "state_flags", "2"), "state bit flags 3 (2.0+)"),
    Column("state_flags_4", pa.uint8(), ("post", "state_flags", "3"), "state bit flags 4 (2.0+)"),
    Column("state_flags_5", pa.uint8(), ("post", "state_flags", "4"), "state bit flags 5 (2.0+)"),
    Column("joystick_x", pa.float32(), ("pre", "joystick", "x"), "processed main stick x [-1, 1]"),
    Column("joystick_y", pa.float32(), ("pre", "joystick", "y"), "processed main stick y [-1, 1]"),
    Column("cstick_x", pa.float32(), ("pre", "cstick", "x"), "processed C stick x [-1, 1]"),
    Column("cstick_y", pa.float32(), ("pre", "cstick", "y"), "processed C stick y [-1, 1]"),
    Column("trigger", pa.float32(), ("pre", "triggers"), "processed analog trigger [0, 1]"),
    Column("buttons", pa.uint32(), ("pre", "buttons"), "processed button bitmask"),
    Column("buttons_physical", pa.uint16(), ("pre", "buttons_physical"), "physical button bitmask"),
    Column(
        "trigger_physical_l", pa.float32(), ("pre", "triggers_physical", "l"), "physical L [0, 1]"
    ),
    Column(
        "trigger_physical_r", pa.float32(), ("pre", "triggers_physical", "r"), "physical R [0, 1]"
    ),
    Column("raw_analog_x", pa.int8(), ("pre", "raw_analog_x"), "raw main stick x (1.2+)"),
    Column("raw_analog_y", pa.int8(), ("pre", "raw_analog_y"), "raw main stick y (3.15+)"),
)

KEY_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("game_id", pa.string()),
    ("frame", pa.int32()),
    ("port", pa.uint8()),
    ("is_follower", pa.bool_()),
    ("present", pa.bool_()),
)

FRAMES_SCHEMA = pa.schema(
    [pa.field(n, t, nullable=False) for n, t in KEY_COLUMNS]
    + [pa.field(c.name, c.type) for c in STATE_COLUMNS]
)

ITEM_COLUMNS: tuple[Column, ...] = (
    Column("spawn_id", pa.uint32(), ("id",), "unique id of the item within the game"),
    Column("item_type", pa.uint16(), ("type",), "item type id"),
    Column("item_state", pa.uint8(), ("state",), "item action state"),
    Column("facing", pa.float32(), ("direction",), "direction"),
    Column("vel_x", pa.float32(), ("velocity", "x"), ""),
    Column("vel_y", pa.float32(), ("velocity", "y"), ""),
    Column("x", pa.float32(), ("position", "x"), ""),
    Column("y", pa.float32(), ("position", "y"), ""),
    Column("damage", pa.uint16(), ("damage",), "damage taken"),
    Column("timer", pa.float32(), ("timer",), "expiration timer"),
    Column("owner", pa.int8(), ("owner",), "owning port index, -1 none (3.6+)"),
)

ITEMS_SCHEMA = pa.schema(
    [
        pa.field("game_id", pa.string(), nullable=False),
        pa.field("frame", pa.int32(), nullable=False),
    ]
    + [pa.field(c.name, c.type) for c in ITEM_COLUMNS]
)


def settled_frame_order(frame_ids: np.ndarray) -> np.ndarray:
    """Indices of the last copy of each frame id, in increasing frame order."""
    reversed_ids = frame_ids[::-1]
    _, first_in_reversed = np.unique(reversed_ids, return_index=True)
    return (len(frame_ids) - 1 - first_in_reversed).astype(np.int64)


def _source_tree(columns: tuple[Column, ...]) -> dict[str, dict]:
    """The peppi field paths ``columns`` read, as a tree (an empty dict marks a leaf)."""
    tree: dict[str, dict] = {}
    for column in columns:
        node = tree
        for name in column.source:
            node = node.setdefault(name, {})
    return tree


_STATE_SOURCES = _source_tree(STATE_COLUMNS)
_ITEM_SOURCES = _source_tree(ITEM_COLUMNS)


def _children(array: pa.StructArray) -> list[pa.Array]:
    """A struct's child arrays, carrying the struct's own nulls.

    ``StructArray.flatten`` merges the parent's validity into its children, so a null slot
    (a player absent on that frame) yields null leaves rather than stale values; a struct
    without nulls has nothing to merge, and its children are taken as they are (cheaper).
    """
    if array.null_count:
        return array.flatten()
    return [array.field(i) for i in range(array.type.num_fields)]


def _leaves(
    array: pa.Array, wanted: dict[str, dict], prefix: tuple[str, ...] = ()
) -> dict[tuple[str, ...], pa.Array]:
    """The ``wanted`` leaf arrays of a nested struct by field path; the many peppi fields no
    column stores are never touched."""
    if not wanted:
        return {prefix: array}
    merged = array.flatten() if array.null_count else None  # see _children
    leaves: dict[tuple[str, ...], pa.Array] = {}
    for name, below in wanted.items():
        index = array.type.get_field_index(name)
        if index >= 0:
            child = array.field(index) if merged is None else merged[index]
            leaves.update(_leaves(child, below, (*prefix, name)))
    return leaves


def _repeated_string(value: str, length: int) -> pa.Array:
    """``value`` repeated ``length`` times, built from buffers (no Python objects per row)."""
    encoded = value.encode()
    offsets = np.arange(length + 1, dtype=np.int32) * len(encoded)
    return pa.Array.from_buffers(
        pa.string(), length, [None, pa.py_buffer(offsets), pa.py_buffer(encoded * length)]
    )


def _cast(array: pa.Array, column: Column) -> pa.Array:
    if column.name == "facing" and pa.types.is_floating(array.type):
        return pc.cast(pc.sign(array), pa.int8())
    if pa.types.is_boolean(column.type) and not pa.types.is_boolean(array.type):
        return pc.not_equal(array, 0)
    return array if array.type == column.type else pc.cast(array, column.type)


def _stored(chunks: list[pa.Array | None], column: Column, length: int) -> pa.Array:
    """One stored column, in one chunk, from its source array in each slot (None where a slot
    lacks the field; ``length`` rows per slot)."""
    present = [chunk for chunk in chunks if chunk is not None]
    if not present:
        return pa.nulls(length * len(chunks), column.type)
    filled = [pa.nulls(length, present[0].type) if c is None else c for c in chunks]
    return _cast(filled[0] if len(filled) == 1 else pa.concat_arrays(filled), column)


def _settle_order(peppi_frames: pa.StructArray) -> pa.Array | None:
    """Row order that resolves rollback copies (see module docstring); None when none exist."""
    ids = peppi_frames.field("id").to_numpy()
    if len(ids) < 2 or bool(np.all(np.diff(ids) == 1)):
        return None
    return pa.array(settled_frame_order(ids))


def _slots(ports: pa.StructArray) -> list[tuple[int, bool, pa.Array]]:
    """Every character slot of the game: (port 1-4, is_follower, its struct array)."""
    found = []
    for port_field, port_data in zip(ports.type, _children(ports), strict=True):
        port = int(port_field.name.removeprefix("P"))
        for slot_field, slot in zip(port_data.type, _children(port_data), strict=True):
            if slot_field.name in ("leader", "follower"):
                found.append((port, slot_field.name == "follower", slot))
    return found


def frames_table(
    game_id: str,
    peppi_frames: pa.StructArray,
    slot_updates: dict[tuple[int, bool], np.ndarray] | None = None,
) -> pa.Table:
    """The ``frames`` rows of one game from peppi's frame struct array.

    ``slot_updates`` (replays before Slippi 3.0) holds the frame ids each slot's updates name;
    a slot with gaps is moved back onto those frames (see
    :mod:`exphil_pipeline.replays.slot_frames`).

    Each column is built once for the whole game (slots one after another), straight from
    peppi's leaf arrays: no per-slot tables, and one chunk per column for the writer.
    """
    order = _settle_order(peppi_frames)
    frame_ids = peppi_frames.field("id")
    frame_ids = frame_ids if order is None else frame_ids.take(order)
    slots = _slots(peppi_frames.field("ports"))
    if not slots:
        return FRAMES_SCHEMA.empty_table()
    length = len(frame_ids)
    presence: list[pa.Array] = []
    slot_leaves: list[dict[tuple[str, ...], pa.Array]] = []
    for port, is_follower, slot in slots:
        updates = (slot_updates or {}).get((port, is_follower))
        rows = None if updates is None else realignment(frame_ids.to_numpy(), updates)
        if rows is not None:
            slot = slot.take(pa.array(rows, mask=rows < 0))
        # Taking rows from flat leaves is far cheaper than from the nested struct.
        leaves = _leaves(slot, _STATE_SOURCES)
        if order is not None:
            leaves = {path: leaf.take(order) for path, leaf in leaves.items()}
        presence.append(slot.is_valid() if order is None else slot.is_valid().take(order))
        slot_leaves.append(leaves)
    total = length * len(slots)
    keys = [
        _repeated_string(game_id, total),
        pa.array(np.tile(frame_ids.to_numpy(), len(slots)), pa.int32()),
        pa.array(np.repeat(np.array([p for p, _, _ in slots], dtype=np.uint8), length)),
        pa.array(np.repeat(np.array([f for _, f, _ in slots]), length)),
        pa.concat_arrays(presence),
    ]
    state = [
        _stored([leaves.get(c.source) for leaves in slot_leaves], c, length) for c in STATE_COLUMNS
    ]
    return pa.Table.from_arrays(keys + state, schema=FRAMES_SCHEMA)


def items_table(game_id: str, peppi_frames: pa.StructArray) -> pa.Table:
    """The ``items`` rows (one per item per frame) of one game; empty before Slippi 3.0."""
    if peppi_frames.type.get_field_index("item") < 0:
        return ITEMS_SCHEMA.empty_table()
    order = _settle_order(peppi_frames)
    # Reorder only the item lists and ids, not the whole nested frame struct.
    item_lists, frame_ids = peppi_frames.field("item"), peppi_frames.field("id")
    if order is not None:
        item_lists, frame_ids = item_lists.take(order), frame_ids.take(order)
    counts = pc.fill_null(pc.list_value_length(item_lists), 0).to_numpy()
    flat = item_lists.flatten()
    leaves = _leaves(flat, _ITEM_SOURCES) if len(flat) else {}
    keys = [
        _repeated_string(game_id, len(flat)),
        pa.array(np.repeat(frame_ids.to_numpy(), counts), pa.int32()),
    ]
    values = [_stored([leaves.get(c.source)], c, len(flat)) for c in ITEM_COLUMNS]
    return pa.Table.from_arrays(keys + values, schema=ITEMS_SCHEMA)
