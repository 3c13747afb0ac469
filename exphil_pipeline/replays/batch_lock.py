"""One ingestion of a batch at a time, across processes and machines sharing the data root.

Two runs of the same batch (the sensor's and a CLI's, or two CLIs) would both rewrite the
batch's partition. The first takes an exclusive ``flock`` on ``batches/<name>.lock``; the
second fails at once with a message naming the holder. The kernel drops the lock when its
process dies, even by SIGKILL, so a crash never leaves a batch locked.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from exphil_pipeline.storage.atomic import StorageError
from exphil_pipeline.storage.layout import DataLayout


class BatchBusyError(RuntimeError):
    """Another process is ingesting the same batch."""


@contextmanager
def batch_lock(layout: DataLayout, batch: str) -> Iterator[None]:
    """Hold the batch's lock for the block, or raise :class:`BatchBusyError`."""
    path = layout.batches_dir / f"{batch}.lock"
    try:
        layout.batches_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        # The data root itself is unwritable: say so like every other storage failure.
        raise StorageError(
            f"cannot write under {layout.batches_dir}: {error.strerror or error}; point "
            "EXPHIL_HOME at a writable folder with free space"
        ) from error
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise BatchBusyError(
                f"batch {batch!r} is being ingested by {holder}; wait for that run to finish "
                "(it lands the same files), then re-run if the folder changed since"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {time.strftime('%H:%M:%S')}".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def batch_busy(layout: DataLayout, batch: str) -> bool:
    """Whether some process holds ``batch``'s lock right now (is ingesting it)."""
    path = layout.batches_dir / f"{batch}.lock"
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
