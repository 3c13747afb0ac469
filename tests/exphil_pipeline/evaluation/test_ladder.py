"""The ladder: scripted anchors and exported artifacts rated from simulated games, new pairings
played once, recorded games never replayed.

Games are short (1 stock, a 1000-frame timer, 12 per pairing) in Mewtwo dittos, where the
scripted levels are ordered; most end at the timer, decided by percent. At this setup levels
3 > 2 > 0 by mu and by ordinal for each of the seeds 0-4 (measured when this was written).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from exphil_pipeline.evaluation.arena import ArenaConfig, play_arena
from exphil_pipeline.evaluation.ladder import (
    LadderConfig,
    LadderResult,
    build_ladder,
    rate_games,
)
from exphil_pipeline.evaluation.matches import read_matches, write_matches
from exphil_pipeline.evaluation.players import ScriptedPlayer
from exphil_pipeline.storage.layout import DataLayout
from tests.runtime.conftest import export_small_policy

SHORT = {"stocks": 1, "max_frames": 1000, "games_per_pairing": 12}
LEVELS = [0, 2, 3]
ARENA_GAMES = 2


@dataclass(frozen=True)
class LadderRuns:
    layout: DataLayout
    first: LadderResult  # scripted levels only
    second: LadderResult  # an artifact added
    before: pa.Table  # the matches table after the first build
    after: pa.Table  # after the second
    log: list[str]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> LadderRuns:
    layout = DataLayout(tmp_path_factory.mktemp("ladder"))
    # An ordinary arena run in the same table: the ladder must neither count nor rate it.
    short = ArenaConfig(characters=("MEWTWO", "MEWTWO"), stocks=1, max_frames=300)
    report = play_arena(ScriptedPlayer(3), ScriptedPlayer(0), ARENA_GAMES, short, seed=0)
    write_matches(layout, report)
    log: list[str] = []
    config = LadderConfig(scripted_levels=LEVELS, **SHORT)
    first = build_ladder(layout, config, log.append)
    before = read_matches(layout)
    exported = export_small_policy(layout.home / "export", "mlp", frame_delay=0).path
    artifact = layout.experiment("tiny").policy_int8
    artifact.parent.mkdir(parents=True)
    shutil.copyfile(exported, artifact)
    second = build_ladder(layout, config, log.append)
    return LadderRuns(layout, first, second, before, read_matches(layout), log)


def _by_name(result: LadderResult) -> dict:
    return {s.name: s for s in result.standings}


def test_scripted_levels_rank_in_their_documented_order(runs: LadderRuns) -> None:
    print("\n" + runs.first.to_markdown())
    print(runs.second.to_markdown())
    print("\n".join(runs.log))
    standings = _by_name(runs.first)
    assert [s.name for s in runs.first.standings] == ["scripted:3", "scripted:2", "scripted:0"]
    three, two, zero = (standings[f"scripted:{level}"] for level in (3, 2, 0))
    assert three.mu > two.mu > zero.mu
    assert three.ordinal > two.ordinal > zero.ordinal
    assert all(s.games == 24 and s.active for s in standings.values())
    assert three.ordinal == pytest.approx(three.mu - 3 * three.sigma)
    assert runs.first.games_played == runs.first.games_total == 36
    assert len(runs.first.pairings_played) == 3


def test_a_new_artifact_plays_only_its_pairings_and_keeps_old_games(runs: LadderRuns) -> None:
    second = runs.second
    (artifact,) = (s.name for s in second.standings if s.name.startswith("artifact:tiny@"))
    assert sorted(second.pairings_played) == [(artifact, f"scripted:{level}") for level in LEVELS]
    assert second.games_played == 3 * SHORT["games_per_pairing"]
    assert runs.after.num_rows == runs.before.num_rows + second.games_played
    assert second.games_total == 72
    old = runs.after.filter(pc.is_in(runs.after["run_id"], runs.before["run_id"]))
    assert old.sort_by("run_id").equals(runs.before.sort_by("run_id"))
    assert pc.sum(pc.equal(runs.after["run_kind"], "arena")).as_py() == ARENA_GAMES
    standings = _by_name(second)
    assert standings[artifact].games == 36 and standings["scripted:3"].games == 36
    # The untrained artifact is rated from its games like any player.
    assert standings[artifact].ordinal < standings["scripted:3"].ordinal
    assert any(f"{artifact} was trained on FOX" in line for line in runs.log)


def test_rebuilding_plays_nothing_and_rates_the_same(runs: LadderRuns) -> None:
    config = LadderConfig(scripted_levels=LEVELS, **SHORT)
    again = build_ladder(runs.layout, config, lambda _: None)
    assert again.games_played == 0 and again.pairings_played == ()
    assert again.standings == runs.second.standings


def test_a_level_left_out_keeps_its_rating_as_inactive(runs: LadderRuns) -> None:
    config = LadderConfig(scripted_levels=[2, 3], **SHORT)
    result = build_ladder(runs.layout, config, lambda _: None)
    assert result.games_played == 0
    assert [s.name for s in result.standings if not s.active] == ["scripted:0"]
    ratings = [(s.name, s.mu, s.sigma, s.games) for s in result.standings]
    assert ratings == [(s.name, s.mu, s.sigma, s.games) for s in runs.second.standings]


def test_another_setup_is_refused(runs: LadderRuns) -> None:
    config = LadderConfig(scripted_levels=LEVELS, **{**SHORT, "stocks": 2})
    with pytest.raises(ValueError, match=r"recorded games .* start_stocks"):
        build_ladder(runs.layout, config, lambda _: None)
    assert read_matches(runs.layout).num_rows == runs.after.num_rows


def test_the_config_refuses_what_the_ladder_cannot_rate() -> None:
    with pytest.raises(ValueError, match="dittos"):
        LadderConfig(characters=["FOX", "MEWTWO"])
    with pytest.raises(ValueError, match="distinct levels"):
        LadderConfig(scripted_levels=[0, 4])


def test_draws_are_ties_and_wins_move_ratings() -> None:
    def game(winner: str | None) -> dict:
        return {"player_1": "a", "player_2": "b", "winner": winner, "void": False}

    a, b = rate_games([game(None)] * 3, active=["a", "b"])
    assert a.mu == pytest.approx(b.mu) and a.sigma < 25 / 3
    assert (a.draws, a.games) == (3, 3)
    top, bottom = rate_games([game("b"), game(None), {**game("a"), "void": True}], active=[])
    assert top.name == "b" and top.mu > 25 > bottom.mu
    assert (top.wins, top.draws, bottom.losses, bottom.games) == (1, 1, 1, 2)
    with pytest.raises(ValueError, match="neither player"):
        rate_games([game("c")], active=[])


def test_files_written_before_run_kind_read_as_null(tmp_path: Path) -> None:
    layout = DataLayout(tmp_path)
    short = ArenaConfig(characters=("MEWTWO", "MEWTWO"), stocks=1, max_frames=120)
    _, path = write_matches(layout, play_arena(ScriptedPlayer(1), ScriptedPlayer(0), 2, short, 0))
    pq.write_table(pq.read_table(path).drop_columns(["run_kind", "start_stocks"]), path)
    table = read_matches(layout)
    assert table.num_rows == 2 and table["run_kind"].null_count == 2
    assert table["max_frames"].to_pylist() == [120, 120]
