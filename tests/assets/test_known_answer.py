"""Known answer: generated games' first player follows a deterministic script of the previous
frame's visible state, so imitation has an exact right answer to reach."""

from __future__ import annotations

from pathlib import Path

import pytest

from exphil_pipeline.data_layout import DataLayout
from exphil_pipeline.distillation import (
    StudentConfig,
    build_soft_labels,
    evaluation_frames,
    train_student,
)
from exphil_pipeline.ingest import IngestSettings, ingest_batch
from exphil_pipeline.onnx_artifacts import quantize_candidates, run_artifact
from exphil_pipeline.onnx_export import export_policy, manifest_for
from exphil_pipeline.replay_batches import ReplayBatch
from exphil_pipeline.sample_games import write_sample_replays
from exphil_pipeline.teacher_training import TeacherConfig, train
from exphil_pipeline.training_set import DatasetConfig, build_training_set


@pytest.mark.timeout(900)
def test_teacher_and_int8_student_imitate_the_scripted_player(tmp_path: Path) -> None:
    layout = DataLayout(tmp_path)
    replays = write_sample_replays(tmp_path / "replays", games=24, frames=3600, seed=0)
    ingest_batch(ReplayBatch("known", replays[0].parent), layout, IngestSettings(workers=1))
    # The script reads frame t - 1 to choose the input of frame t: frame delay 1.
    build_training_set(
        layout,
        DatasetConfig(name="known", characters=("MEWTWO",), frame_delay=1, heldout_fraction=0.25),
    )
    teacher = train(
        TeacherConfig(
            name="known",
            training_set="known",
            hidden_dim=128,
            epochs=20,
            batch_size=32,
            bptt=64,
            learning_rate=3e-3,
        ),
        tmp_path,
        log=lambda _: None,
    )
    assert teacher.best["frames"] > 10_000  # held-out games only
    assert teacher.best["action_accuracy"] >= 0.95, teacher.best["accuracy"]

    build_soft_labels(tmp_path, "known", temperature=2.0)
    student = train_student(
        tmp_path, StudentConfig(name="known", teacher="known", epochs=8, batch_size=128)
    )
    fp32 = tmp_path / "known.onnx"
    export_policy(student.policy, fp32, manifest_for(student.policy, "MEWTWO", frame_delay=1))
    frames = evaluation_frames(tmp_path, "known", max_frames=5000)
    assert frames.split == "heldout"
    int8 = quantize_candidates(fp32, tmp_path / "int8", frames.features[:500])
    for path in int8.values():
        chosen = run_artifact(path, frames.features, temperature=0.0).classes
        action_accuracy = float((chosen == frames.targets).all(axis=1).mean())
        assert action_accuracy >= 0.93, (path.name, action_accuracy)
