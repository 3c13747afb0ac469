"""``exphil``: the commands users script. The Dagster UI is ``exphil ui`` (``dagster dev``)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from exphil_pipeline.storage.layout import DataLayout

if TYPE_CHECKING:
    from exphil_pipeline.evaluation.arena import EnvironmentFactory
    from exphil_pipeline.training.presets import Preset

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
    errors = [
        _root_cause(e.event_specific_data.error)
        for e in result.all_events
        if e.is_step_failure and e.event_specific_data.error is not None
    ]
    return {
        "batch": batch,
        "run_id": run_id,
        "success": result.success,
        "error": "; ".join(errors) or None,
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


def run_failure_reason(result: Any) -> str:
    """Why a Dagster run failed, for a user: each failed step's innermost error and each failed
    check with its description (the measured value, the gate, the fix)."""
    causes = [
        _innermost(e.event_specific_data.error)
        for e in result.all_events
        if e.is_step_failure and e.event_specific_data.error is not None
    ]
    # A failed blocking check fails its step too; the check's own description says more.
    errors = [
        cause.message.strip()
        for cause in causes
        if cause.cls_name != "DagsterAssetCheckFailedError"
    ]
    failed = [
        f"check {c.check_name} failed: {c.description or 'see the run log'}"
        for c in result.get_asset_check_evaluations()
        if not c.passed
    ]
    return "; ".join(errors + failed) or "see the run log"


def _innermost(error: Any) -> Any:
    """The innermost cause of a Dagster step failure (Dagster wraps the exception the step
    raised in its own)."""
    while error.cause is not None:
        error = error.cause
    return error


def _root_cause(error: Any) -> str:
    """The message of the innermost cause of a Dagster step failure."""
    return _innermost(error).message.strip()


def _materialize_batch(
    layout: DataLayout, folder: Path, name: str | None, workers: int
) -> dict[str, Any]:
    """Register ``folder`` as batch ``name`` (default: the folder's batch name, see
    ``exphil_pipeline.replays.batches``) and run the ingest job on the shared instance."""
    from exphil_pipeline.definitions import build_definitions
    from exphil_pipeline.orchestration.instance import ensure_partition, shared_instance
    from exphil_pipeline.orchestration.jobs import INGEST_JOB_NAME
    from exphil_pipeline.orchestration.partitions import replay_batches
    from exphil_pipeline.replays.batches import BatchRegistry

    registry = BatchRegistry(layout)
    registered = registry.register(name or registry.name_for(folder), folder)
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
        str | None,
        typer.Option(help="Batch (partition) name; default: the folder's name, made safe."),
    ] = None,
    workers: Annotated[int, typer.Option(help="Parser processes; 0 = one per core.")] = 0,
) -> None:
    """Register PATH as a replay batch and materialize games + frames + items for it."""
    from exphil_pipeline.storage.atomic import StorageError

    try:
        summary = _materialize_batch(DataLayout.from_env(), path, batch, workers)
    except StorageError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
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
    from exphil_pipeline.replays.batches import discover_batch_folders
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
        summary = _materialize_batch(layout, folder, None, workers=0)
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


@app.command()
def train(
    character: Annotated[
        str, typer.Option(help="The character to learn (libmelee name, e.g. MEWTWO).")
    ],
    replays: Annotated[
        Path | None,
        typer.Option(help="A folder of .slp files to ingest first (as `exphil ingest`)."),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(help="Recipe in exphil_pipeline.training.presets: standard, quick, tiny."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="A full run config (YAML, ops: {stage: {config: ...}}), not a preset."),
    ] = None,
    experiment: Annotated[
        str | None, typer.Option(help="Experiment name; default <character>-<preset>.")
    ] = None,
    backbone: Annotated[str | None, typer.Option(help="Teacher backbone (gru, mlp, ...).")] = None,
    hidden: Annotated[int | None, typer.Option(help="Teacher width (hidden_dim).")] = None,
    layers: Annotated[int | None, typer.Option(help="Teacher depth (num_layers).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Teacher epochs.")] = None,
    frame_delay: Annotated[
        int | None, typer.Option(help="Frames between state and action (18 online).")
    ] = None,
    frame_delay_range: Annotated[
        tuple[int, int] | None,
        typer.Option(
            help="LOW HIGH: learn every delay in this range, the delay being an input "
            "(--frame-delay, in the range, is the held-out games' and play's default)."
        ),
    ] = None,
    student_epochs: Annotated[int | None, typer.Option(help="Student epochs.")] = None,
    device: Annotated[str | None, typer.Option(help="Teacher device: cpu or cuda.")] = None,
    workers: Annotated[int, typer.Option(help="Parser processes for --replays.")] = 0,
    json_output: Annotated[
        bool, typer.Option("--json", help='Print one JSON object {"artifacts", "evaluation"}.')
    ] = False,
) -> None:
    """Train a bot for CHARACTER: ingest --replays if given, then run the train_policy job
    (training set, teacher, soft labels, student, ONNX, INT8, evaluation) for the experiment
    on the instance `exphil ui` shows. Flags override the preset's or the config's fields."""
    import yaml

    from exphil_pipeline.training.presets import (
        DEFAULT_PRESET,
        PresetError,
        from_run_config,
    )
    from exphil_pipeline.training.presets import preset as preset_for

    def say(line: str) -> None:
        typer.echo(line, err=json_output)

    try:
        if preset is not None and config is not None:
            raise PresetError("give --preset or --config, not both")
        if config is not None:
            chosen = from_run_config(character, config.stem, yaml.safe_load(config.read_text()))
        else:
            chosen = preset_for(character, preset or DEFAULT_PRESET)
        chosen = chosen.override(
            "training_set",
            frame_delay=frame_delay,
            frame_delay_range=list(frame_delay_range) if frame_delay_range else None,
        )
        chosen = chosen.override(
            "teacher",
            backbone=backbone,
            hidden_dim=hidden,
            num_layers=layers,
            epochs=epochs,
            device=device,
        )
        chosen = chosen.override("student", epochs=student_epochs)
    except (PresetError, OSError, yaml.YAMLError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    try:
        trained = train_experiment(chosen, experiment, replays, workers, say)
    except TrainError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(error.exit_code) from None
    if json_output:
        typer.echo(json.dumps(trained.to_dict()))
        return
    typer.echo("\nartifacts:")
    for key, path in trained.artifacts.items():
        typer.echo(f"  {key:<15} {path}")
    typer.echo("")
    typer.echo(trained.artifacts["evaluation"].read_text())


class TrainError(Exception):
    """Why :func:`train_experiment` stopped; ``exit_code`` is 2 for a bad input (a missing or
    unreadable replay folder), 1 for a failed ingest or training run."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class TrainedExperiment:
    """What :func:`train_experiment` made."""

    experiment: str
    run_id: str
    ingest: dict[str, Any] | None
    """The summary ``exphil ingest`` prints for the replays ingested first (None: none)."""
    artifacts: dict[str, Path]
    evaluation: list[dict[str, Any]]
    """The rows of ``evaluation.json``: teacher, student FP32, student INT8."""
    train_seconds: float
    """Wall time of the ``train_policy`` run, training set to evaluation."""

    def to_dict(self) -> dict[str, Any]:
        """What ``exphil train --json`` prints."""
        return {
            "experiment": self.experiment,
            "run_id": self.run_id,
            "artifacts": {key: str(path) for key, path in self.artifacts.items()},
            "evaluation": self.evaluation,
        }


