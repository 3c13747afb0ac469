"""The manifest of a training set (``manifest.json``): what was embedded, how, and where.

Readers use these types instead of looking keys up in raw JSON. The JSON layout is the one
training sets have always been written with, so older sets open unchanged.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from exphil_pipeline.training.training_set_config import TrainingSetConfig
from models import PolicyConfig, categorical_columns
from runtime.controller_spec import CONTROLLER_SPEC
from runtime.embedding_spec import EMBEDDING_SPEC

SPLITS = ("train", "heldout")
MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class Shard:
    """One memory-mappable pair of files, paths relative to the training set folder."""

    features: str
    targets: str
    frames: int
    bytes: int


@dataclass(frozen=True)
class Split:
    """The train or held-out half: its counts, shards and episode table."""

    frames: int
    episodes: int
    games: int
    shards: tuple[Shard, ...]
    episodes_file: str

    @classmethod
    def from_dict(cls, data: dict[str, Any], name: str) -> Split:
        return cls(
            frames=int(data["frames"]),
            episodes=int(data["episodes"]),
            games=int(data["games"]),
            shards=tuple(Shard(**s) for s in data["shards"]),
            episodes_file=data.get("episodes_file", f"{name}/episodes.parquet"),
        )


@dataclass(frozen=True)
class EmbeddingSpecInfo:
    """Which embedding spec produced the features, and the layout a network needs."""

    version: int
    hash: str
    dim: int
    names: tuple[str, ...]
    categorical: tuple[tuple[int, int], ...]

    @classmethod
    def current(cls) -> EmbeddingSpecInfo:
        return cls(
            version=EMBEDDING_SPEC.version,
            hash=EMBEDDING_SPEC.content_hash,
            dim=EMBEDDING_SPEC.dim,
            names=tuple(EMBEDDING_SPEC.names),
            categorical=tuple(tuple(c) for c in EMBEDDING_SPEC.categorical),
        )


@dataclass(frozen=True)
class TrainingSetManifest:
    embedding_spec: EmbeddingSpecInfo
    controller_spec: dict[str, Any]
    config: TrainingSetConfig
    games_seen: int
    games_skipped: dict[str, int]
    frames_per_character: dict[str, dict[str, int]]
    splits: dict[str, Split]

    @property
    def controller_spec_hash(self) -> str:
        return self.controller_spec["hash"]

    def policy_config(self, max_embedding_dim: int, **network: Any) -> PolicyConfig:
        """A network config for these frames: input width, categorical columns and spec
        hashes from the manifest, everything else (backbone, sizes) from ``network``."""
        spec = self.embedding_spec
        return PolicyConfig(
            input_dim=spec.dim,
            embedding_spec_hash=spec.hash,
            categorical=categorical_columns(list(spec.categorical), max_embedding_dim),
            controller_spec_hash=self.controller_spec_hash,
            **network,
        )

    @property
    def frames(self) -> int:
        return sum(split.frames for split in self.splits.values())

    @property
    def bytes(self) -> int:
        return sum(shard.bytes for split in self.splits.values() for shard in split.shards)

    @staticmethod
    def current_controller_spec() -> dict[str, Any]:
        return {**CONTROLLER_SPEC.to_dict(), "hash": CONTROLLER_SPEC.content_hash}

    def to_json(self) -> str:
        data = asdict(self)
        data["config"] = self.config.model_dump()
        return json.dumps(data, indent=2)

    @classmethod
    def from_json(cls, text: str) -> TrainingSetManifest:
        data = json.loads(text)
        spec = data["embedding_spec"]
        config = dict(data["config"])
        config.pop("name", None)  # sets written before experiments were named by partition
        return cls(
            embedding_spec=EmbeddingSpecInfo(
                version=int(spec["version"]),
                hash=spec["hash"],
                dim=int(spec["dim"]),
                names=tuple(spec["names"]),
                categorical=tuple(tuple(c) for c in spec["categorical"]),
            ),
            controller_spec=data["controller_spec"],
            config=TrainingSetConfig(**config),
            games_seen=int(data["games_seen"]),
            games_skipped=dict(data["games_skipped"]),
            frames_per_character=dict(data["frames_per_character"]),
            splits={name: Split.from_dict(data["splits"][name], name) for name in SPLITS},
        )

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the manifest: changes whenever the set is rebuilt with other content."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()
