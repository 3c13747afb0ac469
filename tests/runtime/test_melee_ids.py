from pathlib import Path

import melee
from peppi_py import read_slippi

from runtime.melee_ids import (
    EXTERNAL_CHARACTER_NAMES,
    EXTERNAL_TO_INTERNAL_CHARACTER,
    INTERNAL_CHARACTER_NAMES,
)


def test_internal_ids_are_libmelees_character_values() -> None:
    renamed = {"CPTFALCON": "FALCON"}
    for character in melee.enums.Character:
        if character.value in INTERNAL_CHARACTER_NAMES:
            expected = renamed.get(character.name, character.name)
            assert INTERNAL_CHARACTER_NAMES[character.value] == expected


def test_every_external_id_maps_to_a_named_internal_id() -> None:
    assert set(EXTERNAL_TO_INTERNAL_CHARACTER) == set(EXTERNAL_CHARACTER_NAMES)
    assert set(EXTERNAL_TO_INTERNAL_CHARACTER.values()) <= set(INTERNAL_CHARACTER_NAMES)


def test_external_to_internal_matches_real_replays(real_replays: Path) -> None:
    """The game start's external id maps to the first post-frame's internal id, every player."""
    checked = 0
    for path in sorted(real_replays.glob("*.slp")):
        try:
            game = read_slippi(str(path))
        except BaseException:  # files peppi refuses are covered by the ingestion tests
            continue
        for player, port in zip(game.start.players, game.frames.ports, strict=True):
            first = next(c for c in port.leader.post.character.to_pylist() if c is not None)
            assert EXTERNAL_TO_INTERNAL_CHARACTER[player.character] == first, path.name
            checked += 1
    assert checked > 100
