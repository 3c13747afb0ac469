"""Materialize experiment-partitioned assets in tests, on a throwaway Dagster instance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster import DagsterInstance, materialize

from exphil_pipeline.orchestration.partitions import experiments
from exphil_pipeline.orchestration.resources import ExphilStorage


def materialize_experiment(
    assets: list, home: Path, experiment: str, ops: dict[str, dict[str, Any]]
):
    """Run ``assets`` for partition ``experiment`` with ``ops`` as each op's config."""
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(experiments.name, [experiment])
    return materialize(
        assets,
        instance=instance,
        partition_key=experiment,
        resources={"storage": ExphilStorage(home=str(home))},
        run_config={"ops": {op: {"config": config} for op, config in ops.items()}},
        raise_on_error=False,
    )
