"""The built-in simulator behind the environment interface: N games in one numpy engine.

Deterministic for a seed: the same seed, characters, stage and actions give the same frames.
Games that end (a player out of stocks, or the timer) are reported and restarted with the
next seed of the environment's stream, so throughput never waits on the slowest game.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from exphil_pipeline.environments.base import GameResult, StepOutput, winner_of
from exphil_pipeline.environments.observations import embed_state, gamestate
from exphil_pipeline.simulator import engine
from exphil_pipeline.simulator.engine_state import EngineState, new_games
from exphil_pipeline.simulator.game_assembly import (
    EXTERNAL_IDS,
    FrameRecord,
    RecordColumns,
    assemble_game,
)
from exphil_pipeline.simulator.melee_data import (
    SIM_STAGES,
    character_slot,
    external_stage_id,
    sim_tables,
)
from exphil_pipeline.simulator.pad_inputs import PadInputs
from exphil_pipeline.simulator.slp_records import GameEndMethod
from exphil_pipeline.simulator.slp_writer import write_slp
from exphil_pipeline.training.examples import FIRST_PLAYABLE_FRAME
from runtime.controller_spec import CONTROLLER_SPEC

MATCH_FRAMES = 8 * 60 * 60
"""Melee's default timer: 8 minutes of 60 frames."""


@dataclass(frozen=True)
class SimulatorConfig:
    """games: N games in parallel. characters: libmelee ``Character`` names of port 1 and
    port 2. game_characters: per game, the pair that game plays instead of ``characters`` (one
    pair per game, or empty): one engine steps games of different port orders at the cost of
    one, e.g. both port halves of an arena run. stage: a legal stage's libmelee ``Stage``
    name. stocks: per player. max_frames: the timer, in frames from the first playable frame.
    observe: the ports (0, 1) whose features are computed each frame; others stay zero
    (scripted players read the engine's state instead, and embedding costs as much as the
    physics). replay_dir: when set, every finished game is saved there as a ``.slp`` replay
    with the inputs actually sent (``game-<seed>.slp``), ready to ingest as a batch."""

    games: int = 64
    characters: tuple[str, str] = ("MEWTWO", "FOX")
    game_characters: tuple[tuple[str, str], ...] = ()
    stage: str = "FINAL_DESTINATION"
    stocks: int = 4
    max_frames: int = MATCH_FRAMES
    observe: tuple[int, ...] = (0, 1)
    replay_dir: str | None = None

    def __post_init__(self) -> None:
        if self.games < 1:
            raise ValueError(f"games must be >= 1, got {self.games}")
        stages = [s.name for s in SIM_STAGES]
        if self.stage not in stages:
            raise ValueError(f"stage {self.stage!r}: the simulator has {stages}")
        if self.stocks < 1 or self.max_frames < 1:
            raise ValueError("stocks and max_frames must be >= 1")
        if self.game_characters and len(self.game_characters) != self.games:
            raise ValueError(
                f"game_characters holds {len(self.game_characters)} pairs for {self.games} "
                "games: give one pair per game, or none to play `characters` in every game"
            )

    def pairs(self) -> tuple[tuple[str, str], ...]:
        """The characters of port 1 and port 2 in each game."""
        return self.game_characters or (self.characters,) * self.games


