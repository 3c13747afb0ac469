"""``training_set``: embedded states + controller targets of the chosen players, sharded."""

from collections.abc import Iterator

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetSpec,
    Config,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)
from pydantic import Field

from exphil_pipeline.orchestration.resources import ExphilStorage
from exphil_pipeline.training.training_set import (
    ALL_CHARACTERS,
    TARGET_CHARACTERS,
    DatasetConfig,
    TrainingSet,
    build_training_set,
    character_counts_table,
    validate_values,
)


class TrainingSetConfig(Config):
    """Which players and frames become training pairs (see ``DatasetConfig``)."""

    name: str = Field(default="default", description="Folder under training_sets/.")
    characters: list[str] = Field(
        default=list(TARGET_CHARACTERS),
        description=f"Characters to learn from (external names), or [{ALL_CHARACTERS!r}].",
    )
    connect_codes: list[str] = Field(
        default_factory=list, description="Only players with these netplay codes (ABCD#123)."
    )
    opponent_characters: list[str] = Field(
        default_factory=list, description="Only games against these characters (empty: any)."
    )
    frame_delay: int = Field(
        default=0, ge=0, description="d: state at t - d paired with action at t (18 online)."
    )
    min_frames: int = Field(default=300, ge=0, description="Skip games shorter than this.")
    heldout_fraction: float = Field(
        default=0.1, ge=0.0, lt=1.0, description="Share of games held out, split by game id."
    )
    include_countdown: bool = Field(
        default=False, description="Also learn the inputs of the countdown frames (< -39)."
    )
    shard_frames: int = Field(default=262_144, ge=1, description="Pairs per shard file.")

    def to_dataset_config(self) -> DatasetConfig:
        return DatasetConfig(
            name=self.name,
            characters=tuple(self.characters),
            connect_codes=tuple(self.connect_codes),
            opponent_characters=tuple(self.opponent_characters),
            frame_delay=self.frame_delay,
            min_frames=self.min_frames,
            heldout_fraction=self.heldout_fraction,
            include_countdown=self.include_countdown,
            shard_frames=self.shard_frames,
        )


@multi_asset(
    specs=[
        AssetSpec(
            "training_set",
            deps=["frames", "items", "games"],
            description="Compact embedded states (runtime.embedding_spec) and uint8 controller "
            "targets (runtime.controller_spec) of the chosen players, in memory-mappable "
            "shards with episode offsets and a manifest naming the spec hash.",
            group_name="training",
        )
    ],
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
    dataset = config.to_dataset_config()

    def progress(done: int, total: int) -> None:
        if done == total or done % max(1, total // 10) == 0:
            context.log.info(f"{done}/{total} player-games embedded")

    result = build_training_set(storage.layout, dataset, progress)
    manifest = result.manifest
    splits = manifest["splits"]
    frames = sum(s["frames"] for s in splits.values())
    stored = sum(shard["bytes"] for s in splits.values() for shard in s["shards"])
    skipped = ", ".join(f"{k}: {v}" for k, v in manifest["games_skipped"].items()) or "none"
    context.log.info(f"{frames} pairs from {manifest['games_seen']} games; skipped {skipped}")
    yield MaterializeResult(
        asset_key="training_set",
        metadata={
            "path": MetadataValue.path(str(result.path)),
            "frames": frames,
            "train_frames": splits["train"]["frames"],
            "heldout_frames": splits["heldout"]["frames"],
            "games_used": splits["train"]["games"] + splits["heldout"]["games"],
            "games_skipped": MetadataValue.json(manifest["games_skipped"]),
            "frames_per_character": MetadataValue.md(character_counts_table(manifest)),
            "bytes": stored,
            "bytes_per_frame": round(stored / max(frames, 1), 1),
            "seconds": round(result.seconds, 3),
            "frames_per_s": round(frames / max(result.seconds, 1e-9), 1),
            "embedding_spec_hash": manifest["embedding_spec"]["hash"],
            "frame_delay": dataset.frame_delay,
        },
    )
    counts = validate_values(TrainingSet.open(result.path))
    yield AssetCheckResult(
        asset_key="training_set",
        check_name="values_valid",
        passed=not any(counts.values()),
        metadata=counts,
    )
