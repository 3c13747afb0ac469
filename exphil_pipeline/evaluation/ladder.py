"""The ladder: every exported artifact and the scripted levels, rated against one another.

Players are every ``artifacts/<experiment>/policy_int8.onnx`` under the data root, named
``artifact:<experiment>@<the first 8 hex digits of the file's SHA-256>``, and ``scripted:L``
for each configured level: the fixed anchors, the same script every time, which tie the scale
from one materialization to the next. The content hash makes a re-exported artifact a new
player, since the recorded games were played by the old file; the old version keeps the rating
its own games earned and is listed as inactive.

Matchmaking: every pair of players with fewer than ``games_per_pairing`` ladder games in the
``matches`` table plays the difference in the simulator (:func:`play_arena`, ports alternating),
written as one ``matches`` file of ``run_kind`` ``ladder`` per pairing. Adding an artifact
therefore plays only its own pairings; recorded games are never replayed. Both players play
the same character, so the ratings measure the players, not a matchup; the default is Mewtwo
because the scripted levels are ordered in Mewtwo dittos but not in Fox dittos.

Ratings are recomputed from every recorded ladder game each time, in a fixed order (run start,
run id, game number), since OpenSkill updates one game at a time and the order moves the
result slightly. The model is OpenSkill's Plackett-Luce at its defaults (every player starts at
mu 25, sigma 25/3): a decided game ranks the winner first, a draw ranks both players equal,
void games are skipped. Standings sort by the ordinal mu - 3 sigma, a conservative estimate that
a player with few games cannot top by luck.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow.compute as pc
from dagster import Config
from matplotlib.figure import Figure
from openskill.models import PlackettLuce
from pydantic import Field, field_validator, model_validator

from exphil_pipeline.environments.simulator_env import MATCH_FRAMES
from exphil_pipeline.evaluation.arena import ArenaConfig, play_arena
from exphil_pipeline.evaluation.matches import read_matches, write_matches
from exphil_pipeline.evaluation.players import OnnxPlayer, Player, ScriptedPlayer
from exphil_pipeline.simulator.scripted_players import LEVELS
from exphil_pipeline.storage.layout import DataLayout
from runtime.artifact_manifest import ArtifactError

RUN_KIND = "ladder"
SCRIPTED_PREFIX = "scripted:"
ARTIFACT_PREFIX = "artifact:"
GAME_COLUMNS = ("player_1", "player_2", "winner", "void")
SETUP_COLUMNS = ("stage", "character_1", "character_2", "start_stocks", "max_frames")


class LadderConfig(Config):
    """How the ladder's games are played. Changing the stage, character, stocks or timer
    after games were recorded is refused: ratings from different setups do not mix."""

    games_per_pairing: int = Field(
        default=20, ge=1, description="Games each pair of players plays, ports alternating."
    )
    stage: str = Field(default="FINAL_DESTINATION", description="A simulated libmelee Stage.")
    characters: list[str] = Field(
        default=["MEWTWO", "MEWTWO"],
        description="Both players' libmelee Character: the same one twice (a ditto), so the "
        "ratings measure players, not a matchup.",
    )
    stocks: int = Field(default=4, ge=1, description="Stocks per player.")
    max_frames: int = Field(
        default=MATCH_FRAMES, ge=1, description="The timer, frames from the first playable one."
    )
    scripted_levels: list[int] = Field(
        default=sorted(LEVELS),
        description="Scripted levels in the ladder: the fixed anchors (3 the strongest).",
    )
    seed: int = Field(default=0, ge=0, description="Seeds every pairing's games.")

    @field_validator("scripted_levels")
    @classmethod
    def _known_levels(cls, levels: list[int]) -> list[int]:
        unknown = sorted(set(levels) - set(LEVELS))
        if unknown or len(set(levels)) != len(levels):
            raise ValueError(
                f"scripted_levels {levels}: give distinct levels among {sorted(LEVELS)}"
            )
        return levels

    @model_validator(mode="after")
    def _playable(self) -> LadderConfig:
        if len(self.characters) != 2 or self.characters[0] != self.characters[1]:
            raise ValueError(
                f"characters {self.characters}: the ladder plays dittos so that ratings measure "
                "players, not a matchup; give one character twice, e.g. ['MEWTWO', 'MEWTWO']"
            )
        self.arena()  # validates the stage, character, stocks and timer
        return self

    def arena(self) -> ArenaConfig:
        return ArenaConfig(
            characters=(self.characters[0], self.characters[1]),
            stage=self.stage,
            stocks=self.stocks,
            max_frames=self.max_frames,
        )


@dataclass(frozen=True)
class Standing:
    """One player's rating and record over every rated ladder game."""

    name: str
    mu: float
    sigma: float
    ordinal: float  # mu - 3 sigma
    games: int
    wins: int
    losses: int
    draws: int
    active: bool  # in the ladder now (its artifact is on disk, or a configured level)

    @property
    def win_rate(self) -> float:
        """A draw counts half, as in the arena; NaN before the first game."""
        return (self.wins + self.draws / 2) / self.games if self.games else float("nan")


