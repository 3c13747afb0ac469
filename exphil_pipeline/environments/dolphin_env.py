"""Slippi Dolphin behind the environment interface: N Dolphins stepped in lockstep.

Each game is one Dolphin with one libmelee ``Console`` and a ``Controller`` on each of its two
ports; libmelee's ``MenuHelper`` picks characters, CPU levels and the stage and starts the
game. Dolphin runs with blocking pipe input, so a Dolphin waits for its controllers every
frame: ``step`` queues each game's inputs (none for a port Melee's CPU plays), steps every
console at once and waits for all of them. A game that ends is reported and its Dolphin driven
through the menus into the next game before ``step`` returns.

A console that raises, returns no frame or takes longer than ``step_timeout_s`` is stopped and
started again; the game it was playing is reported with ``void=True``; the run goes on. Only a
Dolphin that fails ``max_restarts`` times in a row without reaching a game stops the run
(:class:`DolphinError`), since then the set-up, not the emulator, is wrong.

Melee's rules are the ISO's (4 stocks and an 8-minute timer unless its memory card says
otherwise): ``MenuHelper`` does not set them. Results count stocks lost from the stocks each
game started with; ``max_frames`` can end a game earlier (the environment quits it from the
pause menu). Dolphin takes no seed: ``GameResult.seed`` numbers the game from the reset's seed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import melee
import numpy as np

from exphil_pipeline.environments.base import GameResult, StepOutput
from exphil_pipeline.environments.dolphin_console import (
    Connection,
    ConsoleFactory,
    ConsoleFailure,
    DolphinInstance,
    Phase,
    wait_for,
)
from exphil_pipeline.environments.simulator_env import MATCH_FRAMES
from runtime.controller_spec import CONTROLLER_SPEC
from runtime.embedding_spec import EMBEDDING_SPEC, embed_gamestate

DOLPHIN_ENV = "EXPHIL_DOLPHIN"
ISO_ENV = "EXPHIL_ISO"


class DolphinError(RuntimeError):
    """A Dolphin kept failing to start or to reach a game; the message says why."""


def dolphin_paths_from_env() -> tuple[str, str] | None:
    """``($EXPHIL_DOLPHIN, $EXPHIL_ISO)``, or None unless both are set."""
    dolphin, iso = os.environ.get(DOLPHIN_ENV), os.environ.get(ISO_ENV)
    return (dolphin, iso) if dolphin and iso else None


@dataclass(frozen=True)
class DolphinConfig:
    """dolphin: the Slippi Dolphin executable (or the ``netplay`` folder holding it).
    iso: a Melee 1.02 NTSC ISO. games: N, one Dolphin each. characters: libmelee ``Character``
    names of the two ports (Zelda and Sheik count as one). stage: a libmelee ``Stage`` name.
    ports: the two controller ports (1-4), index 0 and 1 of every array. cpu_levels: per port,
    0 for a port driven by ``step``'s actions, 1-9 for Melee's CPU at that level (at least one
    port must be driven). max_frames: frames from the first playable frame after which the
    environment ends a game (Melee's own timer ends it at 8 minutes). step_timeout_s: longest
    wait for one frame of one console. launch_timeout_s: longest wait for a Dolphin to start
    and connect. menu_frames_limit: frames a Dolphin may spend outside a game before it counts
    as stuck. max_restarts: failures in a row, without reaching a game, before the run stops.
    headless: Null video backend and no audio (Null video needs mainline Slippi Dolphin or an
    ExiAI build). fast_forward: emulate as fast as inputs arrive (mainline), or ExiAI's
    fast-forward mode with EXI inputs where the build has it. home: a folder for each Dolphin's
    user directory (``dolphin-<i>/User``) and replays (``dolphin-<i>/replays``); None: a
    temporary user directory per Dolphin and no replays. slippi_port: Dolphin ``i`` streams
    its frames on ``slippi_port + i``."""

    dolphin: str
    iso: str
    games: int = 1
    characters: tuple[str, str] = ("MEWTWO", "FOX")
    stage: str = "FINAL_DESTINATION"
    ports: tuple[int, int] = (1, 2)
    cpu_levels: tuple[int, int] = (0, 0)
    max_frames: int = MATCH_FRAMES
    step_timeout_s: float = 10.0
    launch_timeout_s: float = 120.0
    menu_frames_limit: int = 60 * 60
    max_restarts: int = 3
    headless: bool = True
    fast_forward: bool = True
    home: str | None = None
    slippi_port: int = 51441

    def __post_init__(self) -> None:
        if self.games < 1:
            raise ValueError(f"games must be >= 1, got {self.games}")
        for name in self.characters:
            if name not in melee.Character.__members__:
                raise ValueError(f"character {name!r} is not a libmelee Character name")
        if self.stage not in melee.Stage.__members__:
            raise ValueError(f"stage {self.stage!r} is not a libmelee Stage name")
        if len(set(self.ports)) != 2 or not all(1 <= p <= 4 for p in self.ports):
            raise ValueError(f"ports {self.ports}: give two different ports in 1-4")
        if not all(0 <= level <= 9 for level in self.cpu_levels):
            raise ValueError(f"cpu_levels {self.cpu_levels}: each 0 (driven) or 1-9")
        if all(self.cpu_levels):
            raise ValueError("cpu_levels: at least one port must be driven by actions")
        if not 1 <= self.max_frames <= MATCH_FRAMES:
            raise ValueError(f"max_frames must be within [1, {MATCH_FRAMES}] (Melee's timer)")
        if min(self.step_timeout_s, self.launch_timeout_s) <= 0 or self.menu_frames_limit < 1:
            raise ValueError("timeouts and menu_frames_limit must be positive")

    @property
    def driven_index(self) -> int:
        """The first port driven by actions: it starts games and quits stopped ones."""
        return 0 if not self.cpu_levels[0] else 1


def launch_dolphin(config: DolphinConfig, index: int) -> Connection:
    """Start Dolphin ``index`` with ``config``'s options, in the menus, controllers connected."""
    from melee.console import DolphinBuild, get_dolphin_version

    exi = get_dolphin_version(config.dolphin).build is DolphinBuild.EXI_AI
    home = Path(config.home) / f"dolphin-{index}" if config.home else None
    console = melee.Console(
        path=config.dolphin,
        dolphin_home_path=str(home / "User") if home else None,
        tmp_home_directory=home is None,
        slippi_port=config.slippi_port + index,
        blocking_input=True,
        fullscreen=False,
        gfx_backend="Null" if config.headless else None,
        disable_audio=config.headless,
        emulation_speed=0.0 if config.fast_forward else 1.0,
        use_exi_inputs=config.fast_forward and exi,
        enable_ffw=config.fast_forward and exi,
        save_replays=home is not None,
        replay_dir=str(home / "replays") if home else None,
    )
    controllers = {port: melee.Controller(console, port) for port in config.ports}
    console.run(iso_path=config.iso)
    if not console.connect():
        console.stop()
        port = config.slippi_port + index
        raise ConsoleFailure(f"could not connect to Dolphin {index} on port {port}")
    for controller in controllers.values():
        if not controller.connect():
            console.stop()
            raise ConsoleFailure(f"could not connect the controller on port {controller.port}")
    return Connection(console, controllers)


class DolphinEnvironment:
    """:class:`~exphil_pipeline.environments.base.GameEnvironment` on N Dolphins (see the
    module docstring). ``consoles`` starts a console; by default a real Dolphin."""

    def __init__(self, config: DolphinConfig, consoles: ConsoleFactory | None = None) -> None:
        self.config = config
        self.num_games = config.games
        if consoles is None:
            for path, variable in ((config.dolphin, DOLPHIN_ENV), (config.iso, ISO_ENV)):
                if not Path(path).exists():
                    raise FileNotFoundError(f"no such file: {path} (point {variable} at it)")
        factory = consoles or partial(launch_dolphin, config)
        self.instances = [DolphinInstance(i, config, factory) for i in range(config.games)]
        self._rng = np.random.default_rng(0)
        self._failures = np.zeros(config.games, dtype=np.int64)

    def reset(self, seed: int) -> np.ndarray:
        self._rng = np.random.default_rng(seed)
        self._failures[:] = 0
        self._launch(list(range(self.num_games)))
        self._settle(list(range(self.num_games)))
        return self._features()

    def step(self, actions: np.ndarray) -> StepOutput:
        actions = np.asarray(actions, dtype=np.uint8)
        for instance, game_actions in zip(self.instances, actions, strict=True):
            instance.queue_inputs(game_actions)
        results = self._advance(list(range(self.num_games)))
        done = np.zeros(self.num_games, dtype=np.bool_)
        done[[r.game for r in results]] = True
        self._settle(np.flatnonzero(done).tolist())
        return StepOutput(self._features(), done, results)

    def gamestates(self) -> list:
        return [instance.gamestate for instance in self.instances]

    def close(self) -> None:
        for instance in self.instances:
            instance.shut_down()

    def _advance(self, games: list[int]) -> list[GameResult]:
        """Step the consoles of ``games`` once, together; the results of games that ended,
        void for those whose console failed (restarted here)."""
        futures = {}
        for game in games:
            try:
                futures[game] = self.instances[game].begin_step()
            except ConsoleFailure as error:
                futures[game] = error
        results, failed = [], []
        for game, future in futures.items():
            instance = self.instances[game]
            try:
                if isinstance(future, ConsoleFailure):
                    raise future
                gamestate = wait_for(future, self.config.step_timeout_s, "send a frame")
                result = instance.finish_step(gamestate)
            except ConsoleFailure as error:
                result = instance.void_result()
                failed.append(game)
                self._count_failure(game, error)
            if result is not None:
                results.append(result)
        if failed:
            self._launch(failed)
        return results

    def _launch(self, games: list[int]) -> None:
        """Start fresh consoles for ``games``, together, retrying failures."""
        while games:
            futures = {game: self.instances[game].begin_launch() for game in games}
            retry = []
            for game, future in futures.items():
                try:
                    self.instances[game].end_launch(future)
                except ConsoleFailure as error:
                    self._count_failure(game, error)
                    retry.append(game)
            games = retry

    def _settle(self, games: list[int]) -> None:
        """Drive ``games`` through their menus until each is in a new game."""
        idle = np.tile(CONTROLLER_SPEC.neutral(), (2, 1))
        pending = [g for g in games if self.instances[g].phase is not Phase.GAME]
        while pending:
            for game in pending:
                self.instances[game].queue_inputs(idle)
            self._advance(pending)
            pending = [g for g in pending if self.instances[g].phase is not Phase.GAME]
        for game in games:
            self.instances[game].seed = int(self._rng.integers(0, 2**31))
            self._failures[game] = 0

    def _count_failure(self, game: int, error: Exception) -> None:
        self._failures[game] += 1
        if self._failures[game] > self.config.max_restarts:
            self.instances[game].shut_down()
            raise DolphinError(
                f"Dolphin {game} failed {self._failures[game]} times in a row without "
                f"reaching a game; last: {error}"
            ) from error

    def _features(self) -> np.ndarray:
        out = np.zeros((self.num_games, 2, EMBEDDING_SPEC.dim), dtype=np.float32)
        ports = self.config.ports
        for game, instance in enumerate(self.instances):
            gamestate = instance.gamestate
            for k in (0, 1):
                previous = instance.previous[k]
                if self.config.cpu_levels[k]:  # Melee's CPU: the input it played this frame
                    player = gamestate.players[ports[k]]
                    previous = CONTROLLER_SPEC.encode_controller_state(player.controller_state)
                out[game, k] = embed_gamestate(gamestate, ports[k], ports[1 - k], previous)
        return out
