"""``exphil-play`` refuses to start, with exit code 2 and a message saying why."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import onnx
import pytest

from exphil_pipeline.artifacts.onnx_export import write_manifest
from runtime.artifact_manifest import read_manifest
from runtime.play import main
from tests.runtime.conftest import ExportedPolicy

PLAY_SCRIPT = Path(sys.executable).parent / "exphil-play"


def refusal(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code = main(list(argv))
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("exphil-play: error: ")
    return err


@pytest.fixture
def fake_install(tmp_path: Path) -> tuple[Path, Path]:
    dolphin = tmp_path / "dolphin"
    dolphin.mkdir()
    iso = tmp_path / "melee.iso"
    iso.write_bytes(b"")
    return dolphin, iso


def test_mismatched_embedding_spec_hash(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, mlp_artifact: ExportedPolicy
) -> None:
    artifact = tmp_path / "stale.onnx"
    artifact.write_bytes(mlp_artifact.path.read_bytes())
    write_manifest(artifact, replace(read_manifest(artifact), embedding_spec_hash="0" * 64))
    err = refusal(capsys, "--artifact", str(artifact), "--replay", str(artifact))
    assert "embedding spec mismatch" in err and "000000000000" in err


def test_artifact_without_manifest(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, mlp_artifact: ExportedPolicy
) -> None:
    model = onnx.load(str(mlp_artifact.path))
    del model.metadata_props[:]
    artifact = tmp_path / "bare.onnx"
    onnx.save(model, str(artifact))
    err = refusal(capsys, "--artifact", str(artifact), "--replay", str(artifact))
    assert "has no 'exphil_manifest' metadata" in err


def test_missing_artifact(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    err = refusal(capsys, "--artifact", str(tmp_path / "none.onnx"), "--replay", __file__)
    assert "does not exist" in err


def test_same_port(capsys: pytest.CaptureFixture[str], mlp_artifact: ExportedPolicy) -> None:
    artifact = str(mlp_artifact.path)
    err = refusal(capsys, "--artifact", artifact, "--port", "3", "--opponent-port", "3")
    assert "both on port 3" in err
    # Live play's default opponent port is 2.
    assert "both on port 2" in refusal(capsys, "--artifact", artifact, "--port", "2")


def test_missing_dolphin_or_iso(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    mlp_artifact: ExportedPolicy,
    fake_install: tuple[Path, Path],
) -> None:
    dolphin, iso = fake_install
    artifact = str(mlp_artifact.path)
    err = refusal(
        capsys, "--artifact", artifact, "--dolphin", str(tmp_path / "nope"), "--iso", str(iso)
    )
    assert "Slippi Dolphin not found" in err
    assert "Slippi Dolphin not found" in refusal(capsys, "--artifact", artifact, "--iso", str(iso))
    err = refusal(
        capsys, "--artifact", artifact, "--dolphin", str(dolphin), "--iso", str(tmp_path / "x.iso")
    )
    assert "Melee ISO not found" in err
    # A folder without a Dolphin executable: libmelee's own search fails.
    err = refusal(capsys, "--artifact", artifact, "--dolphin", str(dolphin), "--iso", str(iso))
    assert "no Slippi Dolphin at" in err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--opponent", "cpu:12"], "--opponent must be"),
        (["--character", "WALUIGI"], "unknown character"),
        (["--stage", "hyrule"], "unknown stage"),
        (["--temperature", "0"], "use --deterministic"),
        (["--mode", "async", "--action-repeat", "2"], "--mode sync only"),
        (["--frame-delay", "-1"], "--frame-delay must be >= 0"),
    ],
)
def test_bad_live_arguments(
    capsys: pytest.CaptureFixture[str],
    mlp_artifact: ExportedPolicy,
    fake_install: tuple[Path, Path],
    flags: list[str],
    message: str,
) -> None:
    dolphin, iso = fake_install
    argv = ["--artifact", str(mlp_artifact.path), "--dolphin", str(dolphin), "--iso", str(iso)]
    assert message in refusal(capsys, *argv, *flags)


def test_port_absent_from_replay(
    capsys: pytest.CaptureFixture[str], sample_replays: list[Path], mlp_artifact: ExportedPolicy
) -> None:
    argv = ["--artifact", str(mlp_artifact.path), "--replay", str(sample_replays[0]), "--port", "4"]
    assert "port 4 has no player" in refusal(capsys, *argv)


def test_console_script_exits_2(mlp_artifact: ExportedPolicy) -> None:
    command = [str(PLAY_SCRIPT), "--artifact", str(mlp_artifact.path), "--dolphin", "/nonexistent"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "Slippi Dolphin not found at /nonexistent" in out.stderr
