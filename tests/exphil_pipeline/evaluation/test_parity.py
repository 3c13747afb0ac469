"""Train/serve parity: the Parquet path and libmelee's file console embed every frame alike."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from exphil_pipeline.evaluation.parity import ParityReport, compare_replay
from exphil_pipeline.storage.layout import DataLayout

# Files libmelee's console cannot read (its own errors), though the pipeline may.
LIBMELEE_UNREADABLE = {
    "js-FodPlatforms.slp",  # libmelee: "Fountain of Dreams platforms not initialized"
    "js-incomplete.slp",  # truncated: the UBJSON container does not decode
    "js-test.slp",  # Slippi 0.x event sizes
    "peppi-corrupt.slp",
    "peppi-unknown_event.slp",  # an event type libmelee does not know
    "peppi-v0.1.slp",
}


def _compare(args: tuple[Path, Path]) -> ParityReport:
    path, home = args
    return compare_replay(path, DataLayout(home))


def test_generated_replays_embed_identically(sample_store, sample_replays) -> None:
    for path in sample_replays:
        report = compare_replay(path, DataLayout(sample_store.home))
        assert report.status == "ok", report.to_dict()
        assert report.frames_source == "store"
        assert report.frames_compared == 2 * 600 and report.max_abs_diff == 0.0


def test_every_readable_real_replay_embeds_bit_for_bit(real_store, real_replays, catalog) -> None:
    files = [real_replays / entry.file for entry in catalog]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=context) as pool:
        reports = list(pool.map(_compare, [(f, real_store.home) for f in files]))
    by_name = {Path(r.replay).name: r for r in reports}
    unreadable = {name for name, r in by_name.items() if r.status == "unreadable"}
    assert unreadable == LIBMELEE_UNREADABLE
    compared = {name: r for name, r in by_name.items() if r.status != "unreadable"}
    different = {n: r.to_dict() for n, r in compared.items() if r.status != "ok"}
    assert not different
    assert all(r.max_abs_diff == 0.0 and r.frames_compared > 0 for r in compared.values())
    # The corpus covers what broke earlier projects; each kind must be among the exact ones.
    players = {entry.file: entry.players for entry in catalog}
    assert any("ICECLIMBERS" in players[n] for n in compared)  # Nana (follower) frames
    assert "js-itemExport.slp" in compared  # items and projectiles
    assert "js-doubles.slp" in compared  # 4 players, Slippi 1.2, a stock taken back mid-game
    assert {"js-nametags.slp", "js-controllerFixes.slp"} <= set(compared)  # Slippi 1.7
    assert any(n.startswith("exphil-") for n in compared)  # Slippi 3.19 netplay replays


def test_parity_reports_the_first_differing_feature(sample_store, sample_replays, tmp_path) -> None:
    # Tamper with one stored position: the report must name the feature, frame and values.
    home = tmp_path / "home"
    subprocess.run(["cp", "-r", str(sample_store.home), str(home)], check=True)
    layout = DataLayout(home)
    frames_path = next(layout.table_partition("frames", sample_store.batch).glob("*.parquet"))
    table = pq.read_table(frames_path)
    target = pc.and_(pc.equal(table["port"], 1), pc.equal(table["frame"], 100))
    x = pc.if_else(target, pc.add(table["x"], 1.0), table["x"])
    pq.write_table(table.set_column(table.schema.get_field_index("x"), "x", x), frames_path)
    replay = next(p for p in sample_replays if frames_path.stem in _game_ids([p]))
    report = compare_replay(replay, layout)
    assert report.status == "different"
    first = report.first_differences[0]
    assert (first.port, first.frame, first.feature) == (1, 100, "self_x")
    assert abs(first.pipeline - first.runtime - 0.01) < 1e-6


def _game_ids(paths: list[Path]) -> set[str]:
    from exphil_pipeline.replays.game_ingest import content_game_id

    return {content_game_id(p.read_bytes()) for p in paths}


def test_cli_prints_one_json_line_per_replay(sample_store, sample_replays) -> None:
    env = {
        **os.environ,
        "EXPHIL_HOME": str(sample_store.home),
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    run = subprocess.run(
        ["exphil", "parity", *map(str, sample_replays[:2])],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert [line["status"] for line in lines] == ["ok", "ok"]
    assert all(line["max_abs_diff"] == 0.0 and line["first_differences"] == [] for line in lines)
    missing = subprocess.run(
        ["exphil", "parity", "/nonexistent.slp"], env=env, capture_output=True, text=True
    )
    assert missing.returncode == 2 and "no such replay" in missing.stderr
