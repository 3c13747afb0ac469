"""Jobs users launch (UI, CLI, sensor)."""

from dagster import AssetSelection, define_asset_job

INGEST_JOB_NAME = "ingest_replays"

ingest_job = define_asset_job(
    INGEST_JOB_NAME,
    selection=AssetSelection.assets("games", "frames", "items"),
    description="Parse one replay batch into the games, frames and items tables.",
)

TRAIN_JOB_NAME = "train_policy"

train_job = define_asset_job(
    TRAIN_JOB_NAME,
    selection=AssetSelection.assets(
        "training_set",
        "teacher",
        "soft_labels",
        "student",
        "policy_onnx",
        "policy_int8",
        "evaluation",
    ),
    description="From the frames tables to a gated INT8 policy: training set, teacher, soft "
    "labels, student, FP32 and INT8 ONNX artifacts, evaluation.",
)

REINFORCE_JOB_NAME = "reinforce_policy"

reinforce_job = define_asset_job(
    REINFORCE_JOB_NAME,
    selection=AssetSelection.assets(
        "rl_teacher", "soft_labels", "student", "policy_onnx", "policy_int8", "evaluation"
    ),
    description="From a trained imitation teacher to a gated INT8 policy through reinforcement "
    "learning: RL teacher, then distillation (soft_labels with teacher: rl), export, evaluation.",
)
