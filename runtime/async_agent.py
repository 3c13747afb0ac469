"""Inference off the frame loop: a worker thread decides, the loop sends the newest action.

The frame loop never waits for the policy. It hands over each new GameState (replacing one the
worker has not started yet, so the worker always works on the freshest frame) and sends
whichever action finished last. The effective frame delay is however long inference takes,
so the agent's hold queue is not used here.
"""

from __future__ import annotations

import threading

from runtime.agent import Agent
from runtime.controller_spec import NEUTRAL_ACTION, ControllerAction


class AsyncAgent:
    """``submit(gamestate)`` each frame, ``latest()`` for the action to send; ``close()``."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent
        self._wake = threading.Condition()
        self._pending: object | None = None
        self._reset_pending = False
        self._latest: ControllerAction = NEUTRAL_ACTION
        self._closed = False
        self._error: BaseException | None = None
        self._worker = threading.Thread(target=self._run, name="policy-worker", daemon=True)
        self._worker.start()

    def submit(self, gamestate: object, new_game: bool = False) -> None:
        with self._wake:
            self._raise_worker_error()
            self._pending = gamestate
            # Sticky until the worker sees it: a newer frame must not drop a game's reset.
            self._reset_pending |= new_game
            if new_game:
                self._latest = NEUTRAL_ACTION
            self._wake.notify()

    def latest(self) -> ControllerAction:
        with self._wake:
            self._raise_worker_error()
            return self._latest

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._worker.join()

    def _raise_worker_error(self) -> None:
        if self._error is not None:
            raise RuntimeError("the policy worker failed") from self._error

    def _run(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._pending is not None or self._closed)
                if self._closed:
                    return
                gamestate, self._pending = self._pending, None
                reset, self._reset_pending = self._reset_pending, False
            try:
                if reset:
                    self._agent.new_game()
                action = self._agent.decide(gamestate).action
            except Exception as error:  # surfaced on the frame loop's next call
                with self._wake:
                    self._error = error
                return
            with self._wake:
                # A game that started meanwhile makes this action stale.
                if not self._reset_pending:
                    self._latest = action
