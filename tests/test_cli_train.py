"""``exphil train``: replays in, artifacts and the evaluation table out, presets and flags."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from dagster import DagsterInstance
from typer.testing import CliRunner

from exphil_pipeline.cli import app
from exphil_pipeline.training.presets import PresetError, preset

ROW_KEYS = {
    "model",
    "action_accuracy",
    "closed_loop_action_accuracy",
    "nll_bits_per_frame",
    "button_press_f1",
    "button_change_f1",
    "main_stick_f1",
    "per_character",
    "per_matchup",
}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EXPHIL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home" / "dagster"))
    return tmp_path / "home"


def test_tiny_preset_trains_on_sample_replays(
    home: Path, tmp_path: Path, sample_replays: list[Path]
) -> None:
    folder = tmp_path / "my-replays"
    folder.mkdir()
    for path in sample_replays:
        shutil.copy(path, folder / path.name)
    args = ["train", "--character", "MEWTWO", "--replays", str(folder), "--preset", "tiny"]
    result = CliRunner().invoke(app, [*args, "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["experiment"] == "mewtwo-tiny"
    for name in ("training_set", "teacher", "student", "policy_onnx", "policy_int8"):
        assert Path(out["artifacts"][name]).exists(), name
    assert Path(out["artifacts"]["evaluation_json"]).is_file()
    models = [row["model"] for row in out["evaluation"]]
    assert models == ["teacher (mlp)", "student FP32", "student INT8"]
    for row in out["evaluation"]:
        assert set(row) >= ROW_KEYS
        assert 0.0 <= row["action_accuracy"] <= 1.0
        for key in ("button_press_f1", "button_change_f1", "main_stick_f1"):
            assert row[key] is None or 0.0 <= row[key] <= 1.0, key
        # The sample games are Mewtwo against Fox: one character, one matchup, every frame.
        assert row["per_character"]["MEWTWO"]["frames"] == row["frames"]
        assert row["per_matchup"]["MEWTWO"]["FOX"]["frames"] == row["frames"]
    teacher, fp32, int8 = out["evaluation"]
    assert teacher["nll_bits_per_frame"] > 0 and fp32["nll_bits_per_frame"] > 0
    assert int8["nll_bits_per_frame"] is None  # a quantized graph exposes only its own path
    # The flag reached the run the instance recorded (the preset does not set it).
    run = DagsterInstance.get().get_run_by_id(out["run_id"])
    assert run.run_config["ops"]["teacher"]["config"]["device"] == "cpu"
    assert "training_set: done" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--character", "MEWTOO"], "unknown character 'MEWTOO'"),
        (["--character", "MEWTWO", "--preset", "huge"], "unknown preset 'huge'"),
        (["--character", "MEWTWO", "--backbone", "rnn"], "backbone must be one of"),
    ],
)
def test_bad_names_fail_before_any_run(home: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["train", *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert not (home / "training_sets").exists()


def test_a_run_config_file_replaces_the_preset(home: Path, tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("ops:\n  teacher:\n    config:\n      backbone: lstm\n")
    result = CliRunner().invoke(
        app, ["train", "--character", "MEWTWO", "--config", str(config), "--preset", "tiny"]
    )
    assert result.exit_code == 2 and "not both" in result.stderr


def test_flags_override_preset_fields_and_characters_choose_their_recipe() -> None:
    tiny = preset("mewtwo", "tiny")
    changed = tiny.override("teacher", backbone="gru", hidden_dim=None)
    assert changed.sections["teacher"]["backbone"] == "gru"
    assert changed.sections["teacher"]["hidden_dim"] == tiny.sections["teacher"]["hidden_dim"]
    assert tiny.sections["training_set"]["characters"] == ["MEWTWO"]
    # Target characters have few replays: a regularized teacher, LINK's the narrowest.
    assert preset("MEWTWO").sections["teacher"]["dropout"] == 0.1
    assert preset("LINK").sections["teacher"]["hidden_dim"] == 128
    assert "dropout" not in preset("FOX").sections["teacher"]
    assert preset("FOX").sections["teacher"]["hidden_dim"] == 256
    with pytest.raises(PresetError, match="teacher"):
        tiny.override("teacher", hidden_dim=0)
