"""How closely the simulator follows real games: recorded inputs replayed from recorded states.

For each port of a real replay whose character is simulated, every start of a recorded action
(a frame whose action state differs from the previous frame's) opens a segment: the simulated
player is re-seated at the recorded state of that frame (position, self and knockback speed,
action, facing, airborne, jumps, percent, shield, hitstun, hitlag), then the engine plays the
recorded controller inputs of the next ``horizon`` frames, and the simulated position is
compared with the recorded one after each. Frame 0 is the re-seat itself, so its error is 0.

The engine plays a 1v1 game; here the other slot is parked (dead, no stocks left), so a
segment measures the player's own motion. Segments in which the recording shows the player
being hit (percent rises) are left out, as are those starting in an entry, death or revival
state or running past the player's last frame. Only Final Destination is measured: it has no
platforms, so the recorded ground is always the simulator's main floor. Replays need Slippi
3.5 or later, which records speeds and whether a player is airborne.

This is a fidelity measure, not a gate: Melee's engine has much the simulator leaves out
(specials, grabs, ledges, tech), and those segments count as they come.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
from melee.enums import Action, Character, Stage

from exphil_pipeline.replays.frame_tables import frames_table
from exphil_pipeline.replays.reader import ReplayRejectedError, read_replay
from exphil_pipeline.simulator import engine
from exphil_pipeline.simulator.action_groups import AERIAL_INDEX, AERIAL_LANDING, UNTOUCHABLE
from exphil_pipeline.simulator.engine_state import (
    MAIN_FLOOR,
    NO_ATTACK,
    NO_GROUND,
    EngineState,
    new_games,
)
from exphil_pipeline.simulator.melee_data import (
    SIM_CHARACTERS,
    SimTables,
    external_stage_id,
    sim_tables,
    stage_slot,
)
from exphil_pipeline.simulator.pad_inputs import SHOULDER_SHIELDS, PadInputs
from runtime.controller_spec import BUTTON_BITS

FLAT_STAGE = Stage.FINAL_DESTINATION
DEFAULT_HORIZON = 10
HITSTUN_FLAG = 0x02  # state_flags_4: the player is in hitstun
TRIGGER_AGE_CAP = 99  # the engine's cap on frames since the shield was pressed
_PARKED = Action.DEAD_DOWN.value
_COLUMNS = (
    "frame",
    "port",
    "character",
    "action_state",
    "x",
    "y",
    "percent",
    "shield",
    "stocks",
    "facing",
    "airborne",
    "jumps_left",
    "hitlag",
    "hitstun_misc",
    "state_flags_4",
    "l_cancel",
    "vel_self_x_air",
    "vel_self_x_ground",
    "vel_self_y",
    "vel_knockback_x",
    "vel_knockback_y",
    "joystick_x",
    "joystick_y",
    "cstick_x",
    "cstick_y",
    "trigger",
    "buttons",
)
_REQUIRED = ("airborne", "jumps_left", "vel_self_x_air", "vel_self_y", "vel_knockback_x")


class UnsuitableReplayError(ValueError):
    """The replay cannot be measured (stage, Slippi version); the message says why."""


@dataclass(frozen=True)
class PortRecording:
    """One port's frames of a replay, in frame order; every field an array over frames."""

    port: int
    columns: dict[str, np.ndarray]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def __len__(self) -> int:
        return len(self.columns["frame"])


@dataclass(frozen=True)
class SegmentErrors:
    """Position errors of segments: ``error_x`` and ``error_y`` are ``[S, horizon + 1]``
    (simulated minus recorded, column k after k frames); ``character`` the character slot
    and ``start`` the recorded frame of each segment; ``skipped_hit`` counts the segments
    left out because the player was hit."""

    character: np.ndarray
    start: np.ndarray
    error_x: np.ndarray
    error_y: np.ndarray
    skipped_hit: int = 0

    @classmethod
    def empty(cls, horizon: int) -> SegmentErrors:
        none = np.zeros((0, horizon + 1), dtype=np.float32)
        return cls(np.zeros(0, np.int16), np.zeros(0, np.int32), none, none.copy())

    @classmethod
    def concat(cls, parts: list[SegmentErrors], horizon: int) -> SegmentErrors:
        parts = [cls.empty(horizon), *parts]
        return cls(
            np.concatenate([p.character for p in parts]),
            np.concatenate([p.start for p in parts]),
            np.concatenate([p.error_x for p in parts]),
            np.concatenate([p.error_y for p in parts]),
            sum(p.skipped_hit for p in parts),
        )


