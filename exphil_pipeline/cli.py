"""``exphil``: the commands users script. The Dagster UI is ``exphil ui`` (``dagster dev``)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from exphil_pipeline.storage.layout import DataLayout

app = typer.Typer(help="ExPhil: Slippi replays to playable Melee bots.", no_args_is_help=True)


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def _ingest_summary(result: Any, batch: str, run_id: str) -> dict[str, Any]:
    """The one-line summary of an ingest run, read back from its Dagster events."""
    games: dict[str, Any] = {}
    frames: dict[str, Any] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        values = {k: v.value for k, v in materialization.metadata.items()}
        if materialization.asset_key.path == ["games"]:
            games = values
        elif materialization.asset_key.path == ["frames"]:
            frames = values
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    return {
        "batch": batch,
        "run_id": run_id,
        "success": result.success,
        "games": games.get("games"),
        "ok": games.get("games_ok"),
        "repaired": games.get("games_repaired"),
        "quarantined": games.get("games_quarantined"),
        "duplicates_skipped": games.get("duplicates_skipped"),
        "frames": frames.get("frames"),
        "rows": frames.get("rows"),
        "seconds": frames.get("seconds"),
        "frames_per_s": frames.get("frames_per_s"),
        "input_bytes": frames.get("input_bytes"),
        "output_bytes": frames.get("output_bytes"),
        "compression_ratio": frames.get("compression_ratio"),
        "checks": checks,
    }


def _materialize_batch(layout: DataLayout, folder: Path, name: str, workers: int) -> dict[str, Any]:
    """Register ``folder`` as batch ``name`` and run the ingest job on the shared instance."""
    from exphil_pipeline.definitions import build_definitions
    from exphil_pipeline.orchestration.instance import ensure_partition, shared_instance
    from exphil_pipeline.orchestration.jobs import INGEST_JOB_NAME
    from exphil_pipeline.orchestration.partitions import replay_batches
    from exphil_pipeline.replays.batches import BatchRegistry

    registered = BatchRegistry(layout).register(name, folder)
    instance = shared_instance(layout)
    ensure_partition(instance, replay_batches, registered.name)
    job = build_definitions().resolve_job_def(INGEST_JOB_NAME)
    result = job.execute_in_process(
        instance=instance,
        partition_key=registered.name,
        run_config={
            "ops": {"ingest_replay_batch": {"config": {"workers": workers}}},
            "loggers": {"console": {"config": {"log_level": "INFO"}}},
        },
        raise_on_error=False,
    )
    return _ingest_summary(result, registered.name, result.run_id)


@app.command()
def ingest(
    path: Annotated[Path, typer.Argument(help="Folder of .slp files (searched recursively).")],
    batch: Annotated[
        str | None, typer.Option(help="Batch (partition) name; default: the folder's name.")
    ] = None,
    workers: Annotated[int, typer.Option(help="Parser processes; 0 = one per core.")] = 0,
) -> None:
    """Register PATH as a replay batch and materialize games + frames + items for it."""
    from exphil_pipeline.replays.batches import batch_name_for_folder

    try:
        name = batch or batch_name_for_folder(path)
        summary = _materialize_batch(DataLayout.from_env(), path, name, workers)
    except (ValueError, FileNotFoundError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(summary))
    if not summary["success"]:
        raise typer.Exit(1)


@app.command("sample-replays")
def sample_replays(
    out: Annotated[Path, typer.Option(help="Folder to write the .slp files into.")],
    games: Annotated[int, typer.Option(min=1, help="Number of games.")] = 8,
    frames: Annotated[int, typer.Option(min=1, help="Frames per game.")] = 3600,
    seed: Annotated[int, typer.Option(help="Seed: the same seed writes identical files.")] = 0,
) -> None:
    """Write scripted, deterministic sample replays (no real replays needed)."""
    from exphil_pipeline.simulator.sample_replays import write_sample_replays

    paths = write_sample_replays(out, games=games, frames=frames, seed=seed)
    typer.echo(json.dumps({"out": str(out), "files": len(paths)}))


DEMO_QUERY = """SELECT c.name AS character, count(*) AS frames,
       round(avg(percent), 1) AS avg_percent
