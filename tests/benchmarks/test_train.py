"""``benchmarks/train.py`` refuses what would make its figures meaningless before it trains.

A whole run trains every backbone for a few steps and takes minutes, so it is a benchmark,
not a test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.train import main
from tests.conftest import IngestedStore
from tests.exphil_pipeline.training.teacher_fixtures import build_set


def test_an_unknown_backbone_exits_2_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--home", str(tmp_path), "--backbones", "mlp", "transformer"])
    assert exit_info.value.code == 2
    assert "unknown backbones ['transformer']" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_a_set_with_fewer_episodes_than_lanes_is_refused(sample_store: IngestedStore) -> None:
    home = Path(sample_store.home)
    episodes = build_set(home, "bench-few", characters=["all"]).episodes("train").num_rows
    with pytest.raises(ValueError, match=f"{episodes} training episodes, fewer than the 32"):
        main(["--home", str(home), "--training-set", "bench-few", "--batch-size", "32"])
    assert not (home / "teachers" / "bench-few").exists()
