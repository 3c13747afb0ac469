"""Cross-batch de-duplication: the first batch to land a game's bytes owns that game.

A claim is a file named after the game id, created with ``O_CREAT | O_EXCL`` so two runs
racing on the same replay (even on different machines sharing the data root) cannot both win.
Re-running the owning batch keeps its claims; a batch that no longer holds a game releases it.
"""

from __future__ import annotations

import os
from pathlib import Path


def _create(path: Path) -> int:
    """Create ``path`` exclusively, making its folder only when it is missing (one syscall in
    the common case: claims are taken once per ingested file)."""
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY
    try:
        return os.open(path, flags, 0o644)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, flags, 0o644)


class GameClaims:
    def __init__(self, claims_dir: Path) -> None:
        self._dir = claims_dir

    def _path(self, game_id: str) -> Path:
        # Two-level fan-out keeps folders small at millions of games.
        return self._dir / game_id[:2] / game_id

    def claim(self, game_id: str, batch: str) -> str:
        """Claim ``game_id`` for ``batch``; returns the owning batch (``batch`` if it won)."""
        path = self._path(game_id)
        try:
            fd = _create(path)
        except FileExistsError:
            owner = path.read_text().strip()
            # An empty file means the winner was killed between create and write: take it over.
            if owner:
                return owner
            path.write_text(batch)
            return batch
        with os.fdopen(fd, "w") as f:
            f.write(batch)
        return batch

    def take_over(self, game_id: str, batch: str) -> None:
        """Give ``game_id`` to ``batch`` (its owner's claim was found stale)."""
        self._path(game_id).write_text(batch)

    def owner(self, game_id: str) -> str | None:
        path = self._path(game_id)
        return path.read_text().strip() or None if path.exists() else None

    def release(self, game_id: str, batch: str) -> None:
        """Drop ``batch``'s claim on ``game_id`` (no-op if another batch owns it)."""
        if self.owner(game_id) == batch:
            self._path(game_id).unlink(missing_ok=True)