FROM frames f JOIN characters c ON f.character = c.id
WHERE present GROUP BY 1 ORDER BY 2 DESC"""


@app.command()
def demo(
    games: Annotated[int, typer.Option(help="Sample games to generate.")] = 24,
    frames: Annotated[int, typer.Option(help="Frames per sample game.")] = 3600,
) -> None:
    """The whole chain: replays -> tables -> teacher -> student -> INT8 ONNX -> a dry-run play.

    Uses $EXPHIL_REPLAYS if set, else generated sample replays; everything lands under
    $EXPHIL_HOME and every run is recorded in the Dagster instance `exphil ui` shows.
    """
    from exphil_pipeline.demo import DemoSizes, artifact_paths, train_on_instance
    from exphil_pipeline.replays.batches import batch_name_for_folder, discover_batch_folders
    from exphil_pipeline.replays.duckdb_catalog import connect_readonly
    from exphil_pipeline.simulator.sample_replays import write_sample_replays
    from exphil_pipeline.storage.layout import replay_root_from_env

    layout = DataLayout.from_env()
    root = replay_root_from_env()
    sizes = DemoSizes()
    if root is not None:
        folders = discover_batch_folders(root) or [root]
        sizes = DemoSizes(characters=("all",))
        typer.echo(f"replays: {len(folders)} batch folder(s) under {root}")
    else:
        sample = layout.sample_replays_dir
        written = write_sample_replays(sample, games=games, frames=frames, seed=0)
        folders = [sample]
        typer.echo(f"replays: {len(written)} generated sample games in {sample}")
    for folder in folders:
        summary = _materialize_batch(layout, folder, batch_name_for_folder(folder), workers=0)
        typer.echo(json.dumps(summary))
        if not summary["success"]:
            raise typer.Exit(1)

    typer.echo("\ntraining: training_set -> teacher -> soft_labels -> student -> ONNX -> INT8")
    result = train_on_instance(layout, sizes)
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    typer.echo(json.dumps({"run_id": result.run_id, "success": result.success, "checks": checks}))
    if not result.success:
        raise typer.Exit(1)
    paths = artifact_paths(layout)
    replay = next(p for folder in folders for p in sorted(folder.rglob("*.slp")))
    _demo_dry_run(paths["policy_int8"], replay)

    typer.echo("\nartifacts:")
    for name, path in paths.items():
        typer.echo(f"  {name:<13} {path}")
    typer.echo(f"  tables        {layout.games_dir}  {layout.frames_dir}  {layout.items_dir}")
    typer.echo(f'  duckdb        {layout.duckdb_path}  (try: exphil sql "SELECT * FROM games")')
    typer.echo(f"  ui            exphil ui  (Dagster home {layout.dagster_home})\n")
    typer.echo(DEMO_QUERY)
    con = connect_readonly(layout)
    try:
        con.sql(DEMO_QUERY).show()
    finally:
        con.close()
    typer.echo(paths["evaluation"].read_text())


def _demo_dry_run(artifact: Path, replay: Path) -> None:
    from runtime.dry_run import DryRunConfig, dry_run
    from runtime.onnx_policy import OnnxPolicy

    policy = OnnxPolicy.load(artifact)
    manifest = policy.manifest
    config = DryRunConfig(
        port=1,
        opponent_port=None,
        temperature=0.0,
        frame_delay=manifest.frame_delay,
        seed=0,
    )
    report = dry_run(policy, replay, config)
    typer.echo(f"\ndry run of {artifact.name} (temperature 0) on {replay.name}:")
    typer.echo(report.summary())


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="SQL over the views games, frames, items.")],
    format: Annotated[OutputFormat, typer.Option("--format", help="Output format.")] = (
        OutputFormat.table
    ),
    max_rows: Annotated[int, typer.Option(help="Rows shown in table format.")] = 50,
) -> None:
    """Run a read-only SQL query against the DuckDB catalog under $EXPHIL_HOME."""
    import duckdb

    from exphil_pipeline.replays.duckdb_catalog import connect_readonly

    con = connect_readonly(DataLayout.from_env())
    try:
        relation = con.sql(query)
        if relation is None:
            return
        if format is OutputFormat.table:
            relation.show(max_rows=max_rows, max_width=200)
            return
        names = relation.columns
        rows = relation.fetchall()
    except duckdb.Error as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    finally:
        con.close()
    if format is OutputFormat.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(names)
        writer.writerows(rows)
    else:
        typer.echo(json.dumps([dict(zip(names, r, strict=True)) for r in rows], default=str))


@app.command()
def parity(
    replays: Annotated[list[Path], typer.Argument(help=".slp files (folders are searched).")],
) -> None:
    """Embed every frame both ways (frames Parquet vs libmelee's file console) and compare.

    Prints one JSON line per replay; exits 1 if any frame differs, 2 if no replay was readable.
    """
    from tqdm import tqdm

    from exphil_pipeline.evaluation.parity import compare_replay
    from exphil_pipeline.replays.batches import list_replay_files

    files = [f for path in replays for f in (list_replay_files(path) if path.is_dir() else [path])]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        typer.echo(f"error: no such replay: {', '.join(missing)}", err=True)
        raise typer.Exit(2)
    layout = DataLayout.from_env()
    statuses = []
    for path in tqdm(files, desc="parity", unit="replay", file=sys.stderr, disable=len(files) < 2):
        report = compare_replay(path, layout)
        statuses.append(report.status)
        typer.echo(json.dumps(report.to_dict()))
    if "different" in statuses:
        raise typer.Exit(1)
    if statuses and all(s == "unreadable" for s in statuses):
        raise typer.Exit(2)


@app.command()
def ui(port: Annotated[int, typer.Option(help="Webserver port.")] = 3000) -> None:
    """Start the Dagster UI and daemon on the same instance `exphil ingest` uses."""
    from exphil_pipeline.orchestration.instance import ensure_dagster_home

    ensure_dagster_home(DataLayout.from_env())
    workspace = Path(__file__).resolve().parent.parent / "workspace.yaml"
    cmd = ["dagster", "dev", "-w", str(workspace), "-p", str(port)]
    raise typer.Exit(subprocess.call(cmd, env=os.environ.copy()))
