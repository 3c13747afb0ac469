"""Decoded actions onto a libmelee ``Controller``, and the text protocol that produces.

Every frame re-sends the whole controller (each button, both sticks, the trigger) rather
than only what changed: Dolphin's pipe input is sticky, so one lost or misordered command would
otherwise stay wrong until that input changed again. The cost is ~11 short lines per frame.

libmelee writes one command per line to the pipe and ends each frame with ``FLUSH``:
``PRESS A`` / ``RELEASE A``, ``SET MAIN x y``, ``SET C x y``, ``SET L v`` (``x``, ``y``, ``v``
as Python ``str(float)`` after libmelee's analog fix-up), ``FLUSH``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import melee
from melee.enums import Button

from runtime.controller_spec import CONTROLLER_SPEC, ControllerAction

ACTION_BUTTONS: tuple[Button, ...] = tuple(
    Button[f"BUTTON_{name}"] for name in CONTROLLER_SPEC.buttons
)


def send_action(controller: melee.Controller, action: ControllerAction) -> None:
    """Queue one frame's full controller state (the caller or ``console.step()`` flushes)."""
    for button, pressed in zip(ACTION_BUTTONS, action.buttons, strict=True):
        if pressed:
            controller.press_button(button)
        else:
            controller.release_button(button)
    controller.tilt_analog(Button.BUTTON_MAIN, *action.main_stick)
    controller.tilt_analog(Button.BUTTON_C, *action.c_stick)
    # The spec's one analog trigger is the processed max of L and R; L carries it.
    controller.press_shoulder(Button.BUTTON_L, action.shoulder)


_STICKS = (Button.BUTTON_MAIN, Button.BUTTON_C)
_BUTTON_NAMES = "|".join(button.value for button in Button if button not in _STICKS)
_NUMBER = r"-?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?"
_COMMAND = re.compile(
    rf"(?:PRESS|RELEASE) (?:{_BUTTON_NAMES})"
    rf"|SET (?:MAIN|C) {_NUMBER} {_NUMBER}"
    rf"|SET (?:L|R) {_NUMBER}"
    r"|FLUSH"
)


@dataclass(frozen=True)
class PipeCheck:
    """What a stream of pipe commands holds and whether libmelee's grammar accepts all of it."""

    bytes: int
    commands: int
    flushes: int
    malformed: int
    first_malformed: str | None
    unflushed_tail: int  # commands after the last FLUSH

    def well_formed(self, expected_frames: int) -> bool:
        """Every line a command, nothing left unflushed, exactly one FLUSH per frame."""
        return self.malformed == 0 and self.unflushed_tail == 0 and self.flushes == expected_frames


def check_pipe_commands(data: bytes) -> PipeCheck:
    text = data.decode("ascii", errors="replace")
    lines = text.split("\n")
    tail_is_complete = lines[-1] == ""
    if tail_is_complete:
        lines.pop()
    malformed = [line for line in lines if not _COMMAND.fullmatch(line)]
    if not tail_is_complete and lines and lines[-1] not in malformed:
        malformed.append(lines[-1])  # a command cut off without its newline
    flushes = [i for i, line in enumerate(lines) if line == "FLUSH"]
    last_flush = flushes[-1] if flushes else -1
    return PipeCheck(
        bytes=len(data),
        commands=len(lines),
        flushes=len(flushes),
        malformed=len(malformed),
        first_malformed=malformed[0] if malformed else None,
        unflushed_tail=len(lines) - 1 - last_flush,
    )
