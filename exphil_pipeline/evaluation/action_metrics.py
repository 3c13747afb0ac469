"""The imitation metrics the Melee literature reports, from a model's classes against the human's.

Every figure is read from counts (:class:`ActionCounts`) that add up: the counts of two sets of
frames summed are the counts of their union, so episodes, lanes, characters and matchups are
counted separately and merged. Definitions, over the N held-out frames counted and the heads of
``CONTROLLER_SPEC``:

- ``nll_bits_per_frame``: the sum over heads of the negative log-likelihood of the human's
  class, in nats, divided by ln 2 and averaged over frames (HAL's unit). Teacher-forced: each
  head's distribution is the one given the human's classes of the heads before it.
- ``action_accuracy``: the share of frames where every head's class is the human's.
- ``head_accuracy``: per head, the share of frames where its class is the human's.
- ``button_press_f1``: each of the 8 button heads as a binary classifier, positive = pressed.
  True positives, false positives and false negatives are pooled over buttons and frames
  (micro-average), and F1 = 2 TP / (2 TP + FP + FN). Micro, not macro: rare buttons (D_UP, Z)
  have a handful of held-out presses or none, and a macro average would be mostly their noise.
  MIMIC reports 87.7% button F1 (Fox, 17k ranked games).
- ``button_change_f1``: positive = the button's state differs from its state on the previous
  frame, as recorded (the previous input every frame vector carries, see
  ``runtime.embedding_spec``; the neutral controller before a game's first frame). The model
  predicts a change where its class differs from that recorded state. Pooled over buttons and
  frames as press F1. HAL reports 0.44-0.49. Releases are changes too, so a model that never
  presses still scores: each recorded release is a change it "predicts" by not pressing (on
  single-frame presses it scores 2/3). Read it beside press F1.
- ``main_stick_f1``: the main stick's (x, y) class pair as one class of 17 x 17 (jointly: a
  stick held diagonally is one decision, not two), F1 per class, macro-averaged over the classes
  the human or the model chose at least once (sklearn's ``f1_score(average="macro")``). MIMIC
  reports ~55% main-stick F1 for Fox.
- ``button_press_f1_per_button`` and ``button_change_f1_per_button``: the same per button.

An F1 with no positive on either side (the human never pressed the button and neither did the
model) is None, as is any figure over zero frames and the NLL of a model that gives none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime.controller_spec import CONTROLLER_SPEC
from runtime.embedding_spec import PREVIOUS_INPUT_COLUMNS

BUTTON_HEADS = [CONTROLLER_SPEC.heads.index(button) for button in CONTROLLER_SPEC.buttons]
MAIN_X = CONTROLLER_SPEC.heads.index("main_x")
MAIN_Y = CONTROLLER_SPEC.heads.index("main_y")
STICK_CLASSES = CONTROLLER_SPEC.stick_buckets**2

HEADLINE = (
    "frames",
    "nll_bits_per_frame",
    "action_accuracy",
    "button_press_f1",
    "button_change_f1",
    "main_stick_f1",
)
"""The figures the per-character and per-matchup breakdowns show."""

REPORTED = (
    "nll_bits_per_frame",
    "button_press_f1",
    "button_change_f1",
    "main_stick_f1",
    "button_press_f1_per_button",
    "button_change_f1_per_button",
)
"""The figures an evaluation reports beside its NLL in nats and its accuracies."""


def f1(tp: int, fp: int, fn: int) -> float | None:
    """2 TP / (2 TP + FP + FN); None when there is no positive on either side."""
    denominator = 2 * tp + fp + fn
    return None if denominator == 0 else float(2 * tp / denominator)


def macro_f1(confusion: np.ndarray) -> float | None:
    """Mean F1 over the classes present in ``confusion[human, model]`` (row or column)."""
    tp = np.diag(confusion).astype(np.float64)
    chosen, true = confusion.sum(axis=0), confusion.sum(axis=1)
    present = (chosen + true) > 0
    if not present.any():
        return None
    scores = 2 * tp[present] / (chosen + true)[present]
    return float(scores.mean())


def recorded_previous(features: np.ndarray) -> np.ndarray:
    """The previous input's classes ``int64[..., heads]`` that frame vectors ``[..., D]`` carry."""
    return np.rint(features[..., PREVIOUS_INPUT_COLUMNS]).astype(np.int64)


