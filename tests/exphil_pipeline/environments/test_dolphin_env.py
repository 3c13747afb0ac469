"""The Dolphin environment against consoles that play back real replays through libmelee's
file console (the dry-run technique): a few menu frames, the replay's game, the postgame
screen, then the replay again, as a Dolphin going from game to game would. Controllers record
what the environment sent. With EXPHIL_DOLPHIN and EXPHIL_ISO set, one test plays a real game.
"""

from __future__ import annotations

import time
from pathlib import Path

import melee
import numpy as np
import pytest

from exphil_pipeline.environments.dolphin_console import Connection, same_player
from exphil_pipeline.environments.dolphin_env import (
    DolphinConfig,
    DolphinEnvironment,
    DolphinError,
    dolphin_paths_from_env,
)
from runtime.controller_spec import CONTROLLER_SPEC
from runtime.dry_run import replay_gamestates
from runtime.embedding_spec import embed_gamestate
from runtime.live_play import WrongCharacterError

STOCK_GAME = "js-placementsTest_ffa_1p2p_winner_2p.slp"
"""Falco (port 1) against Fox (port 2), one stock each: Falco walks off the stage on frame 55."""
CPU_GAME = "js-consistencyTest_MewTwoVDK-SB-42.slp"
"""Mewtwo (port 1) against a CPU Donkey Kong (port 2), who ends the replay at 42.2%."""
MENU_FRAMES = 3
TIMEOUT_S = 1.0
"""Long enough that a healthy console's frame (opening a replay takes ~15 ms) never times out
on a loaded machine; a 0.3 s limit restarted healthy consoles under a parallel test run."""
NEUTRAL = CONTROLLER_SPEC.neutral()


class ReplayConsole:
    """A Dolphin console's face over libmelee's file console. ``fault`` strikes on the
    ``fault_frame``-th game frame: ``hang`` (sleeps past the step timeout), ``raise``, or
    ``none`` (no frame, as when Dolphin's stream closes)."""

    def __init__(self, replay: Path, fault: str | None = None, fault_frame: int = 20) -> None:
        self.replay, self.fault, self.fault_frame = replay, fault, fault_frame
        self._file: melee.Console | None = None
        self._menu_left = MENU_FRAMES
        self.in_game = False
        self.stopped = False

    def step(self) -> melee.GameState | None:
        if self._file is None:
            if self._menu_left:
                self._menu_left -= 1
                return melee.GameState(menu_state=melee.Menu.CHARACTER_SELECT)
            self._file = melee.Console(
                is_dolphin=False, path=str(self.replay), allow_old_version=True
            )
            self._file.connect()
            self._frames = 0
        gamestate = self._file.step()
        if gamestate is None:  # the game is over: the postgame screen, then the menus again
            self._file, self._menu_left, self.in_game = None, MENU_FRAMES, False
            return melee.GameState(menu_state=melee.Menu.POSTGAME_SCORES)
        self._frames += 1
        if self.fault and self._frames == self.fault_frame:
            if self.fault == "hang":
                time.sleep(3 * TIMEOUT_S)
            elif self.fault == "raise":
                raise ConnectionResetError("Dolphin went away")
            else:
                return None
        self.in_game = True
        return gamestate

    def stop(self) -> None:
        self.stopped = True


class RecordingController:
    """Records every call with whether its console was showing a game frame."""

    def __init__(self, console: ReplayConsole, port: int) -> None:
        self.console, self.port = console, port
        self.prev = melee.ControllerState()
        self.calls: list[tuple[bool, str]] = []

    def __getattr__(self, name: str):
        def record(*args: object) -> None:
            self.calls.append((self.console.in_game, name))

        return record


class ReplayConsoles:
    """The console factory: ``faults[i]`` strikes the first console of instance ``i`` only."""

    def __init__(self, replay: Path, faults: dict[int, str] | None = None) -> None:
        self.replay, self.faults = replay, dict(faults or {})
        self.launched: list[tuple[int, ReplayConsole, dict[int, RecordingController]]] = []

    def __call__(self, index: int) -> Connection:
        console = ReplayConsole(self.replay, self.faults.pop(index, None))
        controllers = {port: RecordingController(console, port) for port in (1, 2)}
        self.launched.append((index, console, controllers))
        return Connection(console, controllers)


