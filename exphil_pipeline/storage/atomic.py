"""Atomic writes: readers see the old file (or folder) or the new one, never a partial one.

Each write goes to a hidden temp file in the destination folder (same filesystem, so the final
``os.replace`` is atomic) whose name does not end in ``.parquet``, so readers globbing
``*.parquet`` never pick it up, even when a writer is killed with SIGKILL mid-write.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

TEMP_MARKER = ".tmp-"


def temp_path_for(path: Path) -> Path:
    return path.with_name(f".{path.name}{TEMP_MARKER}{uuid.uuid4().hex}")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path to write; on success it replaces ``path``, on error it is removed."""
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_parquet_atomic(table: pa.Table, path: Path, **options: object) -> int:
    """Write ``table`` to ``path`` atomically; returns the bytes written."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, **options)
        size = tmp.stat().st_size
    return size


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def remove_stale_temp_files(folder: Path) -> int:
    """Delete temp files a killed writer left behind in ``folder``; returns how many."""
    if not folder.is_dir():
        return 0
    stale = [p for p in folder.iterdir() if p.name.startswith(".") and TEMP_MARKER in p.name]
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


@contextmanager
def atomic_folder(final: Path) -> Iterator[Path]:
    """Yield a hidden sibling folder to build in; on success it replaces ``final`` whole.

    The swap is two renames (old copy aside, new one in) and the old copy is removed after,
    so readers of ``final`` see the old folder or the new one. On error the build is removed.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    building = final.with_name(f".{final.name}{TEMP_MARKER}{uuid.uuid4().hex}")
    building.mkdir()
    try:
        yield building
        retired = final.with_name(f".{final.name}.old-{uuid.uuid4().hex}")
        if final.exists():
            os.replace(final, retired)
        os.replace(building, final)
        shutil.rmtree(retired, ignore_errors=True)
    finally:
        shutil.rmtree(building, ignore_errors=True)


class StorageError(OSError):
    """The data root cannot be written: read-only, full, or not ours. Names the path."""


def ensure_writable(folder: Path) -> None:
    """Create ``folder`` if needed and prove a file can be written in it, or raise a
    :class:`StorageError` naming the folder and the fix, before any work starts."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / ".write-probe") as tmp:
            tmp.write_bytes(b"")
        (folder / ".write-probe").unlink(missing_ok=True)
    except OSError as error:
        raise StorageError(
            f"cannot write under {folder}: {error.strerror or error}; point EXPHIL_HOME at a "
            "writable folder with free space"
        ) from error
