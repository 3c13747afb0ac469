"""The one Dagster instance that the CLI, ``dagster dev`` and the daemon share."""

from __future__ import annotations

import os
from pathlib import Path

from dagster import DagsterInstance, DynamicPartitionsDefinition
from filelock import FileLock

from exphil_pipeline.storage.layout import DataLayout


def ensure_dagster_home(layout: DataLayout) -> str:
    """Use ``$DAGSTER_HOME`` if set, else ``$EXPHIL_HOME/dagster``, so runs persist and show
    in the UI started with the same environment (``exphil ui``)."""
    home = os.environ.get("DAGSTER_HOME") or str(layout.dagster_home)
    os.makedirs(home, exist_ok=True)
    os.environ["DAGSTER_HOME"] = home
    return home


def shared_instance(layout: DataLayout) -> DagsterInstance:
    """The instance under the Dagster home. Opening it creates its SQLite storage on first
    use; two processes doing that at once (two CLIs on a fresh home) both try to create
    the same tables, so openings take turns under a lock file beside the storage."""
    home = ensure_dagster_home(layout)
    with FileLock(Path(home) / ".instance.lock"):
        return DagsterInstance.get()


def ensure_partition(
    instance: DagsterInstance, partitions: DynamicPartitionsDefinition, key: str
) -> None:
    """Add ``key`` to the dynamic ``partitions`` of ``instance`` unless it is there."""
    if instance.has_dynamic_partition(partitions.name, key):
        return
    try:
        instance.add_dynamic_partitions(partitions.name, [key])
    except Exception:
        # Another process (a second CLI, the sensor) added it between the check and the add;
        # the storage's unique key refused the copy. Anything else is still an error.
        if not instance.has_dynamic_partition(partitions.name, key):
            raise
