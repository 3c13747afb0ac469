"""``exphil-play --replay``: a replay's frames through the runtime and a real controller pipe."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from exphil_pipeline.evaluation.parity import runtime_gamestates
from runtime.controller_spec import CONTROLLER_SPEC
from runtime.play import main
from tests.runtime.conftest import ExportedPolicy

# Small real games: Slippi 3.19 (frame 1 intact), a 3.12 game, ports 1 and 4, a netplay game
# with rollbacks.
REAL_GAMES = (
    ("exphil-fox_ms_float.slp", 1),
    ("peppi-v3.12.slp", 2),
    ("peppi-short_game_tbh10.slp", 4),
    ("js-unranked_game2.slp", 1),
)
PLAY_SCRIPT = Path(sys.executable).parent / "exphil-play"


def frames_with_port(replay: Path, port: int) -> int:
    return sum(port in state.players for state in runtime_gamestates(replay).values())


def run_dry(
    capsys: pytest.CaptureFixture[str], artifact: Path, replay: Path, port: int, *extra: str
) -> dict:
    code = main(
        [
            "--artifact",
            str(artifact),
            "--replay",
            str(replay),
            "--port",
            str(port),
            "--json",
            "--seed",
            "1",
            *extra,
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)


def check_report(report: dict, replay: Path, port: int, frame_delay: int) -> None:
    frames = frames_with_port(replay, port)
    assert report["frames"] == frames > 0
    assert report["port"] == port and report["opponent_port"] != port
    latency = report["latency_us"]
    assert 0 < latency["p50"] <= latency["p99"] <= latency["max"]
    agreement = report["agreement"]
    assert agreement["compared"] == frames - frame_delay
    assert list(agreement["per_head"]) == list(CONTROLLER_SPEC.heads)
    rates = [agreement["all_heads"], *agreement["per_head"].values()]
    assert all(0.0 <= rate <= 1.0 for rate in rates)
    assert agreement["all_heads"] <= min(agreement["per_head"].values())
    pipe = report["pipe"]
    assert pipe["well_formed"] and pipe["malformed"] == 0
    assert pipe["flushes"] == frames
    assert pipe["commands"] == frames * (len(CONTROLLER_SPEC.buttons) + 4)


def test_dry_run_over_sample_replays(
    capsys: pytest.CaptureFixture[str], sample_replays: list[Path], mlp_artifact: ExportedPolicy
) -> None:
    for replay in sample_replays:
        report = run_dry(capsys, mlp_artifact.path, replay, 1)
        check_report(report, replay, 1, frame_delay=0)


@pytest.mark.parametrize(("name", "port"), REAL_GAMES)
def test_dry_run_over_real_replays(
    capsys: pytest.CaptureFixture[str],
    real_replays: Path,
    gru_artifact: ExportedPolicy,
    name: str,
    port: int,
) -> None:
    replay = real_replays / name
    report = run_dry(capsys, gru_artifact.path, replay, port)
    check_report(report, replay, port, frame_delay=2)


def test_frame_delay_and_temperature_flags(
    capsys: pytest.CaptureFixture[str], sample_replays: list[Path], gru_artifact: ExportedPolicy
) -> None:
    replay = sample_replays[0]
    report = run_dry(capsys, gru_artifact.path, replay, 2, "--frame-delay", "5", "--deterministic")
    assert report["frame_delay"] == 5 and report["temperature"] == 0.0
    check_report(report, replay, 2, frame_delay=5)
    again = run_dry(capsys, gru_artifact.path, replay, 2, "--frame-delay", "5", "--deterministic")
    assert again["agreement"] == report["agreement"]


def test_console_script_prints_a_readable_report(
    sample_replays: list[Path], mlp_artifact: ExportedPolicy
) -> None:
    command = [
        str(PLAY_SCRIPT),
        "--artifact",
        str(mlp_artifact.path),
        "--replay",
        str(sample_replays[1]),
    ]
    out = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "step latency p50" in out.stdout and "well-formed" in out.stdout
