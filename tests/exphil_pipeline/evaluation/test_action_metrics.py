"""The field's metrics against hand-computed counts, and counts that add up."""

from __future__ import annotations

import math

import numpy as np
import pytest

from exphil_pipeline.evaluation.action_metrics import (
    ActionCounts,
    Breakdown,
    count_by_matchup,
    f1,
    macro_f1,
    recorded_previous,
)
from runtime.controller_spec import CONTROLLER_SPEC
from runtime.embedding_spec import EMBEDDING_SPEC, PREVIOUS_INPUT_COLUMNS

HEADS = CONTROLLER_SPEC.heads


def _frames(**columns: list[int]) -> np.ndarray:
    """Four frames of neutral classes with the named heads' columns replaced."""
    out = np.tile(CONTROLLER_SPEC.neutral().astype(np.int64), (4, 1))
    for head, values in columns.items():
        out[:, HEADS.index(head)] = values
    return out


# A and B pressed or not, the main stick's x varied (y stays centred), on four frames.
HUMAN = _frames(A=[1, 1, 0, 0], B=[0, 0, 0, 1], main_x=[8, 8, 16, 0])
MODEL = _frames(A=[1, 0, 1, 0], B=[0, 0, 0, 1], main_x=[8, 16, 16, 8])
PREVIOUS = _frames(A=[0, 1, 1, 0], B=[0, 0, 0, 1])


def test_figures_match_a_hand_computed_case() -> None:
    nll = np.zeros((4, len(HEADS)))
    nll[:, 0] = np.arange(4) * math.log(2)  # 0, 1, 2, 3 bits on the four frames
    figures = ActionCounts.of(MODEL, HUMAN, PREVIOUS, nll).figures()
    assert figures["frames"] == 4
    assert figures["nll_bits_per_frame"] == pytest.approx(1.5)
    # Only frame 0 has every head right (1: A missed, 2: A extra, 3: stick x).
    assert figures["action_accuracy"] == 0.25
    # Pressed, pooled over buttons: A has TP 1 (frame 0), FN 1 (1), FP 1 (2); B has TP 1 (3).
    assert figures["button_press_f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert figures["button_press_f1_per_button"]["A"] == pytest.approx(0.5)
    assert figures["button_press_f1_per_button"]["B"] == 1.0
    assert figures["button_press_f1_per_button"]["Z"] is None
    # Changed from the recorded previous frame: the human changes A on frames 0 and 2, the
    # model on 0 and 1 (TP 1, FP 1, FN 1); B is held on frame 3 by both (no positive).
    assert figures["button_change_f1"] == pytest.approx(0.5)
    assert figures["button_change_f1_per_button"]["B"] is None
    # Stick (x, y) classes: human a a b c, model a b b a -> F1 a 2/4, b 2/3, c 0.
    assert figures["main_stick_f1"] == pytest.approx((1 / 2 + 2 / 3 + 0) / 3)
    assert figures["head_accuracy"]["A"] == 0.5 and figures["head_accuracy"]["main_x"] == 0.5


def test_f1_of_counts_and_of_a_confusion_matrix() -> None:
    assert f1(3, 1, 2) == pytest.approx(6 / 9)
    assert f1(0, 0, 0) is None and f1(0, 2, 0) == 0.0
    # Human by row, model by column; class 1 is nobody's, so it is not averaged.
    confusion = np.array([[2, 0, 1], [0, 0, 0], [1, 0, 0]])
    assert macro_f1(confusion) == pytest.approx((4 / 6 + 0) / 2)
    assert macro_f1(np.zeros((3, 3), dtype=np.int64)) is None


def test_counts_of_parts_add_up_to_the_counts_of_the_whole() -> None:
    rng = np.random.default_rng(0)
    limits = np.asarray(CONTROLLER_SPEC.head_classes)
    human, model, previous = (rng.integers(0, limits, size=(200, len(limits))) for _ in range(3))
    nll = rng.random((200, len(limits)))
    whole = ActionCounts.of(model, human, previous, nll).figures()
    parts = ActionCounts.of(model[:77], human[:77], previous[:77], nll[:77]) + ActionCounts.of(
        model[77:], human[77:], previous[77:], nll[77:]
    )
    summed = parts.figures()
    assert summed.pop("nll_bits_per_frame") == pytest.approx(whole.pop("nll_bits_per_frame"))
    assert summed == whole
    with pytest.raises(ValueError, match="without one"):
        _ = parts + ActionCounts.of(model, human, previous)


def test_breakdown_by_character_and_matchup() -> None:
    matchups = [("FOX", "FALCO"), ("FOX", "FALCO"), ("FOX", "MARTH"), ("MARTH", "FOX")]
    breakdown = Breakdown.of(count_by_matchup(MODEL, HUMAN, PREVIOUS, matchups))
    assert breakdown.overall["frames"] == 4 and breakdown.overall["nll_bits_per_frame"] is None
    assert {c: v["frames"] for c, v in breakdown.per_character.items()} == {"FOX": 3, "MARTH": 1}
    assert list(breakdown.per_matchup["FOX"]) == ["FALCO", "MARTH"]
    # FOX vs FALCO is frames 0 and 1: A pressed by both on 0, missed on 1.
    assert breakdown.per_matchup["FOX"]["FALCO"]["action_accuracy"] == 0.5
    assert breakdown.per_matchup["FOX"]["FALCO"]["button_press_f1"] == pytest.approx(2 / 3)
    assert breakdown.per_character["FOX"]["action_accuracy"] == pytest.approx(1 / 3)


def test_the_previous_input_is_read_from_the_frame_vector() -> None:
    features = np.zeros((2, EMBEDDING_SPEC.dim), dtype=np.float32)
    features[:, PREVIOUS_INPUT_COLUMNS] = PREVIOUS[:2]
    assert np.array_equal(recorded_previous(features), PREVIOUS[:2])
