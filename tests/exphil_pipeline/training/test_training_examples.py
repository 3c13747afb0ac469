"""(state, action) pairing: frame delay at game starts and ends, controller round trips."""

from __future__ import annotations

import numpy as np
import pytest

from exphil_pipeline.storage.layout import DataLayout
from exphil_pipeline.training.examples import FIRST_PLAYABLE_FRAME, GameFrames
from runtime.controller_spec import CONTROLLER_SPEC
from runtime.embedding_spec import EMBEDDING_SPEC, FRAME_DELAY_COLUMN, frame_delay_feature


def _games(store) -> list[GameFrames]:
    layout = DataLayout(store.home)
    games = []
    for record in store.games:
        if record.status == "quarantined":
            continue
        name = f"{record.game_id}.parquet"
        games.append(
            GameFrames.read(
                layout.table_partition("frames", store.batch) / name,
                layout.table_partition("items", store.batch) / name,
                record.stage or 0,
            )
        )
    return games


PREVIOUS = slice(EMBEDDING_SPEC.names.index("prev_A"), EMBEDDING_SPEC.dim)


@pytest.mark.parametrize("delay", [0, 1, 18])
def test_frame_delay_pairs_state_t_minus_d_with_action_t(sample_store, delay: int) -> None:
    game = _games(sample_store)[0]
    n, first = len(game), int(game.frame_ids[0])
    classes = game.controller_classes(1)
    examples = game.examples(1, 2, delay, first_action_frame=first)
    # Every frame has both players in a generated game: N - d pairs, from start to end.
    assert len(examples) == n - delay
    assert examples.action_frames[0] == first + delay
    assert examples.action_frames[-1] == game.frame_ids[-1]
    assert np.array_equal(examples.targets, classes[delay:])
    # The state of pair i is frame i: compare with an embedding of the same rows at d = 0.
    at_zero = game.examples(1, 2, 0, first_action_frame=first)
    x = EMBEDDING_SPEC.names.index("self_x")
    assert np.array_equal(examples.features[:, x], at_zero.features[: n - delay, x])
    # Previous input of pair i = the action of frame i + d - 1 (neutral before the game).
    previous = examples.features[:, PREVIOUS]
    expected = classes[np.arange(n - delay) + delay - 1].astype(np.float32)
    if delay == 0:
        expected[0] = CONTROLLER_SPEC.neutral()
    assert np.array_equal(previous, expected)
    # The network reads the pair's delay.
    assert examples.frame_delay == delay
    assert np.all(examples.features[:, FRAME_DELAY_COLUMN] == frame_delay_feature(delay))


def test_countdown_actions_are_left_out_by_default(sample_store) -> None:
    game = _games(sample_store)[0]
    examples = game.examples(1, 2, 0)
    assert examples.action_frames[0] == FIRST_PLAYABLE_FRAME
    assert len(examples) == int(game.frame_ids[-1]) - FIRST_PLAYABLE_FRAME + 1


def test_negative_delay_is_refused(sample_store) -> None:
    with pytest.raises(ValueError, match="frame_delay"):
        _games(sample_store)[0].examples(1, 2, -1)


def test_controller_spec_round_trips_every_real_input(real_store) -> None:
    # Every pre-frame input of every player in the corpus: encode, decode, encode again.
    seen = 0
    for game in _games(real_store):
        for port in game.leader_ports:
            present = game.present(port)
            classes = game.controller_classes(port)[present]
            seen += len(classes)
            for row in np.unique(classes, axis=0):
                again = CONTROLLER_SPEC.encode_action(CONTROLLER_SPEC.decode(row))
                assert np.array_equal(again, row)
            # Decoded sticks sit within half a bucket of what the player held.
            table = game.slot_table(port)
            unit = (table.column("joystick_x").to_numpy()[present] + 1) / 2
            assert np.all(np.abs(classes[:, 8] / 16 - unit) <= 1 / 32 + 1e-6)
    assert seen > 400_000


def test_real_examples_are_finite_and_in_range(real_store) -> None:
    limits = np.asarray(CONTROLLER_SPEC.head_classes)
    for game in _games(real_store)[:20]:
        ports = game.leader_ports
        for port in ports:
            opponent = next((p for p in ports if p != port), 0)
            examples = game.examples(port, opponent, 18)
            assert np.isfinite(examples.features).all()
            assert (examples.targets < limits).all()
