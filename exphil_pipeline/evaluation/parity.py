"""Train/serve parity: embed every frame of a replay through both readers and compare.

Pipeline path: the replay's ``frames``/``items`` Parquet (from the store under ``EXPHIL_HOME``,
or ingested into a scratch folder when the store does not have it) through ``embed_batch``.
Runtime path: libmelee's file console (``melee.Console(is_dolphin=False, …)``), one
``GameState`` at a time through ``embed_gamestate``.

Netplay replays hold several copies of a frame when a rollback happened. The stored frames
keep the settled (last) copy; here the console is read with ``skip_rollback_frames=False`` and
the last copy of each frame wins, so both sides describe the same frames. (A live player sees
the first, predicted copy; that is the runtime's input, not a property of the embedding.)
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import melee
import numpy as np
import pyarrow.compute as pc
import pyarrow.dataset as ds

from exphil_pipeline.replays.game_ingest import FileTask, content_game_id, ingest_file
from exphil_pipeline.storage.layout import DataLayout
from exphil_pipeline.training.examples import GameFrames
from exphil_pipeline.training.mirror import mirror_features, mirror_gamestate, mirror_targets
from runtime.controller_spec import CONTROLLER_SPEC
from runtime.embedding_spec import EMBEDDING_SPEC, MIRROR_STAGES, embed_gamestate
from runtime.melee_ids import STAGE_NAMES

MAX_REPORTED_DIFFERENCES = 5


@dataclass
class FeatureDifference:
    port: int
    frame: int
    feature: str
    pipeline: float
    runtime: float


@dataclass
class ParityReport:
    """What ``exphil parity`` prints for one replay."""

    replay: str
    game_id: str
    status: str = "ok"  # ok | different | unreadable | skipped (not mirrored: its stage)
    frames_source: str = ""
    ports: list[int] = field(default_factory=list)
    frames_compared: int = 0
    max_abs_diff: float = 0.0
    presence_mismatches: int = 0
    first_differences: list[FeatureDifference] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def runtime_gamestates(path: Path) -> dict[int, melee.GameState]:
    """Every frame of the replay as libmelee's file console reports it; last copy wins."""
    console = melee.Console(
        is_dolphin=False, path=str(path), allow_old_version=True, skip_rollback_frames=False
    )
    console.connect()
    states: dict[int, melee.GameState] = {}
    while (gamestate := console.step()) is not None:
        if gamestate.menu_state == melee.Menu.IN_GAME and gamestate.players:
            states[int(gamestate.frame)] = gamestate
    return states


def _stored_game(layout: DataLayout, game_id: str) -> tuple[GameFrames, str] | None:
    frames_paths = sorted(layout.frames_dir.glob(f"batch=*/{game_id}.parquet"))
    if not frames_paths or not layout.games_dir.exists():
        return None
    games = ds.dataset(layout.games_dir, format="parquet", partitioning="hive")
    rows = games.to_table(columns=["stage"], filter=pc.field("game_id") == game_id)
    if rows.num_rows == 0:
        return None
    frames_path = frames_paths[0]
    items_path = layout.items_dir / frames_path.parent.name / frames_path.name
    return GameFrames.read(frames_path, items_path, rows.column("stage")[0].as_py() or 0), "store"


def _ingested_game(path: Path, scratch: Path) -> tuple[GameFrames, str]:
    outcome = ingest_file(FileTask(path, "parity", scratch, compression_level=1))
    record = outcome.record
    if record is None or record.status == "quarantined":
        reason = record.error if record else "duplicate"
        raise ValueError(f"the pipeline rejected {path}: {reason}")
    layout = DataLayout(scratch)
    frames_path = layout.game_file("frames", "parity", record.game_id)
    items_path = layout.game_file("items", "parity", record.game_id)
    return GameFrames.read(frames_path, items_path, record.stage or 0), "ingested"


def _opponent(port: int, ports: list[int]) -> int:
    """The lowest other port: both paths must pick the same one in games with 3-4 players."""
    others = [p for p in ports if p != port]
    return others[0] if others else 0


