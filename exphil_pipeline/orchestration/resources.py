"""Dagster resources: where the data root is and where replay batches come from."""

from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from exphil_pipeline.replays.batches import BatchRegistry
from exphil_pipeline.storage.layout import DataLayout


class ExphilStorage(ConfigurableResource):
    """The pipeline's data root (``$EXPHIL_HOME``); every table lives under it."""

    home: str = Field(description="Absolute path of the data root shared by all run workers.")

    @property
    def layout(self) -> DataLayout:
        return DataLayout(Path(self.home))

    @property
    def registry(self) -> BatchRegistry:
        return BatchRegistry(self.layout)


class ReplayLibrary(ConfigurableResource):
    """The folder the sensor watches: each subfolder holding ``.slp`` files is one batch."""

    root: str | None = Field(
        default=None, description="Replay root ($EXPHIL_REPLAYS); the sensor idles when unset."
    )
    settle_seconds: float = Field(
        default=30.0,
        description="A folder is picked up only once no file in it changed for this long, "
        "so a copy in progress is not ingested half-way.",
    )
