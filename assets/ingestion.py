"""Ingestion assets: a replay batch folder -> ``games``, ``frames`` and ``items`` partitions."""

from collections.abc import Iterator
from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)
from tqdm import tqdm

from exphil_pipeline.orchestration.partitions import replay_batches
from exphil_pipeline.orchestration.resources import ExphilStorage
from exphil_pipeline.replays import partition_checks
from exphil_pipeline.replays.duckdb_catalog import build_catalog
from exphil_pipeline.replays.ingest import BatchResult, FileOutcome, IngestSettings, ingest_batch

raw_replays = AssetSpec(
    "raw_replays",
    description="The .slp files of a replay batch folder (registered by the sensor or "
    "`exphil ingest`). Read-only source: the pipeline never modifies them.",
    partitions_def=replay_batches,
    group_name="ingestion",
)


_BLOCKING_CHECKS = {
    "frames_schema": ("frames", "Every frames file has exactly the contract schema."),
    "frame_ids_contiguous": ("frames", "Frame ids of each game have no gaps."),
    "rows_per_game": ("frames", "Rows per game = frames x (players + followers)."),
    "positions_in_bounds": ("frames", "Positions are finite and inside the sanity bound."),
}

_CHECK_SPECS = [
    AssetCheckSpec(name, asset=asset, description=text, blocking=True)
    for name, (asset, text) in _BLOCKING_CHECKS.items()
] + [
    AssetCheckSpec(
        "quarantined_share",
        asset="games",
        description="The share of quarantined files stays below the configured threshold.",
    )
]


def _file_report(result: BatchResult) -> str:
    lines = ["| file | status | frames | note |", "|---|---|---:|---|"]
    for game in result.games:
        note = (game.error or "").replace("|", "/")[:160]
        frames = game.frame_count if game.frame_count is not None else ""
        lines.append(f"| {Path(game.source_path).name} | {game.status} | {frames} | {note} |")
    for path, owner in result.duplicates_elsewhere.items():
        lines.append(f"| {Path(path).name} | duplicate | | same bytes already in batch {owner} |")
    return "\n".join(lines)


def _throughput(result: BatchResult) -> dict[str, object]:
    seconds = max(result.seconds, 1e-9)
    return {
        "seconds": round(result.seconds, 3),
        "frames_per_s": round(result.frames / seconds, 1),
        "input_mb_per_s": round(result.input_bytes / 1e6 / seconds, 2),
        "input_bytes": result.input_bytes,
        "output_bytes": result.output_bytes,
        # Nothing written (every file quarantined or a duplicate): no ratio to speak of.
        "compression_ratio": (
            round(result.input_bytes / result.output_bytes, 2) if result.output_bytes else None
        ),
    }


@multi_asset(
    specs=[
        AssetSpec(
            "games",
            deps=[raw_replays],
            description="One row per distinct replay (content hash): settings, players, "
            "frame count, end method, status ok/repaired/quarantined and the reason.",
            group_name="ingestion",
        ),
        AssetSpec(
            "frames",
            deps=[raw_replays],
            description="One row per (game, frame, port, follower): post-frame state and "
            "pre-frame inputs. Hive-partitioned Parquet under frames/batch=NAME/.",
            group_name="ingestion",
        ),
        AssetSpec(
            "items",
            deps=[raw_replays],
            description="One row per item or projectile per frame (Slippi 3.0+ replays).",
            group_name="ingestion",
        ),
    ],
    check_specs=_CHECK_SPECS,
    partitions_def=replay_batches,
    can_subset=False,
)
def ingest_replay_batch(
    context: AssetExecutionContext, config: IngestSettings, storage: ExphilStorage
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Parse every replay of the batch in parallel and land its three table partitions."""
    batch = storage.registry.resolve(context.partition_key)
    layout = storage.layout
    context.log.info(f"ingesting batch {batch.name} from {batch.folder}")
    # A progress bar on interactive terminals (`exphil ingest`), periodic log lines everywhere.
    with tqdm(desc=f"ingest {batch.name}", unit="file", disable=None) as bar:

        def progress(done: int, total: int, outcome: FileOutcome) -> None:
            bar.total = total
            bar.update(1)
            if outcome.record is not None and outcome.record.status != "ok":
                context.log.warning(
                    f"{outcome.path.name}: {outcome.record.status}: {outcome.record.error}"
                )
            if done == total or done % max(1, total // 10) == 0:
                context.log.info(f"{done}/{total} files parsed")

        result = ingest_batch(batch, layout, config, progress)
    build_catalog(layout)

    speed = _throughput(result)
    yield MaterializeResult(
        asset_key="games",
        metadata={
            "games": len(result.games),
            "games_ok": result.count("ok"),
            "games_repaired": result.count("repaired"),
            "games_quarantined": result.count("quarantined"),
            "duplicates_skipped": len(result.duplicates_elsewhere),
            "source_folder": MetadataValue.path(str(batch.folder)),
            "files": MetadataValue.md(_file_report(result)),
            **speed,
        },
    )
    yield MaterializeResult(
        asset_key="frames",
        metadata={
            "rows": result.rows,
            "frames": result.frames,
            "path": MetadataValue.path(str(layout.table_partition("frames", batch.name))),
            **speed,
        },
    )
    yield MaterializeResult(
        asset_key="items",
        metadata={
            "rows": result.items_rows,
            "path": MetadataValue.path(str(layout.table_partition("items", batch.name))),
        },
    )

    verdicts = {
        "frames_schema": partition_checks.check_frames_schema(layout, batch.name),
        "frame_ids_contiguous": partition_checks.check_frames_contiguous(layout, batch.name),
        "rows_per_game": partition_checks.check_rows_per_game(layout, batch.name),
        "positions_in_bounds": partition_checks.check_positions_in_bounds(layout, batch.name),
    }
    for name, verdict in verdicts.items():
        yield AssetCheckResult(
            asset_key="frames",
            check_name=name,
            passed=verdict.passed,
            description=verdict.description,
            metadata=verdict.metadata,
        )
    share = partition_checks.check_quarantine_share(layout, batch.name, config.max_quarantine_share)
    yield AssetCheckResult(
        asset_key="games",
        check_name="quarantined_share",
        passed=share.passed,
        severity=AssetCheckSeverity.WARN,
        description=share.description,
        metadata=share.metadata,
    )
