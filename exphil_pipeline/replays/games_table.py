"""The ``games`` table contract: one row per distinct replay file (by content) in a batch."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from runtime.melee_ids import external_character_name, stage_name

GameStatus = Literal["ok", "repaired", "quarantined"]

PLAYER_TYPE = pa.struct(
    [
        ("port", pa.uint8()),
        ("character", pa.uint8()),
        ("character_name", pa.string()),
        ("type", pa.string()),
        ("costume", pa.uint8()),
        ("team", pa.uint8()),
        ("cpu_level", pa.uint8()),
        ("name_tag", pa.string()),
        ("netplay_name", pa.string()),
        ("connect_code", pa.string()),
    ]
)

GAMES_SCHEMA = pa.schema(
    [
        pa.field("game_id", pa.string(), nullable=False),
        pa.field("source_path", pa.string(), nullable=False),
        pa.field("duplicate_paths", pa.list_(pa.string())),
        pa.field("file_bytes", pa.int64(), nullable=False),
        pa.field("slippi_version", pa.string()),
        pa.field("start_time", pa.timestamp("s", tz="UTC")),
        pa.field("stage", pa.uint16()),
        pa.field("stage_name", pa.string()),
        pa.field("timer", pa.uint32()),
        pa.field("is_teams", pa.bool_()),
        pa.field("is_pal", pa.bool_()),
        pa.field("played_on", pa.string()),
        pa.field("players", pa.list_(PLAYER_TYPE)),
        pa.field("frame_count", pa.int32()),
        pa.field("first_frame", pa.int32()),
        pa.field("last_frame", pa.int32()),
        pa.field("rollback_frames", pa.int32()),
        pa.field("end_method", pa.string()),
        pa.field("end_method_code", pa.int16()),
        pa.field("lras_initiator", pa.uint8()),
        pa.field("match_id", pa.string()),
        pa.field("game_number", pa.uint32()),
        pa.field("tiebreaker_number", pa.uint32()),
        pa.field("random_seed", pa.uint32()),
        pa.field("damaged_ports", pa.list_(pa.uint8())),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error", pa.string()),
        pa.field("frames_rows", pa.int64(), nullable=False),
        pa.field("items_rows", pa.int64(), nullable=False),
        pa.field("output_bytes", pa.int64(), nullable=False),
        pa.field("parse_seconds", pa.float64(), nullable=False),
    ]
)

# peppi's end-method names -> Slippi codes (0 unresolved, 1 time, 2 game, 3 resolved, 7 no contest).
END_METHOD_CODES = {"Unresolved": 0, "Time": 1, "Game": 2, "Resolved": 3, "NoContest": 7}


@dataclass
class GameRecord:
    """One row of ``games``; built by the ingest worker, written by the batch."""

    game_id: str
    source_path: str
    file_bytes: int
    status: GameStatus
    error: str | None = None
    duplicate_paths: list[str] = field(default_factory=list)
    slippi_version: str | None = None
    start_time: datetime | None = None
    stage: int | None = None
    stage_name: str | None = None
    timer: int | None = None
    is_teams: bool | None = None
    is_pal: bool | None = None
    played_on: str | None = None
    players: list[dict[str, Any]] | None = None
    frame_count: int | None = None
    first_frame: int | None = None
    last_frame: int | None = None
    rollback_frames: int | None = None
    end_method: str | None = None
    end_method_code: int | None = None
    lras_initiator: int | None = None
    # Slippi's match id (3.14+, online play): both players' recordings of a game share it,
    # its game number and tiebreaker number. Offline games have none (null).
    match_id: str | None = None
    game_number: int | None = None
    tiebreaker_number: int | None = None
    # The game's random seed at start: the two recordings of one netplay game share it.
    random_seed: int | None = None
    # Ports (1-4) of the players whose percent rose above 0 at some frame.
    damaged_ports: list[int] | None = None
    frames_rows: int = 0
    items_rows: int = 0
    output_bytes: int = 0
    parse_seconds: float = 0.0


def _port_number(port: str | int) -> int:
    return int(str(port).removeprefix("P")) if isinstance(port, str) else int(port) + 1


def player_rows(start: dict[str, Any]) -> list[dict[str, Any]]:
    """The game start's players as ``games.players`` structs (ports 1-4, external ids)."""
    rows = []
    for player in start.get("players", []):
        netplay = player.get("netplay") or {}
        team = player.get("team") or {}
        rows.append(
            {
                "port": _port_number(player["port"]),
                "character": player["character"],
                "character_name": external_character_name(player["character"]),
                "type": str(player["type"]).upper(),
                "costume": player.get("costume"),
                "team": team.get("color"),
                "cpu_level": player.get("cpu_level"),
                "name_tag": player.get("name_tag") or None,
                "netplay_name": netplay.get("name") or None,
                # Slippi stores the '#' of connect codes as U+FF03 (full-width number sign).
                "connect_code": (netplay.get("code") or "").replace("\uff03", "#") or None,
            }
        )
    return rows


