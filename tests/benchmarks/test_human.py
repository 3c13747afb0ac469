"""``benchmarks/human.py`` refuses bad input before it ingests or trains anything.

A whole run is ``exphil train --replays`` (covered end to end by tests/test_cli_train.py) and
takes minutes on real games, so it is a benchmark, not a test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.human import main


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--character", "FOX", "--preset", "huge"], "unknown preset 'huge'"),
        (["--character", "FOXX", "--preset", "tiny"], "unknown character 'FOXX'"),
    ],
)
def test_bad_names_exit_2_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    home = tmp_path / "home"
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path), *args, "--home", str(home)])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not home.exists()


def test_a_missing_folder_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "nowhere"), "--character", "FOX"])
    assert exit_info.value.code == 2
    assert "is not a folder" in capsys.readouterr().err
