"""Curation of the games a training set learns from, on the real corpus and the samples."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from exphil_pipeline.replays.duckdb_catalog import build_catalog, connect_readonly
from exphil_pipeline.storage.layout import DataLayout
from exphil_pipeline.training.training_set import (
    CPU_PLAYER,
    DAMAGE_UNKNOWN,
    DUPLICATE,
    LRAS_QUIT,
    NO_DAMAGE,
    NOT_1V1,
    OLD_SLIPPI,
    QUARANTINED,
    STAGE,
    build_training_set,
    curate,
    read_games,
    shorter_than,
)
from exphil_pipeline.training.training_set_config import TrainingSetConfig, version_tuple
from tests.conftest import CatalogEntry, IngestedStore

# Every rule off: only games that cannot be 1v1 training data are skipped.
PERMISSIVE = {
    "characters": ["all"],
    "min_frames": 0,
    "allow_cpu": True,
    "require_damage_both": False,
    "keep_lras": True,
    "stages": ["all"],
    "dedupe_matches": False,
}


def _skipped(store: IngestedStore, **rule: object) -> dict[str, str]:
    """File name -> reason of every game skipped with PERMISSIVE plus ``rule``."""
    rows = read_games(DataLayout(store.home))
    names = {r["game_id"]: Path(r["source_path"]).name for r in rows}
    selection = curate(rows, TrainingSetConfig(**{**PERMISSIVE, **rule}))
    return {names[d.game_id]: d.reason for d in selection.decisions if d.reason is not None}


def _players(entry: CatalogEntry) -> list[tuple[str, str]]:
    return [tuple(p.split(":")[1:]) for p in entry.players.split()]


def _one_v_one(catalog: list[CatalogEntry]) -> list[CatalogEntry]:
    """Files the upstream parser reads (the catalog describes them) with two players."""
    return [e for e in catalog if e.parses and len(_players(e)) == 2]


def _catalog_column(real_replays: Path, column: str) -> dict[str, str]:
    import csv

    with open(real_replays / "CATALOG.tsv", newline="") as f:
        return {r["file"]: r[column] for r in csv.DictReader(f, delimiter="\t")}


def _newly_skipped(store: IngestedStore, reason: str, **rule: object) -> set[str]:
    return {name for name, why in _skipped(store, **rule).items() if why == reason}


def test_with_every_rule_off_only_unusable_games_are_skipped(
    real_store: IngestedStore, catalog: list[CatalogEntry]
) -> None:
    skipped = _skipped(real_store)
    assert set(skipped.values()) == {QUARANTINED, NOT_1V1}
    parsed = {e.file for e in catalog if e.parses}
    expected = {e.file for e in catalog if e.parses and len(_players(e)) != 2}
    assert {n for n in skipped if n in parsed} == expected


def test_cpu_rule_skips_exactly_the_games_with_a_cpu(
    real_store: IngestedStore, catalog: list[CatalogEntry]
) -> None:
    skipped = _newly_skipped(real_store, CPU_PLAYER, allow_cpu=False)
    expected = {e.file for e in _one_v_one(catalog) if any(t == "CPU" for _, t in _players(e))}
    parsed = {e.file for e in catalog if e.parses}
    assert expected and {n for n in skipped if n in parsed} == expected


def test_stage_rule_skips_exactly_the_other_stages(
    real_store: IngestedStore, catalog: list[CatalogEntry], real_replays: Path
) -> None:
    stages = _catalog_column(real_replays, "stage")
    skipped = _newly_skipped(real_store, STAGE, stages=["FINAL_DESTINATION"])
    expected = {e.file for e in _one_v_one(catalog) if stages[e.file] != "32"}
    assert expected and skipped & {e.file for e in catalog if e.parses} == expected
    # The legal stages: the one 1v1 game elsewhere is a Home-Run Contest (DK vs Sandbag),
    # which the catalog's parser could not read (its end method is newer).
    legal = _newly_skipped(real_store, STAGE, stages=TrainingSetConfig().stages)
    assert legal == {"js-homeRun_positive.slp"}


def test_version_rule_compares_numerically(
    real_store: IngestedStore, catalog: list[CatalogEntry], real_replays: Path
) -> None:
    versions = _catalog_column(real_replays, "slippi_version")
    skipped = _newly_skipped(real_store, OLD_SLIPPI, min_slippi_version="3.9.0")
    expected = {e.file for e in _one_v_one(catalog) if version_tuple(versions[e.file]) < (3, 9, 0)}
    # 3.12-3.19 are newer than 3.9 although they sort before it as text.
    assert "exphil-mewtwo_shfair_only.slp" not in skipped
    assert expected and skipped & {e.file for e in catalog if e.parses} == expected


def test_length_rule_skips_exactly_the_short_games(
    real_store: IngestedStore, catalog: list[CatalogEntry], real_replays: Path
) -> None:
    frames = _catalog_column(real_replays, "frames")
    skipped = _newly_skipped(real_store, shorter_than(1800), min_frames=1800)
    expected = {e.file for e in _one_v_one(catalog) if int(frames[e.file]) < 1800}
    assert expected and skipped & {e.file for e in catalog if e.parses} == expected


def test_lras_rule_skips_quits_and_keeps_finished_and_unknown_ends(
    real_store: IngestedStore,
) -> None:
    skipped = _newly_skipped(real_store, LRAS_QUIT, keep_lras=False)
    rows = {Path(r["source_path"]).name: r for r in read_games(DataLayout(real_store.home))}
    expected = {
        name
        for name, r in rows.items()
        if r["end_method"] == "NOCONTEST" and r["lras_initiator"] and len(r["players"]) == 2
    }
    assert "js-unranked_game1.slp" in skipped and skipped == expected
    assert rows["exphil-mewtwo_shfair_only.slp"]["end_method"] == "GAME"
    # Slippi 1.x records only RESOLVED/UNRESOLVED: kept, how it ended is unknown.
    assert rows["peppi-v0.1.slp"]["end_method"] == "RESOLVED"
    assert "peppi-v0.1.slp" not in skipped


def test_damage_rule_matches_the_frames(real_store: IngestedStore) -> None:
    skipped = _newly_skipped(real_store, NO_DAMAGE, require_damage_both=True)
    layout = DataLayout(real_store.home)
    frames = str(layout.frames_dir / "batch=*" / "*.parquet")
    hurt = duckdb.sql(
        f"SELECT game_id, count(DISTINCT port) FROM read_parquet('{frames}') "
        "WHERE NOT is_follower AND percent > 0 GROUP BY 1"
    ).fetchall()
    damaged = {game_id for game_id, ports in hurt if ports == 2}
    expected = {
        Path(r["source_path"]).name
        for r in read_games(layout)
        if r["status"] != "quarantined" and len(r["players"] or []) == 2
        if r["game_id"] not in damaged
    }
    assert expected and skipped == expected


def test_the_same_match_recorded_twice_keeps_one(real_store: IngestedStore) -> None:
    skipped = _newly_skipped(real_store, DUPLICATE, dedupe_matches=True)
    rows = {
        Path(r["source_path"]).name: r["game_id"] for r in read_games(DataLayout(real_store.home))
    }
    twins = [
        ("peppi-game.slp", "peppi-unknown_event.slp"),
        ("peppi-netplay.slp", "pyslippi-netplay.slp"),
    ]
    # Distinct bytes (two game ids), one game: the larger id of each pair is the copy skipped.
    assert skipped == {max(pair, key=rows.__getitem__) for pair in twins}


def test_defaults_count_every_skipped_game_under_one_reason(real_store: IngestedStore) -> None:
    layout = DataLayout(real_store.home)
    config = TrainingSetConfig(characters=["MEWTWO"])
    selection = curate(read_games(layout), config)
    used = {d.game_id for d in selection.decisions if d.used}
    assert selection.skipped[CPU_PLAYER] >= 1 and selection.skipped[LRAS_QUIT] >= 1
    assert sum(selection.skipped.values()) + len(used) == selection.games_seen == 76
    result = build_training_set(layout, "curation-mewtwo", config)
    assert result.manifest.games_skipped == selection.skipped
    assert result.manifest.games_seen == 76
    episodes = {e["game_id"] for s in ("train", "heldout") for e in result_episodes(result.path, s)}
    assert episodes == used


def result_episodes(path: Path, split: str) -> list[dict]:
    return pq.read_table(path / split / "episodes.parquet").to_pylist()


def test_view_agrees_with_the_training_set_selection(real_store: IngestedStore) -> None:
    layout = DataLayout(real_store.home)
    build_catalog(layout)
    con = connect_readonly(layout)
    try:
        view = con.sql("SELECT game_id, used, reason FROM curated_games").fetchall()
    finally:
        con.close()
    decisions = curate(read_games(layout), TrainingSetConfig()).decisions
    assert sorted(view) == sorted((d.game_id, d.used, d.reason) for d in decisions)
    assert len(view) == 76


def test_sample_games_all_pass_the_defaults(sample_store: IngestedStore) -> None:
    selection = curate(read_games(DataLayout(sample_store.home)), TrainingSetConfig())
    assert selection.skipped == {}
    assert len(selection.players) == len(selection.decisions) == 3


def test_games_tables_from_before_curation_read_its_columns_as_null(
    sample_store: IngestedStore, tmp_path: Path
) -> None:
    source = DataLayout(sample_store.home).games_file(sample_store.batch)
    layout = DataLayout(tmp_path)
    old = layout.games_file(sample_store.batch)
    old.parent.mkdir(parents=True)
    new_columns = ["match_id", "game_number", "tiebreaker_number", "random_seed", "damaged_ports"]
    pq.write_table(pq.read_table(source).drop_columns(new_columns), old)
    rows = read_games(layout)
    assert rows and all(r[c] is None for r in rows for c in new_columns)
    assert curate(rows, TrainingSetConfig()).skipped == {DAMAGE_UNKNOWN: 3}
    assert curate(rows, TrainingSetConfig(require_damage_both=False)).skipped == {}


def test_config_refuses_unknown_stages_weights_and_versions() -> None:
    with pytest.raises(ValueError, match="unknown stage names"):
        TrainingSetConfig(stages=["FINAL_DESTINATON"])
    with pytest.raises(ValueError, match="character_weights"):
        TrainingSetConfig(character_weights={"MEWTOO": 2.0})
    with pytest.raises(ValueError, match="min_slippi_version"):
        TrainingSetConfig(min_slippi_version="3.x")
    assert TrainingSetConfig(min_slippi_version="3.9").version_ok("3.19.1")


def test_zelda_and_sheik_each_select_the_player_in_either_form(
    real_store: IngestedStore, catalog: list[CatalogEntry]
) -> None:
    rows = read_games(DataLayout(real_store.home))
    names = {r["game_id"]: Path(r["source_path"]).name for r in rows}
    expected = {
        e.file
        for e in _one_v_one(catalog)
        if any(character in ("ZELDA", "SHEIK") for character, _ in _players(e))
    }
    assert {"ZELDA", "SHEIK"} <= {c for e in catalog for c, _ in _players(e)}
    for asked in ("ZELDA", "SHEIK"):
        selection = curate(rows, TrainingSetConfig(**{**PERMISSIVE, "characters": [asked]}))
        chosen = {names[p.game_id] for p in selection.players}
        assert chosen == expected, asked
        assert {p.character for p in selection.players} == {"ZELDA", "SHEIK"}
