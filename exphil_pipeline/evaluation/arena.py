"""Two players, many games in the simulator or in Dolphin: who wins, by how much, and how fast
each decides.

Games alternate ports: even-numbered games put player A on port 1, odd-numbered ones on port
2, so neither player keeps a port's advantage; each player keeps its own character on either
port. In the simulator both port halves play in one :class:`SimulatorEnvironment`, each game
with its characters in its own port order and each player told its port per game. In Dolphin
(``ArenaConfig.env``) each half has its own environment, run one after the other, since
Dolphin's characters and Melee's CPU (``cpu:LEVEL`` players) are set per port for all its
games. Up to ``parallel`` games are in play at once (in Dolphin, in each half). Every game
slot plays a fixed share of the games and its later results are ignored, so stopping once
``games`` results are in does not favour short games.

One process: the cost per frame of the engine and two scripted players hardly grows with the
games in play (measured here: 1.0 ms of CPU per frame for 16 games, 1.3 ms for 256, 2.2 ms for
1024), so running both halves in one environment halves the work, while a pool of two workers
for the two halves measured 11.2 s against 12.4-14.5 s sequential for 2 x 20 games on this
2-core machine under load (24 s with spawned workers): not worth its complexity.

Win rate counts a draw as half a win, so A's and B's rates add up to 1 and a mirror match is
expected at exactly 0.5. Void games (a backend died) count toward ``games`` and are recorded
but not rated. The 95% interval is Wilson's score interval (:func:`wilson_interval`), which
stays inside [0, 1] and keeps its coverage at small counts and at rates near 0 or 1, where the
normal approximation fails. Per-minute figures divide totals over the rated games by the
minutes played (frames from the first playable frame, 60 per second).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import melee
import numpy as np

from exphil_pipeline.environments.base import GameEnvironment, GameResult
from exphil_pipeline.environments.simulator_env import (
    MATCH_FRAMES,
    SimulatorConfig,
    SimulatorEnvironment,
)
from exphil_pipeline.evaluation.players import HEADS, Player, check_environment
from exphil_pipeline.simulator.melee_data import SIM_CHARACTERS

Z_95 = 1.959963984540054
"""The standard normal quantile of 0.975: a two-sided 95% interval."""
FRAMES_PER_SECOND = 60
DEFAULT_CHARACTERS = ("MEWTWO", "FOX")
ENVIRONMENTS = ("simulator", "dolphin")
DOLPHIN_STOCKS = 4
"""Melee's default rules, which the Dolphin environment plays (its menus do not set them)."""

if TYPE_CHECKING:
    from exphil_pipeline.environments.dolphin_console import ConsoleFactory
    from exphil_pipeline.environments.dolphin_env import DolphinConfig