@dataclass(frozen=True)
class ErrorSummary:
    """Figures over segments. Per frame k = 0..horizon: mean and 90th percentile of the
    absolute x and y error; over frames 1..horizon: the fraction whose distance (x and y
    together) is within 1 and within 5 units."""

    segments: int
    frames: int
    mean_abs_x: list[float]
    p90_abs_x: list[float]
    mean_abs_y: list[float]
    p90_abs_y: list[float]
    within_1: float
    within_5: float

    @classmethod
    def of(cls, errors: SegmentErrors) -> ErrorSummary:
        ax, ay = np.abs(errors.error_x), np.abs(errors.error_y)
        distance = np.hypot(ax, ay)[:, 1:]
        empty = len(ax) == 0

        def per_frame(values: np.ndarray, reduce) -> list[float]:
            width = values.shape[1]
            return [float("nan")] * width if empty else [round(float(v), 4) for v in reduce(values)]

        def fraction(limit: float) -> float:
            return float("nan") if empty else round(float((distance <= limit).mean()), 4)

        return cls(
            segments=len(ax),
            frames=int(distance.size),
            mean_abs_x=per_frame(ax, lambda v: v.mean(axis=0)),
            p90_abs_x=per_frame(ax, lambda v: np.percentile(v, 90, axis=0)),
            mean_abs_y=per_frame(ay, lambda v: v.mean(axis=0)),
            p90_abs_y=per_frame(ay, lambda v: np.percentile(v, 90, axis=0)),
            within_1=fraction(1.0),
            within_5=fraction(5.0),
        )


@dataclass(frozen=True)
class FidelityReport:
    """Per simulated character (libmelee name) and overall, over the measured replays."""

    horizon: int
    replays: list[str]
    skipped: dict[str, str] = field(default_factory=dict)  # replay -> why it was not measured
    skipped_hit: int = 0  # segments left out because the player was hit
    by_character: dict[str, ErrorSummary] = field(default_factory=dict)
    overall: ErrorSummary | None = None

    @classmethod
    def of(
        cls,
        horizon: int,
        errors: dict[str, SegmentErrors],
        skipped: dict[str, str],
    ) -> FidelityReport:
        everything = SegmentErrors.concat(list(errors.values()), horizon)
        by_character = {
            SIM_CHARACTERS[slot].name: ErrorSummary.of(
                _select(everything, everything.character == slot)
            )
            for slot in np.unique(everything.character).tolist()
        }
        return cls(
            horizon,
            sorted(errors),
            skipped,
            everything.skipped_hit,
            by_character,
            ErrorSummary.of(everything),
        )


def _select(errors: SegmentErrors, rows: np.ndarray) -> SegmentErrors:
    return SegmentErrors(
        errors.character[rows],
        errors.start[rows],
        errors.error_x[rows],
        errors.error_y[rows],
        0,
    )


def read_recordings(path: Path) -> list[PortRecording]:
    """The players (not Nana) of a Final Destination replay with Slippi 3.5+ fields, by port;
    :class:`UnsuitableReplayError` otherwise."""
    parsed = read_replay(path)
    stage = parsed.start.get("stage")
    if stage != external_stage_id(FLAT_STAGE):
        raise UnsuitableReplayError(
            f"{path.name}: stage id {stage}, not Final Destination "
            f"({external_stage_id(FLAT_STAGE)}), the flat stage this measure needs"
        )
    table = frames_table(path.name, parsed.frames, parsed.slot_updates)
    table = table.filter(pc.invert(table.column("is_follower")))
    missing = [name for name in _REQUIRED if table.column(name).null_count == len(table)]
    if missing:
        raise UnsuitableReplayError(
            f"{path.name}: no {', '.join(missing)} recorded (needs Slippi 3.5 or later)"
        )
    recordings = []
    for port in sorted(set(table.column("port").to_pylist())):
        rows = table.filter(pc.equal(table.column("port"), port))
        rows = rows.filter(rows.column("present"))
        columns = {
            name: rows.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
            for name in _COLUMNS
        }
        order = np.argsort(columns["frame"], kind="stable")
        recordings.append(PortRecording(port, {k: v[order] for k, v in columns.items()}))
    return recordings


