"""The simulator environment: both observation paths agree, games are deterministic, and
played games land as replays like any other batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from exphil_pipeline.environments.simulator_env import SimulatorConfig, SimulatorEnvironment
from exphil_pipeline.replays.batches import ReplayBatch
from exphil_pipeline.replays.ingest import IngestSettings, ingest_batch
from exphil_pipeline.simulator.pad_inputs import PadInputs
from exphil_pipeline.simulator.scripted_players import ScriptedPlayers
from exphil_pipeline.storage.layout import DataLayout
from exphil_pipeline.training.examples import GameFrames
from runtime.controller_spec import CONTROLLER_SPEC
from runtime.embedding_spec import embed_gamestate

GAMES = 3


def _play(env: SimulatorEnvironment, frames: int, seed: int, check=None) -> list:
    env.reset(seed)
    players = ScriptedPlayers(np.tile([3, 1], (env.num_games, 1)), seed)
    results = []
    for _ in range(frames):
        out = env.step_pads(players.inputs(env.state, env.tables))
        results += out.results
        if check is not None:
            check(env, out)
    return results


@pytest.mark.parametrize("stage", ["FINAL_DESTINATION", "BATTLEFIELD", "YOSHIS_STORY"])
def test_features_equal_the_runtime_embedding_of_the_gamestates(stage: str) -> None:
    env = SimulatorEnvironment(SimulatorConfig(games=GAMES, stage=stage, stocks=1, max_frames=900))
    compared = []

    def check(env: SimulatorEnvironment, out) -> None:
        for game, state in enumerate(env.gamestates()):
            for port in range(2):
                live = embed_gamestate(state, port + 1, 2 - port, env.previous[game, port])
                np.testing.assert_array_equal(live, out.features[game, port])
                compared.append(1)

    # Every frame of every game, across deaths, respawns and restarts.
    results = _play(env, 1100, seed=3, check=check)
    assert len(compared) == 1100 * GAMES * 2
    assert results, "games ended and restarted within the run"


def test_a_seed_replays_the_same_games() -> None:
    config = SimulatorConfig(games=GAMES, stocks=2, max_frames=2000)
    first = _play(SimulatorEnvironment(config), 2500, seed=5)
    again = _play(SimulatorEnvironment(config), 2500, seed=5)
    assert first == again and first
    for result in first:
        assert result.winner in (-1, 0, 1) and result.frames > 0
        assert result.stocks_lost[0] + result.stocks[0] == 2


def test_games_of_one_environment_can_play_their_characters_in_different_port_orders() -> None:
    pairs = (("MEWTWO", "FOX"), ("FOX", "MEWTWO"), ("GANONDORF", "LINK"))
    mixed = SimulatorEnvironment(SimulatorConfig(games=3, game_characters=pairs, max_frames=400))
    alone = [
        SimulatorEnvironment(SimulatorConfig(games=1, characters=pair, max_frames=400))
        for pair in pairs
    ]
    rng = np.random.default_rng(0)
    features = mixed.reset(seed=1)
    singles = [env.reset(seed=1) for env in alone]
    ended = 0
    for _ in range(500):  # past the timer: restarted games keep their own characters
        for game, single in enumerate(singles):
            np.testing.assert_array_equal(features[game], single[0])
        shape = (3, 2, CONTROLLER_SPEC.num_heads)
        actions = rng.integers(0, CONTROLLER_SPEC.head_classes, size=shape)
        out = mixed.step(actions)
        features = out.features
        singles = [env.step(actions[game : game + 1]).features for game, env in enumerate(alone)]
        ended += len(out.results)
    assert ended == 3
    with pytest.raises(ValueError, match="one pair per game"):
        SimulatorConfig(games=2, game_characters=pairs)


def test_played_games_are_replays_that_ingest_and_match_the_simulation(tmp_path: Path) -> None:
    folder = tmp_path / "played"
    env = SimulatorEnvironment(
        SimulatorConfig(games=2, stocks=1, max_frames=1200, replay_dir=str(folder))
    )
    positions: dict[int, list] = {}

    def remember(env: SimulatorEnvironment, out) -> None:
        for game in range(env.num_games):
            positions.setdefault(int(env._seeds[game]), []).append(env.state.x[game].copy())

    results = _play(env, 1400, seed=1, check=remember)
    assert len(results) >= 2
    files = sorted(folder.glob("*.slp"))
    assert len(files) == len(results)
    layout = DataLayout(tmp_path / "home")
    batch = ingest_batch(ReplayBatch("played", folder), layout, IngestSettings(workers=1))
    assert {g.status for g in batch.games} == {"ok"}
    for record in batch.games:
        seed = int(Path(record.source_path).stem.removeprefix("game-"))
        frames = pq.read_table(layout.game_file("frames", "played", record.game_id))
        port1 = frames.filter(frames.column("port").to_numpy() == 1)
        recorded = port1.column("x").to_numpy()
        # The test sees each frame after step() returns: the last one of a game is already
        # the next game's first, so it saw every frame of the replay but the last.
        simulated = np.array(positions[seed])[:, 0]
        assert len(simulated) == len(recorded) - 1
        np.testing.assert_array_equal(recorded[:-1], simulated)


def test_played_games_record_the_inputs_sent(tmp_path: Path) -> None:
    folder = tmp_path / "played"
    env = SimulatorEnvironment(
        SimulatorConfig(games=2, stocks=1, max_frames=300, replay_dir=str(folder))
    )
    rng = np.random.default_rng(4)
    env.reset(seed=2)
    sent: dict[int, dict[int, np.ndarray]] = {}
    for _ in range(450):  # the timer counts from the first playable frame
        actions = rng.integers(0, CONTROLLER_SPEC.head_classes, (2, 2, CONTROLLER_SPEC.num_heads))
        seeds = env._seeds.copy()
        env.step(actions)
        # What the game reads: X and Y are one jump, L, R and a deep shoulder one shield.
        reads = PadInputs.from_classes(actions).to_classes()
        # A game that restarted in this step has already moved on to its next game's frame.
        for game in np.flatnonzero(env._seeds == seeds):
            sent.setdefault(int(seeds[game]), {})[int(env.state.frame[game])] = reads[game]
    layout = DataLayout(tmp_path / "home")
    batch = ingest_batch(ReplayBatch("played", folder), layout, IngestSettings(workers=1))
    assert len(batch.games) == 2
    for record in batch.games:
        game = GameFrames.read(layout.game_file("frames", "played", record.game_id), None, 0)
        frames = sent[int(Path(record.source_path).stem.removeprefix("game-"))]
        for port in (1, 2):
            recorded = game.controller_classes(port)
            ids = game.slot_table(port).column("frame").to_numpy()
            rows = [i for i, frame in enumerate(ids) if frame in frames]
            assert len(rows) >= 250
            expected = np.stack([frames[ids[i]][port - 1] for i in rows])
            np.testing.assert_array_equal(recorded[rows], expected)
