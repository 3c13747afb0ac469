"""The controller pipe: decoded actions become exactly libmelee's text commands, frame by frame."""

from __future__ import annotations

import numpy as np
from melee.controller import fix_analog_stick, fix_analog_trigger

from runtime.controller_output import check_pipe_commands, send_action
from runtime.controller_spec import CONTROLLER_SPEC, ControllerAction
from runtime.pipe_capture import PipeCapture


def expected_commands(action: ControllerAction) -> str:
    """libmelee's pipe format, written out by hand: a button line per button, both sticks and
    the L trigger (after libmelee's analog fix-up), then FLUSH."""
    lines = [
        f"{'PRESS' if pressed else 'RELEASE'} {name}"
        for name, pressed in zip(CONTROLLER_SPEC.buttons, action.buttons, strict=True)
    ]
    for stick, (x, y) in (("MAIN", action.main_stick), ("C", action.c_stick)):
        lines.append(f"SET {stick} {fix_analog_stick(x)} {fix_analog_stick(y)}")
    lines.append(f"SET L {fix_analog_trigger(action.shoulder)}")
    lines.append("FLUSH")
    return "".join(line + "\n" for line in lines)


def random_classes(rng: np.random.Generator, frames: int) -> np.ndarray:
    limits = np.asarray(CONTROLLER_SPEC.head_classes)
    return (rng.random((frames, len(limits))) * limits).astype(np.uint8)


def test_pipe_bytes_are_the_libmelee_commands_of_each_decoded_action() -> None:
    classes = random_classes(np.random.default_rng(3), 300)
    classes[0] = CONTROLLER_SPEC.neutral()
    classes[1] = np.asarray(CONTROLLER_SPEC.head_classes) - 1  # every head at its last class
    actions = [CONTROLLER_SPEC.decode(row) for row in classes]
    with PipeCapture(port=1) as capture:
        for action in actions:
            send_action(capture.controller, action)
            capture.controller.flush()
    assert capture.data.decode("ascii") == "".join(expected_commands(a) for a in actions)
    check = check_pipe_commands(capture.data)
    assert check.well_formed(len(actions))
    assert check.commands == len(actions) * (len(CONTROLLER_SPEC.buttons) + 4)


def test_pipe_check_rejects_what_libmelee_would_not_write() -> None:
    good = expected_commands(CONTROLLER_SPEC.decode(CONTROLLER_SPEC.neutral())).encode()
    assert check_pipe_commands(good * 3).well_formed(3)
    assert not check_pipe_commands(good * 3).well_formed(2)
    garbled = check_pipe_commands(good + b"PRESS MAIN\nSET MAIN 0.5\nFLUSH\n")
    assert garbled.malformed == 2 and garbled.first_malformed == "PRESS MAIN"
    unflushed = check_pipe_commands(good + b"PRESS A\n")
    assert unflushed.unflushed_tail == 1 and not unflushed.well_formed(1)
    cut = check_pipe_commands(good + b"FLUSH\nSET L 0.")
    assert cut.malformed == 1