@dataclass(frozen=True)
class LadderResult:
    """Standings (best ordinal first) and what this build played."""

    standings: tuple[Standing, ...]
    games_played: int  # this build
    games_total: int  # every recorded ladder game, void ones included
    pairings_played: tuple[tuple[str, str], ...]

    def to_markdown(self) -> str:
        lines = [
            "| rank | player | mu ± sigma | ordinal (mu - 3 sigma) | games | W-L-D | win rate "
            "| active |",
            "|---:|---|---:|---:|---:|---|---:|---|",
        ]
        for rank, s in enumerate(self.standings, 1):
            lines.append(
                f"| {rank} | {s.name} | {s.mu:.2f} ± {s.sigma:.2f} | {s.ordinal:.2f} | {s.games} "
                f"| {s.wins}-{s.losses}-{s.draws} | {s.win_rate:.3f} | "
                f"{'yes' if s.active else 'no'} |"
            )
        return "\n".join(lines) + "\n"


def build_ladder(
    layout: DataLayout, config: LadderConfig, log: Callable[[str], None]
) -> LadderResult:
    """Play every missing pairing, then rate all recorded ladder games (module docstring)."""
    arena = config.arena()
    players = ladder_players(layout, config.scripted_levels)
    for player in players:
        if player.character not in (None, arena.characters[0]):
            log(
                f"{player.name} was trained on {player.character}; the ladder plays it as "
                f"{arena.characters[0]}"
            )
    recorded = ladder_games(layout)
    check_setup(recorded, arena, layout)
    counts = Counter(frozenset((g["player_1"], g["player_2"])) for g in recorded)
    played: list[tuple[str, str]] = []
    games_played = 0
    for a, b in itertools.combinations(players, 2):
        done = counts[frozenset((a.name, b.name))]
        missing = config.games_per_pairing - done
        if missing <= 0:
            continue
        started = datetime.now(UTC)
        report = play_arena(a, b, missing, arena, pairing_seed(config.seed, a.name, b.name, done))
        write_matches(layout, report, started, run_kind=RUN_KIND)
        stats = report.players[0]
        log(
            f"{a.name} vs {b.name}: {stats.wins}-{stats.losses}-{stats.draws} in "
            f"{missing} games ({report.seconds:.1f} s)"
        )
        played.append((a.name, b.name))
        games_played += missing
    games = ladder_games(layout)
    return LadderResult(
        standings=rate_games(games, active=[p.name for p in players]),
        games_played=games_played,
        games_total=len(games),
        pairings_played=tuple(played),
    )


def ladder_players(layout: DataLayout, levels: Sequence[int]) -> list[Player]:
    """Every INT8 artifact under the data root (by experiment), then the scripted anchors."""
    players: list[Player] = []
    root = layout.artifacts_dir
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if not folder.is_dir():
            continue
        try:
            artifact = layout.experiment(folder.name).policy_int8
        except ValueError as error:
            raise ValueError(f"{folder}: {error}; rename the folder or move it out") from None
        if not artifact.is_file():
            continue
        try:
            player = OnnxPlayer(artifact)
        except ArtifactError as error:
            raise ArtifactError(
                f"ladder player {artifact}: {error}; materialize policy_int8 for experiment "
                f"{folder.name!r} again, or move its folder out of {root}"
            ) from None
        digest = hashlib.sha256(artifact.read_bytes()).hexdigest()[:8]
        player.name = f"{ARTIFACT_PREFIX}{folder.name}@{digest}"
        players.append(player)
    return players + [ScriptedPlayer(level) for level in levels]


