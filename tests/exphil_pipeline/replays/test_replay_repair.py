import struct
from pathlib import Path

import pytest
from peppi_py import read_slippi

from exphil_pipeline.replays.repair import NotAReplayError, repair_replay_bytes
from exphil_pipeline.replays.slippi_events import RAW_HEADER


def test_non_replay_bytes_are_refused_with_a_reason() -> None:
    with pytest.raises(NotAReplayError, match="not a Slippi replay"):
        repair_replay_bytes(b"GIF89a this is an image")
    with pytest.raises(NotAReplayError, match="not a Slippi replay"):
        repair_replay_bytes(b"")


def test_stream_without_payload_table_is_refused() -> None:
    data = RAW_HEADER + struct.pack(">i", 3) + b"\x99\x00\x00"
    with pytest.raises(NotAReplayError, match="Event Payloads"):
        repair_replay_bytes(data)


def _parse(tmp_path: Path, data: bytes):
    path = tmp_path / "repaired.slp"
    path.write_bytes(data)
    return read_slippi(str(path))


def test_truncated_modern_replay_keeps_every_complete_frame(
    real_replays: Path, tmp_path: Path
) -> None:
    original = (real_replays / "exphil-fox_multishine.slp").read_bytes()
    full = read_slippi(str(real_replays / "exphil-fox_multishine.slp"))
    cut = original[: len(original) // 2 + 7]  # mid-event, as a Dolphin crash leaves it
    cut = cut[: len(RAW_HEADER)] + struct.pack(">i", 0) + cut[len(RAW_HEADER) + 4 :]
    result = repair_replay_bytes(cut)
    assert result.scan.truncated
    game = _parse(tmp_path, result.data)
    kept = len(game.frames.id)
    assert result.scan.complete_frames == kept
    assert 0 < kept < len(full.frames.id)
    # The frames kept are exactly the original's first frames, value for value.
    original_x = full.frames.ports[0].leader.post.position.x.to_pylist()[:kept]
    assert game.frames.ports[0].leader.post.position.x.to_pylist() == original_x


def test_unknown_game_end_method_is_mapped_and_reported(real_replays: Path, tmp_path: Path) -> None:
    result = repair_replay_bytes((real_replays / "js-BTTDK.slp").read_bytes())
    assert result.scan.end_method == 6
    assert not result.scan.truncated
    assert any("method 6" in p for p in result.scan.problems)
    assert len(_parse(tmp_path, result.data).frames.id) == result.scan.complete_frames == 1190


def test_replay_without_frames_is_refused(real_replays: Path) -> None:
    with pytest.raises(NotAReplayError, match="no complete frame"):
        repair_replay_bytes((real_replays / "peppi-corrupt.slp").read_bytes())


def test_clean_replay_round_trips_unchanged_frames(real_replays: Path, tmp_path: Path) -> None:
    path = real_replays / "peppi-ics.slp"
    result = repair_replay_bytes(path.read_bytes())
    assert not result.scan.truncated and result.scan.problems == []
    assert result.scan.complete_frames == len(read_slippi(str(path)).frames.id)
