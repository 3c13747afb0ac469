"""Build a training set: chosen players' (embedded state, controller target) pairs, sharded.

On disk (``$EXPHIL_HOME/training_sets/<experiment>/``)::

    manifest.json                      spec version + hash, config, counts, shard list
    train/shard-00000.features.npy     float32[n, dim], memory-mappable (np.load(mmap_mode="r"))
    train/shard-00000.targets.npy      uint8[n, heads]
    train/episodes.parquet             one row per (game, player): shard, start, length,
                                       frame_delay of its pairs, weight (the config's
                                       character_weights, else 1.0), …
    heldout/…                          the same for held-out games

An episode is one player's contiguous run of pairs in one game and never spans shards, so a
sequence model can sample windows inside ``[start, start + length)`` without crossing games.
The held-out split is by game, decided by the game id alone (stable as the corpus grows).
The whole folder is built beside the old one and swapped in, so readers never see a mix.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from exphil_pipeline.replays.games_table import GAMES_SCHEMA
from exphil_pipeline.storage.atomic import atomic_folder
from exphil_pipeline.storage.layout import DataLayout, ExperimentPaths
from exphil_pipeline.training.examples import FIRST_PLAYABLE_FRAME, Examples, GameFrames
from exphil_pipeline.training.training_set_config import TrainingSetConfig
from exphil_pipeline.training.training_set_manifest import (
    MANIFEST_NAME,
    SPLITS,
    EmbeddingSpecInfo,
    Shard,
    Split,
    TrainingSetManifest,
)
from runtime.controller_spec import CONTROLLER_SPEC
from runtime.embedding_spec import EMBEDDING_SPEC


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


# Why a game is not used; each skipped game counts under the first rule it fails, in this order.
QUARANTINED = "quarantined"
NOT_1V1 = "not a 1v1 game"
CPU_PLAYER = "CPU player"
STAGE = "stage not in stages"
OLD_SLIPPI = "Slippi older than min_slippi_version"
LRAS_QUIT = "quit by LRAS"
NO_DAMAGE = "a player took no damage"
DAMAGE_UNKNOWN = "damage not recorded (re-ingest the batch)"
NO_PLAYER = "no player matches"
DUPLICATE = "same match as another game"

GAME_COLUMNS = (
    "game_id",
    "batch",
    "source_path",
    "stage",
    "stage_name",
    "status",
    "slippi_version",
    "start_time",
    "frame_count",
    "players",
    "end_method",
    "lras_initiator",
    "match_id",
    "game_number",
    "tiebreaker_number",
    "random_seed",
    "damaged_ports",
)


def shorter_than(min_frames: int) -> str:
    return f"shorter than {min_frames} frames"


@dataclass(frozen=True)
class GameDecision:
    """Whether a published game is used, and if not the rule that skipped it."""

    batch: str
    game_id: str
    reason: str | None

    @property
    def used(self) -> bool:
        return self.reason is None


@dataclass
class Selection:
    players: list[ChosenPlayer]
    decisions: list[GameDecision] = field(default_factory=list)

    @property
    def games_seen(self) -> int:
        return len(self.decisions)

    @property
    def skipped(self) -> dict[str, int]:
        return dict(Counter(d.reason for d in self.decisions if d.reason is not None))


def read_games(layout: DataLayout) -> list[dict[str, Any]]:
    """The published ``games`` rows (by game id) with the columns curation needs; columns
    a batch ingested by older code lacks read as null."""
    # Published batches only: a batch folder whose first ingest has not finished yet (or was
    # killed) has no games.parquet, and its frames are not published.
    published = sorted(layout.games_dir.glob("batch=*/games.parquet"))
    if not published:
        return []
    schema = GAMES_SCHEMA.append(pa.field("batch", pa.string()))
    games = ds.dataset(
        [str(p) for p in published],
        schema=schema,
        format="parquet",
        partitioning=ds.partitioning(pa.schema([schema.field("batch")]), flavor="hive"),
        partition_base_dir=str(layout.games_dir),
    ).to_table(columns=list(GAME_COLUMNS))
    return sorted(games.to_pylist(), key=lambda r: r["game_id"])


def game_skip_reason(row: dict[str, Any], config: TrainingSetConfig) -> str | None:
    """The first game-level rule ``row`` fails, or None (players are matched afterwards)."""
    players = row["players"] or []
    if row["status"] == "quarantined":
        return QUARANTINED
    if len(players) != 2:
        return NOT_1V1
    if not config.allow_cpu and any(p["type"] == "CPU" for p in players):
        return CPU_PLAYER
    if not config.stage_ok(row["stage_name"]):
        return STAGE
    if not config.version_ok(row["slippi_version"]):
        return OLD_SLIPPI
    if (row["frame_count"] or 0) < config.min_frames:
        return shorter_than(config.min_frames)
    if not config.keep_lras and row["end_method"] == "NOCONTEST" and row["lras_initiator"]:
        return LRAS_QUIT
    if config.require_damage_both:
        if row["damaged_ports"] is None:
            return DAMAGE_UNKNOWN
        if not {p["port"] for p in players} <= set(row["damaged_ports"]):
            return NO_DAMAGE
    return None


def match_key(row: dict[str, Any]) -> tuple[object, ...] | None:
    """Equal for two recordings of one game (one by each player); None where a games table
    written before the random seed was recorded cannot tell games apart (they all pass)."""
    if row["match_id"]:
        return ("match", row["match_id"], row["game_number"], row["tiebreaker_number"])
    if row["random_seed"] is None:
        return None
    characters = tuple(sorted((p["port"], p["character"]) for p in row["players"]))
    return ("start", row["start_time"], characters, row["frame_count"], row["random_seed"])


def _chosen_players(row: dict[str, Any], config: TrainingSetConfig) -> list[ChosenPlayer]:
    players = row["players"]
    split = "heldout" if is_heldout(row["game_id"], config.heldout_fraction) else "train"
    chosen = []
    for me, other in ((players[0], players[1]), (players[1], players[0])):
        mine, theirs = me["character_name"], other["character_name"]
        if config.wants(mine, me["connect_code"]) and config.opponent_ok(theirs):
            chosen.append(
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
    return chosen


def curate(rows: list[dict[str, Any]], config: TrainingSetConfig) -> Selection:
    """Decide every game of ``rows`` (sorted by game id) and choose the players of the used
    ones. A duplicate recording is only skipped when its twin is used, so the one kept is
    the used recording with the smallest game id."""
    selection = Selection(players=[])
    kept: set[tuple[object, ...]] = set()
    for row in rows:
        reason = game_skip_reason(row, config)
        chosen = _chosen_players(row, config) if reason is None else []
        if reason is None and not chosen:
            reason = NO_PLAYER
        if reason is None and config.dedupe_matches:
            key = match_key(row)
            if key is not None:
                reason = DUPLICATE if key in kept else None
                kept.add(key)
        if reason is None:
            selection.players.extend(chosen)
        selection.decisions.append(GameDecision(str(row["batch"]), row["game_id"], reason))
    return selection


def select_players(layout: DataLayout, config: TrainingSetConfig) -> Selection:
    """The games to learn from (:func:`curate`) and their players, chosen by character and
    connect code, never by port."""
    return curate(read_games(layout), config)


class ShardWriter:
    """Appends episodes to shard files of one split; each file is written once."""

    def __init__(self, folder: Path, shard_frames: int) -> None:
        self.folder = folder
        self.shard_frames = shard_frames
        self.shards: list[Shard] = []
        self.episodes: list[dict[str, object]] = []
        self._features: list[np.ndarray] = []
        self._targets: list[np.ndarray] = []
        self._buffered = 0
        folder.mkdir(parents=True, exist_ok=True)

    def add(self, player: ChosenPlayer, examples: Examples, weight: float) -> None:
        """Append one episode; ``weight`` is its sampling weight (``character_weights``)."""
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
                "frame_delay": examples.frame_delay,
                "weight": weight,
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
            Shard(
                features=f"{self.folder.name}/{stem}.features.npy",
                targets=f"{self.folder.name}/{stem}.targets.npy",
                frames=len(targets),
                bytes=features.nbytes + targets.nbytes,
            )
        )
        self._features, self._targets, self._buffered = [], [], 0

    def close(self) -> Split:
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
                ("frame_delay", pa.int16()),
                ("weight", pa.float32()),
            ]
        )
        episodes_file = self.folder / "episodes.parquet"
        pq.write_table(pa.Table.from_pylist(self.episodes, schema=schema), episodes_file)
        return Split(
            frames=sum(s.frames for s in self.shards),
            episodes=len(self.episodes),
            games=len({e["game_id"] for e in self.episodes}),
            shards=tuple(self.shards),
            episodes_file=f"{self.folder.name}/{episodes_file.name}",
        )


@dataclass
class BuildResult:
    path: Path
    manifest: TrainingSetManifest
    seconds: float


ProgressCallback = Callable[[int, int], None]


def build_training_set(
    layout: DataLayout,
    experiment: str,
    config: TrainingSetConfig,
    progress: ProgressCallback | None = None,
) -> BuildResult:
    """Extract, embed and shard every selected player into the experiment's training set,
    replacing the one it had (built beside it and swapped in whole)."""
    began = time.perf_counter()
    selection = select_players(layout, config)
    frames_per_character: dict[str, dict[str, int]] = {}
    first_action = -(2**31) if config.include_countdown else FIRST_PLAYABLE_FRAME
    final = layout.experiment(experiment).training_set
    with atomic_folder(final) as building:
        writers = {split: ShardWriter(building / split, config.shard_frames) for split in SPLITS}
        for done, (player, examples) in enumerate(
            _extract(layout, selection.players, config, first_action), start=1
        ):
            writers[player.split].add(player, examples, config.weight(player.character))
            counts = frames_per_character.setdefault(player.character, dict.fromkeys(SPLITS, 0))
            counts[player.split] += len(examples)
            if progress:
                progress(done, len(selection.players))
        manifest = TrainingSetManifest(
            embedding_spec=EmbeddingSpecInfo.current(),
            controller_spec=TrainingSetManifest.current_controller_spec(),
            config=config,
            games_seen=selection.games_seen,
            games_skipped=selection.skipped,
            frames_per_character=frames_per_character,
            splits={split: writer.close() for split, writer in writers.items()},
        )
        (building / MANIFEST_NAME).write_text(manifest.to_json())
    return BuildResult(final, manifest, time.perf_counter() - began)


def _extract(
    layout: DataLayout,
    players: list[ChosenPlayer],
    config: TrainingSetConfig,
    first_action_frame: int,
) -> Iterator[tuple[ChosenPlayer, Examples]]:
    cached: tuple[str, GameFrames] | None = None
    for player in players:
        if cached is None or cached[0] != player.game_id:
            frames_path = layout.game_file("frames", player.batch, player.game_id)
            items_path = layout.game_file("items", player.batch, player.game_id)
            cached = (player.game_id, GameFrames.read(frames_path, items_path, player.stage))
        game = cached[1]
        delay = config.episode_delay(player.game_id, player.port, player.split == "heldout")
        yield (
            player,
            game.examples(player.port, player.opponent_port, delay, first_action_frame),
        )


@dataclass(frozen=True)
class TrainingSet:
    """A built training set, read lazily: shards are memory-mapped, never loaded whole."""

    path: Path
    manifest: TrainingSetManifest

    @classmethod
    def open(cls, path: Path) -> TrainingSet:
        manifest_path = path / MANIFEST_NAME
        if not manifest_path.is_file():
            raise FileNotFoundError(
                f"no training set at {path} (missing {MANIFEST_NAME}); materialize training_set"
            )
        manifest = TrainingSetManifest.from_json(manifest_path.read_text())
        expected = EMBEDDING_SPEC.content_hash
        if manifest.embedding_spec.hash != expected:
            raise ValueError(
                f"training set {path} was embedded with spec "
                f"{manifest.embedding_spec.hash[:12]}, this code has {expected[:12]}; "
                "re-materialize training_set"
            )
        return cls(path, manifest)

    @classmethod
    def of(cls, experiment: ExperimentPaths) -> TrainingSet:
        return cls.open(experiment.training_set)

    def shards(self, split: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(features, targets) memory maps of each shard of ``split``."""
        for shard in self.manifest.splits[split].shards:
            yield (
                np.load(self.path / shard.features, mmap_mode="r"),
                np.load(self.path / shard.targets, mmap_mode="r"),
            )

    def episodes(self, split: str) -> pa.Table:
        return pq.read_table(self.path / self.manifest.splits[split].episodes_file)

    def frames(self, split: str) -> int:
        return self.manifest.splits[split].frames

    @property
    def evaluation_split(self) -> str:
        """Held-out games when there are any, else the training games."""
        return "heldout" if self.frames("heldout") else "train"


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


def character_counts_table(manifest: TrainingSetManifest) -> str:
    """Markdown table of pairs per character and split."""
    lines = ["| character | train | heldout |", "|---|---:|---:|"]
    for character, counts in sorted(manifest.frames_per_character.items()):
        lines.append(f"| {character} | {counts['train']:,} | {counts['heldout']:,} |")
    return "\n".join(lines)
