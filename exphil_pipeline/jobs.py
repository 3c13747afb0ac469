"""Jobs users launch (UI, CLI, sensor)."""

from dagster import AssetSelection, define_asset_job

INGEST_JOB_NAME = "ingest_replays"

ingest_job = define_asset_job(
    INGEST_JOB_NAME,
    selection=AssetSelection.assets("games", "frames", "items"),
    description="Parse one replay batch into the games, frames and items tables.",
)
