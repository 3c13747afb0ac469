"""A real libmelee ``Controller`` writing into a FIFO that a reader thread drains.

This is the controller half of a Dolphin session without Dolphin: the bytes read back are
exactly what Dolphin's pipe input would receive. libmelee's ``Controller`` asks its console
for three things only (that it is a Dolphin console, the pipe's path, and to configure that
port in Dolphin's ini files); :class:`_FifoConsole` answers them, pointing at our FIFO and
writing no Dolphin configuration.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from types import TracebackType

import melee
from melee.enums import ControllerType

READ_CHUNK = 1 << 16


class _FifoConsole:
    """The part of ``melee.Console`` that ``melee.Controller`` uses."""

    is_dolphin = True
    logger = None

    def __init__(self, fifo: Path) -> None:
        self._fifo = fifo
        self.controllers: list[melee.Controller] = []

    def get_dolphin_pipes_path(self, port: int) -> str:
        return str(self._fifo)

    def setup_dolphin_controller(self, port: int, controllertype: ControllerType) -> None:
        """Nothing to configure: there is no Dolphin, and the FIFO already exists."""


class PipeCapture:
    """``with PipeCapture(port) as capture:`` drive ``capture.controller``; ``capture.data``
    holds every byte it wrote once the block has exited."""

    def __init__(self, port: int) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="exphil-pipe-")
        self.fifo = Path(self._folder.name) / f"slippibot{port}"
        os.mkfifo(self.fifo)
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._drain, name="pipe-reader", daemon=True)
        self.controller = melee.Controller(_FifoConsole(self.fifo), port)
        self.data = b""

    def _drain(self) -> None:
        # Opening for reading blocks until the controller opens the other end.
        with open(self.fifo, "rb", buffering=0) as pipe:
            while chunk := pipe.read(READ_CHUNK):
                self._chunks.append(chunk)

    def __enter__(self) -> PipeCapture:
        self._reader.start()
        self.controller.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.controller.disconnect()  # closing the write end ends the reader's loop
        self._reader.join()
        self.data = b"".join(self._chunks)
        self._folder.cleanup()
