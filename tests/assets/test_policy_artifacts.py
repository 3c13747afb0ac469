"""teacher -> soft_labels -> student -> policy_onnx -> policy_int8 -> evaluation, end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime
import pytest

from assets.distillation import soft_labels, student
from assets.policy_artifacts import evaluation, policy_int8, policy_onnx
from assets.teacher import teacher
from assets.training_set import training_set
from exphil_pipeline.cli import run_failure_reason
from exphil_pipeline.storage.layout import DataLayout
from runtime.artifact_manifest import METADATA_KEY, ArtifactManifest, read_manifest
from runtime.embedding_spec import EMBEDDING_SPEC
from tests.assets.experiment_runs import materialize_experiment

FRAME_DELAY = 3
FRAME_DELAY_RANGE = (1, 6)


@pytest.fixture(scope="module")
def chain(sample_store):
    """The whole chain with a range of frame delays and a character that are not the
    defaults."""
    home = Path(sample_store.home)
    result = materialize_experiment(
        [training_set, teacher, soft_labels, student, policy_onnx, policy_int8, evaluation],
        home,
        "chain",
        {
            "training_set": {
                "heldout_fraction": 0.1,
                "characters": ["MEWTWO"],
                "frame_delay": FRAME_DELAY,
                "frame_delay_range": list(FRAME_DELAY_RANGE),
            },
            "teacher": {"hidden_dim": 32, "batch_size": 4, "bptt": 32, "epochs": 1},
            "soft_labels": {},
            "student": {"epochs": 15, "batch_size": 64},
            "policy_onnx": {"export_teacher": True},
            "policy_int8": {"eval_frames": 500},
            "evaluation": {"eval_frames": 500, "outcome_games": 4, "outcome_max_frames": 600},
        },
    )
    return home, result


def _metadata(result, key: str) -> dict:
    for event in result.get_asset_materialization_events():
        if event.asset_key.to_user_string() == key:
            return {k: v.value for k, v in event.materialization.metadata.items()}
    raise AssertionError(f"{key} was not materialized")


def test_every_gate_passes_and_reports_its_figure(chain) -> None:
    _, result = chain
    assert result.success
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["onnx_matches_pytorch"].passed
    assert checks["onnx_matches_pytorch"].metadata["max_logit_diff"].value <= 1e-4
    assert checks["int8_agrees_with_fp32"].passed
    assert checks["keeps_teacher_accuracy"].passed
    assert checks["keeps_teacher_accuracy"].metadata["min_kept"].value >= 0.97


def test_artifacts_carry_the_manifest_inside_and_beside(chain) -> None:
    home, _ = chain
    folder = home / "artifacts" / "chain"
    for name in ("policy_fp32.onnx", "policy_int8.onnx", "teacher_fp32.onnx"):
        path = folder / name
        manifest = read_manifest(path)
        manifest.check_compatible()
        assert manifest == ArtifactManifest.from_json(path.with_suffix(".json").read_text())
        assert manifest.embedding_spec_hash == EMBEDDING_SPEC.content_hash
        # Read from the exported checkpoint's policy contract.
        assert manifest.frame_delay == FRAME_DELAY and manifest.character == "MEWTWO"
        assert manifest.frame_delay_range == FRAME_DELAY_RANGE
    assert read_manifest(folder / "policy_fp32.onnx").model_kind == "stateless"
    teacher_manifest = read_manifest(folder / "teacher_fp32.onnx")
    assert teacher_manifest.model_kind == "recurrent" and teacher_manifest.state
    int8 = read_manifest(folder / "policy_int8.onnx")
    assert int8.precision.startswith("int8-") and int8.metrics["agreement_with_fp32"] >= 0.99
    session = onnxruntime.InferenceSession(str(folder / "policy_int8.onnx"))
    assert METADATA_KEY in session.get_modelmeta().custom_metadata_map


def test_one_session_run_per_frame_samples_inside_the_graph(chain) -> None:
    home, _ = chain
    session = onnxruntime.InferenceSession(str(home / "artifacts/chain/policy_fp32.onnx"))
    feeds = {
        "features": np.zeros((1, EMBEDDING_SPEC.dim), np.float32),
        "uniforms": np.full((1, 13), 0.999, np.float32),
        "temperature": np.array(1.0, np.float32),
    }
    high = session.run(["classes"], feeds)[0]
    low = session.run(["classes"], {**feeds, "uniforms": np.zeros((1, 13), np.float32)})[0]
    argmax = session.run(["classes"], {**feeds, "temperature": np.array(0.0, np.float32)})[0]
    assert high.shape == (1, 13) and (high >= low).all()
    again = session.run(["classes"], {**feeds, "temperature": np.array(0.0, np.float32)})[0]
    assert np.array_equal(argmax, again)


def test_evaluation_table_and_confusion_image(chain) -> None:
    home, result = chain
    metadata = _metadata(result, "evaluation")
    table = metadata["table"]
    for row in ("teacher (gru)", "student FP32", "student INT8"):
        assert f"| {row} |" in table
    assert "p99 µs" in table and "agreement with teacher" in table
    assert "win rate vs scripted:3 (4 games) [95% CI]" in table
    assert "NLL bits/frame" in table and "button change F1" in table
    metrics = metadata["metrics"]
    assert set(metrics) == {"teacher (gru)", "student FP32", "student INT8"}
    for figures in metrics.values():
        for key in ("button_press_f1", "button_change_f1", "main_stick_f1"):
            assert figures[key] is None or 0 <= figures[key] <= 1, key
    assert metrics["student INT8"]["nll_bits_per_frame"] is None
    # The teacher's NLL in bits is its loss in nats over ln 2.
    written = json.loads((home / "artifacts/chain/evaluation.json").read_text())
    rows = {row["model"]: row for row in written}
    teacher = rows["teacher (gru)"]
    assert teacher["nll_bits_per_frame"] == pytest.approx(teacher["nll"] / np.log(2))
    # Mewtwo against Fox on every held-out frame: one character, one matchup, all frames.
    breakdown = metadata["per_character_and_matchup"]
    for model, row in rows.items():
        assert f"| {model} | MEWTWO | all | {row['frames']:,} |" in breakdown
        assert f"| {model} | MEWTWO | FOX | {row['frames']:,} |" in breakdown
        assert row["per_matchup"]["MEWTWO"]["FOX"]["frames"] == row["frames"]
    assert "| A |" in metadata["per_button_f1"]
    outcomes = metadata["outcomes"]
    assert set(outcomes) == {"teacher (gru)", "student FP32", "student INT8"}
    for outcome in outcomes.values():
        assert 0 <= outcome["ci_low"] <= outcome["win_rate"] <= outcome["ci_high"] <= 1
        assert np.isfinite(outcome["net_stocks_per_minute"])
    assert metadata["main_stick_confusion"].startswith("![main stick confusion](data:image/png")
    assert (home / "artifacts/chain/main_stick_confusion.png").read_bytes()[:4] == b"\x89PNG"
    int8 = _metadata(result, "policy_int8")
    assert {"dynamic", "static_qdq"} <= set(int8["candidates"].split()) | {
        line.split("|")[1].strip() for line in int8["candidates"].splitlines()[2:]
    }
    student = _metadata(result, "student")
    assert student["parameters"] > 0 and "| main_x |" in student["per_head"]
    assert json.loads(json.dumps(_metadata(result, "policy_onnx")["artifacts"]))["teacher"]


def test_a_student_that_drifts_from_the_teacher_blocks_the_export(chain) -> None:
    home, _ = chain
    layout = DataLayout(home)
    source, weak = layout.experiment("chain"), layout.experiment("weak")
    for folder in ("training_set", "teacher", "soft_labels"):
        shutil.copytree(getattr(source, folder), getattr(weak, folder), dirs_exist_ok=True)
    result = materialize_experiment(
        [student, policy_onnx],
        home,
        "weak",
        # Two optimizer steps: far below the teacher on some head.
        {"student": {"epochs": 1}, "policy_onnx": {}},
    )
    assert not result.success
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"keeps_teacher_accuracy": False}
    # What `exphil train` prints: the head that fell short, the gate and what to change.
    reason = run_failure_reason(result)
    assert reason.startswith("check keeps_teacher_accuracy failed: lowest share kept: ")
    assert "(gate 0.97)" in reason and "student.epochs" in reason
    assert "DagsterAssetCheckFailedError" not in reason
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "policy_onnx" not in materialized
    assert not (home / "artifacts" / "weak").exists()
