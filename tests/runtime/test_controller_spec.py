"""The controller spec: class layout, decode/encode stability, libmelee agreement."""

from __future__ import annotations

import itertools

import melee
import numpy as np
import pytest

from runtime.controller_spec import (
    BUTTON_BITS,
    CONTROLLER_SPEC,
    NEUTRAL_ACTION,
    stick_to_unit,
)


def test_heads_match_the_contract() -> None:
    assert CONTROLLER_SPEC.heads == (
        "A", "B", "X", "Y", "Z", "L", "R", "D_UP", "main_x", "main_y", "c_x", "c_y", "shoulder"
    )  # fmt: skip
    assert CONTROLLER_SPEC.head_classes == (2,) * 8 + (17,) * 4 + (5,)


def test_decode_then_encode_returns_every_class() -> None:
    # Every class of every head, varied one head at a time around neutral.
    neutral = CONTROLLER_SPEC.neutral()
    for head, classes in enumerate(CONTROLLER_SPEC.head_classes):
        for value in range(classes):
            row = neutral.copy()
            row[head] = value
            assert np.array_equal(CONTROLLER_SPEC.encode_action(CONTROLLER_SPEC.decode(row)), row)


def test_joint_sticks_round_trip() -> None:
    neutral = CONTROLLER_SPEC.neutral()
    for x, y in itertools.product(range(17), repeat=2):
        row = neutral.copy()
        row[8:10] = (x, y)
        row[10:12] = (16 - x, y)
        assert np.array_equal(CONTROLLER_SPEC.encode_action(CONTROLLER_SPEC.decode(row)), row)


def test_neutral_is_centred_sticks_and_nothing_pressed() -> None:
    assert CONTROLLER_SPEC.decode(CONTROLLER_SPEC.neutral()) == NEUTRAL_ACTION


def test_decode_rejects_out_of_range_classes() -> None:
    row = CONTROLLER_SPEC.neutral().astype(np.int64)
    row[8] = 17
    with pytest.raises(ValueError, match="out of range"):
        CONTROLLER_SPEC.decode(row)


def test_libmelee_controller_state_encodes_like_the_columns() -> None:
    state = melee.ControllerState()
    state.button[melee.Button.BUTTON_A] = True
    state.button[melee.Button.BUTTON_L] = True
    raw_x, raw_y = np.float32(0.2875), np.float32(-1.0)
    state.main_stick = (stick_to_unit(raw_x), stick_to_unit(raw_y))
    state.c_stick = (np.float32(0.5), np.float32(0.5))
    state.l_shoulder = np.float32(0.35)
    from_state = CONTROLLER_SPEC.encode_controller_state(state)
    from_columns = CONTROLLER_SPEC.encode_batch(
        np.array([BUTTON_BITS["A"] | BUTTON_BITS["L"]]),
        stick_to_unit(np.array([raw_x])),
        stick_to_unit(np.array([raw_y])),
        np.array([0.5], np.float32),
        np.array([0.5], np.float32),
        np.array([0.35], np.float32),
    )[0]
    assert np.array_equal(from_state, from_columns)
    assert from_state.tolist() == [1, 0, 0, 0, 0, 1, 0, 0, 10, 0, 8, 8, 1]


def test_stick_to_unit_matches_libmelee_arithmetic() -> None:
    # libmelee: (np.float32 value / 2) + 0.5 on a big-endian float read from the event.
    values = np.linspace(-1, 1, 161, dtype=np.float32)
    expected = np.array([(v / 2) + 0.5 for v in values], dtype=np.float32)
    assert np.array_equal(stick_to_unit(values), expected)


def test_hash_changes_with_the_definition() -> None:
    from runtime.controller_spec import ControllerSpec

    assert ControllerSpec().content_hash == CONTROLLER_SPEC.content_hash
    assert ControllerSpec(stick_buckets=9).content_hash != CONTROLLER_SPEC.content_hash
