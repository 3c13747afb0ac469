"""Known answer: generated games' first player follows a deterministic script of the previous
frame's visible state, so imitation has an exact right answer to reach.

Accuracy is measured in closed loop, as the policy plays: on held-out games, each frame's
"previous input" is the policy's own last choice, never the recorded one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from exphil_pipeline.artifacts.onnx_export import export_policy, manifest_for
from exphil_pipeline.artifacts.quantization import METHODS, quantize_candidates
from exphil_pipeline.distillation.soft_labels import SoftLabelsConfig, build_soft_labels
from exphil_pipeline.distillation.student import StudentConfig, train_student
from exphil_pipeline.evaluation.closed_loop import (
    closed_loop_accuracy,
    onnx_frame_step,
    split_episodes,
    torch_frame_step,
)
from exphil_pipeline.replays.batches import ReplayBatch
from exphil_pipeline.replays.game_ingest import content_game_id
from exphil_pipeline.replays.ingest import IngestSettings, ingest_batch
from exphil_pipeline.simulator.sample_replays import write_sample_replays
from exphil_pipeline.storage.layout import DataLayout
from exphil_pipeline.training.teacher_checkpoint import TeacherCheckpoint
from exphil_pipeline.training.teacher_config import TeacherConfig
from exphil_pipeline.training.teacher_trainer import train
from exphil_pipeline.training.training_set import TrainingSet, build_training_set, is_heldout
from exphil_pipeline.training.training_set_config import TrainingSetConfig
from runtime.dry_run import DryRunConfig, dry_run
from runtime.onnx_policy import OnnxPolicy

HELDOUT = 0.25


@pytest.mark.timeout(1800)
def test_teacher_and_int8_student_imitate_the_scripted_player(tmp_path: Path) -> None:
    layout = DataLayout(tmp_path)
    replays = write_sample_replays(tmp_path / "replays", games=24, frames=3600, seed=0)
    ingest_batch(ReplayBatch("known", replays[0].parent), layout, IngestSettings(workers=1))
    # The script reads frame t - 1 to choose the input of frame t: frame delay 1.
    experiment = layout.experiment("known")
    build_training_set(
        layout,
        experiment.name,
        TrainingSetConfig(characters=["MEWTWO"], frame_delay=1, heldout_fraction=HELDOUT),
    )
    dataset = TrainingSet.of(experiment)
    # The script never reads its own last input: noise on that feature costs nothing here and
    # keeps the policy from copying its own mistakes in closed loop.
    train(
        TeacherConfig(
            backbone="mlp",
            hidden_dim=128,
            num_layers=2,
            periodic_frequencies=8,
            previous_input_noise=1.0,
            epochs=24,
            batch_size=32,
            bptt=32,
            learning_rate=4e-3,
        ),
        tmp_path,
        experiment.name,
        log=lambda _: None,
    )
    teacher = TeacherCheckpoint.best(experiment).policy
    played = closed_loop_accuracy(
        lambda lanes: torch_frame_step(teacher, lanes), split_episodes(dataset, "heldout", 0)
    )
    print(f"teacher closed loop: {played}")
    assert played.compared > 10_000  # held-out games only
    # Against the weaker levels on port 2 (which start attacks late since they let go of a
    # button when the script does), the reference Mewtwo meets more situations at its
    # thresholds; measured here with this config: 0.950 on one torch thread (as in the suite),
    # 0.946 on two. On earlier sample replays, which recorded no B, Z or analog shoulder:
    # 0.963 with this config, 0.949 with 4 periodic frequencies, 0.926 with 16 epochs at
    # 5e-3. A broken chain lands far below.
    assert played.all_heads >= 0.94, played

    build_soft_labels(experiment, SoftLabelsConfig(temperature=2.0))
    student = train_student(
        experiment,
        StudentConfig(
            periodic_frequencies=8,
            previous_input_noise=1.0,
            epochs=6,
            batch_size=256,
            learning_rate=3e-3,
        ),
    )
    fp32 = tmp_path / "known.onnx"
    policy = student.checkpoint.policy
    contract = student.checkpoint.contract
    export_policy(policy, fp32, manifest_for(policy, contract.character, contract.frame_delay))
    calibration = next(split_episodes(dataset, "train", 500))[0]
    heldout_replay = next(
        p for p in replays if is_heldout(content_game_id(p.read_bytes()), HELDOUT)
    )
    targets = {method: tmp_path / f"int8-{method}.onnx" for method in METHODS}
    agreements = {}
    for path in quantize_candidates(fp32, targets, calibration).values():
        policy = OnnxPolicy.load(path)
        played = closed_loop_accuracy(
            lambda lanes, policy=policy: onnx_frame_step(policy, lanes),
            split_episodes(dataset, "heldout", 0),
        )
        print(f"{path.name} closed loop: {played}")
        assert played.all_heads >= 0.93, (path.name, played)
        agreements[path] = played.all_heads
    # The same through the player itself (libmelee's console, the agent, the pipe), once: for
    # the candidate that agreed least in closed loop.
    report = dry_run(
        OnnxPolicy.load(min(agreements, key=agreements.get)),
        heldout_replay,
        DryRunConfig(port=1, opponent_port=None, temperature=0.0, frame_delay=1),
    )
    print(report.summary())
    assert report.pipe.well_formed
    assert report.agreement.all_heads >= 0.93, report.summary()
