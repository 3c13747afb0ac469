"""Play in Slippi Dolphin through libmelee: menus, games, clean shutdown.

One loop over ``console.step()``: outside a game, libmelee's ``MenuHelper`` drives the agent's
controller (and a CPU opponent's, when asked) through character and stage select; inside a
game, the agent answers every frame. ``console.step()`` flushes the controllers itself, at the
start of the next step, so the frame loop only queues commands.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import melee

from runtime.agent import Agent
from runtime.async_agent import AsyncAgent
from runtime.controller_output import send_action

LOG = logging.getLogger(__name__)
IN_GAME_MENUS = (melee.Menu.IN_GAME, melee.Menu.SUDDEN_DEATH)


@dataclass(frozen=True)
class LiveConfig:
    dolphin: Path
    iso: Path
    port: int
    opponent_port: int
    character: melee.Character
    stage: melee.Stage
    cpu_level: int  # 0: a human plays the opponent port
    opponent_character: melee.Character
    mode: str  # "sync" | "async"
    on_game_end: str  # "restart" | "stop"
    connect_code: str | None
    online_delay: int


class DolphinNotFoundError(Exception):
    """libmelee finds no Dolphin executable at the given path."""


class WrongCharacterError(RuntimeError):
    """The game started with another character on the agent's port than the artifact's."""


def play_live(agent: Agent, config: LiveConfig) -> int:
    """Run Dolphin and play until it closes, Ctrl-C, or (``stop``) the first game ends."""
    try:
        console = melee.Console(
            path=str(config.dolphin),
            online_delay=config.online_delay,
            # Online play needs the user's Slippi login (user.json) from their Dolphin home.
            copy_home_directory=config.connect_code is not None,
        )
    except (FileNotFoundError, ValueError) as error:  # libmelee's own search for the executable
        raise DolphinNotFoundError(
            f"no Slippi Dolphin at {config.dolphin}: {error} (pass the Dolphin executable, or "
            "the 'netplay' folder that holds it)"
        ) from None
    controller = melee.Controller(console, config.port)
    opponent = melee.Controller(console, config.opponent_port) if config.cpu_level else None
    worker = AsyncAgent(agent) if config.mode == "async" else None
    try:
        console.run(iso_path=str(config.iso))
        if not console.connect():
            LOG.error("could not connect to Dolphin at %s", config.dolphin)
            return 1
        for pad in (controller, opponent):
            if pad is not None and not pad.connect():
                LOG.error("could not connect the controller on port %d", pad.port)
                return 1
        return _frame_loop(console, controller, opponent, agent, worker, config)
    except KeyboardInterrupt:
        LOG.info("interrupted; shutting Dolphin down")
        return 0
    finally:
        if worker is not None:
            worker.close()
        controller.disconnect()
        if opponent is not None:
            opponent.disconnect()
        console.stop()


def _frame_loop(
    console: melee.Console,
    controller: melee.Controller,
    opponent: melee.Controller | None,
    agent: Agent,
    worker: AsyncAgent | None,
    config: LiveConfig,
) -> int:
    menus, opponent_menus = melee.MenuHelper(), melee.MenuHelper()
    in_game = False
    games = 0
    while (gamestate := console.step()) is not None:
        if gamestate.menu_state in IN_GAME_MENUS:
            new_game = not in_game
            if new_game:
                in_game = True
                _check_character(gamestate, config)
                controller.release_all()  # menu presses must not leak into the first frame
                LOG.info("game %d started", games + 1)
            if worker is None:
                if new_game:
                    agent.new_game()
                send_action(controller, agent.act(gamestate).send)
            else:
                worker.submit(gamestate, new_game=new_game)
                send_action(controller, worker.latest())
            continue
        if in_game:
            in_game = False
            games += 1
            LOG.info("game %d ended", games)
            if config.on_game_end == "stop":
                return 0
        menus.menu_helper_simple(
            gamestate,
            controller,
            config.character,
            config.stage,
            connect_code=config.connect_code,
            autostart=config.connect_code is None,
        )
        if opponent is not None:
            opponent_menus.menu_helper_simple(
                gamestate,
                opponent,
                config.opponent_character,
                config.stage,
                cpu_level=config.cpu_level,
            )
    LOG.info("Dolphin stopped sending frames")
    return 0


def _check_character(gamestate: melee.GameState, config: LiveConfig) -> None:
    player = gamestate.players.get(config.port)
    if player is None:
        raise WrongCharacterError(f"the game started without a character on port {config.port}")
    # Zelda/Sheik transform in game; the select screen shows either for the pair.
    pairs = {melee.Character.ZELDA, melee.Character.SHEIK}
    same = player.character == config.character or {player.character, config.character} == pairs
    if not same:
        raise WrongCharacterError(
            f"port {config.port} plays {player.character.name}, the artifact plays "
            f"{config.character.name}"
        )