def pad_inputs(recording: PortRecording, frames: np.ndarray) -> PadInputs:
    """The recorded pre-frame inputs at row indices ``frames`` ``[S]``, as player 0 of S games
    (player 1 neutral)."""
    pad = PadInputs.neutral(len(frames))
    buttons = np.nan_to_num(recording["buttons"][frames]).astype(np.uint32)
    trigger = np.nan_to_num(recording["trigger"][frames]).astype(np.float32)

    def pressed(*names: str) -> np.ndarray:
        return np.any([(buttons & BUTTON_BITS[name]) != 0 for name in names], axis=0)

    pad.stick_x[:, 0] = np.nan_to_num(recording["joystick_x"][frames])
    pad.stick_y[:, 0] = np.nan_to_num(recording["joystick_y"][frames])
    pad.cstick_x[:, 0] = np.nan_to_num(recording["cstick_x"][frames])
    pad.cstick_y[:, 0] = np.nan_to_num(recording["cstick_y"][frames])
    pad.a[:, 0] = pressed("A")
    pad.b[:, 0] = pressed("B")
    pad.jump[:, 0] = pressed("X", "Y")
    pad.z[:, 0] = pressed("Z")
    pad.shield[:, 0] = pressed("L", "R") | (trigger > SHOULDER_SHIELDS)
    pad.shoulder[:, 0] = trigger
    return pad


def _frames_since_shield(recording: PortRecording) -> np.ndarray:
    """Per row: frames since the shield input was last held (the engine's ``trigger_age``)."""
    rows = np.arange(len(recording))
    shield = pad_inputs(recording, rows).shield[:, 0]
    last = np.maximum.accumulate(np.where(shield, rows, -TRIGGER_AGE_CAP - 1))
    return np.minimum(rows - last, TRIGGER_AGE_CAP).astype(np.int16)


def reseat(recording: PortRecording, starts: np.ndarray, tables: SimTables) -> EngineState:
    """S games whose player 0 is at the recorded state of rows ``starts`` (on the first frame
    of an action) and whose player 1 is parked out of play."""
    n = len(starts)
    slots = [SIM_CHARACTERS.index(Character(int(c))) for c in recording["character"][starts]]
    state = new_games(
        np.stack([slots, slots], axis=1).reshape(n, 2),
        np.full(n, stage_slot(FLAT_STAGE)),
        stocks=0,
    )
    state.frame[:] = recording["frame"][starts].astype(np.int32)

    def seat(name: str, column: str | np.ndarray, dtype: type = np.float32) -> None:
        values = recording[column][starts] if isinstance(column, str) else column[starts]
        getattr(state, name)[:, 0] = np.nan_to_num(values).astype(dtype)

    airborne = recording["airborne"] > 0
    action = recording["action_state"].astype(np.int16)
    seat("stocks", "stocks", np.int16)
    seat("x", "x")
    seat("y", "y")
    seat("vx", np.where(airborne, recording["vel_self_x_air"], recording["vel_self_x_ground"]))
    seat("vy", "vel_self_y")
    seat("kb_x", "vel_knockback_x")
    seat("kb_y", "vel_knockback_y")
    seat("facing", np.where(recording["facing"] < 0, -1.0, 1.0))
    seat("action", action, np.int16)
    seat("airborne", airborne, np.bool_)
    seat("ground", np.where(airborne, NO_GROUND, MAIN_FLOOR), np.int32)
    seat("jumps", "jumps_left", np.int16)
    seat("percent", "percent")
    seat("shield", "shield")
    hitstun = (np.nan_to_num(recording["state_flags_4"]).astype(np.int64) & HITSTUN_FLAG) != 0
    seat(
        "hitstun", np.where(hitstun, np.ceil(np.nan_to_num(recording["hitstun_misc"])), 0), np.int16
    )
    seat("hitlag", np.ceil(np.nan_to_num(recording["hitlag"])), np.int16)
    seat("trigger_age", _frames_since_shield(recording), np.int16)
    character = state.character[:, 0]
    state.age[:, 0] = 1
    state.attack[:, 0] = _attack_of(action[starts], character, tables)
    state.timer[:, 0] = _lag_of(action[starts], recording["l_cancel"][starts], character, tables)
    fast_fall = tables.character.fast_fall_speed[character]
    state.fast_falling[:, 0] = state.airborne[:, 0] & (state.vy[:, 0] <= -fast_fall + 1e-3)
    state.action[:, 1] = _PARKED
    state.timer[:, 1] = np.iinfo(np.int16).max
    return state


