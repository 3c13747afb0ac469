"""teacher -> rl_teacher -> soft_labels (teacher: rl) -> student, through Dagster."""

from __future__ import annotations

from pathlib import Path

from assets.distillation import soft_labels, student
from assets.rl_teacher import rl_teacher
from assets.teacher import teacher
from assets.training_set import training_set
from exphil_pipeline.distillation.student import StudentCheckpoint
from exphil_pipeline.storage.layout import DataLayout
from exphil_pipeline.training.teacher_checkpoint import TeacherCheckpoint
from tests.assets.experiment_runs import materialize_experiment


def test_the_rl_teacher_asset_feeds_distillation(sample_store) -> None:
    home = Path(sample_store.home)
    result = materialize_experiment(
        [training_set, teacher, rl_teacher, soft_labels, student],
        home,
        "rl-asset",
        {
            "training_set": {"heldout_fraction": 0.1, "characters": ["MEWTWO"]},
            "teacher": {"backbone": "mlp", "hidden_dim": 32, "batch_size": 4, "max_steps": 20},
            "rl_teacher": {
                "steps": 2 * 8 * 32 * 3,
                "actors": 2,
                "games_per_actor": 8,
                "unroll": 32,
                "cluster": "inline",
                "max_game_frames": 60,
                "eval_games": 2,
                "value_warmup_updates": 1,
                # The 20-step teacher's button heads sit near 0.5: a policy moved further
                # flips them on many frames, which the student's accuracy gate (not this
                # chain) is about.
                "learning_rate": 1e-5,
            },
            "soft_labels": {"teacher": "rl"},
            "student": {"epochs": 4, "batch_size": 256},
        },
    )
    assert result.success
    events = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    metadata = events["rl_teacher"]
    assert metadata["updates"].value == 3
    # Each game plays 96 frames, fewer than its countdown plus the 60-frame timer: no training
    # game ends, so no opponent has a finished game yet.
    assert metadata["opponent_games"].value == {}
    assert metadata["curves"].value.startswith("![RL curves](data:image/png")
    assert "| imitation teacher |" in metadata["versus_base"].value
    checks = {c.check_name for c in result.get_asset_check_evaluations()}
    assert {"kl_to_teacher_within_bound", "self_destructs_not_above_base"} <= checks
    paths = DataLayout(home).experiment("rl-asset")
    rl = TeacherCheckpoint.load(paths.rl_teacher_best)
    assert StudentCheckpoint.of(paths).contract == rl.contract