class SimulatorEnvironment:
    """:class:`~exphil_pipeline.environments.base.GameEnvironment` on the built-in engine."""

    def __init__(self, config: SimulatorConfig) -> None:
        from melee.enums import Character

        self.config = config
        self.num_games = config.games
        self.tables = sim_tables()
        self._pairs = config.pairs()
        self._slots = np.array(
            [[character_slot(Character[c]) for c in pair] for pair in self._pairs]
        )
        self._stage = [s.name for s in SIM_STAGES].index(config.stage)
        self.state: EngineState | None = None
        self.previous = np.zeros((0,), dtype=np.uint8)
        self._seeds = np.zeros(0, dtype=np.int64)
        self._rng = np.random.default_rng(0)
        self._records: list[FrameRecord] = []  # every frame since the oldest game in play began
        self._first_record = np.zeros(0, dtype=np.int64)  # per game: its first frame's record
        self.ended: EngineState | None = None
        """After a step: the last frame of the games that ended in it (``np.flatnonzero(done)``
        order), since their rows of ``state`` already hold the next games; None if none ended."""

    def _fresh(self, games: np.ndarray) -> EngineState:
        return new_games(self._slots[games], np.full(len(games), self._stage), self.config.stocks)

    def reset(self, seed: int) -> np.ndarray:
        self._rng = np.random.default_rng(seed)
        self._seeds = self._rng.integers(0, 2**31, self.num_games)
        self.state = self._fresh(np.arange(self.num_games))
        neutral = CONTROLLER_SPEC.neutral()
        self.previous = np.broadcast_to(neutral, (self.num_games, 2, len(neutral))).copy()
        self._records, self._first_record = [], np.zeros(self.num_games, dtype=np.int64)
        return embed_state(self.state, self.previous, self.config.observe)

    def step(self, actions: np.ndarray) -> StepOutput:
        actions = np.asarray(actions, dtype=np.uint8)
        return self.step_pads(PadInputs.from_classes(actions), actions)

    def step_pads(self, pad: PadInputs, actions: np.ndarray | None = None) -> StepOutput:
        """:meth:`step` with inputs already as engine arrays (scripted players); ``actions``
        are their classes when the caller has them."""
        if self.state is None:
            raise RuntimeError("call reset(seed) before step(actions)")
        before = self.state.copy() if self.config.replay_dir else None
        engine.step(self.state, pad, self.tables)
        if before is not None:
            self._records.append(FrameRecord(before, pad, self.state.copy()))
        if self.config.observe:
            self.previous = pad.to_classes() if actions is None else actions.copy()
        done = self._ended()
        results = [self._result(int(g)) for g in np.flatnonzero(done)]
        if self.config.replay_dir:
            for result in results:
                self._save_replay(result.game)
        self.ended = self.state.take(np.flatnonzero(done)) if done.any() else None
        if done.any():
            self._restart(np.flatnonzero(done))
        features = embed_state(self.state, self.previous, self.config.observe)
        return StepOutput(features, done, results)

    def _ended(self) -> np.ndarray:
        state = self.state
        played = state.frame - FIRST_PLAYABLE_FRAME + 1
        return (state.stocks == 0).any(axis=1) | (played >= self.config.max_frames)

    def _result(self, game: int) -> GameResult:
        s = self.state
        stocks = (int(s.stocks[game, 0]), int(s.stocks[game, 1]))
        percent = (float(s.percent[game, 0]), float(s.percent[game, 1]))
        return GameResult(
            game=game,
            seed=int(self._seeds[game]),
            frames=int(s.frame[game] - FIRST_PLAYABLE_FRAME + 1),
            stocks=stocks,
            stocks_lost=(self.config.stocks - stocks[0], self.config.stocks - stocks[1]),
            percent=percent,
            damage_dealt=(float(s.damage_dealt[game, 0]), float(s.damage_dealt[game, 1])),
            self_destructs=(int(s.self_destructs[game, 0]), int(s.self_destructs[game, 1])),
            winner=winner_of(stocks, percent),
        )

    def _save_replay(self, game: int) -> None:
        """Write game ``game``, which just ended, as a replay with the inputs actually sent."""
        records = self._records[self._first_record[game] :]
        ended = bool((self.state.stocks[game] == 0).any())
        method = GameEndMethod.GAME if ended else GameEndMethod.TIME
        first, second = self._pairs[game]
        characters = (EXTERNAL_IDS[first], EXTERNAL_IDS[second])
        replay = assemble_game(
            game,
            RecordColumns.of(records),
            (len(records), method),
            characters,
            external_stage_id(SIM_STAGES[self._stage]),
            int(self._seeds[game]),
        )
        folder = Path(self.config.replay_dir)
        folder.mkdir(parents=True, exist_ok=True)
        write_slp(folder / f"game-{int(self._seeds[game])}.slp", replay)

    def _restart(self, games: np.ndarray) -> None:
        if self.config.replay_dir:
            self._first_record[games] = len(self._records)
            oldest = int(self._first_record.min())
            self._records = self._records[oldest:]
            self._first_record -= oldest
        self.state.assign(games, self._fresh(games))
        self._seeds[games] = self._rng.integers(0, 2**31, len(games))
        self.previous[games] = CONTROLLER_SPEC.neutral()

    def gamestates(self) -> list:
        return [gamestate(self.state, game) for game in range(self.num_games)]

    def close(self) -> None:
        self.state = None
