"""The controller spec: how a GameCube controller state becomes policy targets and back.

A policy predicts 13 classes per frame, in this order (``CONTROLLER_SPEC.heads``):

| head     | classes | meaning                              | sent through libmelee         |
|----------|---------|--------------------------------------|-------------------------------|
| A … D_UP | 2 each  | 8 physical buttons, pressed or not   | press_button / release_button |
| main_x/y | 17 each | main stick axis, libmelee's [0, 1]   | tilt_analog(MAIN, c / 16, …)  |
| c_x/c_y  | 17 each | C stick axis, libmelee's [0, 1]      | tilt_analog(C, c / 16, …)     |
| shoulder | 5       | processed analog trigger, [0, 1]     | press_shoulder(L, c / 4)      |

Stick values use libmelee's convention (0 = full left/down, 0.5 = neutral, 1 = full
right/up). Slippi stores processed sticks in [-1, 1]; :func:`stick_to_unit` converts with the
same float32 arithmetic libmelee's console applies, so a stick read from Parquet and the same
stick read through libmelee land in the same bucket. Bucket ``c`` covers values that round to
``c / (n - 1)``; decoding returns exactly that centre, so ``encode(decode(c)) == c``.

Buttons are the *physical* bitmask (what the player pressed, before Melee merges X/Y into
jump and L/R into shield), because that is what a bot presses through a controller.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from melee.enums import Button

# Physical button bits in Slippi's pre-frame update (the same bits libmelee parses).
BUTTON_BITS: dict[str, int] = {
    "A": 0x0100,
    "B": 0x0200,
    "X": 0x0400,
    "Y": 0x0800,
    "Z": 0x0010,
    "L": 0x0040,
    "R": 0x0020,
    "D_UP": 0x0008,
}

_LIBMELEE_BUTTONS: dict[str, Button] = {name: Button[f"BUTTON_{name}"] for name in BUTTON_BITS}


@dataclass(frozen=True)
class ControllerSpec:
    """Discretization of a controller. Frozen: artifacts record it and must match it."""

    version: int = 1
    buttons: tuple[str, ...] = tuple(BUTTON_BITS)
    stick_buckets: int = 17
    shoulder_buckets: int = 5

    @property
    def axes(self) -> tuple[str, ...]:
        return ("main_x", "main_y", "c_x", "c_y")

    @property
    def mirrored_heads(self) -> tuple[str, ...]:
        """The heads whose class reflects (c -> classes - 1 - c) when the game is mirrored
        left/right: the two sticks' x axes."""
        return ("main_x", "c_x")

    @property
    def heads(self) -> tuple[str, ...]:
        """Target column names, in the order of the uint8 target vector."""
        return (*self.buttons, *self.axes, "shoulder")

    @property
    def head_classes(self) -> tuple[int, ...]:
        """Number of classes per head, aligned with :attr:`heads`."""
        return (
            *(2 for _ in self.buttons),
            *(self.stick_buckets for _ in self.axes),
            self.shoulder_buckets,
        )

    @property
    def num_heads(self) -> int:
        return len(self.heads)

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "heads": list(self.heads), "head_classes": list(self.head_classes)}

    @property
    def content_hash(self) -> str:
        """SHA-256 of the definition; changes whenever any class boundary would."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    # -- encode ---------------------------------------------------------------------------

    def encode_batch(
        self,
        buttons_physical: np.ndarray,
        main_x: np.ndarray,
        main_y: np.ndarray,
        c_x: np.ndarray,
        c_y: np.ndarray,
        shoulder: np.ndarray,
    ) -> np.ndarray:
        """Classes ``uint8[N, num_heads]`` from raw controller columns.

        Sticks are in libmelee's [0, 1] scale (see :func:`stick_to_unit`), ``shoulder`` is the
        processed trigger in [0, 1], ``buttons_physical`` the physical bitmask.
        """
        bits = np.asarray(buttons_physical).astype(np.uint32, copy=False)
        out = np.empty((len(bits), self.num_heads), dtype=np.uint8)
        for column, name in enumerate(self.buttons):
            out[:, column] = (bits & BUTTON_BITS[name]) != 0
        analog = np.stack([main_x, main_y, c_x, c_y, shoulder], axis=1)
        out[:, len(self.buttons) :] = _bucket(analog, np.asarray(self.head_classes[-5:]))
        return out

    # -- decode ---------------------------------------------------------------------------

    def decode(self, classes: np.ndarray) -> ControllerAction:
        """The controller values to send for one frame's classes ``[num_heads]``."""
        values = np.asarray(classes, dtype=np.int64)
        if values.shape != (self.num_heads,):
            raise ValueError(f"expected {self.num_heads} classes, got shape {values.shape}")
        limits = np.asarray(self.head_classes)
        if (values < 0).any() or (values >= limits).any():
            raise ValueError(f"class out of range: {values.tolist()} (limits {limits.tolist()})")
        n_buttons = len(self.buttons)
        stick_scale = self.stick_buckets - 1
        axes = [float(c) / stick_scale for c in values[n_buttons : n_buttons + 4]]
        return ControllerAction(
            buttons=tuple(bool(c) for c in values[:n_buttons]),
            main_stick=(axes[0], axes[1]),
            c_stick=(axes[2], axes[3]),
            shoulder=float(values[-1]) / (self.shoulder_buckets - 1),
        )

    def encode_action(self, action: ControllerAction) -> np.ndarray:
        """Inverse of :meth:`decode` (``encode_action(decode(c)) == c``)."""
        bits = sum(
            BUTTON_BITS[name]
            for name, pressed in zip(self.buttons, action.buttons, strict=True)
            if pressed
        )
        row = self.encode_batch(
            np.array([bits]),
            np.array([action.main_stick[0]], dtype=np.float32),
            np.array([action.main_stick[1]], dtype=np.float32),
            np.array([action.c_stick[0]], dtype=np.float32),
            np.array([action.c_stick[1]], dtype=np.float32),
            np.array([action.shoulder], dtype=np.float32),
        )
        return row[0]

    def encode_controller_state(self, state: object) -> np.ndarray:
        """Classes of a libmelee ``ControllerState`` (physical buttons, processed sticks)."""
        return self.encode_controller_states([state])[0]

    def encode_controller_states(self, states: Sequence[object]) -> np.ndarray:
        """Classes ``uint8[N, num_heads]`` of libmelee ``ControllerState``s, one row each.

        One :meth:`encode_batch` for all of them: per state, its numpy set-up costs more than
        the encoding itself (a replay's worth of frames one at a time took seconds).
        """
        buttons = [(_LIBMELEE_BUTTONS[name], BUTTON_BITS[name]) for name in self.buttons]
        bits = [sum(bit for key, bit in buttons if state.button[key]) for state in states]
        analog = np.array(
            [(*state.main_stick, *state.c_stick, state.l_shoulder) for state in states],
            dtype=np.float32,
        ).reshape(-1, 5)
        return self.encode_batch(np.array(bits, dtype=np.uint32), *analog.T)

    def neutral(self) -> np.ndarray:
        """Classes of an untouched controller: no buttons, sticks centred, no trigger."""
        return self.encode_action(NEUTRAL_ACTION)


