"""The ``teacher`` asset: trains on a training set and reports curves and accuracy."""

from __future__ import annotations

from pathlib import Path

from assets.teacher import teacher
from assets.training_set import training_set
from tests.assets.experiment_runs import materialize_experiment


def test_teacher_materializes_with_curves_and_accuracy(sample_store) -> None:
    home = Path(sample_store.home)
    result = materialize_experiment(
        [training_set, teacher],
        home,
        "asset",
        {
            "training_set": {"heldout_fraction": 0.1},
            "teacher": {"hidden_dim": 32, "batch_size": 4, "bptt": 32, "epochs": 1},
        },
    )
    assert result.success
    events = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    metadata = events["teacher"]
    assert metadata["parameters"].value > 0 and metadata["device"].value == "cpu"
    assert metadata["train_frames_per_s"].value > 0
    assert metadata["loss_curves"].value.startswith("![loss curves](data:image/png;base64,")
    table = metadata["heldout_accuracy"].value
    assert "| all (accuracy) |" in table and "MEWTWO" in table
    folder = home / "teachers" / "asset"
    assert (folder / "curves.png").read_bytes().startswith(b"\x89PNG")
    assert {"best.pt", "last.pt", "history.json"} <= {p.name for p in folder.iterdir()}