def _attack_of(action: np.ndarray, character: np.ndarray, tables: SimTables) -> np.ndarray:
    """The simulated attack whose action state ``action`` is, per player; NO_ATTACK if none."""
    match = (tables.attack_action_state[character] == action[:, None]) & tables.attack_available[
        character
    ]
    return np.where(match.any(axis=1), match.argmax(axis=1), NO_ATTACK).astype(np.int16)


def _lag_of(
    action: np.ndarray, l_cancel: np.ndarray, character: np.ndarray, tables: SimTables
) -> np.ndarray:
    """The frames of lag the engine gives a landing or a shield release on its first frame."""
    timer = np.zeros(len(action), dtype=np.int16)
    timer[action == Action.LANDING.value] = engine.LANDING_LAG
    timer[action == Action.SHIELD_RELEASE.value] = engine.SHIELD_RELEASE_LAG
    for which, landing in enumerate(AERIAL_LANDING.tolist()):
        rows = action == landing
        attack = (character[rows], AERIAL_INDEX[which])
        cancelled = l_cancel[rows] == 1
        lag = np.where(cancelled, tables.l_cancel_lag[attack], tables.landing_lag[attack])
        timer[rows] = lag
    return timer


def segment_starts(recording: PortRecording, horizon: int) -> tuple[np.ndarray, int]:
    """Rows where a measurable action starts, and how many were left out for a hit."""
    frame = recording["frame"]
    action = recording["action_state"]
    simulated = np.isin(recording["character"], [c.value for c in SIM_CHARACTERS])
    rows = np.arange(1, len(recording) - horizon)
    rows = rows[(action[rows] != action[rows - 1]) & simulated[rows]]
    rows = rows[~UNTOUCHABLE[action[rows].astype(np.int64)]]
    # The window's frames follow one another, so row r + k is frame start + k.
    rows = rows[frame[rows + horizon] - frame[rows] == horizon]
    window = rows[:, None] + np.arange(horizon + 1)
    same_character = (recording["character"][window] == recording["character"][rows, None]).all(1)
    rows = rows[same_character]
    window = window[same_character]
    hit = (np.diff(recording["percent"][window], axis=1) > 0).any(axis=1)
    return rows[~hit], int(hit.sum())


def measure(recording: PortRecording, horizon: int, tables: SimTables) -> SegmentErrors:
    """Re-seat at every measurable action start and play ``horizon`` recorded frames."""
    starts, skipped = segment_starts(recording, horizon)
    if len(starts) == 0:
        return SegmentErrors(**{**vars(SegmentErrors.empty(horizon)), "skipped_hit": skipped})
    state = reseat(recording, starts, tables)
    error_x = np.zeros((len(starts), horizon + 1), dtype=np.float32)
    error_y = np.zeros_like(error_x)
    error_x[:, 0] = state.x[:, 0] - recording["x"][starts]
    error_y[:, 0] = state.y[:, 0] - recording["y"][starts]
    for k in range(1, horizon + 1):
        engine.step(state, pad_inputs(recording, starts + k), tables)
        error_x[:, k] = state.x[:, 0] - recording["x"][starts + k]
        error_y[:, k] = state.y[:, 0] - recording["y"][starts + k]
    return SegmentErrors(
        state.character[:, 0].copy(), starts.astype(np.int32), error_x, error_y, skipped
    )


def replay_errors(path: Path, horizon: int = DEFAULT_HORIZON) -> SegmentErrors:
    """Every simulated port's segments of one replay (see the module docstring)."""
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1 frame, got {horizon}")
    tables = sim_tables()
    parts = [measure(recording, horizon, tables) for recording in read_recordings(path)]
    return SegmentErrors.concat(parts, horizon)


def fidelity_report(paths: list[Path], horizon: int = DEFAULT_HORIZON) -> FidelityReport:
    """The report over ``paths``; replays that cannot be measured are listed with why."""
    errors: dict[str, SegmentErrors] = {}
    skipped: dict[str, str] = {}
    for path in paths:
        try:
            errors[path.name] = replay_errors(path, horizon)
        except UnsuitableReplayError as error:
            skipped[path.name] = str(error)
        except ReplayRejectedError as error:
            skipped[path.name] = f"{path.name}: unreadable: {error.reason}"
    return FidelityReport.of(horizon, errors, skipped)
