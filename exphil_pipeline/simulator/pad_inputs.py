"""One frame of controller input for every player of N games, as the engine reads it.

The environments receive actions as the controller spec's classes (``runtime.controller_spec``)
and the scripted players produce these arrays directly; both meet here. Sticks are in [-1, 1]
(right and up positive), the analog shoulder in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runtime.controller_spec import CONTROLLER_SPEC

_HEAD = {name: index for index, name in enumerate(CONTROLLER_SPEC.heads)}
_STICK_SCALE = CONTROLLER_SPEC.stick_buckets - 1
_SHOULDER_SCALE = CONTROLLER_SPEC.shoulder_buckets - 1
SHOULDER_SHIELDS = 0.3
"""An analog press past this raises the shield, as a light press does in Melee."""


@dataclass
class PadInputs:
    """``[N, 2]`` arrays: sticks in [-1, 1], buttons as booleans, shoulder in [0, 1]."""

    stick_x: np.ndarray
    stick_y: np.ndarray
    cstick_x: np.ndarray
    cstick_y: np.ndarray
    a: np.ndarray
    b: np.ndarray
    jump: np.ndarray  # X or Y
    z: np.ndarray
    shield: np.ndarray  # L, R or the analog shoulder past SHOULDER_SHIELDS
    shoulder: np.ndarray

    @classmethod
    def neutral(cls, games: int) -> PadInputs:
        zeros = np.zeros((games, 2), dtype=np.float32)
        off = np.zeros((games, 2), dtype=np.bool_)
        return cls(
            zeros,
            zeros.copy(),
            zeros.copy(),
            zeros.copy(),
            off,
            off.copy(),
            off.copy(),
            off.copy(),
            off.copy(),
            zeros.copy(),
        )

    @classmethod
    def from_classes(cls, classes: np.ndarray) -> PadInputs:
        """Inputs of controller-spec classes ``int[N, 2, heads]``."""
        c = np.asarray(classes)

        def stick(head: str) -> np.ndarray:
            return (c[..., _HEAD[head]].astype(np.float32) / _STICK_SCALE) * 2 - 1

        shoulder = c[..., _HEAD["shoulder"]].astype(np.float32) / _SHOULDER_SCALE
        pressed = {name: c[..., _HEAD[name]] > 0 for name in CONTROLLER_SPEC.buttons}
        return cls(
            stick_x=stick("main_x"),
            stick_y=stick("main_y"),
            cstick_x=stick("c_x"),
            cstick_y=stick("c_y"),
            a=pressed["A"],
            b=pressed["B"],
            jump=pressed["X"] | pressed["Y"],
            z=pressed["Z"],
            shield=pressed["L"] | pressed["R"] | (shoulder > SHOULDER_SHIELDS),
            shoulder=shoulder,
        )

    def to_classes(self) -> np.ndarray:
        """The controller-spec classes ``uint8[N, 2, heads]`` of these inputs (jump as X,
        shield as R)."""
        n = self.stick_x.shape[0]
        out = np.zeros((n, 2, CONTROLLER_SPEC.num_heads), dtype=np.uint8)

        def bucket(values: np.ndarray) -> np.ndarray:
            return np.clip(np.rint((values + 1) / 2 * _STICK_SCALE), 0, _STICK_SCALE)

        out[..., _HEAD["A"]] = self.a
        out[..., _HEAD["B"]] = self.b
        out[..., _HEAD["X"]] = self.jump
        out[..., _HEAD["Z"]] = self.z
        out[..., _HEAD["R"]] = self.shield
        out[..., _HEAD["main_x"]] = bucket(self.stick_x)
        out[..., _HEAD["main_y"]] = bucket(self.stick_y)
        out[..., _HEAD["c_x"]] = bucket(self.cstick_x)
        out[..., _HEAD["c_y"]] = bucket(self.cstick_y)
        out[..., _HEAD["shoulder"]] = np.clip(np.rint(self.shoulder * _SHOULDER_SCALE), 0, 4)
        return out