def _runtime_rows(
    states: dict[int, melee.GameState],
    frames: np.ndarray,
    port: int,
    opponent: int,
    mirror: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    rows = np.zeros((len(frames), EMBEDDING_SPEC.dim), dtype=np.float32)
    present = np.zeros(len(frames), dtype=np.bool_)
    shown = [
        (i, states[frame], states.get(frame - 1))
        for i, frame in enumerate(frames.tolist())
        if frame in states and port in states[frame].players
    ]
    # The previous input is what the port's controller held the frame before, or neutral.
    held = [
        j for j, (_, _, before) in enumerate(shown) if before is not None and port in before.players
    ]
    previous = np.tile(CONTROLLER_SPEC.neutral(), (len(shown), 1))
    previous[held] = CONTROLLER_SPEC.encode_controller_states(
        [shown[j][2].players[port].controller_state for j in held]
    )
    for (i, state, _), last_input in zip(shown, previous, strict=True):
        if mirror:
            state, last_input = mirror_gamestate(state), mirror_targets(last_input)
        rows[i] = embed_gamestate(state, port, opponent, last_input)
        present[i] = True
    return rows, present


def compare_replay(path: Path, layout: DataLayout, mirror: bool = False) -> ParityReport:
    """Embed every frame of every player both ways and report the differences.

    With ``mirror``, the pipeline's vectors are mirrored (``training.mirror``) and compared with
    the embedding of libmelee's mirrored game states; replays on stages that are never
    mirrored are reported as ``skipped``.
    """
    game_id = content_game_id(path.read_bytes())
    report = ParityReport(replay=str(path), game_id=game_id)
    try:
        states = runtime_gamestates(path)
    except Exception as error:  # libmelee raises assorted errors on files it cannot read
        report.status, report.error = "unreadable", f"libmelee: {type(error).__name__}: {error}"
        return report
    with tempfile.TemporaryDirectory(prefix="exphil-parity-") as scratch:
        try:
            game, report.frames_source = _stored_game(layout, game_id) or _ingested_game(
                path, Path(scratch)
            )
        except ValueError as error:
            report.status, report.error = "unreadable", str(error)
            return report
        if mirror and STAGE_NAMES.get(game.external_stage) not in MIRROR_STAGES:
            report.status = "skipped"
            return report
        report.ports = game.leader_ports
        frames = game.frame_ids
        for port in report.ports:
            opponent = _opponent(port, report.ports)
            expected = game.examples(port, opponent, 0, first_action_frame=int(frames[0]))
            runtime, runtime_present = _runtime_rows(states, frames, port, opponent, mirror)
            pipeline_present = game.present(port)
            report.presence_mismatches += int(np.sum(pipeline_present != runtime_present))
            compared = pipeline_present & runtime_present
            index = np.searchsorted(frames, expected.action_frames)
            keep = compared[index]
            pipeline_rows, runtime_rows = expected.features[keep], runtime[index[keep]]
            if mirror:
                pipeline_rows = mirror_features(pipeline_rows)
            report.frames_compared += len(pipeline_rows)
            _record_differences(report, port, frames[index[keep]], pipeline_rows, runtime_rows)
    if report.presence_mismatches or report.max_abs_diff > 0:
        report.status = "different"
    return report


def _record_differences(
    report: ParityReport,
    port: int,
    frames: np.ndarray,
    pipeline: np.ndarray,
    runtime: np.ndarray,
) -> None:
    if len(pipeline) == 0:
        return
    # Bitwise comparison: NaN never appears (both paths map it to 0) and -0.0 == 0.0 is fine.
    difference = np.abs(pipeline.astype(np.float64) - runtime.astype(np.float64))
    report.max_abs_diff = max(report.max_abs_diff, float(difference.max()))
    for row, column in zip(*np.nonzero(difference), strict=True):
        if len(report.first_differences) >= MAX_REPORTED_DIFFERENCES:
            return
        report.first_differences.append(
            FeatureDifference(
                port=port,
                frame=int(frames[row]),
                feature=EMBEDDING_SPEC.names[column],
                pipeline=float(pipeline[row, column]),
                runtime=float(runtime[row, column]),
            )
        )
