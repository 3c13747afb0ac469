"""The ``teacher`` asset: trains on a training set and reports curves and accuracy."""

from __future__ import annotations

from pathlib import Path

from assets.teacher import teacher
from assets.training_set import training_set
from tests.assets.experiment_runs import materialize_experiment


def _fraction_holding_out_one_game(game_ids: list[str]) -> float:
    """A held-out fraction that puts exactly the game with the smallest id prefix aside (the
    split is decided by the game id alone, see ``is_heldout``)."""
    positions = sorted(int(game_id[:16], 16) / 2**64 for game_id in game_ids)
    return (positions[0] + positions[1]) / 2


def test_teacher_materializes_with_curves_and_accuracy(sample_store) -> None:
    home = Path(sample_store.home)
    fraction = _fraction_holding_out_one_game([g.game_id for g in sample_store.games])
    result = materialize_experiment(
        [training_set, teacher],
        home,
        "asset",
        {
            "training_set": {"heldout_fraction": fraction},
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
