"""Ingesting a replay batch: each ``.slp`` file becomes a ``games`` row and its frames/items.

Files are parsed in a process pool (one worker per core by default); each worker streams one
file at a time and writes that game's Parquet itself, so memory stays flat whatever the batch
size. Every file lands atomically under a name derived from the game's content hash, which
makes re-running a batch idempotent and keeps readers from ever seeing a partial file.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
from dagster import Config
from pydantic import Field

from exphil_pipeline.replays.batch_lock import batch_lock
from exphil_pipeline.replays.batches import ReplayBatch, list_replay_files
from exphil_pipeline.replays.claims import GameClaims
from exphil_pipeline.replays.game_ingest import (
    FileOutcome,
    FileTask,
    claim_game,
    content_game_id,
    ingest_file,
    quarantined_outcome,
)
from exphil_pipeline.replays.games_table import GameRecord, games_table
from exphil_pipeline.storage.atomic import (
    StorageError,
    ensure_writable,
    remove_stale_temp_files,
    write_parquet_atomic,
)
from exphil_pipeline.storage.layout import TABLES, DataLayout


class IngestSettings(Config):
    """How a batch is parsed and written: the one config of the ingestion stage."""

    workers: int = Field(
        default=0, ge=0, description="Parser processes; 0 = one per core, 1 = in-process."
    )
    compression_level: int = Field(
        default=1,
        ge=1,
        le=22,
        description=(
            "zstd level of the Parquet files (1: a fifth less writing work than 3, measured, "
            "for 2% more bytes)."
        ),
    )
    max_quarantine_share: float = Field(
        default=0.10, ge=0.0, le=1.0, description="Warn when more files than this are quarantined."
    )

    def worker_count(self, files: int) -> int:
        wanted = self.workers or os.cpu_count() or 1
        return max(1, min(wanted, files))


@dataclass
class BatchResult:
    """The outcome of ingesting one batch, with the figures reported as metadata."""

    batch: str
    games: list[GameRecord]
    duplicates_elsewhere: dict[str, str] = field(default_factory=dict)
    input_bytes: int = 0
    output_bytes: int = 0
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for g in self.games if g.status == status)

    @property
    def frames(self) -> int:
        return sum(g.frame_count or 0 for g in self.games)

    @property
    def rows(self) -> int:
        return sum(g.frames_rows for g in self.games)

    @property
    def items_rows(self) -> int:
        return sum(g.items_rows for g in self.games)


ProgressCallback = Callable[[int, int, FileOutcome], None]


def _pool(workers: int) -> ProcessPoolExecutor:
    """Workers forked from a fork server: a fresh single-threaded process, so forking is safe
    inside multi-threaded hosts (Dagster run workers, the webserver), that imports only the
    worker's module, once. Spawned workers each imported the caller's main module (the CLI:
    Dagster and the whole pipeline), ~2 s per worker: two workers ingested the 76 shared
    replays in 2.9-3.6 s against 1.6-2.1 s for one; from the fork server, in 1.3-1.8 s."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["exphil_pipeline.replays.game_ingest"])
    return ProcessPoolExecutor(max_workers=workers, mp_context=context)


def _isolated(task: FileTask) -> FileOutcome:
    """Run one task in a process of its own; if that process dies too, the file is what
    kills the parser, and it is quarantined instead of taking the batch down."""
    with _pool(1) as pool:
        try:
            return pool.submit(ingest_file, task).result()
        except BrokenProcessPool:
            data = task.path.read_bytes()
            game_id = content_game_id(data)
            owner = claim_game(DataLayout(task.home), game_id, task.batch)
            record = GameRecord(game_id, str(task.path), len(data), status="quarantined")
            if owner != task.batch:
                return FileOutcome(task.path, game_id, None, owner)
            reason = "the parser process died reading this file (crash or killed)"
            return quarantined_outcome(task, game_id, record, reason, time.perf_counter())


def _run_tasks(tasks: list[FileTask], workers: int) -> Iterator[FileOutcome]:
    """Outcomes in task order. At most ``workers`` tasks are in flight, so when a worker dies
    (a parser crash, an OOM kill, ``kill -9``) the suspects are those few: each is re-run
    alone and the rest of the batch goes on in a fresh pool."""
    if workers == 1:
        yield from map(ingest_file, tasks)
        return
    queue = deque(range(len(tasks)))
    outcomes: dict[int, FileOutcome] = {}
    inflight: dict[Future, int] = {}
    emitted = 0
    pool = _pool(workers)
    try:
        while queue or inflight:
            broken: list[int] = []
            while queue and len(inflight) < workers and not broken:
                index = queue.popleft()
                try:
                    inflight[pool.submit(ingest_file, tasks[index])] = index
                except (BrokenProcessPool, OSError):
                    # A worker died before or while this one was being started: the pool is
                    # broken (or its pipes are being closed under the new worker), and the
                    # task may already sit in its queue, so it is a suspect like the others.
                    broken.append(index)
            if not broken:
                done, _ = wait(inflight, return_when=FIRST_COMPLETED)
                broken = [
                    inflight.pop(f) for f in done if isinstance(f.exception(), BrokenProcessPool)
                ]
                for future in done & inflight.keys():
                    outcomes[inflight.pop(future)] = future.result()
            if broken:
                suspects = sorted(broken + list(inflight.values()))
                inflight.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                pool = _pool(workers)
                outcomes.update({index: _isolated(tasks[index]) for index in suspects})
            while emitted in outcomes:
                yield outcomes.pop(emitted)
                emitted += 1
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


