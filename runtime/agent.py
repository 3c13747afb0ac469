"""The per-frame decision: GameState -> frame vector -> policy -> controller action.

Timing, in frames. An artifact trained with frame delay ``d`` learned to choose, from the
state of frame ``t``, the input of frame ``t + d`` (``exphil_pipeline.training.examples``).
Through libmelee, an input sent after reading frame ``t`` is first used on frame ``t + 1``, and
on frame ``t + 1 + k`` online, where Slippi adds ``k`` frames of its own input delay. So an
action waits ``d - 1 - k`` frames in a queue before it is sent; when that is negative the
action necessarily lands late, and :func:`hold_frames` reports 0.

The "previous input" feature is the last action the policy *chose* (the one for frame
``t + d - 1``), which is what training pairs with the state of frame ``t``. The "frame delay"
feature is the delay the policy plays at, held inside the range it was trained over
(:func:`delay_input`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from runtime.controller_spec import CONTROLLER_SPEC, NEUTRAL_ACTION, ControllerAction
from runtime.embedding_spec import embed_gamestate
from runtime.onnx_policy import OnnxPolicy


def hold_frames(frame_delay: int, console_delay: int = 0) -> int:
    """Frames an action waits before it is sent so that it lands on frame ``t + frame_delay``."""
    return max(frame_delay - 1 - console_delay, 0)


def effective_delay(frame_delay: int, console_delay: int = 0) -> int:
    """The delay an action chosen from frame ``t`` actually lands with: ``frame_delay``, or
    libmelee's frame plus the console's delay when those are longer."""
    return max(frame_delay, 1 + console_delay)


def delay_input(frame_delay: int, trained: tuple[int, int]) -> int:
    """The delay a policy reads as its ``frame_delay`` feature when it plays at
    ``frame_delay``: that delay, held inside the ``trained`` range ``(low, high)`` of delays it
    learned from. A policy trained at one delay always reads that one; any other value is
    one it never saw."""
    low, high = trained
    return min(max(frame_delay, low), high)


@dataclass(frozen=True)
class AgentConfig:
    """How the agent reads the game and samples its policy."""

    port: int
    opponent_port: int
    temperature: float  # <= 0: argmax of every head
    hold_frames: int = 0
    delay_input: int = 0  # the frame_delay feature (see delay_input)
    action_repeat: int = 1  # choose a new action every N frames, repeat it in between
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.port == self.opponent_port:
            raise ValueError(f"the agent and its opponent are both on port {self.port}")
        if self.hold_frames < 0:
            raise ValueError(f"hold_frames must be >= 0, got {self.hold_frames}")
        if self.action_repeat < 1:
            raise ValueError(f"action_repeat must be >= 1, got {self.action_repeat}")


@dataclass(frozen=True)
class Decision:
    """One choice of the policy: its input vector, its classes and their controller values."""

    features: np.ndarray
    classes: np.ndarray
    action: ControllerAction


@dataclass(frozen=True)
class FrameOutput:
    """``decision``: chosen from this frame's state; ``send``: what goes to the controller now."""

    decision: Decision
    send: ControllerAction


class Agent:
    """Stateful per game: call :meth:`new_game` at every game's first frame."""

    def __init__(self, policy: OnnxPolicy, config: AgentConfig) -> None:
        self.policy = policy
        self.config = config
        self._rng = np.random.default_rng(config.seed)
        self._uniforms = np.empty(CONTROLLER_SPEC.num_heads, dtype=np.float32)
        self._queue: deque[ControllerAction] = deque()
        self._previous = CONTROLLER_SPEC.neutral()
        self._last: Decision | None = None
        self._frames = 0
        self.new_game()

    def new_game(self) -> None:
        self.policy.reset()
        self._previous = CONTROLLER_SPEC.neutral()
        self._queue = deque([NEUTRAL_ACTION] * self.config.hold_frames)
        self._last = None
        self._frames = 0

    def decide(self, gamestate: object) -> Decision:
        """Embed, run the policy, decode: the action for ``hold_frames + 1`` frames from now."""
        config = self.config
        features = embed_gamestate(
            gamestate, config.port, config.opponent_port, self._previous, config.delay_input
        )
        self._rng.random(out=self._uniforms, dtype=np.float32)
        classes = self.policy.step(features, self._uniforms, self.config.temperature)
        self._previous = classes
        return Decision(features, classes, CONTROLLER_SPEC.decode(classes))

    def act(self, gamestate: object) -> FrameOutput:
        """This frame's decision (or the repeated last one) and the action to send now."""
        if self._last is None or self._frames % self.config.action_repeat == 0:
            self._last = self.decide(gamestate)
        self._frames += 1
        self._queue.append(self._last.action)
        return FrameOutput(self._last, self._queue.popleft())
