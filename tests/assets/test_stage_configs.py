"""Each stage has one config: the asset's run config is the class the domain code takes."""

from __future__ import annotations

import pytest
from pydantic_core import PydanticUndefined

from assets.distillation import soft_labels, student
from assets.ingestion import ingest_replay_batch
from assets.policy_artifacts import evaluation
from assets.rl_teacher import rl_teacher
from assets.teacher import teacher
from assets.training_set import training_set
from exphil_pipeline.distillation.soft_labels import SoftLabelsConfig
from exphil_pipeline.distillation.student import StudentConfig
from exphil_pipeline.evaluation.evaluation_table import EvaluationConfig
from exphil_pipeline.replays.ingest import IngestSettings
from exphil_pipeline.rl.rl_config import RLConfig
from exphil_pipeline.training.teacher_config import TeacherConfig
from exphil_pipeline.training.training_set_config import TrainingSetConfig

STAGES = [
    (ingest_replay_batch, IngestSettings),
    (training_set, TrainingSetConfig),
    (teacher, TeacherConfig),
    (soft_labels, SoftLabelsConfig),
    (student, StudentConfig),
    (evaluation, EvaluationConfig),
    (rl_teacher, RLConfig),
]


@pytest.mark.parametrize(("asset", "config"), STAGES, ids=lambda v: getattr(v, "__name__", ""))
def test_the_asset_config_has_every_field_and_default_of_the_stage_config(asset, config) -> None:
    schema = asset.op.config_schema.config_type.fields
    assert set(schema) == set(config.model_fields)
    for name, field in config.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if default is not PydanticUndefined:
            assert schema[name].default_value == default, name


def test_a_value_is_validated_where_it_enters() -> None:
    with pytest.raises(ValueError, match="backbone"):
        TeacherConfig(backbone="transformer-xl")
    with pytest.raises(ValueError, match="hidden_sizes"):
        StudentConfig(hidden_sizes=[64, 32])
    with pytest.raises(ValueError, match="temperature"):
        SoftLabelsConfig(temperature=0)
