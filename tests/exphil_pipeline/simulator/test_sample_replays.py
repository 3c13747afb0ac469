"""Sample replay files: named in order, identical for the same seed."""

from __future__ import annotations

from pathlib import Path

from exphil_pipeline.simulator.sample_replays import write_sample_replays


def test_write_sample_replays_is_deterministic(tmp_path: Path) -> None:
    first = write_sample_replays(tmp_path / "a", games=2, frames=300, seed=5)
    second = write_sample_replays(tmp_path / "b", games=2, frames=300, seed=5)
    assert [path.name for path in first] == ["sample-0000.slp", "sample-0001.slp"]
    assert [path.read_bytes() for path in first] == [path.read_bytes() for path in second]
    assert first[0].read_bytes() != first[1].read_bytes()
