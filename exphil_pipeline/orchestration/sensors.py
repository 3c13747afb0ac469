"""The sensor that turns new (or changed) folders under the replay root into batch runs."""

import time
from pathlib import Path

from dagster import (
    AddDynamicPartitionsRequest,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from exphil_pipeline.orchestration.jobs import ingest_job
from exphil_pipeline.orchestration.partitions import replay_batches
from exphil_pipeline.orchestration.resources import ExphilStorage, ReplayLibrary
from exphil_pipeline.replays.batches import (
    discover_batch_folders,
    folder_fingerprint,
    list_replay_files,
)


def _settled(folder: Path, settle_seconds: float) -> bool:
    newest = max(p.stat().st_mtime for p in list_replay_files(folder))
    return time.time() - newest >= settle_seconds


@sensor(
    job=ingest_job,
    minimum_interval_seconds=30,
    default_status=DefaultSensorStatus.RUNNING,
    description="Registers each folder under $EXPHIL_REPLAYS as a replay batch partition and "
    "requests one ingest run per new content of the folder (run key = batch + fingerprint).",
)
def replay_batch_sensor(
    context: SensorEvaluationContext, storage: ExphilStorage, replay_library: ReplayLibrary
) -> SensorResult | SkipReason:
    if not replay_library.root:
        return SkipReason("EXPHIL_REPLAYS is not set: no replay root to watch")
    root = Path(replay_library.root)
    known = set(context.instance.get_dynamic_partitions(replay_batches.name))
    new_partitions: list[str] = []
    runs: list[RunRequest] = []
    for folder in discover_batch_folders(root):
        if not _settled(folder, replay_library.settle_seconds):
            continue
        name = storage.registry.name_for(folder)
        try:
            storage.registry.register(name, folder)
        except ValueError as clash:
            context.log.warning(str(clash))
            continue
        if name not in known:
            new_partitions.append(name)
        # Dagster runs a given run key once: one run per distinct content of the folder.
        runs.append(RunRequest(run_key=f"{name}:{folder_fingerprint(folder)}", partition_key=name))
    return SensorResult(
        run_requests=runs,
        dynamic_partitions_requests=[
            AddDynamicPartitionsRequest(replay_batches.name, new_partitions)
        ]
        if new_partitions
        else [],
    )