def _binary_counts(predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """``int64[columns, 3]``: TP, FP, FN of each column of two bool arrays ``[N, columns]``."""
    return np.stack(
        [
            (predicted & actual).sum(axis=0),
            (predicted & ~actual).sum(axis=0),
            (~predicted & actual).sum(axis=0),
        ],
        axis=1,
    ).astype(np.int64)


@dataclass(frozen=True)
class ActionCounts:
    """What the figures of some frames are computed from; ``+`` merges two sets of frames."""

    frames: int
    nll: np.ndarray | None
    """float64[heads]: summed NLL of the human's class in nats (None: the model gives none)."""
    correct: np.ndarray
    """int64[heads]: frames where the head's class is the human's."""
    actions: int
    """Frames where every head's class is the human's."""
    press: np.ndarray
    """int64[buttons, 3]: TP, FP, FN of pressed."""
    change: np.ndarray
    """int64[buttons, 3]: TP, FP, FN of a change from the recorded previous frame."""
    stick: np.ndarray
    """int64[17 * 17, 17 * 17]: main stick (x, y) classes, human's by row, model's by column."""

    @classmethod
    def of(
        cls,
        chosen: np.ndarray,
        human: np.ndarray,
        previous: np.ndarray,
        nll: np.ndarray | None = None,
    ) -> ActionCounts:
        """Counts of N frames: the model's classes ``chosen[N, heads]``, the human's
        ``human[N, heads]``, the recorded previous input ``previous[N, heads]`` (see
        :func:`recorded_previous`) and, if the model gives one, its ``nll[N, heads]`` in nats."""
        chosen, human, previous = (np.asarray(a, dtype=np.int64) for a in (chosen, human, previous))
        heads = CONTROLLER_SPEC.num_heads
        if not chosen.shape == human.shape == previous.shape or chosen.shape[1:] != (heads,):
            raise ValueError(
                f"chosen {chosen.shape}, human {human.shape} and previous {previous.shape} "
                f"must all be [N, {heads}]"
            )
        same = chosen == human
        buttons = BUTTON_HEADS
        stick_human = human[:, MAIN_X] * CONTROLLER_SPEC.stick_buckets + human[:, MAIN_Y]
        stick_model = chosen[:, MAIN_X] * CONTROLLER_SPEC.stick_buckets + chosen[:, MAIN_Y]
        stick = np.bincount(
            stick_human * STICK_CLASSES + stick_model, minlength=STICK_CLASSES**2
        ).reshape(STICK_CLASSES, STICK_CLASSES)
        return cls(
            frames=len(chosen),
            nll=None if nll is None else np.asarray(nll, dtype=np.float64).sum(axis=0),
            correct=same.sum(axis=0).astype(np.int64),
            actions=int(same.all(axis=1).sum()),
            press=_binary_counts(chosen[:, buttons] != 0, human[:, buttons] != 0),
            change=_binary_counts(
                chosen[:, buttons] != previous[:, buttons],
                human[:, buttons] != previous[:, buttons],
            ),
            stick=stick.astype(np.int64),
        )

    def __add__(self, other: ActionCounts) -> ActionCounts:
        if (self.nll is None) != (other.nll is None):
            raise ValueError("cannot add counts with an NLL to counts without one")
        return ActionCounts(
            frames=self.frames + other.frames,
            nll=None if self.nll is None else self.nll + other.nll,
            correct=self.correct + other.correct,
            actions=self.actions + other.actions,
            press=self.press + other.press,
            change=self.change + other.change,
            stick=self.stick + other.stick,
        )

    def figures(self) -> dict[str, Any]:
        """The metrics of the module docstring (plain floats and None, JSON-ready)."""
        frames = self.frames
        buttons = CONTROLLER_SPEC.buttons
        return {
            "frames": frames,
            "nll_bits_per_frame": (
                None
                if self.nll is None or not frames
                else float(self.nll.sum() / frames / math.log(2))
            ),
            "action_accuracy": float(self.actions / frames) if frames else None,
            "head_accuracy": {
                head: float(self.correct[i] / frames) if frames else None
                for i, head in enumerate(CONTROLLER_SPEC.heads)
            },
            "button_press_f1": f1(*self.press.sum(axis=0)),
            "button_change_f1": f1(*self.change.sum(axis=0)),
            "main_stick_f1": macro_f1(self.stick),
            "button_press_f1_per_button": {b: f1(*self.press[i]) for i, b in enumerate(buttons)},
            "button_change_f1_per_button": {b: f1(*self.change[i]) for i, b in enumerate(buttons)},
        }


def sum_counts(counts: list[ActionCounts]) -> ActionCounts:
    """The counts of every frame of ``counts`` together (none: zero frames)."""
    total = counts[0] if counts else empty_counts()
    for part in counts[1:]:
        total = total + part
    return total


def empty_counts(with_nll: bool = True) -> ActionCounts:
    """The counts of no frames."""
    none = np.zeros((0, CONTROLLER_SPEC.num_heads), dtype=np.int64)
    return ActionCounts.of(none, none, none, none.astype(np.float64) if with_nll else None)


Matchup = tuple[str, str]
"""(the target's character, the opponent's character)."""


def count_by_matchup(
    chosen: np.ndarray,
    human: np.ndarray,
    previous: np.ndarray,
    matchups: list[Matchup],
    nll: np.ndarray | None = None,
) -> dict[Matchup, ActionCounts]:
    """:meth:`ActionCounts.of` of the frames of each matchup (``matchups[i]`` is frame i's)."""
    index = {key: i for i, key in enumerate(sorted(set(matchups)))}
    codes = np.fromiter((index[m] for m in matchups), dtype=np.int64, count=len(matchups))
    return {
        key: ActionCounts.of(
            chosen[codes == i],
            human[codes == i],
            previous[codes == i],
            None if nll is None else nll[codes == i],
        )
        for key, i in index.items()
    }


def by_character(counts: dict[Matchup, ActionCounts]) -> dict[str, ActionCounts]:
    """The counts of each target character, every opponent together."""
    characters = sorted({character for character, _ in counts})
    return {c: sum_counts([v for (mine, _), v in counts.items() if mine == c]) for c in characters}


def by_opponent(counts: dict[Matchup, ActionCounts]) -> dict[str, dict[str, ActionCounts]]:
    """``counts`` nested as ``[character][opponent]``, both sorted by name."""
    nested: dict[str, dict[str, ActionCounts]] = {}
    for (character, opponent), part in sorted(counts.items()):
        nested.setdefault(character, {})[opponent] = part
    return nested


def headline(figures: dict[str, Any]) -> dict[str, Any]:
    """The :data:`HEADLINE` figures of ``figures``."""
    return {key: figures[key] for key in HEADLINE}


@dataclass(frozen=True)
class Breakdown:
    """All the figures of every frame; headline figures per character and per matchup."""

    overall: dict[str, Any]
    per_character: dict[str, dict[str, Any]]
    per_matchup: dict[str, dict[str, dict[str, Any]]]
    """``per_matchup[character][opponent]``."""

    @classmethod
    def of(cls, counts: dict[Matchup, ActionCounts]) -> Breakdown:
        return cls(
            overall=sum_counts(list(counts.values())).figures(),
            per_character={c: headline(v.figures()) for c, v in by_character(counts).items()},
            per_matchup={
                c: {o: headline(v.figures()) for o, v in opponents.items()}
                for c, opponents in by_opponent(counts).items()
            },
        )
