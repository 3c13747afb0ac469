"""Build a training set: chosen players' (embedded state, controller target) pairs, sharded.

On disk (``$EXPHIL_HOME/training_sets/<name>/``)::

    manifest.json                      spec version + hash, config, counts, shard list
    train/shard-00000.features.npy     float32[n, dim], memory-mappable (np.load(mmap_mode="r"))
    train/shard-00000.targets.npy      uint8[n, heads]
    train/episodes.parquet             one row per (game, player): shard, start, length, …
    heldout/…                          the same for held-out games

An episode is one player's contiguous run of pairs in one game and never spans shards, so a
sequence model can sample windows inside ``[start, start + length)`` without crossing games.
The held-out split is by game, decided by the game id alone (stable as the corpus grows).
The whole folder is built beside the old one and swapped in, so readers never see a mix.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from exphil_pipeline.storage.layout import DataLayout
from exphil_pipeline.training.examples import FIRST_PLAYABLE_FRAME, Examples, GameFrames
from runtime.controller_spec import CONTROLLER_SPEC
from runtime.embedding_spec import EMBEDDING_SPEC
from runtime.melee_ids import EXTERNAL_CHARACTER_NAMES

TARGET_CHARACTERS: tuple[str, ...] = (
    "MEWTWO",
    "GAMEANDWATCH",
    "LINK",
    "GANONDORF",
    "ZELDA",
    "SHEIK",
)
ALL_CHARACTERS = "all"
SPLITS = ("train", "heldout")
MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class DatasetConfig:
    """What goes into a training set.

    name: folder under ``training_sets/``; other assets refer to the set by it.
    characters: external character names of the players to learn from (``("all",)`` for any).
    connect_codes: if set, only players with one of these netplay codes (e.g. ``ABCD#123``).
    opponent_characters: if set, only games whose opponent plays one of these.
    frame_delay: d; pairs the state of frame t - d with the action of frame t.
    min_frames: games shorter than this are skipped.
    heldout_fraction: share of games (by game id) kept out of training for evaluation.
    include_countdown: also learn actions from the countdown frames before the first
        playable frame (-39), when inputs do nothing.
    shard_frames: pairs per shard file (episodes never span shards, so shards may be larger).
    """

    name: str = "default"
    characters: tuple[str, ...] = TARGET_CHARACTERS
    connect_codes: tuple[str, ...] = ()
    opponent_characters: tuple[str, ...] = ()
    frame_delay: int = 0
    min_frames: int = 300
    heldout_fraction: float = 0.1
    include_countdown: bool = False
    shard_frames: int = 262_144

    def __post_init__(self) -> None:
        known = set(EXTERNAL_CHARACTER_NAMES.values())
        for label, names in (
            ("characters", self.characters),
            ("opponent_characters", self.opponent_characters),
        ):
            unknown = sorted(set(names) - known - {ALL_CHARACTERS})
            if unknown:
                raise ValueError(
                    f"{label}: unknown character names {unknown}; use {ALL_CHARACTERS!r} or "
                    f"one of {sorted(known)}"
                )
        if not self.characters:
            raise ValueError("characters: name at least one character, or 'all'")
        if self.frame_delay < 0:
            raise ValueError(f"frame_delay must be >= 0, got {self.frame_delay}")
        if not 0.0 <= self.heldout_fraction < 1.0:
            raise ValueError(f"heldout_fraction must be in [0, 1), got {self.heldout_fraction}")
        if self.shard_frames < 1:
            raise ValueError("shard_frames must be >= 1")
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ValueError(f"name {self.name!r} must be a plain folder name")

    def wants(self, character: str, connect_code: str | None) -> bool:
        if ALL_CHARACTERS not in self.characters and character not in self.characters:
            return False
        return not self.connect_codes or connect_code in self.connect_codes

    def opponent_ok(self, character: str) -> bool:
        return not self.opponent_characters or character in self.opponent_characters


def is_heldout(game_id: str, fraction: float) -> bool:
    """Deterministic split by game: the game id is a SHA-256, so its prefix is uniform."""
    return int(game_id[:16], 16) / 2**64 < fraction


@dataclass(frozen=True)
class ChosenPlayer:
    """One (game, target player) to extract, with where its frames are."""

    game_id: str
    batch: str
    stage: int
    port: int
    character: str
    opponent_port: int
    opponent_character: str
    split: str


@dataclass
class Selection:
    players: list[ChosenPlayer]
    games_seen: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def select_players(layout: DataLayout, config: DatasetConfig) -> Selection:
    """The players to learn from, chosen by character and connect code, never by port."""
    selection = Selection(players=[])
    if not layout.games_dir.exists():
        return selection
    games = ds.dataset(layout.games_dir, format="parquet", partitioning="hive").to_table(
        columns=["game_id", "batch", "stage", "status", "frame_count", "players"]
    )
    for row in sorted(games.to_pylist(), key=lambda r: r["game_id"]):
        selection.games_seen += 1
        if row["status"] == "quarantined":
            selection.skip("quarantined")
            continue
        players = row["players"] or []
        if len(players) != 2:
            selection.skip("not a 1v1 game")
            continue
        if (row["frame_count"] or 0) < config.min_frames:
            selection.skip(f"shorter than {config.min_frames} frames")
            continue
        split = "heldout" if is_heldout(row["game_id"], config.heldout_fraction) else "train"
        chosen = 0
        for me, other in ((players[0], players[1]), (players[1], players[0])):
            mine, theirs = me["character_name"], other["character_name"]
            if config.wants(mine, me["connect_code"]) and config.opponent_ok(theirs):
                chosen += 1
                selection.players.append(
                    ChosenPlayer(
                        game_id=row["game_id"],
                        batch=str(row["batch"]),
                        stage=row["stage"] or 0,
                        port=me["port"],
                        character=mine,
                        opponent_port=other["port"],
                        opponent_character=theirs,
                        split=split,
                    )
                )
        if not chosen:
            selection.skip("no player matches")
    return selection


class ShardWriter:
    """Appends episodes to shard files of one split; each file is written once, atomically."""

    def __init__(self, folder: Path, shard_frames: int) -> None:
        self.folder = folder
        self.shard_frames = shard_frames
        self.shards: list[dict[str, object]] = []
        self.episodes: list[dict[str, object]] = []
        self._features: list[np.ndarray] = []
        self._targets: list[np.ndarray] = []
        self._buffered = 0
        folder.mkdir(parents=True, exist_ok=True)

    def add(self, player: ChosenPlayer, examples: Examples) -> None:
        if len(examples) == 0:
            return
        if self._buffered and self._buffered + len(examples) > self.shard_frames:
            self.flush()
        self.episodes.append(
            {
                "game_id": player.game_id,
                "port": player.port,
                "character": player.character,
                "opponent_character": player.opponent_character,
                "shard": len(self.shards),
                "start": self._buffered,
                "length": len(examples),
                "first_action_frame": int(examples.action_frames[0]),
            }
        )
        self._features.append(examples.features)
        self._targets.append(examples.targets)
        self._buffered += len(examples)

    def flush(self) -> None:
        if not self._buffered:
            return
        stem = f"shard-{len(self.shards):05d}"
        features = np.concatenate(self._features)
        targets = np.concatenate(self._targets)
        np.save(self.folder / f"{stem}.features.npy", features)
        np.save(self.folder / f"{stem}.targets.npy", targets)
        self.shards.append(
            {
                "features": f"{self.folder.name}/{stem}.features.npy",
                "targets": f"{self.folder.name}/{stem}.targets.npy",
                "frames": len(targets),
                "bytes": features.nbytes + targets.nbytes,
            }
        )
        self._features, self._targets, self._buffered = [], [], 0

    def close(self) -> None:
        self.flush()
        schema = pa.schema(
            [
                ("game_id", pa.string()),
                ("port", pa.uint8()),
                ("character", pa.string()),
                ("opponent_character", pa.string()),
                ("shard", pa.int32()),
                ("start", pa.int64()),
                ("length", pa.int64()),
                ("first_action_frame", pa.int32()),
            ]
        )
        pq.write_table(
            pa.Table.from_pylist(self.episodes, schema=schema), self.folder / "episodes.parquet"
        )


@dataclass
class BuildResult:
    path: Path
    manifest: dict[str, object]
    seconds: float


ProgressCallback = Callable[[int, int], None]


def build_training_set(
    layout: DataLayout,
    config: DatasetConfig,
    progress: ProgressCallback | None = None,
) -> BuildResult:
    """Extract, embed and shard every selected player; replaces the set of the same name."""
    began = time.perf_counter()
    selection = select_players(layout, config)
    root = layout.home / "training_sets"
    building = root / f".{config.name}.tmp-{uuid.uuid4().hex}"
    writers = {split: ShardWriter(building / split, config.shard_frames) for split in SPLITS}
    frames_per_character: dict[str, dict[str, int]] = {}
    first_action = -(2**31) if config.include_countdown else FIRST_PLAYABLE_FRAME
    try:
        for done, (player, examples) in enumerate(
            _extract(layout, selection.players, config.frame_delay, first_action), start=1
        ):
            writers[player.split].add(player, examples)
            counts = frames_per_character.setdefault(player.character, dict.fromkeys(SPLITS, 0))
            counts[player.split] += len(examples)
            if progress:
                progress(done, len(selection.players))
        for writer in writers.values():
            writer.close()
        manifest = _manifest(config, selection, writers, frames_per_character)
        (building / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2))
        final = root / config.name
        _swap_in(building, final)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return BuildResult(final, manifest, time.perf_counter() - began)


def _extract(
    layout: DataLayout, players: list[ChosenPlayer], frame_delay: int, first_action_frame: int
) -> Iterator[tuple[ChosenPlayer, Examples]]:
    cached: tuple[str, GameFrames] | None = None
    for player in players:
        if cached is None or cached[0] != player.game_id:
            name = f"{player.game_id}.parquet"
            frames_path = layout.table_partition("frames", player.batch) / name
            items_path = layout.table_partition("items", player.batch) / name
            cached = (player.game_id, GameFrames.read(frames_path, items_path, player.stage))
        game = cached[1]
        yield (
            player,
            game.examples(player.port, player.opponent_port, frame_delay, first_action_frame),
        )


def _manifest(
    config: DatasetConfig,
    selection: Selection,
    writers: dict[str, ShardWriter],
    frames_per_character: dict[str, dict[str, int]],
) -> dict[str, object]:
    return {
        "embedding_spec": {
            "version": EMBEDDING_SPEC.version,
            "hash": EMBEDDING_SPEC.content_hash,
            "dim": EMBEDDING_SPEC.dim,
            "names": list(EMBEDDING_SPEC.names),
            "categorical": [list(c) for c in EMBEDDING_SPEC.categorical],
        },
        "controller_spec": {**CONTROLLER_SPEC.to_dict(), "hash": CONTROLLER_SPEC.content_hash},
        "config": asdict(config),
        "games_seen": selection.games_seen,
        "games_skipped": selection.skipped,
        "frames_per_character": frames_per_character,
        "splits": {
            split: {
                "frames": sum(int(s["frames"]) for s in writer.shards),
                "episodes": len(writer.episodes),
                "games": len({e["game_id"] for e in writer.episodes}),
                "shards": writer.shards,
                "episodes_file": f"{split}/episodes.parquet",
            }
            for split, writer in writers.items()
        },
    }


def _swap_in(building: Path, final: Path) -> None:
    """Replace ``final`` by ``building``: two renames, the old copy removed afterwards."""
    retired = final.with_name(f".{final.name}.old-{uuid.uuid4().hex}")
    if final.exists():
        os.replace(final, retired)
    os.replace(building, final)
    shutil.rmtree(retired, ignore_errors=True)


@dataclass(frozen=True)
class TrainingSet:
    """A built training set, read lazily: shards are memory-mapped, never loaded whole."""

    path: Path
    manifest: dict[str, object]

    @classmethod
    def open(cls, path: Path) -> TrainingSet:
        manifest_path = path / MANIFEST_NAME
        if not manifest_path.is_file():
            raise FileNotFoundError(
                f"no training set at {path} (missing {MANIFEST_NAME}); materialize training_set"
            )
        manifest = json.loads(manifest_path.read_text())
        expected = EMBEDDING_SPEC.content_hash
        if manifest["embedding_spec"]["hash"] != expected:
            raise ValueError(
                f"training set {path} was embedded with spec "
                f"{manifest['embedding_spec']['hash'][:12]}, this code has {expected[:12]}; "
                "re-materialize training_set"
            )
        return cls(path, manifest)

    def shards(self, split: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(features, targets) memory maps of each shard of ``split``."""
        for shard in self.manifest["splits"][split]["shards"]:
            yield (
                np.load(self.path / shard["features"], mmap_mode="r"),
                np.load(self.path / shard["targets"], mmap_mode="r"),
            )

    def episodes(self, split: str) -> pa.Table:
        return pq.read_table(self.path / split / "episodes.parquet")

    def frames(self, split: str) -> int:
        return int(self.manifest["splits"][split]["frames"])


def validate_values(training_set: TrainingSet, chunk: int = 65_536) -> dict[str, int]:
    """Counts of non-finite features and out-of-range targets over every shard (0 = valid)."""
    limits = np.asarray(CONTROLLER_SPEC.head_classes, dtype=np.int64)
    non_finite = out_of_range = 0
    for split in SPLITS:
        for features, targets in training_set.shards(split):
            for start in range(0, len(targets), chunk):
                part = np.asarray(features[start : start + chunk])
                non_finite += int(np.count_nonzero(~np.isfinite(part)))
                out_of_range += int(np.count_nonzero(targets[start : start + chunk] >= limits))
    return {"non_finite_features": non_finite, "targets_out_of_range": out_of_range}


def character_counts_table(manifest: dict[str, object]) -> str:
    """Markdown table of pairs per character and split."""
    lines = ["| character | train | heldout |", "|---|---:|---:|"]
    for character, counts in sorted(manifest["frames_per_character"].items()):
        lines.append(f"| {character} | {counts['train']:,} | {counts['heldout']:,} |")
    return "\n".join(lines)
