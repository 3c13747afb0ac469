"""The ``ladder`` asset: played pairings, the ratings table and chart in its metadata."""

from __future__ import annotations

import base64
from pathlib import Path

from dagster import materialize

from assets.ladder import ladder
from exphil_pipeline.evaluation.matches import read_matches
from exphil_pipeline.orchestration.resources import ExphilStorage
from exphil_pipeline.storage.layout import DataLayout

CONFIG = {
    "scripted_levels": [0, 3],
    "games_per_pairing": 4,
    "stocks": 1,
    "max_frames": 600,
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _materialize(home: Path) -> dict:
    result = materialize(
        [ladder],
        resources={"storage": ExphilStorage(home=str(home))},
        run_config={"ops": {"ladder": {"config": CONFIG}}},
    )
    assert result.success
    (event,) = result.get_asset_materialization_events()
    return {k: v.value for k, v in event.materialization.metadata.items()}


def test_ladder_asset_reports_ratings_and_plays_each_pairing_once(tmp_path: Path) -> None:
    first = _materialize(tmp_path)
    assert (first["games_played"], first["games_total"], first["players"]) == (4, 4, 2)
    assert first["pairings_played"] == [["scripted:0", "scripted:3"]]
    table = first["ratings"]
    assert "| 1 | scripted:3 |" in table and "mu ± sigma" in table and " ± " in table
    prefix = "![ladder ratings](data:image/png;base64,"
    assert first["ratings_chart"].startswith(prefix)
    png = base64.b64decode(first["ratings_chart"][len(prefix) : -1])
    assert png.startswith(PNG_MAGIC)
    again = _materialize(tmp_path)
    assert (again["games_played"], again["games_total"]) == (0, 4)
    assert again["ratings"] == table
    assert read_matches(DataLayout(tmp_path)).num_rows == 4
