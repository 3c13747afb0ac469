"""``training_set``: embedded states + controller targets of the chosen players, sharded."""

from collections.abc import Iterator

from dagster import (
    AllPartitionMapping,
    AssetCheckResult,
    AssetCheckSpec,
    AssetDep,
    AssetExecutionContext,
    MaterializeResult,
    MetadataValue,
    asset,
)

from exphil_pipeline.orchestration.partitions import experiments
from exphil_pipeline.orchestration.resources import ExphilStorage
from exphil_pipeline.training.training_set import (
    TrainingSet,
    build_training_set,
    character_counts_table,
    validate_values,
)
from exphil_pipeline.training.training_set_config import TrainingSetConfig

# An experiment learns from every ingested replay batch that holds its players.
_EVERY_BATCH = AllPartitionMapping()


@asset(
    deps=[
        AssetDep(table, partition_mapping=_EVERY_BATCH) for table in ("frames", "items", "games")
    ],
    partitions_def=experiments,
    group_name="training",
    description="Compact embedded states (runtime.embedding_spec) and uint8 controller targets "
    "(runtime.controller_spec) of the chosen players, in memory-mappable shards with episode "
    "offsets and a manifest naming the spec hash.",
    check_specs=[
        AssetCheckSpec(
            "values_valid",
            asset="training_set",
            blocking=True,
            description="Every feature is finite and every target class is in range.",
        )
    ],
)
def training_set(
    context: AssetExecutionContext, config: TrainingSetConfig, storage: ExphilStorage
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Select players by character/connect code, embed their frames and shard the pairs."""

    def progress(done: int, total: int) -> None:
        if done == total or done % max(1, total // 10) == 0:
            context.log.info(f"{done}/{total} player-games embedded")

    result = build_training_set(storage.layout, context.partition_key, config, progress)
    manifest = result.manifest
    splits = manifest.splits
    skipped = ", ".join(f"{k}: {v}" for k, v in manifest.games_skipped.items()) or "none"
    context.log.info(f"{manifest.frames} pairs from {manifest.games_seen} games; skipped {skipped}")
    if not splits["heldout"].frames:
        context.log.warning(
            f"no held-out games ({splits['train'].games} games, all for training; heldout_fraction "
            f"{config.heldout_fraction}): the teacher keeps its final weights and every "
            "evaluation runs on training frames, which overstates quality: add games of this "
            "character or raise heldout_fraction"
        )
    yield MaterializeResult(
        metadata={
            "path": MetadataValue.path(str(result.path)),
            "frames": manifest.frames,
            "train_frames": splits["train"].frames,
            "heldout_frames": splits["heldout"].frames,
            "games_seen": manifest.games_seen,
            "games_used": splits["train"].games + splits["heldout"].games,
            # Skipped games by the first curation rule each failed (TrainingSetConfig).
            "games_skipped": MetadataValue.json(manifest.games_skipped),
            "frames_per_character": MetadataValue.md(character_counts_table(manifest)),
            "bytes": manifest.bytes,
            "bytes_per_frame": round(manifest.bytes / max(manifest.frames, 1), 1),
            "seconds": round(result.seconds, 3),
            "frames_per_s": round(manifest.frames / max(result.seconds, 1e-9), 1),
            "embedding_spec_hash": manifest.embedding_spec.hash,
            "frame_delay": config.frame_delay,
            # The delays of the training pairs (held-out games stay at frame_delay).
            "frame_delay_range": MetadataValue.json(list(config.trained_delays)),
        },
    )
    counts = validate_values(TrainingSet.open(result.path))
    passed = not any(counts.values())
    description = ", ".join(f"{k}: {v}" for k, v in counts.items())
    if not passed:
        description += (
            "; the embedding wrote values its specs forbid, which ingest validation should "
            "have kept out: report it with the batches of this training set"
        )
    yield AssetCheckResult(
        check_name="values_valid", passed=passed, description=description, metadata=counts
    )
