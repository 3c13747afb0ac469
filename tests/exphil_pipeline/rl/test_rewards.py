"""Rewards: hand-computed transitions for every term, the simulator's own counters, and real
replays' returns against stocks and percent read independently from the tables."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from melee.enums import Action, Character

from exphil_pipeline.environments.simulator_env import SimulatorConfig, SimulatorEnvironment
from exphil_pipeline.replays.batches import ReplayBatch
from exphil_pipeline.replays.ingest import IngestSettings, ingest_batch
from exphil_pipeline.rl.character_shaping import GANONDORF_DARK_DIVE, MEWTWO_TELEPORT
from exphil_pipeline.rl.rewards import (
    RewardConfig,
    RewardFrames,
    frame_rewards,
    replay_returns,
    reward_frames_from_engine,
    reward_frames_from_frames_table,
)
from exphil_pipeline.simulator import engine
from exphil_pipeline.simulator.pad_inputs import PadInputs
from exphil_pipeline.simulator.scripted_players import ScriptedPlayers
from exphil_pipeline.storage.layout import DataLayout

STANDING = Action.STANDING.value
FOX, MEWTWO, GANONDORF = (c.value for c in (Character.FOX, Character.MEWTWO, Character.GANONDORF))


def frames(**values: object) -> RewardFrames:
    """One transition side of one game, ``[2]`` per field; unnamed fields take calm defaults
    (4 stocks, 0 %, standing 20 apart on the floor, Fox vs Fox, nobody hit)."""
    defaults: dict[str, object] = {
        "stocks": [4, 4],
        "percent": [0.0, 0.0],
        "x": [-10.0, 10.0],
        "y": [0.0, 0.0],
        "action_state": [STANDING, STANDING],
        "character": [FOX, FOX],
        "hitstun": [False, False],
        "hit_by_opponent": [False, False],
    }
    defaults.update(values)
    return RewardFrames(**{name: np.asarray(value) for name, value in defaults.items()})


def rewards(before: RewardFrames, after: RewardFrames, **config: float) -> np.ndarray:
    return frame_rewards(before, after, RewardConfig(**config))


def test_stocks_and_damage_are_zero_sum() -> None:
    before = frames(percent=[10.0, 50.0])
    after = frames(stocks=[4, 3], percent=[15.0, 50.0])  # P2 dies, P1 takes 5 %
    r = rewards(before, after)
    assert r.dtype == np.float32
    np.testing.assert_allclose(r, [1.0 - 0.05, -(1.0 - 0.05)])


def test_the_percent_reset_after_a_stock_is_neither_damage_nor_healing() -> None:
    dying = rewards(frames(percent=[0.0, 80.0]), frames(stocks=[4, 3], percent=[0.0, 0.0]))
    np.testing.assert_allclose(dying, [1.0, -1.0])
    # Replays keep the old percent after the death frame and reset it later.
    reset = rewards(frames(stocks=[4, 3], percent=[0.0, 80.0]), frames(stocks=[4, 3]))
    np.testing.assert_allclose(reset, [0.0, 0.0])
    dies_while_hit = rewards(frames(percent=[0.0, 80.0]), frames(stocks=[4, 3], percent=[0, 95]))
    np.testing.assert_allclose(dies_while_hit, [1.0, -1.0])


def test_default_rewards_are_zero_sum_on_random_batches() -> None:
    rng = np.random.default_rng(0)
    shape = (7, 5, 2)

    def random_frames() -> RewardFrames:
        return RewardFrames(
            stocks=rng.integers(0, 5, shape),
            percent=rng.uniform(0, 150, shape).astype(np.float32),
            x=rng.normal(0, 50, shape),
            y=rng.normal(0, 50, shape),
            action_state=rng.integers(0, 400, shape),
            character=rng.integers(0, 26, shape),
            hitstun=rng.random(shape) < 0.5,
            hit_by_opponent=rng.random(shape) < 0.5,
        )

    before, after = random_frames(), random_frames()
    r = frame_rewards(before, after, RewardConfig())
    assert r.shape == shape
    np.testing.assert_allclose(r[..., 0], -r[..., 1], atol=1e-6)
    # Leading axes are only batch axes: each element is its own transition.
    np.testing.assert_allclose(r[3, 2], frame_rewards(before[3, 2], after[3, 2], RewardConfig()))


def test_approach_pays_both_players_for_distance_closed_except_around_a_death() -> None:
    closer = frames(x=[-5.0, 6.0])  # 20 apart -> 11 apart
    np.testing.assert_allclose(rewards(frames(), closer, approach=0.1), [0.9, 0.9], rtol=1e-6)
    np.testing.assert_allclose(rewards(closer, frames(), approach=0.1), [-0.9, -0.9], rtol=1e-6)
    halo = frames(x=[-5.0, 6.0], action_state=[Action.ON_HALO_DESCENT.value, STANDING])
    np.testing.assert_allclose(rewards(frames(), halo, approach=0.1), [0.0, 0.0])


def test_ledge_penalises_each_frame_on_the_ledge() -> None:
    hanging = frames(action_state=[Action.EDGE_HANGING.value, STANDING])
    np.testing.assert_allclose(rewards(hanging, hanging, ledge=0.02), [-0.02, 0.0])
    catching = frames(action_state=[STANDING, Action.EDGE_CATCHING.value])
    np.testing.assert_allclose(rewards(frames(), catching, ledge=0.02), [0.0, -0.02])


def test_self_destruct_adds_to_a_stock_lost_without_being_hit() -> None:
    after = frames(stocks=[3, 4])
    sd = rewards(frames(), after, self_destruct=0.5)
    np.testing.assert_allclose(sd, [-1.5, 1.0])
    killed = rewards(frames(hit_by_opponent=[True, False]), after, self_destruct=0.5)
    np.testing.assert_allclose(killed, [-1.0, 1.0])


def test_combo_pays_for_hits_on_an_opponent_still_in_hitstun() -> None:
    after = frames(percent=[0.0, 13.0])
    in_stun = rewards(frames(percent=[0.0, 10.0], hitstun=[False, True]), after, combo=0.2)
    np.testing.assert_allclose(in_stun, [0.03 + 0.2, -0.03], rtol=1e-6)
    fresh = rewards(frames(percent=[0.0, 10.0]), after, combo=0.2)
    np.testing.assert_allclose(fresh, [0.03, -0.03], rtol=1e-6)


def test_character_hooks_apply_to_each_player_s_own_character_only() -> None:
    falling = dict(y=[-30.0, -30.0], character=[MEWTWO, FOX])
    teleport = frames(**{**falling, "action_state": [MEWTWO_TELEPORT[3], MEWTWO_TELEPORT[3]]})
    shaped = rewards(frames(**falling), teleport, character_weight=0.5)
    np.testing.assert_allclose(shaped, [0.5, 0.0])
    above = dict(y=[30.0, 30.0], character=[MEWTWO, FOX])
    high = frames(**{**above, "action_state": [MEWTWO_TELEPORT[3], STANDING]})
    np.testing.assert_allclose(rewards(frames(**above), high, character_weight=0.5), [0, 0])
    ganon = dict(character=[FOX, GANONDORF])
    diving = frames(**ganon, action_state=[STANDING, GANONDORF_DARK_DIVE[1]])
    died = rewards(diving, frames(**ganon, stocks=[4, 3]), character_weight=0.5)
    np.testing.assert_allclose(died, [1.0, -1.5])
    assert not rewards(frames(**falling), teleport).any()  # off by default


def test_config_and_frames_are_validated() -> None:
    with pytest.raises(ValueError, match="ledge"):
        RewardConfig(ledge=-1.0)
    with pytest.raises(ValueError, match="finite"):
        RewardConfig(damage=float("nan"))
    with pytest.raises(ValueError, match=r"\[\.\.\., 2\]"):
        frames(stocks=[4, 4, 4], percent=[0, 0, 0])
    with pytest.raises(ValueError, match="percent"):
        frames(percent=[[0.0, 0.0]])


@pytest.fixture(scope="module")
def simulator() -> SimulatorEnvironment:
    env = SimulatorEnvironment(
        SimulatorConfig(games=4, characters=("MEWTWO", "GANONDORF"), observe=())
    )
    env.reset(seed=3)
    return env


def test_engine_rewards_add_up_to_the_engine_s_own_damage_counter(
    simulator: SimulatorEnvironment,
) -> None:
    players = ScriptedPlayers(np.tile([3, 2], (simulator.num_games, 1)), seed=0)
    start = reward_frames_from_engine(simulator.state)
    assert start.stocks.shape == (simulator.num_games, 2)
    np.testing.assert_array_equal(start.character[0], [MEWTWO, GANONDORF])
    dealt_before = simulator.state.damage_dealt.copy()
    total = np.zeros((simulator.num_games, 2), dtype=np.float64)
    previous = start
    for _ in range(400):
        output = simulator.step_pads(players.inputs(simulator.state, simulator.tables))
        assert not output.done.any()
        current = reward_frames_from_engine(simulator.state)
        total += frame_rewards(previous, current, RewardConfig(stock=0.0, damage=1.0))
        previous = current
    dealt = simulator.state.damage_dealt - dealt_before
    assert dealt.sum() > 0, "the scripted players landed no hit: pick another seed"
    np.testing.assert_allclose(total, dealt - dealt[:, ::-1], rtol=1e-4)


def test_engine_death_pays_the_stock_and_flags_a_self_destruct(
    simulator: SimulatorEnvironment,
) -> None:
    state = simulator.state.copy()
    state.action[:] = Action.STANDING.value
    state.hit_since_landing[0] = [False, False]
    state.hit_since_landing[1] = [False, True]  # game 1: port 2 was hit before falling
    state.y[:2, 1] = simulator.tables.blast_bottom[state.stage[:2]] - 10.0
    before = reward_frames_from_engine(state)
    engine.step(state, PadInputs.neutral(state.games), simulator.tables)
    after = reward_frames_from_engine(state)
    np.testing.assert_array_equal(after.stocks[:2, 1], before.stocks[:2, 1] - 1)
    r = frame_rewards(before, after, RewardConfig(damage=0.0, self_destruct=0.5))
    np.testing.assert_allclose(r[0], [1.0, -1.5])
    np.testing.assert_allclose(r[1], [1.0, -1.0])
    np.testing.assert_allclose(r[2:], 0.0)


REPLAYS = ("exphil-fox_multishine.slp", "peppi-game.slp")  # 1v1s with 5 and 4 stocks lost


@pytest.fixture(scope="module")
def ingested(real_replays: Path, tmp_path_factory: pytest.TempPathFactory) -> DataLayout:
    folder = tmp_path_factory.mktemp("rl-replays")
    for name in REPLAYS:
        shutil.copy(real_replays / name, folder / name)
    layout = DataLayout(tmp_path_factory.mktemp("rl-home"))
    result = ingest_batch(ReplayBatch("rl", folder), layout, IngestSettings(workers=1))
    assert [g.status for g in result.games] == ["ok", "ok"]
    return layout


def _expected_per_port(frames_table: pl.DataFrame) -> pl.DataFrame:
    """Stocks lost (first minus last) and damage taken (the percent each life ended on,
    summed: percent only rises within a life) per (game_id, port), straight from the table."""
    leaders = frames_table.filter(~pl.col("is_follower")).sort("game_id", "port", "frame")
    lost = leaders.group_by("game_id", "port").agg(
        stocks_lost=(pl.col("stocks").first().cast(pl.Int64) - pl.col("stocks").last())
    )
    lives = (
        leaders.filter(pl.col("stocks") > 0)  # after the last stock only a stale percent
        .group_by("game_id", "port", "stocks")
        .agg(pl.col("percent").last())
    )
    taken = lives.group_by("game_id", "port").agg(damage_taken=pl.col("percent").sum())
    return lost.join(taken, on=["game_id", "port"]).sort("game_id", "port")


def test_replay_returns_match_the_stocks_and_percent_in_the_tables(ingested: DataLayout) -> None:
    frames_table = pl.read_parquet(ingested.frames_dir / "batch=rl" / "*.parquet")
    games = pl.read_parquet(ingested.games_dir / "batch=rl" / "*.parquet")
    returns = replay_returns(frames_table, RewardConfig())
    expected = _expected_per_port(frames_table)
    ports = games.explode("players").select(
        "game_id", port=pl.col("players").struct.field("port").cast(pl.UInt8)
    )
    assert (
        returns.select("game_id", "port")
        .sort("game_id", "port")
        .equals(ports.sort("game_id", "port"))
    )
    joined = returns.join(expected, on=["game_id", "port"], suffix="_table")
    assert joined.height == 4
    assert joined["stocks_lost"].to_list() == joined["stocks_lost_table"].to_list()
    assert sorted(joined["stocks_lost"].to_list()) == [0, 1, 4, 4]
    np.testing.assert_allclose(joined["damage_taken"], joined["damage_taken_table"], rtol=1e-5)
    for _, game in joined.group_by("game_id"):
        (a, b) = game.sort("port").iter_rows(named=True)
        assert (a["stocks_taken"], a["damage_dealt"]) == (b["stocks_lost"], b["damage_taken"])
        assert a["return"] == pytest.approx(-b["return"])
        assert a["return"] == pytest.approx(
            (b["stocks_lost"] - a["stocks_lost"]) + 0.01 * (b["damage_taken"] - a["damage_taken"])
        )


def test_replay_frames_are_time_series_of_both_leaders(ingested: DataLayout) -> None:
    frames_table = pl.read_parquet(ingested.frames_dir / "batch=rl" / "*.parquet")
    by_game = reward_frames_from_frames_table(frames_table)
    assert len(by_game) == 2
    for game_id, game in by_game.items():
        rows = frames_table.filter(pl.col("game_id") == game_id, ~pl.col("is_follower"))
        port_one = rows.filter(pl.col("port") == rows["port"].min()).sort("frame")
        assert game.stocks.shape == (port_one.height, 2)
        np.testing.assert_array_equal(game.x[:, 0], port_one["x"].to_numpy())
        np.testing.assert_array_equal(game.character[:, 0], port_one["character"].to_numpy())
        # A hit by the opponent sets the flag: every percent rise within a life follows one.
        rises = (np.diff(game.percent, axis=0) > 0) & (np.diff(game.stocks, axis=0) == 0)
        assert rises.any()
        assert game.hit_by_opponent[1:][rises].mean() > 0.9
        assert game.hitstun.any()