def describe_start(record: GameRecord, start: dict[str, Any], metadata: dict[str, Any]) -> None:
    """Fill ``record``'s game-level fields from peppi's start block and metadata."""
    record.slippi_version = ".".join(str(v) for v in start["slippi"]["version"])
    record.start_time = _start_time(record, metadata.get("startAt"))
    record.stage = start.get("stage")
    record.stage_name = stage_name(record.stage) if record.stage is not None else None
    record.timer = start.get("timer")
    record.is_teams = start.get("is_teams")
    record.is_pal = start.get("is_pal")
    record.played_on = metadata.get("playedOn")
    record.players = player_rows(start)
    record.random_seed = start.get("random_seed")
    match = start.get("match") or {}
    if match.get("id"):
        record.match_id = match["id"]
        record.game_number = match.get("game")
        record.tiebreaker_number = match.get("tiebreaker")


def _start_time(record: GameRecord, started: object) -> datetime | None:
    """The metadata's ``startAt`` as a time; a damaged one is noted in ``error`` and left null
    (it is bookkeeping, not game data, so the game itself still lands)."""
    if not started:
        return None
    try:
        return datetime.fromisoformat(str(started).replace("Z", "+00:00"))
    except ValueError:
        note = f"metadata startAt {str(started)[:40]!r} is not a date; start_time left null"
        record.error = f"{record.error}; {note}" if record.error else note
        return None


def describe_end(record: GameRecord, end: dict[str, Any] | None, raw_code: int | None) -> None:
    """Fill the end method; ``raw_code`` (from the raw stream) wins over peppi's mapped name."""
    method = (end or {}).get("method")
    code = raw_code if raw_code is not None else END_METHOD_CODES.get(method or "")
    record.end_method_code = code
    if raw_code is not None and raw_code not in END_METHOD_CODES.values():
        record.end_method = f"UNKNOWN_{raw_code}"
    else:
        record.end_method = method.upper() if method else None
    initiator = (end or {}).get("lras_initiator")
    record.lras_initiator = _port_number(initiator) if initiator is not None else None


def damaged_ports(frames: pa.Table) -> list[int]:
    """Ports (1-4) of the players (not Nana) whose percent rose above 0 in ``frames``."""
    hurt = pc.and_(pc.invert(frames.column("is_follower")), pc.greater(frames.column("percent"), 0))
    return sorted(pc.unique(frames.column("port").filter(hurt)).to_pylist())


def games_table(records: list[GameRecord]) -> pa.Table:
    # Each record's own attribute dict: Arrow copies the values, so the deep copy that
    # ``dataclasses.asdict`` makes first would only cost time (16x as much, measured).
    return pa.Table.from_pylist([vars(r) for r in records], schema=GAMES_SCHEMA)