def train_experiment(
    chosen: Preset,
    experiment: str | None = None,
    replays: Path | None = None,
    workers: int = 0,
    say: Callable[[str], None] = lambda _: None,
) -> TrainedExperiment:
    """``exphil train``: ingest ``replays`` if given (as ``exphil ingest``), then run the
    ``train_policy`` job with ``chosen``'s run config for ``experiment`` (default
    ``<character>-<preset>``) on the instance under ``$EXPHIL_HOME`` that `exphil ui` shows.
    ``say`` receives the progress lines. Raises :class:`TrainError`."""
    from exphil_pipeline.demo import artifact_paths, run_train_job
    from exphil_pipeline.evaluation.evaluation_table import evaluation_json

    name = experiment or f"{chosen.character.lower()}-{chosen.name}"
    layout = DataLayout.from_env()
    summary = None
    if replays is not None:
        say(f"ingesting {replays}")
        try:
            summary = _materialize_batch(layout, replays, None, workers)
        except (ValueError, FileNotFoundError) as error:
            raise TrainError(str(error), 2) from None
        say(json.dumps(summary))
        if not summary["success"]:
            reason = summary["error"] or "see the run log"
            raise TrainError(f"ingest run {summary['run_id']} failed: {reason}", 1)
    steps = " -> ".join(chosen.sections)
    say(f"training experiment {name}: {steps}")
    began = time.perf_counter()
    result = run_train_job(layout, name, chosen.run_config())
    seconds = time.perf_counter() - began
    # Dagster's console log above follows each step as it runs; this sums them up.
    for event in result.all_events:
        if event.is_step_success or event.is_step_failure:
            say(f"  {event.step_key}: {'done' if event.is_step_success else 'FAILED'}")
    if not result.success:
        raise TrainError(f"run {result.run_id} failed: {run_failure_reason(result)}", 1)
    paths = {
        **artifact_paths(layout, name),
        "evaluation_json": evaluation_json(layout.experiment(name)),
    }
    rows = json.loads(paths["evaluation_json"].read_text())
    return TrainedExperiment(name, result.run_id, summary, paths, rows, seconds)


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
    query: Annotated[str, typer.Argument(help="SQL over the views games, frames, items, matches.")],
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
    mirror: Annotated[
        bool,
        typer.Option(
            "--mirror",
            help="Compare mirrored vectors with the embedding of libmelee's mirrored game "
            "states (replays on stages that are never mirrored print status skipped).",
        ),
    ] = False,
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
        report = compare_replay(path, layout, mirror=mirror)
        statuses.append(report.status)
        typer.echo(json.dumps(report.to_dict()))
    if "different" in statuses:
        raise typer.Exit(1)
    if statuses and all(s in ("unreadable", "skipped") for s in statuses):
        raise typer.Exit(2)


