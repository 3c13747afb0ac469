"""Ingestion on the real corpus: every catalog file lands as expected, nothing is duplicated,
bad input is quarantined without losing the batch, and readers never see partial files."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from peppi_py._peppi import read_slippi as read_raw

from exphil_pipeline.replays.batches import ReplayBatch
from exphil_pipeline.replays.duckdb_catalog import build_catalog
from exphil_pipeline.replays.ingest import BatchResult, IngestSettings, ingest_batch
from exphil_pipeline.storage.layout import DataLayout
from tests.conftest import CatalogEntry

# Files upstream peppi refuses, and what must land for each of them.
REFUSED_FILES = {
    "js-BTTDK.slp": ("repaired", 1190),  # unknown game-end method 6; libmelee also reads 1190
    "js-homeRun_positive.slp": ("repaired", 1421),  # unknown game-end method 9; libmelee: 1421
    "js-incomplete.slp": ("repaired", 7779),  # Dolphin stopped mid-game; v1.2 has no bookends
    "peppi-corrupt.slp": ("quarantined", None),  # game start only, no complete frame
    "js-FodPlatforms.slp": ("quarantined", None),  # peppi and libmelee both fail on its frames
}
SMALL = ["peppi-netplay.slp", "js-nametags.slp", "peppi-ics.slp", "js-ntsc.slp"]


@pytest.fixture(scope="module")
def corpus(
    real_replays: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[DataLayout, BatchResult]:
    layout = DataLayout(tmp_path_factory.mktemp("home"))
    result = ingest_batch(ReplayBatch("corpus", real_replays), layout, IngestSettings(workers=2))
    build_catalog(layout)
    return layout, result


def test_every_catalog_file_lands_as_expected_or_better(
    corpus: tuple[DataLayout, BatchResult], catalog: list[CatalogEntry], real_replays: Path
) -> None:
    _, result = corpus
    by_id = {g.game_id: g for g in result.games}
    report = []
    for entry in catalog:
        game = by_id[entry.sha256]
        report.append(f"{entry.file}: {game.status} {game.frame_count} {game.error or ''}")
        if entry.parses:
            assert game.status == "ok", entry.file
            ids = read_raw(str(real_replays / entry.file), False).frames.field("id").to_numpy()
            assert game.frame_count == len(np.unique(ids)), entry.file
            assert game.frames_rows == game.frame_count * len(
                [s for s in entry.players.split() if s]
            ) + (game.frame_count if "ICECLIMBERS" in entry.players else 0), entry.file
        else:
            status, frames = REFUSED_FILES[entry.file]
            assert (game.status, game.frame_count) == (status, frames), entry.file
            assert game.error, entry.file
    print("\n".join(report))
    assert len(result.games) == len(catalog)


def test_duckdb_counts_equal_parquet_counts(corpus: tuple[DataLayout, BatchResult]) -> None:
    layout, _ = corpus
    con = duckdb.connect(str(layout.duckdb_path), read_only=True)
    for table in ("games", "frames", "items"):
        files = list((layout.home / table).glob("batch=*/*.parquet"))
        expected = sum(pq.read_metadata(f).num_rows for f in files)
        [(count,)] = con.sql(f"SELECT count(*) FROM {table}").fetchall()
        assert count == expected > 0, table
    [(batches,)] = con.sql("SELECT count(DISTINCT batch) FROM frames").fetchall()
    assert batches == 1
    con.close()


def _copy(real_replays: Path, folder: Path, names: list[str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy(real_replays / n, folder / n)) for n in names]


def _game_ids(layout: DataLayout) -> list[str]:
    return duckdb.sql(
        f"SELECT game_id FROM read_parquet('{layout.home}/games/*/*.parquet')"
    ).fetchall()


def test_same_bytes_under_two_names_are_one_game(real_replays: Path, tmp_path: Path) -> None:
    folder = tmp_path / "dup"
    _copy(real_replays, folder, SMALL[:1])
    shutil.copy(folder / SMALL[0], folder / "renamed copy.slp")
    layout = DataLayout(tmp_path / "home")
    result = ingest_batch(ReplayBatch("dup", folder), layout, IngestSettings(workers=1))
    assert len(result.games) == 1
    assert result.games[0].duplicate_paths == [str(folder / SMALL[0])] or result.games[
        0
    ].duplicate_paths == [str(folder / "renamed copy.slp")]


def test_second_batch_and_rerun_do_not_duplicate_games(real_replays: Path, tmp_path: Path) -> None:
    layout = DataLayout(tmp_path / "home")
    a = ReplayBatch("a", tmp_path / "a")
    b = ReplayBatch("b", tmp_path / "b")
    _copy(real_replays, a.folder, SMALL[:3])
    _copy(real_replays, b.folder, SMALL[1:])
    ingest_batch(a, layout, IngestSettings(workers=1))
    second = ingest_batch(b, layout, IngestSettings(workers=1))
    assert len(second.games) == 1 and len(second.duplicates_elsewhere) == 2
    ingest_batch(a, layout, IngestSettings(workers=1))
    ids = _game_ids(layout)
    assert len(ids) == len(set(ids)) == 4
    frame_files = [p.stem for p in layout.frames_dir.glob("batch=*/*.parquet")]
    assert sorted(frame_files) == sorted({i for (i,) in ids})


def test_a_batch_that_gains_and_loses_files_is_rewritten(
    real_replays: Path, tmp_path: Path
) -> None:
    layout = DataLayout(tmp_path / "home")
    batch = ReplayBatch("grow", tmp_path / "grow")
    _copy(real_replays, batch.folder, SMALL[:2])
    ingest_batch(batch, layout, IngestSettings(workers=1))
    _copy(real_replays, batch.folder, SMALL[2:3])
    assert len(ingest_batch(batch, layout, IngestSettings(workers=1)).games) == 3
    (batch.folder / SMALL[0]).unlink()
    result = ingest_batch(batch, layout, IngestSettings(workers=1))
    assert len(result.games) == 2
    assert len(list(layout.table_partition("frames", "grow").glob("*.parquet"))) == 2
    # The dropped game's claim is released: another batch may now own it.
    other = ReplayBatch("other", tmp_path / "other")
    _copy(real_replays, other.folder, SMALL[:1])
    assert len(ingest_batch(other, layout, IngestSettings(workers=1)).games) == 1


def test_bad_files_are_quarantined_and_the_rest_lands(real_replays: Path, tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    _copy(real_replays, folder, SMALL[:1])
    (folder / "notes.slp").write_text("this is not a replay")
    (folder / "empty.slp").write_bytes(b"")
    data = (real_replays / "exphil-fox_multishine.slp").read_bytes()
    (folder / "crashed.slp").write_bytes(data[: len(data) // 3])
    layout = DataLayout(tmp_path / "home")
    result = ingest_batch(ReplayBatch("bad", folder), layout, IngestSettings(workers=2))
    status = {Path(g.source_path).name: g for g in result.games}
    assert status[SMALL[0]].status == "ok"
    assert status["notes.slp"].status == "quarantined"
    assert "not a Slippi replay" in status["notes.slp"].error
    assert status["empty.slp"].status == "quarantined"
    assert status["crashed.slp"].status == "repaired" and status["crashed.slp"].frame_count > 100


KILL_SCRIPT = """
import sys
from pathlib import Path
from exphil_pipeline.storage.layout import DataLayout
from exphil_pipeline.replays.ingest import IngestSettings, ingest_batch
from exphil_pipeline.replays.batches import ReplayBatch
if __name__ == "__main__":
    ingest_batch(ReplayBatch("k", Path(sys.argv[1])), DataLayout(Path(sys.argv[2])),
                 IngestSettings(workers=1))
