"""One Dolphin of the Dolphin environment: its console stepped under a timeout, the menus
driven with libmelee's ``MenuHelper``, and the running totals of the game in play.

A :class:`DolphinInstance` moves through three phases: ``MENUS`` (character and stage select,
postgame screens), ``GAME`` (its ports answer every frame) and ``ENDING`` (the game was
reported but Melee still shows it: the "GAME!" freeze, or a game stopped by the frame limit,
which is quit from the pause menu). Console calls run on a thread of the instance's own, so a
call that hangs is abandoned with its Dolphin and never blocks the other instances.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol

import melee
import numpy as np
from melee.enums import Button

from exphil_pipeline.environments.base import GameResult, winner_of
from exphil_pipeline.training.examples import FIRST_PLAYABLE_FRAME
from runtime.controller_output import send_action
from runtime.controller_spec import CONTROLLER_SPEC
from runtime.live_play import WrongCharacterError

if TYPE_CHECKING:
    from exphil_pipeline.environments.dolphin_env import DolphinConfig

STOP_TIMEOUT_S = 10.0
QUIT_CYCLE = 60
"""Frames of one attempt at quitting from the pause menu: START, let go, then L+R+A+START."""
TRANSFORMING = {melee.Character.ZELDA, melee.Character.SHEIK}


class ConsoleFailure(Exception):
    """A console raised, returned no frame, took longer than its timeout, or never left the
    menus; its Dolphin is restarted."""


@dataclass
class Connection:
    """A running console and a controller per port. ``console`` is a ``melee.Console`` or a
    stand-in with ``step() -> GameState | None`` and ``stop()``; ``controllers`` maps each
    port to a ``melee.Controller`` or a stand-in."""

    console: Any
    controllers: dict[int, Any]


class ConsoleFactory(Protocol):
    """Starts the console of instance ``index``: in the menus, controllers connected."""

    def __call__(self, index: int) -> Connection: ...


class _Caller:
    """A daemon thread running one call at a time: a call that never returns is abandoned
    with its thread, which does not keep the process alive."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def submit(self, call: Callable[[], Any]) -> Future:
        future: Future = Future()
        self._jobs.put((call, future))
        return future

    def close(self) -> None:
        self._jobs.put(None)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            call, future = job
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(call())
                except BaseException as error:  # delivered to the waiting thread
                    future.set_exception(error)


def same_player(chosen: melee.Character, seen: melee.Character) -> bool:
    """Whether ``seen`` in game is the character chosen on the select screen: Zelda and Sheik
    transform into each other and are one player."""
    return chosen == seen or {chosen, seen} == TRANSFORMING


@dataclass
class GameTally:
    """Running totals of one game, index 0 and 1 for the environment's two ports.
    Damage dealt is the opponent's percent increases; a self-destruct is a stock lost without
    having been hit since last touching the ground (the simulator's definition)."""

    start_stocks: list[int]
    stocks: list[int]
    percent: list[float]
    damage_dealt: list[float]
    self_destructs: list[int]
    hit_since_landing: list[bool]
    frame: int

    @classmethod
    def start(cls, players: tuple[Any, Any], frame: int) -> GameTally:
        stocks = [int(p.stock) for p in players]
        percent = [float(p.percent) for p in players]
        return cls(stocks, list(stocks), percent, [0.0, 0.0], [0, 0], [False, False], frame)

    def update(self, players: tuple[Any, Any], frame: int) -> None:
        for k, player in enumerate(players):
            stocks, percent = int(player.stock), float(player.percent)
            if stocks < self.stocks[k]:
                self.self_destructs[k] += not self.hit_since_landing[k]
                self.hit_since_landing[k] = False
            elif percent > self.percent[k]:
                self.damage_dealt[1 - k] += percent - self.percent[k]
            if player.on_ground:
                self.hit_since_landing[k] = False
            if stocks == self.stocks[k] and percent > self.percent[k]:
                self.hit_since_landing[k] = True
            self.stocks[k], self.percent[k] = stocks, percent
        self.frame = frame

    def result(self, game: int, seed: int, void: bool) -> GameResult:
        stocks, percent = self.stocks, self.percent
        return GameResult(
            game=game,
            seed=seed,
            frames=max(0, self.frame - FIRST_PLAYABLE_FRAME + 1),
            stocks=(stocks[0], stocks[1]),
            stocks_lost=(self.start_stocks[0] - stocks[0], self.start_stocks[1] - stocks[1]),
            percent=(percent[0], percent[1]),
            damage_dealt=(self.damage_dealt[0], self.damage_dealt[1]),
            self_destructs=(self.self_destructs[0], self.self_destructs[1]),
            winner=winner_of(stocks, percent),
            void=void,
        )


