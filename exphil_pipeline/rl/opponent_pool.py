"""Self-play opponents: scripted levels, the imitation teacher and earlier RL checkpoints,
drawn more often the less the learning policy beats them.

Prioritised fictitious self-play (Vinyals et al. 2019, AlphaStar): each game an actor starts
draws its opponent (:mod:`~exphil_pipeline.rl.opponent_mix`) with probability proportional to
``(1 - s)^2 + floor``, where ``s`` is the learning policy's recent score against it (a win 1,
a draw 0.5, a loss 0; an exponential moving average over games, 0.5 before any). Opponents it
beats every time are still drawn now and then (``floor``), so a forgotten skill shows up again.
``self`` in the pool spec stands for the ``snapshots`` most recent checkpoints of the learning
policy itself, added as training goes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from exphil_pipeline.rl.opponent_mix import OpponentOdds, OpponentSpec

FLOOR = 0.05
SCORE_DECAY = 0.95
"""Weight of the previous average in each update: about the last 20 games count."""


@dataclass
class OpponentPool:
    """The opponents of one RL run and the learning policy's score against each."""

    specs: list[str]
    teacher: Path
    snapshots: int = 4
    scores: dict[str, float] = field(default_factory=dict)
    games: dict[str, int] = field(default_factory=dict)
    snapshot_paths: list[str] = field(default_factory=list)

    @property
    def self_play(self) -> bool:
        return "self" in self.specs

    def opponents(self) -> list[OpponentSpec]:
        found = []
        for spec in self.specs:
            if spec.startswith("scripted:"):
                found.append(OpponentSpec(spec, level=int(spec.partition(":")[2])))
            elif spec == "teacher":
                found.append(OpponentSpec("teacher", checkpoint=str(self.teacher)))
        found += [OpponentSpec(f"self:{Path(p).stem}", checkpoint=p) for p in self.snapshot_paths]
        return found

    def add_snapshot(self, checkpoint: Path) -> None:
        """A checkpoint of the learning policy joins the pool (the oldest leaves past
        ``snapshots``)."""
        if not self.self_play:
            return
        self.snapshot_paths = [*self.snapshot_paths, str(checkpoint)][-self.snapshots :]

    def odds(self) -> OpponentOdds:
        """Each opponent with the probability that a game starting now draws it."""
        candidates = self.opponents()
        if not candidates:
            # Only "self" and no snapshot yet: the policy plays its imitation teacher.
            return {OpponentSpec("teacher", checkpoint=str(self.teacher)): 1.0}
        weights = np.array([(1 - self.score(c.name)) ** 2 + FLOOR for c in candidates])
        return dict(zip(candidates, (weights / weights.sum()).tolist(), strict=True))

    def score(self, name: str) -> float:
        return self.scores.get(name, 0.5)

    def record(self, name: str, score: float) -> None:
        self.scores[name] = SCORE_DECAY * self.score(name) + (1 - SCORE_DECAY) * score
        self.games[name] = self.games.get(name, 0) + 1

    def state(self) -> dict:
        return {
            "scores": dict(self.scores),
            "games": dict(self.games),
            "snapshot_paths": list(self.snapshot_paths),
        }

    def load_state(self, state: dict) -> None:
        self.scores = dict(state["scores"])
        self.games = dict(state["games"])
        self.snapshot_paths = [p for p in state["snapshot_paths"] if Path(p).is_file()]