def pairing_seed(seed: int, name_a: str, name_b: str, recorded: int) -> int:
    """The arena seed of a pairing's next games: stable across processes and Python versions
    (CRC-32, not ``hash``), and new for each top-up so no recorded game is repeated."""
    words = [seed, zlib.crc32(name_a.encode()), zlib.crc32(name_b.encode()), recorded]
    return int(np.random.SeedSequence(words).generate_state(1)[0])


def ladder_games(layout: DataLayout) -> list[dict[str, Any]]:
    """Every recorded ladder game in rating order (run start, run id, game number)."""
    table = read_matches(layout)
    table = table.filter(pc.equal(table["run_kind"], RUN_KIND))
    table = table.sort_by([("time", "ascending"), ("run_id", "ascending"), ("game", "ascending")])
    return table.select([*GAME_COLUMNS, *SETUP_COLUMNS]).to_pylist()


def check_setup(games: Iterable[Mapping[str, Any]], arena: ArenaConfig, layout: DataLayout) -> None:
    """Refuse to add games under a setup other than the recorded games' one."""
    wanted = (arena.stage, *arena.characters, arena.stocks, arena.max_frames)
    other = {tuple(g[c] for c in SETUP_COLUMNS) for g in games} - {wanted}
    if other:
        raise ValueError(
            f"the ladder's recorded games in {layout.matches_dir} were played as "
            f"{sorted(other, key=str)} ({', '.join(SETUP_COLUMNS)}), this config asks for "
            f"{wanted}: configure the recorded setup, or move the files whose run_kind is "
            f"{RUN_KIND!r} out of {layout.matches_dir} to start a new ladder"
        )


def rate_games(games: Iterable[Mapping[str, Any]], active: Iterable[str]) -> tuple[Standing, ...]:
    """OpenSkill Plackett-Luce ratings from ``games`` in their order, for every player who
    played or is ``active``; best ordinal first (ties by name)."""
    model = PlackettLuce()
    current = set(active)
    ratings = {name: model.rating(name=name) for name in sorted(current)}
    record: dict[str, Counter[str]] = {name: Counter() for name in ratings}
    for game in games:
        if game["void"]:
            continue
        one, two, winner = game["player_1"], game["player_2"], game["winner"]
        if winner not in (None, one, two):
            raise ValueError(f"ladder game {game}: the winner is neither player")
        for name in (one, two):
            ratings.setdefault(name, model.rating(name=name))
            record.setdefault(name, Counter())
        ranks = [0, 0] if winner is None else [0, 1] if winner == one else [1, 0]
        [[ratings[one]], [ratings[two]]] = model.rate([[ratings[one]], [ratings[two]]], ranks=ranks)
        for me in (one, two):
            outcome = "draws" if winner is None else "wins" if winner == me else "losses"
            record[me][outcome] += 1
            record[me]["games"] += 1
    standings = [
        Standing(
            name=name,
            mu=rating.mu,
            sigma=rating.sigma,
            ordinal=rating.ordinal(),
            games=record[name]["games"],
            wins=record[name]["wins"],
            losses=record[name]["losses"],
            draws=record[name]["draws"],
            active=name in current,
        )
        for name, rating in ratings.items()
    ]
    return tuple(sorted(standings, key=lambda s: (-s.ordinal, s.name)))


def ratings_png(standings: Sequence[Standing]) -> bytes:
    """Each player's mu with ±2 sigma bars, best at the top; scripted anchors in grey."""
    figure = Figure(figsize=(8, 1.2 + 0.35 * max(len(standings), 1)))
    axes = figure.subplots()
    top_down = list(reversed(standings))
    for row, s in enumerate(top_down):
        anchor = s.name.startswith(SCRIPTED_PREFIX)
        axes.errorbar(
            s.mu,
            row,
            xerr=2 * s.sigma,
            fmt="s" if anchor else "o",
            color="tab:gray" if anchor else "tab:blue",
            alpha=1.0 if s.active else 0.4,
            capsize=3,
        )
    axes.set_yticks(range(len(top_down)), [s.name for s in top_down])
    axes.axvline(PlackettLuce().mu, color="black", linewidth=0.6, linestyle=":")
    axes.set_xlabel("rating mu (bars: ± 2 sigma; dotted: the starting rating)")
    axes.set_title("Ladder: OpenSkill Plackett-Luce ratings")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()