@dataclass(frozen=True)
class ControllerAction:
    """Decoded values for one frame, in the units libmelee's ``Controller`` takes."""

    buttons: tuple[bool, ...]
    main_stick: tuple[float, float]
    c_stick: tuple[float, float]
    shoulder: float


NEUTRAL_ACTION = ControllerAction(
    buttons=(False,) * len(BUTTON_BITS),
    main_stick=(0.5, 0.5),
    c_stick=(0.5, 0.5),
    shoulder=0.0,
)


def stick_to_unit(values: np.ndarray) -> np.ndarray:
    """Slippi's processed stick [-1, 1] to libmelee's [0, 1], in libmelee's float32 arithmetic."""
    return np.asarray(values, dtype=np.float32) / np.float32(2) + np.float32(0.5)


def _bucket(values: np.ndarray, buckets: np.ndarray) -> np.ndarray:
    """Nearest bucket centre ``c / (buckets - 1)``; ties round up; NaN counts as 0.

    ``buckets`` broadcasts against ``values`` (one count per column of a ``[N, 5]`` block).
    """
    limit = (np.asarray(buckets) - 1).astype(np.float32)
    scaled = np.asarray(values, dtype=np.float32) * limit
    classes = np.floor(np.nan_to_num(scaled) + np.float32(0.5))
    return np.clip(classes, 0, limit).astype(np.uint8)


CONTROLLER_SPEC = ControllerSpec()