"""


@pytest.mark.timeout(120)
def test_kill_9_mid_run_leaves_no_partial_parquet(real_replays: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    for delay in (0.8, 1.6):
        process = subprocess.Popen(
            [sys.executable, str(script), str(real_replays), str(home)], env=env
        )
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        for path in home.rglob("*.parquet"):
            pq.read_metadata(path)  # every visible file is complete
    result = ingest_batch(
        ReplayBatch("k", real_replays), DataLayout(home), IngestSettings(workers=2)
    )
    assert result.count("ok") == 71
    leftovers = [p for p in home.rglob(".*") if ".tmp-" in p.name]
    assert leftovers == []


def test_generated_replays_land_with_the_values_written(tmp_path: Path) -> None:
    """Writer -> .slp -> ingest -> Parquet gives back exactly the written per-frame values."""
    from exphil_pipeline.simulator.game_assembly import generate_game
    from exphil_pipeline.simulator.slp_writer import write_slp

    folder = tmp_path / "gen"
    written = generate_game(seed=11, frames=600)
    write_slp(folder / "one.slp", written)
    layout = DataLayout(tmp_path / "home")
    result = ingest_batch(ReplayBatch("gen", folder), layout, IngestSettings(workers=1))
    [game] = result.games
    assert game.status == "ok" and game.players[0]["character_name"] == "MEWTWO"
    assert game.frame_count == len(written.frames)
    frames = pq.read_table(layout.table_partition("frames", "gen") / f"{game.game_id}.parquet")
    for index, player in enumerate(written.start.players):
        rows = frames.filter(pc.equal(frames["port"], player.port + 1))
        expected_x = [float(np.float32(f.players[index].post.x)) for f in written.frames]
        assert rows["x"].to_pylist() == expected_x
        assert rows["buttons"].to_pylist() == [f.players[index].pre.buttons for f in written.frames]
        assert rows["action_state"].to_pylist() == [
            f.players[index].post.action_state for f in written.frames
        ]


def test_the_worker_module_imports_no_dagster() -> None:
    # Ingestion workers fork from a server that imports only this module: Dagster there would
    # cost every batch's first workers more than a second of start-up again.
    code = (
        "import sys, exphil_pipeline.replays.game_ingest; "
        "print(sorted(m for m in ('dagster', 'polars', 'torch') if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]", run.stdout
