"""Replay batches: named folders of ``.slp`` files, one Dagster partition each.

A batch is registered either by the sensor (every subfolder of ``$EXPHIL_REPLAYS`` is a
batch named after the folder) or by ``exphil ingest PATH [--batch NAME]``. The registry is a
JSON file per batch under the data root, so any process of a deployment (webserver, daemon, run
workers on other machines sharing the root) resolves a partition key to the same folder.

A folder's batch name (the sensor's, ``exphil demo``'s and ``exphil ingest`` without
``--batch``) follows one rule, so any real folder name works:

1. a folder already registered keeps the name it was registered under;
2. otherwise its name is used as it is when it is a safe name (1-128 letters, digits, ``_.-``,
   starting with a letter or digit);
3. otherwise it is made safe (accents folded to ASCII, other characters runs to ``-``, leading
   ``._-`` dropped, cut to 100 characters) and suffixed with ``-`` and 8 hex digits of the
   SHA-256 of the original name, so two names that clean up alike stay apart;
4. and if that name is registered for another folder, 8 hex digits of the SHA-256 of the
   folder's full path are appended.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import asdict, dataclass
from pathlib import Path

from exphil_pipeline.storage.atomic import ensure_writable, write_text_atomic
from exphil_pipeline.storage.layout import SAFE_NAME, DataLayout, check_name


@dataclass(frozen=True)
class ReplayBatch:
    """A registered batch: its partition key and the folder searched for ``.slp`` files."""

    name: str
    folder: Path


def validate_batch_name(name: str) -> str:
    """Batch names become folder names and partition keys: letters, digits, ``_.-`` only."""
    return check_name(name, "batch name", "pass --batch NAME to choose one")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:8]


def safe_batch_name(folder_name: str) -> str:
    """Steps 2 and 3 of the module docstring's rule: the name, or a cleaned one with a hash."""
    if SAFE_NAME.match(folder_name):
        return folder_name
    ascii_name = unicodedata.normalize("NFKD", folder_name).encode("ascii", "ignore").decode()
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", ascii_name).lstrip("._-")[:100].rstrip("-")
    return f"{cleaned or 'batch'}-{_digest(folder_name)}"


def list_replay_files(folder: Path) -> list[Path]:
    """All ``.slp`` files under ``folder`` (recursive, case-insensitive suffix), sorted."""
    if not folder.is_dir():
        raise FileNotFoundError(f"replay batch folder {folder} does not exist or is not a folder")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() == ".slp")


def folder_fingerprint(folder: Path) -> str:
    """A short digest of the batch's file list, sizes and mtimes: changes when files change."""
    digest = hashlib.sha256()
    for path in list_replay_files(folder):
        stat = path.stat()
        digest.update(f"{path.relative_to(folder)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


class BatchRegistry:
    """Maps batch names to folders through one JSON file per batch under the data root."""

    def __init__(self, layout: DataLayout) -> None:
        self._dir = layout.batches_dir

    def register(self, name: str, folder: Path) -> ReplayBatch:
        """Record ``name -> folder``; re-registering the same folder is a no-op."""
        batch = ReplayBatch(validate_batch_name(name), folder.resolve())
        if not batch.folder.is_dir():
            raise FileNotFoundError(f"cannot register batch {name!r}: {folder} is not a folder")
        existing = self.get(name)
        if existing is not None and existing.folder != batch.folder:
            raise ValueError(
                f"batch {name!r} is already registered for {existing.folder}; "
                f"choose another name with --batch for {batch.folder}"
            )
        payload = {**asdict(batch), "folder": str(batch.folder)}
        ensure_writable(self._dir)
        write_text_atomic(self._dir / f"{name}.json", json.dumps(payload, indent=2))
        return batch

    def name_for(self, folder: Path) -> str:
        """The batch name of ``folder`` by the module docstring's rule (never raises)."""
        folder = folder.resolve()
        for batch in self.all():
            if batch.folder == folder:
                return batch.name
        name = safe_batch_name(folder.name)
        existing = self.get(name)
        if existing is None or existing.folder == folder:
            return name
        return f"{name[:119]}-{_digest(str(folder))}"

    def get(self, name: str) -> ReplayBatch | None:
        path = self._dir / f"{validate_batch_name(name)}.json"
        if not path.exists():
            return None
        payload = json.loads(path.read_text())
        return ReplayBatch(payload["name"], Path(payload["folder"]))

    def resolve(self, name: str) -> ReplayBatch:
        """The registered batch ``name``, or a clear error saying how to register it."""
        batch = self.get(name)
        if batch is None:
            raise KeyError(
                f"replay batch {name!r} is not registered; run `exphil ingest PATH --batch {name}` "
                "or put the folder under $EXPHIL_REPLAYS for the sensor to find"
            )
        return batch

    def all(self) -> list[ReplayBatch]:
        if not self._dir.is_dir():
            return []
        return [b for p in sorted(self._dir.glob("*.json")) if (b := self.get(p.stem)) is not None]


def discover_batch_folders(replay_root: Path) -> list[Path]:
    """Immediate subfolders of the replay root that hold at least one ``.slp`` file."""
    if not replay_root.is_dir():
        return []
    return [
        d
        for d in sorted(replay_root.iterdir())
        if d.is_dir() and not d.name.startswith(".") and list_replay_files(d)
    ]