def config(**overrides: object) -> DolphinConfig:
    settings = {
        "dolphin": "unused",
        "iso": "unused",
        "characters": ("FALCO", "FOX"),
        "step_timeout_s": TIMEOUT_S,
        "menu_frames_limit": 50,
    }
    return DolphinConfig(**{**settings, **overrides})


def game_frames(replay: Path) -> list[melee.GameState]:
    return [gs for gs in replay_gamestates(replay) if {1, 2} <= set(gs.players)]


def embedded(gamestate: melee.GameState, previous: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return np.stack([embed_gamestate(gamestate, p, 3 - p, previous[p - 1]) for p in (1, 2)])


def random_actions(rng: np.random.Generator, games: int) -> np.ndarray:
    limits = np.asarray(CONTROLLER_SPEC.head_classes)
    return (rng.random((games, 2, len(limits))) * limits).astype(np.uint8)


def test_features_follow_the_replay_and_a_finished_game_leads_to_the_next(
    real_replays: Path,
) -> None:
    replay = real_replays / STOCK_GAME
    frames = game_frames(replay)
    env = DolphinEnvironment(config(), ReplayConsoles(replay))
    rng = np.random.default_rng(0)
    features = env.reset(seed=0)
    np.testing.assert_array_equal(features[0], embedded(frames[0], (NEUTRAL, NEUTRAL)))
    for index in range(1, len(frames)):
        actions = random_actions(rng, 1)
        out = env.step(actions)
        if index < len(frames) - 1:
            assert not out.done[0] and not out.results
            expected = embedded(frames[index], (actions[0, 0], actions[0, 1]))
            np.testing.assert_array_equal(out.features[0], expected)
    # Falco's last stock ends the game on the replay's last frame; the next game has begun.
    assert out.done.tolist() == [True]
    (result,) = out.results
    last = frames[-1].players
    assert result.stocks == (last[1].stock, last[2].stock) == (0, 1)
    assert (result.stocks_lost, result.winner, result.void) == ((1, 0), 1, False)
    assert result.percent == (0.0, 0.0) and result.damage_dealt == (0.0, 0.0)
    assert result.self_destructs == (1, 0)  # nobody touched Falco
    assert result.frames == frames[-1].frame + 39 + 1
    np.testing.assert_array_equal(out.features[0], embedded(frames[0], (NEUTRAL, NEUTRAL)))
    assert env.gamestates()[0].frame == frames[0].frame
    out = env.step(np.tile(NEUTRAL, (1, 2, 1)))
    np.testing.assert_array_equal(out.features[0], embedded(frames[1], (NEUTRAL, NEUTRAL)))
    env.close()


def test_a_cpu_port_gets_no_inputs_and_shows_the_cpus_own(real_replays: Path) -> None:
    replay = real_replays / CPU_GAME
    frames = game_frames(replay)
    consoles = ReplayConsoles(replay)
    env = DolphinEnvironment(config(characters=("MEWTWO", "DK"), cpu_levels=(0, 3)), consoles)
    env.reset(seed=0)
    actions = np.tile(NEUTRAL, (1, 2, 1))
    for index in range(1, len(frames)):
        out = env.step(actions)
        if index == 100:
            cpu = frames[index].players[2].controller_state
            previous = (NEUTRAL, CONTROLLER_SPEC.encode_controller_state(cpu))
            np.testing.assert_array_equal(out.features[0], embedded(frames[index], previous))
    out = env.step(actions)  # the replay is over: the postgame screen ends the game
    (result,) = out.results
    assert (result.stocks, result.stocks_lost, result.winner) == ((4, 4), (0, 0), 0)
    assert result.percent[1] == pytest.approx(42.2, abs=0.05)
    assert result.damage_dealt == pytest.approx((result.percent[1], 0.0))
    assert result.frames == frames[-1].frame + 39 + 1
    _, _, controllers = consoles.launched[0]
    assert not [call for in_game, call in controllers[2].calls if in_game]
    assert {"release_button", "tilt_analog", "press_shoulder"} <= {
        c for g, c in controllers[1].calls if g
    }
    env.close()


@pytest.mark.parametrize("fault", ["hang", "raise", "none"])
def test_a_failing_dolphin_is_restarted_and_its_game_void(real_replays: Path, fault: str) -> None:
    replay = real_replays / STOCK_GAME
    frames = game_frames(replay)
    consoles = ReplayConsoles(replay, faults={1: fault})
    env = DolphinEnvironment(config(games=2), consoles)
    env.reset(seed=0)
    neutral = np.tile(NEUTRAL, (2, 2, 1))
    for _ in range(1, 19):
        assert not env.step(neutral).done.any()
    began = time.perf_counter()
    out = env.step(neutral)  # the 20th game frame of Dolphin 1
    if fault == "hang":
        assert time.perf_counter() - began < 3 * TIMEOUT_S  # waited out the timeout, no more
    assert out.done.tolist() == [False, True]
    (result,) = out.results
    assert (result.game, result.void) == (1, True)
    np.testing.assert_array_equal(out.features[0], embedded(frames[19], (NEUTRAL, NEUTRAL)))
    np.testing.assert_array_equal(out.features[1], embedded(frames[0], (NEUTRAL, NEUTRAL)))
    assert [index for index, _, _ in consoles.launched] == [0, 1, 1]
    assert consoles.launched[1][1].stopped and not consoles.launched[2][1].stopped
    for _ in range(len(frames) - 20):
        out = env.step(neutral)
    assert [(r.game, r.void) for r in out.results] == [(0, False)]  # Dolphin 0 played on
    env.close()


def test_a_dolphin_that_never_starts_stops_the_run(real_replays: Path) -> None:
    def broken(index: int) -> Connection:
        raise OSError("no display")

    env = DolphinEnvironment(config(max_restarts=2), broken)
    with pytest.raises(DolphinError, match=r"failed 3 times in a row.*no display"):
        env.reset(seed=0)


def test_zelda_and_sheik_are_one_player_and_another_character_is_refused(
    real_replays: Path,
) -> None:
    assert same_player(melee.Character.ZELDA, melee.Character.SHEIK)
    assert same_player(melee.Character.SHEIK, melee.Character.ZELDA)
    assert not same_player(melee.Character.ZELDA, melee.Character.PEACH)
    env = DolphinEnvironment(
        config(characters=("MARTH", "FOX")), ReplayConsoles(real_replays / STOCK_GAME)
    )
    with pytest.raises(WrongCharacterError, match=r"port 1 plays FALCO.*MARTH"):
        env.reset(seed=0)


def test_config_refuses_what_dolphin_cannot_play() -> None:
    with pytest.raises(ValueError, match="at least one port"):
        config(cpu_levels=(3, 9))
    with pytest.raises(ValueError, match="Stage"):
        config(stage="MOON")
    with pytest.raises(FileNotFoundError, match="EXPHIL_DOLPHIN"):
        DolphinEnvironment(config(dolphin="/nonexistent/dolphin"))


@pytest.mark.skipif(
    dolphin_paths_from_env() is None, reason="set EXPHIL_DOLPHIN and EXPHIL_ISO to play in Dolphin"
)
def test_a_real_dolphin_plays_a_short_game_against_a_cpu(tmp_path: Path) -> None:
    dolphin, iso = dolphin_paths_from_env()
    real = DolphinConfig(
        dolphin=dolphin,
        iso=iso,
        characters=("FOX", "FOX"),
        cpu_levels=(0, 9),
        max_frames=600,
        home=str(tmp_path),
    )
    env = DolphinEnvironment(real)
    try:
        env.reset(seed=0)
        rng = np.random.default_rng(0)
        for _ in range(real.max_frames + 200):
            out = env.step(random_actions(rng, 1))
            if out.results:
                break
        (result,) = out.results
        assert not result.void and 0 < result.frames <= real.max_frames
        assert env.gamestates()[0].menu_state == melee.Menu.IN_GAME  # the next game is on
    finally:
        env.close()