class Phase(Enum):
    MENUS = "menus"
    GAME = "game"
    ENDING = "ending"


class DolphinInstance:
    """One console of the environment (see the module docstring). The environment calls
    :meth:`queue_inputs`, then :meth:`begin_step` on every instance, then :meth:`finish_step`
    with each frame; any failure is its to handle with :meth:`void_result` and
    :meth:`launch`."""

    def __init__(self, index: int, config: DolphinConfig, consoles: ConsoleFactory) -> None:
        self.index = index
        self.config = config
        self._consoles = consoles
        self._connection: Connection | None = None
        self._caller: _Caller | None = None
        self.phase = Phase.MENUS
        self.gamestate: melee.GameState | None = None
        self.tally: GameTally | None = None
        self.seed = 0
        self.previous = np.tile(CONTROLLER_SPEC.neutral(), (2, 1))
        self._outside_game = 0  # frames since the last game ended (menus, ending)
        self._quit = False

    # -- the console ---------------------------------------------------------------------

    def begin_launch(self) -> Future:
        """Stop any console and start a fresh one in the menus; wait with :meth:`end_launch`."""
        self.shut_down()
        self._caller = _Caller(f"dolphin-{self.index}")
        return self._caller.submit(lambda: self._consoles(self.index))

    def end_launch(self, future: Future) -> None:
        self._connection = wait_for(future, self.config.launch_timeout_s, "start")
        self.phase, self.tally, self.gamestate = Phase.MENUS, None, None
        self._menus = {port: melee.MenuHelper() for port in self.config.ports}
        self._outside_game = 0

    def begin_step(self) -> Future:
        connection = self._connection
        if connection is None or self._caller is None:
            raise ConsoleFailure(f"Dolphin {self.index} is not running")
        return self._caller.submit(connection.console.step)

    def shut_down(self) -> None:
        """Stop the console, best effort: a console that will not stop is abandoned."""
        connection, caller = self._connection, self._caller
        self._connection = self._caller = None
        if caller is not None:
            caller.close()
        if connection is None:
            return
        stopper = _Caller(f"dolphin-{self.index}-stop")
        interrupt = getattr(connection.console, "interrupt", None)
        if interrupt is not None:  # ends a step() blocked on a silent Dolphin
            stopper.submit(interrupt)
        done = stopper.submit(connection.console.stop)
        stopper.close()
        with contextlib.suppress(Exception):  # a console that fails to stop is left behind
            done.result(timeout=STOP_TIMEOUT_S)

    # -- one frame -------------------------------------------------------------------------

    def queue_inputs(self, actions: np.ndarray) -> None:
        """Queue this frame's inputs: ``actions[k]`` for port ``k`` in game (CPU ports none),
        the menu helpers' in the menus, the quit sequence while a stopped game ends."""
        config, controllers = self.config, self._controllers()
        if self.phase is Phase.GAME:
            for k, port in enumerate(config.ports):
                if not config.cpu_levels[k]:
                    send_action(controllers[port], CONTROLLER_SPEC.decode(actions[k]))
                    self.previous[k] = actions[k]
        elif self.phase is Phase.ENDING:
            if self._quit:
                _quit_inputs(controllers[config.ports[config.driven_index]], self._outside_game)
        elif self.gamestate is not None:
            driven = config.ports[config.driven_index]
            for k, port in enumerate(config.ports):
                self._menus[port].menu_helper_simple(
                    self.gamestate,
                    controllers[port],
                    melee.Character[config.characters[k]],
                    melee.Stage[config.stage],
                    cpu_level=config.cpu_levels[k] or 0,
                    costume=k,  # tells dittos apart
                    autostart=port == driven,
                )

    def finish_step(self, gamestate: melee.GameState | None) -> GameResult | None:
        """Take the frame the console returned; the game's result when it ended here."""
        if gamestate is None:
            raise ConsoleFailure(f"Dolphin {self.index} stopped sending frames")
        self.gamestate = gamestate
        players = self._players(gamestate)
        in_play = gamestate.menu_state in (melee.Menu.IN_GAME, melee.Menu.SUDDEN_DEATH)
        if self.phase is Phase.GAME:
            return self._play(gamestate, players)
        self._outside_game += 1
        if self._outside_game > self.config.menu_frames_limit:
            raise ConsoleFailure(
                f"Dolphin {self.index} spent {self.config.menu_frames_limit} frames in "
                f"{self.phase.value} without starting a game"
            )
        if self.phase is Phase.ENDING and not in_play:
            self.phase = Phase.MENUS
            self._menus = {port: melee.MenuHelper() for port in self.config.ports}
        elif self.phase is Phase.MENUS and players is not None:
            self._begin(gamestate, players)
        return None

    def void_result(self) -> GameResult | None:
        """The game in play, as void (its console failed); None outside a game."""
        if self.phase is not Phase.GAME or self.tally is None:
            return None
        return self.tally.result(self.index, self.seed, void=True)

    def _play(
        self, gamestate: melee.GameState, players: tuple[Any, Any] | None
    ) -> GameResult | None:
        tally = self.tally
        assert tally is not None
        if gamestate.menu_state == melee.Menu.IN_GAME and players is not None:
            tally.update(players, int(gamestate.frame))
            out_of_stocks = min(tally.stocks) == 0
            timer = tally.frame - FIRST_PLAYABLE_FRAME + 1 >= self.config.max_frames
            if not (out_of_stocks or timer):
                return None
            self._quit = not out_of_stocks
            self.phase = Phase.ENDING
        else:  # Melee left the game: postgame, or sudden death, which the env does not play
            self._quit = gamestate.menu_state == melee.Menu.SUDDEN_DEATH
            self.phase = Phase.ENDING if self._quit else Phase.MENUS
            self._menus = {port: melee.MenuHelper() for port in self.config.ports}
        self._outside_game = 0
        return tally.result(self.index, self.seed, void=False)

    def _begin(self, gamestate: melee.GameState, players: tuple[Any, Any]) -> None:
        for k, player in enumerate(players):
            chosen = melee.Character[self.config.characters[k]]
            if not same_player(chosen, player.character):
                raise WrongCharacterError(
                    f"Dolphin {self.index}: port {self.config.ports[k]} plays "
                    f"{player.character.name}, the environment chose {chosen.name}"
                )
        controllers = self._controllers()
        for k, port in enumerate(self.config.ports):
            if not self.config.cpu_levels[k]:
                controllers[port].release_all()  # menu presses must not leak into the game
        self.previous[:] = CONTROLLER_SPEC.neutral()
        self.tally = GameTally.start(players, int(gamestate.frame))
        self.phase = Phase.GAME

    def _players(self, gamestate: melee.GameState) -> tuple[Any, Any] | None:
        """Both ports' players when the frame is a game frame that has them."""
        if gamestate.menu_state != melee.Menu.IN_GAME:
            return None
        found = tuple(gamestate.players.get(port) for port in self.config.ports)
        return None if None in found else (found[0], found[1])

    def _controllers(self) -> dict[int, Any]:
        if self._connection is None:
            raise ConsoleFailure(f"Dolphin {self.index} is not running")
        return self._connection.controllers


def _quit_inputs(controller: Any, frame: int) -> None:
    """Pause, then hold L+R+A+START: Melee's quit from the pause menu, retried each cycle."""
    step = frame % QUIT_CYCLE
    controller.release_all()
    if step == 0:
        controller.press_button(Button.BUTTON_START)
    elif step >= 10:
        for button in (Button.BUTTON_L, Button.BUTTON_R, Button.BUTTON_A, Button.BUTTON_START):
            controller.press_button(button)


def wait_for(future: Future, timeout: float, what: str) -> Any:
    """The call's value; ConsoleFailure if it raised or took longer than ``timeout``."""
    try:
        return future.result(timeout=timeout)
    except TimeoutError:
        raise ConsoleFailure(f"Dolphin did not {what} within {timeout} s") from None
    except WrongCharacterError:
        raise
    except Exception as error:
        raise ConsoleFailure(f"Dolphin failed to {what}: {error!r}") from error
