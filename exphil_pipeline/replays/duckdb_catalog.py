"""The DuckDB file under the data root: views over the Parquet tables plus id lookup tables.

The file is rebuilt whole into a temp path and renamed over the old one, so no process ever
holds a write lock on the live file: ``exphil sql`` and any ``duckdb -readonly`` session can
query it while ingestion runs.

``frames`` and ``items`` show only the games their batch's ``games`` table lists (a semi-join on
batch and game id): the games table is written last, so frames of a run still in progress, or
of one that was killed, stay invisible until the batch is published whole.

``curated_games`` is every published game with ``used`` and, when not used, the ``reason``:
the decisions of :func:`exphil_pipeline.training.training_set.curate` (the code
``build_training_set`` runs) under the default :class:`TrainingSetConfig` (target characters,
humans only, legal stages, ...). They are computed when the catalog is built (after every
ingest), kept in the table ``curation_decisions`` and joined to ``games`` by the view. An
experiment's own choices are in its training set's ``manifest.json`` (``games_skipped``).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from exphil_pipeline.evaluation.matches import MATCHES_SCHEMA
from exphil_pipeline.replays.frame_tables import FRAMES_SCHEMA, ITEMS_SCHEMA
from exphil_pipeline.replays.games_table import GAMES_SCHEMA
from exphil_pipeline.storage.atomic import atomic_path
from exphil_pipeline.storage.layout import DataLayout
from exphil_pipeline.training.training_set import curate, read_games
from exphil_pipeline.training.training_set_config import TrainingSetConfig
from runtime.melee_ids import EXTERNAL_CHARACTER_NAMES, INTERNAL_CHARACTER_NAMES, STAGE_NAMES

TABLE_SCHEMAS: dict[str, pa.Schema] = {
    "games": GAMES_SCHEMA,
    "frames": FRAMES_SCHEMA,
    "items": ITEMS_SCHEMA,
}


def table_glob(layout: DataLayout, table: str) -> str:
    return str(layout.home / table / "batch=*" / "*.parquet")


def _has_files(layout: DataLayout, table: str) -> bool:
    return any((layout.home / table).glob("batch=*/*.parquet"))


def _lookup(con: duckdb.DuckDBPyConnection, name: str, rows: dict[int, str]) -> None:
    con.from_arrow(pa.table({"id": list(rows), "name": list(rows.values())})).create(name)


def build_catalog(layout: DataLayout) -> Path:
    """(Re)build ``exphil.duckdb`` with views ``games``, ``frames``, ``items``, ``matches``,
    ``curated_games`` and lookups."""
    with atomic_path(layout.duckdb_path) as tmp:
        con = duckdb.connect(str(tmp))
        try:
            for table, schema in TABLE_SCHEMAS.items():
                if _has_files(layout, table):
                    source = table_glob(layout, table).replace("'", "''")
                    files = (
                        f"read_parquet('{source}', hive_partitioning = true, union_by_name = true)"
                    )
                    published = (
                        "" if table == "games" else " t SEMI JOIN games g USING (batch, game_id)"
                    )
                    con.execute(f"CREATE VIEW {table} AS SELECT * FROM {files}{published}")
                else:
                    # No batch has rows for it yet: an empty table with the same columns.
                    empty = schema.empty_table().append_column("batch", pa.array([], pa.string()))
                    con.from_arrow(empty).create(table)
            _lookup(con, "characters", INTERNAL_CHARACTER_NAMES)
            _lookup(con, "external_characters", EXTERNAL_CHARACTER_NAMES)
            _lookup(con, "stages", STAGE_NAMES)
            _matches_view(con, layout)
            _curated_games_view(con, layout)
        finally:
            con.close()
    return layout.duckdb_path


def _matches_view(con: duckdb.DuckDBPyConnection, layout: DataLayout) -> None:
    """``matches``: the games of every ``exphil arena`` run, one plain file per run (no batch
    partitions), or an empty table with its columns before the first run."""
    if any(layout.matches_dir.glob("*.parquet")):
        source = str(layout.matches_dir / "*.parquet").replace("'", "''")
        con.execute(
            f"CREATE VIEW matches AS SELECT * FROM read_parquet('{source}', union_by_name = true)"
        )
    else:
        con.from_arrow(MATCHES_SCHEMA.empty_table()).create("matches")


def _curated_games_view(con: duckdb.DuckDBPyConnection, layout: DataLayout) -> None:
    decisions = curate(read_games(layout), TrainingSetConfig()).decisions
    table = pa.table(
        {
            "batch": pa.array([d.batch for d in decisions], pa.string()),
            "game_id": pa.array([d.game_id for d in decisions], pa.string()),
            "used": pa.array([d.used for d in decisions], pa.bool_()),
            "reason": pa.array([d.reason for d in decisions], pa.string()),
        }
    )
    con.from_arrow(table).create("curation_decisions")
    con.execute(
        "CREATE VIEW curated_games AS SELECT d.used, d.reason, g.* "
        "FROM curation_decisions d JOIN games g USING (batch, game_id) ORDER BY game_id"
    )


def connect_readonly(layout: DataLayout) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the catalog, building it first if it does not exist yet."""
    if not layout.duckdb_path.exists():
        layout.home.mkdir(parents=True, exist_ok=True)
        build_catalog(layout)
    return duckdb.connect(str(layout.duckdb_path), read_only=True)
