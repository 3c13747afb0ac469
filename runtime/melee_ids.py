"""Explicit Melee id tables shared by the pipeline and the runtime.

Slippi (and peppi) report *external* character ids (the character-select order) in the game
start block and *internal* ids (the engine's) in every post-frame update; libmelee speaks
internal ids through ``melee.enums.Character``. Stages are external ids in Slippi and libmelee
has its own small ``Stage`` enum. Earlier imitation projects mixed these up, so every mapping
here is a literal table, checked against libmelee in the tests, never derived at run time.
"""

from __future__ import annotations

# External character id -> name (Slippi's character-select order).
EXTERNAL_CHARACTER_NAMES: dict[int, str] = {
    0: "FALCON",
    1: "DK",
    2: "FOX",
    3: "GAMEANDWATCH",
    4: "KIRBY",
    5: "BOWSER",
    6: "LINK",
    7: "LUIGI",
    8: "MARIO",
    9: "MARTH",
    10: "MEWTWO",
    11: "NESS",
    12: "PEACH",
    13: "PIKACHU",
    14: "ICECLIMBERS",
    15: "JIGGLYPUFF",
    16: "SAMUS",
    17: "YOSHI",
    18: "ZELDA",
    19: "SHEIK",
    20: "FALCO",
    21: "YLINK",
    22: "DOC",
    23: "ROY",
    24: "PICHU",
    25: "GANONDORF",
    26: "MASTERHAND",
    27: "WIREFRAME_MALE",
    28: "WIREFRAME_FEMALE",
    29: "GIGA_BOWSER",
    30: "CRAZYHAND",
    31: "SANDBAG",
    32: "POPO",
}

# Internal character id (post-frame `character`, libmelee's Character value) -> name.
INTERNAL_CHARACTER_NAMES: dict[int, str] = {
    0: "MARIO",
    1: "FOX",
    2: "FALCON",
    3: "DK",
    4: "KIRBY",
    5: "BOWSER",
    6: "LINK",
    7: "SHEIK",
    8: "NESS",
    9: "PEACH",
    10: "POPO",
    11: "NANA",
    12: "PIKACHU",
    13: "SAMUS",
    14: "YOSHI",
    15: "JIGGLYPUFF",
    16: "MEWTWO",
    17: "LUIGI",
    18: "MARTH",
    19: "ZELDA",
    20: "YLINK",
    21: "DOC",
    22: "FALCO",
    23: "PICHU",
    24: "GAMEANDWATCH",
    25: "GANONDORF",
    26: "ROY",
    27: "MASTERHAND",
    28: "CRAZYHAND",
    29: "WIREFRAME_MALE",
    30: "WIREFRAME_FEMALE",
    31: "GIGA_BOWSER",
    32: "SANDBAG",
}

# External -> internal character id. Ice Climbers start as Popo (the leader).
EXTERNAL_TO_INTERNAL_CHARACTER: dict[int, int] = {
    0: 2,
    1: 3,
    2: 1,
    3: 24,
    4: 4,
    5: 5,
    6: 6,
    7: 17,
    8: 0,
    9: 18,
    10: 16,
    11: 8,
    12: 9,
    13: 12,
    14: 10,
    15: 15,
    16: 13,
    17: 14,
    18: 19,
    19: 7,
    20: 22,
    21: 20,
    22: 21,
    23: 26,
    24: 23,
    25: 25,
    26: 27,
    27: 29,
    28: 30,
    29: 31,
    30: 28,
    31: 32,
    32: 10,
}

# External stage id (Slippi game start) -> name.
STAGE_NAMES: dict[int, str] = {
    2: "FOUNTAIN_OF_DREAMS",
    3: "POKEMON_STADIUM",
    4: "PEACHS_CASTLE",
    5: "KONGO_JUNGLE",
    6: "BRINSTAR",
    7: "CORNERIA",
    8: "YOSHIS_STORY",
    9: "ONETT",
    10: "MUTE_CITY",
    11: "RAINBOW_CRUISE",
    12: "JUNGLE_JAPES",
    13: "GREAT_BAY",
    14: "HYRULE_TEMPLE",
    15: "BRINSTAR_DEPTHS",
    16: "YOSHIS_ISLAND",
    17: "GREEN_GREENS",
    18: "FOURSIDE",
    19: "MUSHROOM_KINGDOM",
    20: "MUSHROOM_KINGDOM_2",
    22: "VENOM",
    23: "POKE_FLOATS",
    24: "BIG_BLUE",
    25: "ICICLE_MOUNTAIN",
    26: "ICETOP",
    27: "FLAT_ZONE",
    28: "DREAMLAND",
    29: "YOSHIS_ISLAND_N64",
    30: "KONGO_JUNGLE_N64",
    31: "BATTLEFIELD",
    32: "FINAL_DESTINATION",
    84: "HOME_RUN_CONTEST",
}


def external_character_name(character_id: int) -> str:
    """Name of an external character id, ``UNKNOWN_<id>`` for ids outside the table."""
    return EXTERNAL_CHARACTER_NAMES.get(character_id, f"UNKNOWN_{character_id}")


def stage_name(stage_id: int) -> str:
    """Name of an external stage id, ``UNKNOWN_<id>`` for ids outside the table."""
    return STAGE_NAMES.get(stage_id, f"UNKNOWN_{stage_id}")
