"""``benchmarks/frame_delay.py`` refuses delays it could not compare before it ingests.

A whole run trains five teachers and takes many minutes, so it is a benchmark, not a test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.frame_delay import main


def test_a_delay_outside_the_range_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path), "--delays", "0", "24", "--range", "0", "18"])
    assert exit_info.value.code == 2
    assert "delays [24] lie outside --range 0 18" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
