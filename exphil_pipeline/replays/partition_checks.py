"""Invariants of one batch's ``games``/``frames`` partition, each one property.

They read back what was written (not what the writer meant to write), with DuckDB over the
partition's files, and return a verdict with the offending games for the asset checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import pyarrow.parquet as pq

from exphil_pipeline.replays.frame_tables import FRAMES_SCHEMA
from exphil_pipeline.storage.layout import DataLayout

# Coordinates beyond this are garbage, not play: the widest real stage (Home-Run Contest)
# reaches about 3,300 units.
POSITION_BOUND = 10_000.0


@dataclass
class CheckVerdict:
    passed: bool
    description: str
    metadata: dict[str, object] = field(default_factory=dict)


def _frames(layout: DataLayout, batch: str) -> str:
    return str(layout.table_partition("frames", batch) / "*.parquet").replace("'", "''")


def _games(layout: DataLayout, batch: str) -> str:
    return str(layout.games_file(batch)).replace("'", "''")


def _has_frames(layout: DataLayout, batch: str) -> bool:
    return any(layout.table_partition("frames", batch).glob("*.parquet"))


def _offenders(rows: list[tuple], what: str) -> CheckVerdict:
    if not rows:
        return CheckVerdict(True, f"every game: {what}")
    return CheckVerdict(
        False,
        f"{len(rows)} game(s) violate: {what}",
        {"offending_games": [str(r[0]) for r in rows[:20]]},
    )


def check_frames_schema(layout: DataLayout, batch: str) -> CheckVerdict:
    """Every frames file has exactly the contract schema (names, types, order)."""
    wrong = []
    files = sorted(layout.table_partition("frames", batch).glob("*.parquet"))
    for path in files:
        schema = pq.read_schema(path).remove_metadata()
        if not schema.equals(FRAMES_SCHEMA, check_metadata=False):
            wrong.append((path.stem,))
    verdict = _offenders(wrong, "frames schema equals the contract")
    verdict.metadata["files"] = len(files)
    return verdict


def check_frames_contiguous(layout: DataLayout, batch: str) -> CheckVerdict:
    """Frame ids of each game run without gaps from its first to its last frame."""
    if not _has_frames(layout, batch):
        return CheckVerdict(True, "no frames in this batch")
    rows = duckdb.sql(
        f"""SELECT game_id FROM read_parquet('{_frames(layout, batch)}')
            GROUP BY game_id HAVING count(DISTINCT frame) != max(frame) - min(frame) + 1"""
    ).fetchall()
    return _offenders(rows, "frame ids are contiguous")


def check_rows_per_game(layout: DataLayout, batch: str) -> CheckVerdict:
    """Rows per game = frames x (players + followers), one leader slot per player."""
    if not _has_frames(layout, batch):
        return CheckVerdict(True, "no frames in this batch")
    rows = duckdb.sql(
        f"""WITH f AS (
              SELECT game_id, count(*) AS n_rows,
                     count(DISTINCT frame) AS n_frames,
                     count(DISTINCT port) FILTER (WHERE NOT is_follower) AS players,
                     count(DISTINCT port) FILTER (WHERE is_follower) AS followers
              FROM read_parquet('{_frames(layout, batch)}') GROUP BY game_id)
            SELECT f.game_id FROM f JOIN read_parquet('{_games(layout, batch)}') g USING (game_id)
            WHERE f.n_rows != f.n_frames * (f.players + f.followers)
               OR f.players != len(g.players) OR f.n_frames != g.frame_count"""
    ).fetchall()
    return _offenders(rows, "rows = frames x (players + followers)")


def check_positions_in_bounds(layout: DataLayout, batch: str) -> CheckVerdict:
    """Every present character has finite x, y within the sanity bound."""
    if not _has_frames(layout, batch):
        return CheckVerdict(True, "no frames in this batch")
    rows = duckdb.sql(
        f"""SELECT game_id FROM read_parquet('{_frames(layout, batch)}')
            WHERE present AND NOT (isfinite(x) AND isfinite(y)
                  AND abs(x) <= {POSITION_BOUND} AND abs(y) <= {POSITION_BOUND})
            GROUP BY game_id"""
    ).fetchall()
    return _offenders(rows, f"positions finite and within +/-{POSITION_BOUND:g}")


def check_quarantine_share(layout: DataLayout, batch: str, max_share: float) -> CheckVerdict:
    """The share of quarantined files stays below ``max_share``."""
    [(total, quarantined)] = duckdb.sql(
        f"""SELECT count(*), count(*) FILTER (WHERE status = 'quarantined')
            FROM read_parquet('{_games(layout, batch)}')"""
    ).fetchall()
    share = quarantined / total if total else 0.0
    return CheckVerdict(
        share <= max_share,
        f"{quarantined} of {total} files quarantined ({share:.1%}; threshold {max_share:.0%})",
        {"quarantined": quarantined, "files": total, "share": share},
    )
