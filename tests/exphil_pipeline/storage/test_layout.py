"""DataLayout names every path under the data root; experiment names are checked once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from exphil_pipeline.storage.layout import DataLayout, check_experiment_name

REPO = Path(__file__).resolve().parents[3]
TOP_FOLDERS = (
    "training_sets",
    "teachers",
    "rl_teachers",
    "soft_labels",
    "students",
    "artifacts",
    "claims",
)


def test_no_module_builds_a_data_root_path_by_hand() -> None:
    folders = "|".join(TOP_FOLDERS)
    pattern = re.compile(rf"""/\s*["']({folders})["']""")
    offenders = [
        str(path.relative_to(REPO))
        for folder in ("exphil_pipeline", "assets", "benchmarks")
        for path in (REPO / folder).rglob("*.py")
        if path.name != "layout.py" and pattern.search(path.read_text())
    ]
    assert offenders == []


def test_an_experiment_has_one_folder_per_stage(tmp_path: Path) -> None:
    paths = DataLayout(tmp_path).experiment("mewtwo-gru-d18")
    folders = [
        paths.training_set,
        paths.teacher,
        paths.rl_teacher,
        paths.soft_labels,
        paths.student,
        paths.artifacts,
    ]
    assert [f.parent.name for f in folders] == [
        "training_sets",
        "teachers",
        "rl_teachers",
        "soft_labels",
        "students",
        "artifacts",
    ]
    assert {f.name for f in folders} == {"mewtwo-gru-d18"}
    assert paths.policy_int8.parent == paths.artifacts


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "x" * 129, "with space"])
def test_bad_experiment_names_are_refused_with_the_rule(name: str) -> None:
    with pytest.raises(ValueError, match="letters, digits"):
        check_experiment_name(name)
