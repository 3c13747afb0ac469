"""The ``matches`` table: one row per arena game, one Parquet file per arena run.

Every run writes ``$EXPHIL_HOME/matches/<run_id>.parquet`` atomically and the DuckDB catalog's
``matches`` view reads them all, so players are compared across runs in SQL, e.g.
``exphil sql "SELECT winner, count(*) FROM matches GROUP BY 1"``. Per-port columns end in
``_1`` (port 1) and ``_2`` (port 2); ``game`` numbers a run's games (even: player A on port
1). ``winner`` is the winning player's name (told apart with `` (A)``/`` (B)`` in a mirror
match), null for a draw or a void game. ``run_kind`` says what ran the games (``arena``: the
``exphil arena`` command; ``ladder``: ``evaluation.ladder``'s pairings, the games its ratings
are computed from); ``start_stocks`` and ``max_frames`` are the game setup. Files written before
those three columns existed read them as null (:func:`read_matches`, DuckDB's
``union_by_name``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from exphil_pipeline.storage.atomic import write_parquet_atomic
from exphil_pipeline.storage.layout import DataLayout

if TYPE_CHECKING:
    from exphil_pipeline.evaluation.arena import ArenaReport

MATCHES_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("time", pa.timestamp("us", tz="UTC")),  # when the run started
        ("env", pa.string()),
        ("stage", pa.string()),
        ("run_seed", pa.int64()),  # the run's --seed
        ("game", pa.int32()),
        ("seed", pa.int64()),  # the environment's seed of this game
        ("player_1", pa.string()),
        ("player_2", pa.string()),
        ("character_1", pa.string()),
        ("character_2", pa.string()),
        ("winner", pa.string()),
        ("winner_port", pa.int8()),  # 1, 2, or null for a draw or a void game
        ("stocks_1", pa.int16()),  # stocks left at the end
        ("stocks_2", pa.int16()),
        ("stocks_lost_1", pa.int16()),
        ("stocks_lost_2", pa.int16()),
        ("percent_1", pa.float32()),  # percent at the end
        ("percent_2", pa.float32()),
        ("damage_dealt_1", pa.float32()),
        ("damage_dealt_2", pa.float32()),
        ("self_destructs_1", pa.int16()),
        ("self_destructs_2", pa.int16()),
        ("frames", pa.int32()),  # from the first playable frame, 60 per second
        ("void", pa.bool_()),  # the game could not be played out; not rated
        ("run_kind", pa.string()),  # RUN_KINDS: what ran the games
        ("start_stocks", pa.int16()),  # stocks per player at the start
        ("max_frames", pa.int32()),  # the timer, frames from the first playable frame
    ]
)
RUN_KINDS = ("arena", "ladder", "rl")


def new_run_id(started: datetime) -> str:
    """A run id that sorts by start time and never repeats: ``20260101T120000Z-1a2b3c4d``."""
    return f"{started.astimezone(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def matches_table(
    report: ArenaReport, run_id: str, started: datetime, run_kind: str = "arena"
) -> pa.Table:
    """One row per game of ``report`` in :data:`MATCHES_SCHEMA`."""
    if run_kind not in RUN_KINDS:
        raise ValueError(f"run_kind {run_kind!r}: use one of {RUN_KINDS}")
    names = (report.players[0].name, report.players[1].name)
    rows: dict[str, list[object]] = {name: [] for name in MATCHES_SCHEMA.names}
    for match in report.matches:
        r = match.result
        by_port = (0, 1) if match.a_port == 0 else (1, 0)  # the role (A 0, B 1) on each port
        decided = r.winner >= 0 and not r.void
        values = {
            "run_id": run_id,
            "time": started,
            "env": report.env,
            "stage": report.config.stage,
            "run_seed": report.seed,
            "game": match.number,
            "seed": r.seed,
            "winner": names[by_port[r.winner]] if decided else None,
            "winner_port": r.winner + 1 if decided else None,
            "frames": r.frames,
            "void": r.void,
            "run_kind": run_kind,
            "start_stocks": report.config.stocks,
            "max_frames": report.config.max_frames,
        }
        for port in (0, 1):
            suffix = f"_{port + 1}"
            values["player" + suffix] = names[by_port[port]]
            values["character" + suffix] = report.config.characters[by_port[port]]
            values["stocks" + suffix] = r.stocks[port]
            values["stocks_lost" + suffix] = r.stocks_lost[port]
            values["percent" + suffix] = r.percent[port]
            values["damage_dealt" + suffix] = r.damage_dealt[port]
            values["self_destructs" + suffix] = r.self_destructs[port]
        for name, value in values.items():
            rows[name].append(value)
    return pa.table(rows, schema=MATCHES_SCHEMA)


def write_matches(
    layout: DataLayout,
    report: ArenaReport,
    started: datetime | None = None,
    run_kind: str = "arena",
) -> tuple[str, Path]:
    """Write the run's ``matches`` file; returns its run id and path."""
    started = started or datetime.now(UTC)
    run_id = new_run_id(started)
    path = layout.matches_file(run_id)
    write_parquet_atomic(matches_table(report, run_id, started, run_kind), path)
    return run_id, path


def read_matches(layout: DataLayout) -> pa.Table:
    """Every run's rows in :data:`MATCHES_SCHEMA` (empty before the first run); a column an
    older file lacks reads as null."""
    tables = [
        _conform(pq.read_table(path)) for path in sorted(layout.matches_dir.glob("*.parquet"))
    ]
    return pa.concat_tables(tables) if tables else MATCHES_SCHEMA.empty_table()


def _conform(table: pa.Table) -> pa.Table:
    columns = [
        table[field.name].cast(field.type)
        if field.name in table.column_names
        else pa.nulls(len(table), field.type)
        for field in MATCHES_SCHEMA
    ]
    return pa.table(columns, schema=MATCHES_SCHEMA)
