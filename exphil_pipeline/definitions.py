"""The Dagster code location: ``dagster dev -w workspace.yaml`` loads ``defs``."""

from __future__ import annotations

import os

from dagster import Definitions, multiprocess_executor

from assets.distillation import soft_labels, student
from assets.ingestion import ingest_replay_batch, raw_replays
from assets.ladder import ladder
from assets.policy_artifacts import evaluation, policy_int8, policy_onnx
from assets.rl_teacher import rl_teacher
from assets.teacher import teacher
from assets.training_set import training_set
from exphil_pipeline.orchestration.jobs import ingest_job, reinforce_job, train_job
from exphil_pipeline.orchestration.resources import ExphilStorage, ReplayLibrary
from exphil_pipeline.orchestration.sensors import replay_batch_sensor
from exphil_pipeline.storage.layout import REPLAYS_ENV, DataLayout


def build_definitions() -> Definitions:
    """Definitions bound to this process's ``EXPHIL_HOME`` and ``EXPHIL_REPLAYS``."""
    return Definitions(
        assets=[
            raw_replays,
            ingest_replay_batch,
            training_set,
            teacher,
            rl_teacher,
            soft_labels,
            student,
            policy_onnx,
            policy_int8,
            evaluation,
            ladder,
        ],
        jobs=[ingest_job, train_job, reinforce_job],
        sensors=[replay_batch_sensor],
        resources={
            "storage": ExphilStorage(home=str(DataLayout.from_env().home)),
            "replay_library": ReplayLibrary(root=os.environ.get(REPLAYS_ENV)),
        },
        executor=multiprocess_executor,
    )


defs = build_definitions()
