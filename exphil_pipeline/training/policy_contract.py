"""The contract a trained policy keeps with the game: what it sees, when, and for whom.

Teacher and student checkpoints carry it beside their weights, so exporting an artifact reads
frame delay, character and spec hashes from the checkpoint it exports, never from the training
set it came from (which may since have been rebuilt or deleted).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from exphil_pipeline.training.training_set import TrainingSet


@dataclass(frozen=True)
class PolicyContract:
    frame_delay: int
    """d: the policy chooses the input of frame t from the state of frame t - d (by default:
    its held-out games, and play unless told otherwise)."""
    frame_delay_range: tuple[int, int]
    """The delays of the pairs it learned from, ``(low, high)``; see
    ``TrainingSetConfig.frame_delay_range``."""
    characters: tuple[str, ...]
    """External character names it learned to play (``("all",)`` for any)."""
    embedding_spec_version: int
    embedding_spec_hash: str
    controller_spec_hash: str
    training_set: str
    """The experiment whose training set it learned from."""
    training_set_fingerprint: str
    """That training set's manifest hash: a rebuilt set has another one."""

    @classmethod
    def of(cls, dataset: TrainingSet, experiment: str) -> PolicyContract:
        manifest = dataset.manifest
        return cls(
            frame_delay=manifest.config.frame_delay,
            frame_delay_range=manifest.config.trained_delays,
            characters=tuple(manifest.config.characters),
            embedding_spec_version=manifest.embedding_spec.version,
            embedding_spec_hash=manifest.embedding_spec.hash,
            controller_spec_hash=manifest.controller_spec_hash,
            training_set=experiment,
            training_set_fingerprint=manifest.fingerprint,
        )

    @property
    def character(self) -> str:
        """The character an artifact is labelled with: the one learned, or ``any``."""
        if len(self.characters) == 1 and self.characters[0] != "all":
            return self.characters[0]
        return "any"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_checkpoint(cls, checkpoint: dict[str, Any], path: Path) -> PolicyContract:
        """The contract stored in a loaded checkpoint, or a clear error for older files."""
        if "contract" not in checkpoint:
            raise ValueError(
                f"{path} holds no policy contract (written before checkpoints carried frame "
                "delay, characters and spec hashes): re-materialize the asset that wrote it"
            )
        data = dict(checkpoint["contract"])
        data["characters"] = tuple(data["characters"])
        # Checkpoints written before ranged delays learned from frame_delay alone.
        delay = data["frame_delay"]
        data["frame_delay_range"] = tuple(data.get("frame_delay_range", (delay, delay)))
        return cls(**data)