class ArenaEnv(StrEnum):
    simulator = "simulator"
    dolphin = "dolphin"


PLAYER_HELP = (
    "scripted:LEVEL (0-3), random, an .onnx artifact, a .pt teacher checkpoint, an experiment "
    "name (its trained teacher), or cpu:LEVEL (Dolphin only)."
)


@app.command()
def arena(
    player_a: Annotated[str, typer.Argument(help=f"Player A: {PLAYER_HELP}")],
    player_b: Annotated[str, typer.Argument(help="Player B, the same kinds (A again: mirror).")],
    games: Annotated[int, typer.Option(min=1, help="Games to play; ports alternate.")] = 100,
    env: Annotated[ArenaEnv, typer.Option(help="Where the games run.")] = ArenaEnv.simulator,
    stage: Annotated[str, typer.Option(help="libmelee Stage name.")] = "FINAL_DESTINATION",
    seed: Annotated[int, typer.Option(help="Seed: the same seed plays the same games.")] = 0,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object, not a Markdown table.")
    ] = False,
    characters: Annotated[
        str | None,
        typer.Option(
            help="A's and B's characters as A,B (libmelee names); default: each artifact's "
            "manifest character, else MEWTWO,FOX."
        ),
    ] = None,
    stocks: Annotated[int, typer.Option(min=1, help="Stocks per player.")] = 4,
    max_frames: Annotated[
        int | None, typer.Option(min=1, help="Timer in frames (60/s); default 8 minutes.")
    ] = None,
    parallel: Annotated[
        int | None,
        typer.Option(min=1, help="Most games in play at once; default 256, 1 Dolphin in Dolphin."),
    ] = None,
) -> None:
    """Play PLAYER_A against PLAYER_B: win rates with 95% intervals, stocks, damage, latency.

    Every game is recorded in the matches table under $EXPHIL_HOME (`exphil sql "SELECT *
    FROM matches"`).
    """
    from datetime import UTC, datetime

    from tqdm import tqdm

    from exphil_pipeline.environments.dolphin_env import DolphinError
    from exphil_pipeline.evaluation.arena import DEFAULT_CHARACTERS, ArenaConfig, play_arena
    from exphil_pipeline.evaluation.matches import write_matches
    from exphil_pipeline.evaluation.players import parse_player
    from exphil_pipeline.replays.duckdb_catalog import build_catalog
    from runtime.artifact_manifest import ArtifactError
    from runtime.live_play import WrongCharacterError

    environments = _dolphin_tables() if env is ArenaEnv.dolphin else None
    layout = DataLayout.from_env()
    try:
        players = (parse_player(player_a, layout, env), parse_player(player_b, layout, env))
        defaults = [p.character or d for p, d in zip(players, DEFAULT_CHARACTERS, strict=True)]
        names = defaults if characters is None else characters.upper().split(",")
        if len(names) != 2:
            raise ValueError(f"--characters {characters!r}: give two names as A,B (e.g. FOX,FOX)")
        config = ArenaConfig(
            characters=(names[0].strip(), names[1].strip()),
            stage=stage.upper(),
            stocks=stocks,
            parallel=parallel or (1 if env is ArenaEnv.dolphin else 256),
            env=env.value,
            **({} if max_frames is None else {"max_frames": max_frames}),
        )
    except (ValueError, FileNotFoundError, ArtifactError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    started = datetime.now(UTC)
    try:
        with tqdm(total=games, desc="arena", unit="game", file=sys.stderr) as bar:
            report = play_arena(
                *players, games, config, seed, progress=bar.update, environments=environments
            )
    except (DolphinError, WrongCharacterError) as error:  # Dolphin's set-up, not a bug
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from None
    run_id, path = write_matches(layout, report, started)
    build_catalog(layout)
    if json_output:
        typer.echo(json.dumps({**report.to_dict(), "run_id": run_id, "matches_file": str(path)}))
    else:
        typer.echo(report.to_markdown())
        typer.echo(f"matches: {path} (run {run_id})")


def _dolphin_tables() -> EnvironmentFactory:
    """The arena's Dolphin environments from $EXPHIL_DOLPHIN and $EXPHIL_ISO (exit 2 unless
    both are set and exist); Dolphin homes and replays under $EXPHIL_HOME/dolphin."""
    from exphil_pipeline.environments.dolphin_env import DolphinConfig, dolphin_paths_from_env
    from exphil_pipeline.evaluation.arena import dolphin_tables

    missing = [name for name in ("EXPHIL_DOLPHIN", "EXPHIL_ISO") if not os.environ.get(name)]
    if missing:
        typer.echo(
            f"error: --env dolphin needs {' and '.join(missing)}: set EXPHIL_DOLPHIN to the Slippi "
            "Dolphin executable and EXPHIL_ISO to a Melee 1.02 NTSC ISO, or use --env simulator",
            err=True,
        )
        raise typer.Exit(2)
    dolphin, iso = dolphin_paths_from_env()
    absent = [
        f"{name}={path}"
        for name, path in (("EXPHIL_DOLPHIN", dolphin), ("EXPHIL_ISO", iso))
        if not Path(path).exists()
    ]
    if absent:
        typer.echo(f"error: no such file: {', '.join(absent)}", err=True)
        raise typer.Exit(2)
    home = DataLayout.from_env().home / "dolphin"
    return dolphin_tables(DolphinConfig(dolphin=dolphin, iso=iso, home=str(home)))


@app.command()
def ui(port: Annotated[int, typer.Option(help="Webserver port.")] = 3000) -> None:
    """Start the Dagster UI and daemon on the same instance `exphil ingest` uses."""
    from exphil_pipeline.orchestration.instance import ensure_dagster_home

    ensure_dagster_home(DataLayout.from_env())
    workspace = Path(__file__).resolve().parent.parent / "workspace.yaml"
    cmd = ["dagster", "dev", "-w", str(workspace), "-p", str(port)]
    raise typer.Exit(subprocess.call(cmd, env=os.environ.copy()))