def wilson_interval(successes: float, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson's score interval for a binomial proportion ``successes / trials``:

    centre = (p + z²/2n) / (1 + z²/n),
    half width = z / (1 + z²/n) · sqrt(p(1 - p)/n + z²/4n²),

    with p = successes / n. ``successes`` may be fractional (draws count half)."""
    if trials <= 0:
        raise ValueError(f"trials must be >= 1, got {trials}")
    if not 0 <= successes <= trials:
        raise ValueError(f"successes must be within [0, {trials}], got {successes}")
    p = successes / trials
    z2 = z * z
    denominator = 1 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class ArenaConfig:
    """How the arena's games are set up.

    characters: player A's and player B's libmelee ``Character`` names; each keeps its own on
    either port. stage: a libmelee ``Stage`` name (in the simulator, a simulated stage).
    stocks: per player (Dolphin plays Melee's default, 4). max_frames: the timer, in frames
    from the first playable frame (60 per second). parallel: most games in play at once (one
    numpy engine steps them together; in Dolphin, in each half, one Dolphin each). env:
    ``simulator`` or ``dolphin``, where the games run.
    """

    characters: tuple[str, str] = DEFAULT_CHARACTERS
    stage: str = "FINAL_DESTINATION"
    stocks: int = 4
    max_frames: int = MATCH_FRAMES
    parallel: int = 256
    env: str = "simulator"

    def __post_init__(self) -> None:
        if self.env not in ENVIRONMENTS:
            raise ValueError(f"env {self.env!r}: choose one of {ENVIRONMENTS}")
        if self.parallel < 1:
            raise ValueError(f"parallel must be >= 1, got {self.parallel}")
        if self.env == "dolphin":
            self._check_dolphin()
            return
        known = [c.name for c in SIM_CHARACTERS]
        unknown = [c for c in self.characters if c not in known]
        if len(self.characters) != 2 or unknown:
            raise ValueError(
                f"characters {self.characters}: give two of the simulated characters {known}"
            )
        self.environment((0,))  # validates stage, stocks and max_frames

    def _check_dolphin(self) -> None:
        unknown = [c for c in self.characters if c not in melee.Character.__members__]
        if len(self.characters) != 2 or unknown:
            raise ValueError(f"characters {self.characters}: give two libmelee Character names")
        if self.stage not in melee.Stage.__members__:
            raise ValueError(f"stage {self.stage!r} is not a libmelee Stage name")
        if self.stocks != DOLPHIN_STOCKS:
            raise ValueError(
                f"stocks {self.stocks}: Dolphin plays Melee's default {DOLPHIN_STOCKS} stocks"
            )
        if not 1 <= self.max_frames <= MATCH_FRAMES:
            raise ValueError(f"max_frames must be within [1, {MATCH_FRAMES}] (Melee's timer)")

    def port_order(self, a_port: int) -> tuple[str, str]:
        """The characters of port 1 and port 2 in a game with player A on port ``a_port + 1``."""
        first, second = self.characters if a_port == 0 else self.characters[::-1]
        return first, second

    def environment(self, a_ports: Sequence[int], observe: tuple[int, ...] = ()) -> SimulatorConfig:
        """The simulator config of one game per entry of ``a_ports``, player A on port
        ``a_ports[g] + 1`` in game ``g``, embedding the ``observe`` ports only."""
        return SimulatorConfig(
            games=len(a_ports),
            characters=self.port_order(a_ports[0]),
            game_characters=tuple(self.port_order(a_port) for a_port in a_ports),
            stage=self.stage,
            stocks=self.stocks,
            max_frames=self.max_frames,
            observe=observe,
        )


@dataclass(frozen=True)
class Match:
    """One rated or void game: its number in the run and where player A played."""

    number: int  # even: A on port 1, odd: A on port 2
    a_port: int  # 0 or 1
    result: GameResult


@dataclass(frozen=True)
class PlayerStats:
    """One player's results over the run (see the module docstring for the definitions)."""

    name: str
    character: str
    wins: int
    losses: int
    draws: int
    win_rate: float
    ci_low: float
    ci_high: float
    net_stocks_per_minute: float
    damage_dealt_per_minute: float
    damage_taken_per_minute: float
    sd_per_minute: float
    mean_game_seconds: float
    p50_decision_us: float
    p99_decision_us: float


@dataclass(frozen=True)
class ArenaReport:
    """Everything one arena run measured; ``players`` is (A, B)."""

    games: int
    env: str
    config: ArenaConfig
    seed: int
    matches: tuple[Match, ...]
    players: tuple[PlayerStats, PlayerStats]
    seconds: float

    @property
    def void(self) -> int:
        return sum(m.result.void for m in self.matches)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object ``exphil arena --json`` prints (NaN as null)."""
        return {
            "games": self.games,
            "env": self.env,
            "stage": self.config.stage,
            "stocks": self.config.stocks,
            "max_frames": self.config.max_frames,
            "seed": self.seed,
            "void": self.void,
            "seconds": round(self.seconds, 3),
            "players": [
                {key: _finite(value) for key, value in vars(p).items()} for p in self.players
            ],
        }

    def to_markdown(self) -> str:
        head = (
            f"{self.games} games ({self.void} void), {self.env}, {self.config.stage}, "
            f"{self.config.stocks} stocks, seed {self.seed}, {self.seconds:.1f} s\n\n"
            "| player | character | W-L-D | win rate [95% CI] | net stocks/min | damage/min "
            "dealt-taken | SD/min | mean game (s) | decision µs p50 / p99 |\n"
            "|---|---|---|---|---|---|---|---|---|\n"
        )
        rows = [
            f"| {p.name} | {p.character} | {p.wins}-{p.losses}-{p.draws} | {p.win_rate:.3f} "
            f"[{p.ci_low:.3f}, {p.ci_high:.3f}] | {p.net_stocks_per_minute:+.2f} | "
            f"{p.damage_dealt_per_minute:.1f} - {p.damage_taken_per_minute:.1f} | "
            f"{p.sd_per_minute:.2f} | {p.mean_game_seconds:.1f} | "
            f"{p.p50_decision_us:.1f} / {p.p99_decision_us:.1f} |"
            for p in self.players
        ]
        return head + "\n".join(rows) + "\n"


def _finite(value: object) -> object:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def arena_names(player_a: Player, player_b: Player) -> tuple[str, str]:
    """The two players' names in reports, told apart in a mirror match."""
    if player_a.name == player_b.name:
        return f"{player_a.name} (A)", f"{player_b.name} (B)"
    return player_a.name, player_b.name


@dataclass(frozen=True)
class Table:
    """The games of one environment: player A's port in each game (the characters' order),
    Melee's CPU level on each port of its first game (0: none) and the ports embedded."""

    a_ports: tuple[int, ...]
    cpu_levels: tuple[int, int]
    observe: tuple[int, ...]


EnvironmentFactory = Callable[[ArenaConfig, Table], GameEnvironment]
"""Builds the environment that plays a :class:`Table` of an arena run."""


def simulator_tables(config: ArenaConfig, table: Table) -> GameEnvironment:
    return SimulatorEnvironment(config.environment(table.a_ports, table.observe))


def dolphin_tables(
    base: DolphinConfig, consoles: ConsoleFactory | None = None
) -> EnvironmentFactory:
    """Dolphin environments with ``base``'s paths, timeouts and options; the arena sets each
    one's games, characters in port order, stage, timer and CPU levels. ``consoles`` replaces
    the real Dolphins (tests)."""
    from exphil_pipeline.environments.dolphin_env import DolphinEnvironment

    def build(config: ArenaConfig, table: Table) -> GameEnvironment:
        # A Dolphin table holds one side: player A has the same port in every game.
        dolphin = replace(
            base,
            games=len(table.a_ports),
            characters=config.port_order(table.a_ports[0]),
            stage=config.stage,
            max_frames=config.max_frames,
            cpu_levels=table.cpu_levels,
        )
        return DolphinEnvironment(dolphin, consoles)

    return build


@dataclass(frozen=True)
class _Side:
    """The games of a run with player A on one port: how many, and how many slots play them."""

    a_port: int
    count: int
    slots: int


def _tables(games: int, config: ArenaConfig) -> list[list[_Side]]:
    """The environments to run and the sides each holds. In the simulator both sides share one
    environment (the engine's cost per frame hardly grows with the number of games); in
    Dolphin each side needs its own characters and CPU levels in port order."""
    counts = ((games + 1) // 2, games // 2)
    if config.env == "simulator":
        share = (max(1, (config.parallel + 1) // 2), max(1, config.parallel // 2))
        sides = [_Side(port, counts[port], min(share[port], counts[port])) for port in (0, 1)]
        return [[side for side in sides if side.count]]
    return [
        [_Side(port, counts[port], min(config.parallel, counts[port]))]
        for port in (0, 1)
        if counts[port]
    ]


def play_arena(
    player_a: Player,
    player_b: Player,
    games: int,
    config: ArenaConfig,
    seed: int,
    progress: Callable[[int], None] | None = None,
    environments: EnvironmentFactory | None = None,
) -> ArenaReport:
    """Play ``games`` games between A and B in ``config.env``, alternating ports (see the module
    docstring); ``progress`` is called with the number of games each time some finish.
    ``environments`` builds each table's environment: the simulator by default; a Dolphin
    arena needs :func:`dolphin_tables`. A player that cannot play in ``config.env`` raises
    ``PlayerSpecError``."""
    if games < 1:
        raise ValueError(f"games must be >= 1, got {games}")
    for player in (player_a, player_b):
        check_environment(player, config.env)
    if environments is None:
        if config.env != "simulator":
            raise ValueError(
                "a Dolphin arena needs environments=dolphin_tables(DolphinConfig(...))"
            )
        environments = simulator_tables
    began = time.perf_counter()
    matches: list[Match] = []
    latency: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
    for index, sides in enumerate(_tables(games, config)):
        table_seed = int(np.random.SeedSequence([seed, index]).generate_state(1)[0])
        matches += _play_table(
            player_a, player_b, sides, config, environments, table_seed, progress
        )
        latency[0].append(player_a.latencies_us())
        latency[1].append(player_b.latencies_us())
    matches.sort(key=lambda m: m.number)
    names = arena_names(player_a, player_b)
    a, b = (
        player_stats(
            names[role],
            config.characters[role],
            role,
            matches,
            np.concatenate(latency[role]),
        )
        for role in (0, 1)
    )
    return ArenaReport(
        games=games,
        env=config.env,
        config=config,
        seed=seed,
        matches=tuple(matches),
        players=(a, b),
        seconds=time.perf_counter() - began,
    )


def _play_table(
    player_a: Player,
    player_b: Player,
    sides: list[_Side],
    config: ArenaConfig,
    environments: EnvironmentFactory,
    seed: int,
    progress: Callable[[int], None] | None,
) -> list[Match]:
    """Play ``sides`` in one environment. Slot ``s`` of a side plays a fixed share of its
    games; the ``i``-th game taken for the side with A on port ``p`` is game ``2i + p``."""
    a_port = np.concatenate([np.full(side.slots, side.a_port) for side in sides])
    quota = np.concatenate(
        [
            side.count // side.slots + (np.arange(side.slots) < side.count % side.slots)
            for side in sides
        ]
    )
    slots = len(a_port)
    rows = np.arange(slots)
    observe = set()
    if player_a.reads_features:
        observe |= set(a_port.tolist())
    if player_b.reads_features:
        observe |= set((1 - a_port).tolist())
    first = int(a_port[0])
    levels = (player_a.cpu_level, player_b.cpu_level)
    table = Table(
        tuple(a_port.tolist()), levels if first == 0 else levels[::-1], tuple(sorted(observe))
    )
    env = environments(config, table)
    env_seed, seed_a, seed_b = np.random.SeedSequence(seed).generate_state(3)
    features = env.reset(int(env_seed))
    player_a.start(a_port, int(seed_a))
    player_b.start(1 - a_port, int(seed_b))
    actions = np.empty((slots, 2, HEADS), dtype=np.uint8)
    taken = np.zeros(slots, dtype=np.int64)
    numbered = [0, 0]  # games taken so far with A on port 1, on port 2
    matches: list[Match] = []
    try:
        while (taken < quota).any():
            actions[rows, a_port] = player_a.act(env, features[rows, a_port])
            actions[rows, 1 - a_port] = player_b.act(env, features[rows, 1 - a_port])
            out = env.step(actions)
            features = out.features
            if not out.results:
                continue
            done = np.flatnonzero(out.done)
            player_a.reset_games(done)
            player_b.reset_games(done)
            fresh = [r for r in out.results if taken[r.game] < quota[r.game]]
            for result in fresh:
                port = int(a_port[result.game])
                taken[result.game] += 1
                matches.append(Match(2 * numbered[port] + port, port, result))
                numbered[port] += 1
            if progress is not None and fresh:
                progress(len(fresh))
    finally:
        env.close()
    return matches


def player_stats(
    name: str, character: str, role: int, matches: Sequence[Match], latency_us: np.ndarray
) -> PlayerStats:
    """Player A's (``role`` 0) or B's (1) results over the rated ``matches``."""
    rated = [m for m in matches if not m.result.void]
    wins = losses = draws = 0
    stocks = damage_dealt = damage_taken = self_destructs = 0.0
    frames = 0
    for match in rated:
        r = match.result
        me = match.a_port if role == 0 else 1 - match.a_port
        other = 1 - me
        wins += r.winner == me
        losses += r.winner == other
        draws += r.winner == -1
        stocks += r.stocks_lost[other] - r.stocks_lost[me]
        damage_dealt += r.damage_dealt[me]
        damage_taken += r.damage_dealt[other]
        self_destructs += r.self_destructs[me]
        frames += r.frames
    score = wins + draws / 2
    win_rate, (low, high) = (
        (score / len(rated), wilson_interval(score, len(rated)))
        if rated
        else (math.nan, (math.nan, math.nan))
    )
    minutes = frames / FRAMES_PER_SECOND / 60

    def per_minute(total: float) -> float:
        return total / minutes if minutes else math.nan

    p50, p99 = np.percentile(latency_us, [50, 99]) if len(latency_us) else (math.nan, math.nan)
    return PlayerStats(
        name=name,
        character=character,
        wins=wins,
        losses=losses,
        draws=draws,
        win_rate=win_rate,
        ci_low=low,
        ci_high=high,
        net_stocks_per_minute=per_minute(stocks),
        damage_dealt_per_minute=per_minute(damage_dealt),
        damage_taken_per_minute=per_minute(damage_taken),
        sd_per_minute=per_minute(self_destructs),
        mean_game_seconds=frames / FRAMES_PER_SECOND / len(rated) if rated else math.nan,
        p50_decision_us=float(p50),
        p99_decision_us=float(p99),
    )