# games.parquet metadata: ids the publication dropped from the batch, whose claims are released
# after it is written. A run killed in between leaves them for the next run to release.
_DROPPED_KEY = b"exphil.dropped_game_ids"


def _previous_game_ids(layout: DataLayout, batch: str) -> set[str]:
    """The games the batch's last publication listed, plus those it dropped whose claims the
    batch still holds (the run that published it was killed before releasing them)."""
    path = layout.games_file(batch)
    if not path.exists():
        return set()
    table = pq.read_table(path, columns=["game_id"])
    dropped = json.loads((table.schema.metadata or {}).get(_DROPPED_KEY, b"[]"))
    owners = GameClaims(layout.claims_dir)
    held = {g for g in dropped if owners.owner(g) == batch}
    return set(table.column("game_id").to_pylist()) | held


def _remove_unlisted_game_files(layout: DataLayout, batch: str, games: list[GameRecord]) -> None:
    """Delete frames and items files that the batch's games table does not vouch for: those
    of games gone from the folder, now quarantined, or left by a run that was killed; and the
    temp files of parser workers killed mid-write during this run (none is writing now)."""
    keep = {
        "frames": {g.game_id for g in games if g.status != "quarantined"},
        "items": {g.game_id for g in games if g.status != "quarantined" and g.items_rows},
    }
    for table, wanted in keep.items():
        folder = layout.table_partition(table, batch)
        if folder.is_dir():
            for path in folder.glob("*.parquet"):
                if path.stem not in wanted:
                    path.unlink(missing_ok=True)
            remove_stale_temp_files(folder)


def ingest_batch(
    batch: ReplayBatch,
    layout: DataLayout,
    settings: IngestSettings | None = None,
    progress: ProgressCallback | None = None,
    files: Iterable[Path] | None = None,
) -> BatchResult:
    """Ingest every ``.slp`` file of ``batch`` and (re)write its partition of each table.

    Publication is by the games table: a game's frames and items become visible to readers
    (the DuckDB views, ``training_set``) only once ``games.parquet`` lists it, and that file
    is written last, atomically. A run killed at any point leaves the previous publication
    intact; the next run finishes the batch and removes what the killed one left behind.
    """
    began = time.perf_counter()
    settings = settings or IngestSettings()
    paths = list(files) if files is not None else list_replay_files(batch.folder)
    with batch_lock(layout, batch.name):
        for table in TABLES:
            folder = layout.table_partition(table, batch.name)
            ensure_writable(folder)
            remove_stale_temp_files(folder)
        previous = _previous_game_ids(layout, batch.name)
        tasks = [FileTask(p, batch.name, layout.home, settings.compression_level) for p in paths]
        result = BatchResult(batch.name, [])
        by_game: dict[str, GameRecord] = {}
        try:
            outcomes = _run_tasks(tasks, settings.worker_count(len(tasks)))
            for done, outcome in enumerate(outcomes, 1):
                result.input_bytes += outcome.path.stat().st_size
                if outcome.record is None:
                    result.duplicates_elsewhere[str(outcome.path)] = outcome.owner
                elif outcome.game_id in by_game:
                    by_game[outcome.game_id].duplicate_paths.append(str(outcome.path))
                else:
                    by_game[outcome.game_id] = outcome.record
                if progress is not None:
                    progress(done, len(tasks), outcome)
            result.games = sorted(by_game.values(), key=lambda r: r.source_path)
            result.output_bytes = sum(g.output_bytes for g in result.games)
            dropped = sorted(previous - set(by_game))
            table = games_table(result.games).replace_schema_metadata(
                {_DROPPED_KEY: json.dumps(dropped)}
            )
            write_parquet_atomic(table, layout.games_file(batch.name), compression="zstd")
        except OSError as error:
            if isinstance(error, StorageError):
                raise
            raise StorageError(
                f"writing batch {batch.name!r} under {layout.home} failed: {error}; nothing of "
                "this run is visible to readers. Free space or fix permissions, then re-run"
            ) from error
        _remove_unlisted_game_files(layout, batch.name, result.games)
        claims = GameClaims(layout.claims_dir)
        for game_id in dropped:
            claims.release(game_id, batch.name)
    result.seconds = time.perf_counter() - began
    return result
