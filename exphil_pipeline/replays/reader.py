"""Reading one replay into Arrow data, with repair and a clear reason when it cannot be read.

Order of attempts:
1. peppi on the file as it is;
2. if peppi refuses it (including a Rust panic, which is a BaseException), the raw stream is
   rebuilt by :mod:`exphil_pipeline.replays.repair` (complete frames kept, partial tail dropped,
   unknown game-end method mapped) and peppi reads the rebuilt copy: status ``repaired``;
3. otherwise the file is rejected with both reasons, for the caller to quarantine.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from peppi_py._peppi import read_slippi as _peppi_read_slippi

from exphil_pipeline.replays.repair import NotAReplayError, repair_replay_bytes
from exphil_pipeline.replays.slot_frames import post_frame_ids

# Replays from this version on have frame bookends, and peppi places each update on its frame.
BOOKENDS_VERSION = (3, 0, 0)


class ReplayRejectedError(Exception):
    """The file cannot be turned into frames; ``reason`` says why in a user's words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class ParsedReplay:
    """A replay as peppi sees it, plus what had to be repaired to read it."""

    start: dict[str, Any]
    end: dict[str, Any] | None
    metadata: dict[str, Any]
    frames: pa.StructArray
    repaired: bool = False
    problems: list[str] = field(default_factory=list)
    end_method_code: int | None = None
    # Before Slippi 3.0: the frame ids each slot's updates name (see slot_frames).
    slot_updates: dict[tuple[int, bool], np.ndarray] | None = None


def _describe(error: BaseException) -> str:
    kind = (
        "parser crash (Rust panic)"
        if type(error).__name__ == "PanicException"
        else type(error).__name__
    )
    return f"{kind}: {error}"


def _peppi(
    path: str,
) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any], pa.StructArray]:
    game = _peppi_read_slippi(path, False)
    if game.frames is None or len(game.frames) == 0:
        raise NotAReplayError("the replay holds no frames")
    return game.start, game.end, game.metadata or {}, game.frames


def read_replay(path: Path, data: bytes | None = None) -> ParsedReplay:
    """Parse ``path`` (whose bytes are ``data``, when the caller has read them already);
    raises :class:`ReplayRejectedError` with a reason if it cannot."""

    def read_bytes() -> bytes:
        return path.read_bytes() if data is None else data

    try:
        start, end, metadata, frames = _peppi(str(path))
        parsed = ParsedReplay(start, end, metadata, frames)
        _locate_slot_updates(parsed, read_bytes)
        return parsed
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as error:  # peppi's PanicException derives from BaseException
        first_error = _describe(error)

    try:
        repair = repair_replay_bytes(read_bytes())
    except NotAReplayError as error:
        raise ReplayRejectedError(f"{error} (peppi: {first_error})") from None
    fd, tmp = tempfile.mkstemp(suffix=".slp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(repair.data)
        start, end, metadata, frames = _peppi(tmp)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as error:
        raise ReplayRejectedError(
            f"unreadable even after rebuilding its event stream: {_describe(error)} "
            f"(original error: {first_error})"
        ) from None
    finally:
        os.unlink(tmp)
    problems = [f"peppi refused the original file ({first_error})", *repair.scan.problems]
    parsed = ParsedReplay(
        start,
        end,
        metadata,
        frames,
        repaired=True,
        problems=problems,
        end_method_code=repair.scan.end_method,
    )
    _locate_slot_updates(parsed, lambda: repair.data)
    return parsed


def _locate_slot_updates(parsed: ParsedReplay, read_bytes: Callable[[], bytes]) -> None:
    version = tuple(parsed.start.get("slippi", {}).get("version", ()))
    if version and version < BOOKENDS_VERSION:
        parsed.slot_updates = post_frame_ids(read_bytes())
