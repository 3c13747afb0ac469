"""Per-frame rewards of a two-player game, from replays (the ``frames`` table) or the simulator.

A transition is two consecutive frames, ``before`` and ``after``, each a :class:`RewardFrames`
of arrays ``[..., 2]`` (last axis: port 1's player, port 2's player). :func:`frame_rewards`
turns a batch of transitions into float32 rewards ``[..., 2]`` with array operations only.

The default terms are zero-sum: each stock the opponent loses is ``+stock`` and each own
stock lost ``-stock``; each percent the opponent takes is ``+damage`` and each percent taken
``-damage``, so port 2's reward is minus port 1's. The shaping terms of :class:`RewardConfig`
(all off by default) are each player's own and break that symmetry when switched on.

Damage: Melee resets percent to 0 some frames after a stock is lost (replays show the old
percent for a while after the death frame, the simulator resets it on the death frame).
Damage taken in a transition is therefore ``max(after.percent - before.percent, 0)`` when
no stock was lost that frame, and 0 on a frame a stock was lost: the reset never reads as
healing or as damage, and the damage taken within a stock is counted once.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import polars as pl
from melee.enums import Action

from exphil_pipeline.rl.character_shaping import character_shaping
from exphil_pipeline.simulator.engine_state import EngineState
from exphil_pipeline.simulator.melee_data import SIM_CHARACTERS

LEDGE_STATES = (Action.EDGE_CATCHING.value, Action.EDGE_HANGING.value)
"""Catching and hanging on the ledge (Melee's CliffCatch and CliffWait)."""
HITSTUN_STATES = (
    *range(Action.DAMAGE_HIGH_1.value, Action.DAMAGE_FLY_ROLL.value + 1),
    Action.DAMAGE_SCREW.value,
    Action.DAMAGE_SCREW_AIR.value,
    Action.DAMAGE_GROUND.value,
)
"""The damage action states a hit puts a player in."""
OFF_STAGE_STATES = tuple(range(Action.DEAD_DOWN.value, Action.ON_HALO_WAIT.value + 1))
"""Dying, dead and on the respawn halo: positions there are not the player moving."""


@dataclass(frozen=True)
class RewardConfig:
    """Weights of each reward term (per unit of what the field names)."""

    stock: float = 1.0
    """Per stock the opponent loses, and minus this per own stock lost (zero-sum)."""
    damage: float = 0.01
    """Per percent the opponent takes, and minus this per percent taken (zero-sum)."""
    approach: float = 0.0
    """Per unit of distance closed to the opponent in a frame (minus per unit opened). Both
    players get it. Frames where either player is dying, dead or on the respawn halo get 0,
    so respawning is not movement. A difference of distances, it is potential-based shaping
    (Ng et al. 1999) up to the discount and that mask: it mostly speeds learning up rather
    than changing what is optimal."""
    ledge: float = 0.0
    """Penalty per frame the player catches or hangs on the ledge (``EDGE_CATCHING``,
    ``EDGE_HANGING``; Melee's CliffCatch/CliffWait), against ledge stalling."""
    self_destruct: float = 0.0
    """Extra penalty per stock lost while ``RewardFrames.hit_by_opponent`` is False: the
    opponent had not hit the player since it last stood on the ground."""
    combo: float = 0.0
    """Bonus per hit landed (the opponent's percent rose) while the opponent was still in
    hitstun from an earlier hit."""
    character_weight: float = 0.0
    """Weight of each player's own character's term from
    :data:`exphil_pipeline.rl.character_shaping.CHARACTER_SHAPING` (0: off)."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not np.isfinite(value):
                raise ValueError(f"RewardConfig.{f.name} must be finite, got {value}")
        negative = [
            f.name
            for f in fields(self)
            if f.name != "character_weight" and getattr(self, f.name) < 0
        ]
        if negative:
            raise ValueError(
                f"RewardConfig fields {negative} must be >= 0 (penalties are subtracted already)"
            )


@dataclass(frozen=True)
class RewardFrames:
    """What the reward reads of a frame, each array ``[..., 2]`` (last axis: port 1, port 2).

    ``character`` is libmelee's ``Character`` value (Melee's internal id) and
    ``action_state`` Melee's action state id.
    """

    stocks: np.ndarray
    """Stocks left (int)."""
    percent: np.ndarray
    """Damage percent (float)."""
    x: np.ndarray
    """Position x (float)."""
    y: np.ndarray
    """Position y (float)."""
    action_state: np.ndarray
    """Action state id (int)."""
    character: np.ndarray
    """Internal character id (int)."""
    hitstun: np.ndarray
    """In hitstun from an opponent's hit (bool)."""
    hit_by_opponent: np.ndarray
    """The opponent hit this player since it last stood on the ground outside hitstun
    (bool); a death clears it."""

    def __post_init__(self) -> None:
        shape = self.stocks.shape
        if not shape or shape[-1] != 2:
            raise ValueError(f"RewardFrames arrays must be [..., 2], stocks is {shape}")
        wrong = {f.name: getattr(self, f.name).shape for f in fields(self)}
        wrong = {name: s for name, s in wrong.items() if s != shape}
        if wrong:
            raise ValueError(f"RewardFrames arrays must all be {shape}: {wrong}")

    def __getitem__(self, index: object) -> RewardFrames:
        """The same frames indexed on the leading axes (``frames[:-1]``, ``frames[1:]``)."""
        return RewardFrames(**{f.name: getattr(self, f.name)[index] for f in fields(self)})


def stocks_lost(before: RewardFrames, after: RewardFrames) -> np.ndarray:
    """Stocks each player lost in the transition, int32 ``[..., 2]`` (a new game's reset to
    full stocks is not a gain)."""
    return np.maximum(before.stocks.astype(np.int32) - after.stocks.astype(np.int32), 0)


def damage_taken(before: RewardFrames, after: RewardFrames) -> np.ndarray:
    """Percent each player took in the transition, float32 ``[..., 2]`` (0 on a frame it
    lost a stock; see the module docstring)."""
    rise = np.maximum(after.percent.astype(np.float32) - before.percent, np.float32(0))
    return np.where(stocks_lost(before, after) > 0, np.float32(0), rise)


def _opponent(values: np.ndarray) -> np.ndarray:
    return values[..., ::-1]


def frame_rewards(before: RewardFrames, after: RewardFrames, config: RewardConfig) -> np.ndarray:
    """Reward of each player for the transition ``before -> after``, float32 ``[..., 2]``."""
    lost = stocks_lost(before, after)
    taken = damage_taken(before, after)
    reward = config.stock * (_opponent(lost) - lost) + config.damage * (_opponent(taken) - taken)
    reward = reward.astype(np.float32)
    if config.approach:
        distance_before = np.hypot(
            before.x[..., 0] - before.x[..., 1], before.y[..., 0] - before.y[..., 1]
        )
        distance_after = np.hypot(
            after.x[..., 0] - after.x[..., 1], after.y[..., 0] - after.y[..., 1]
        )
        moving = ~(
            np.isin(before.action_state, OFF_STAGE_STATES)
            | np.isin(after.action_state, OFF_STAGE_STATES)
            | (lost > 0)
        ).any(axis=-1)
        closed = np.where(moving, distance_before - distance_after, 0)
        reward += config.approach * closed[..., None].astype(np.float32)
    if config.ledge:
        reward -= config.ledge * np.isin(after.action_state, LEDGE_STATES)
    if config.self_destruct:
        reward -= config.self_destruct * lost * ~before.hit_by_opponent
    if config.combo:
        reward += config.combo * ((_opponent(taken) > 0) & _opponent(before.hitstun))
    if config.character_weight:
        reward += config.character_weight * character_shaping(before, after)
    return reward.astype(np.float32)


_INTERNAL_ID_BY_SLOT = np.array([c.value for c in SIM_CHARACTERS], dtype=np.int16)


def reward_frames_from_engine(state: EngineState) -> RewardFrames:
    """The simulator's state of all its games, ``[N, 2]``."""
    return RewardFrames(
        stocks=state.stocks.copy(),
        percent=state.percent.copy(),
        x=state.x.copy(),
        y=state.y.copy(),
        action_state=state.action.copy(),
        character=_INTERNAL_ID_BY_SLOT[state.character],
        hitstun=state.hitstun > 0,
        hit_by_opponent=state.hit_since_landing.copy(),
    )


def _hit_by_opponent() -> pl.Expr:
    """:attr:`RewardFrames.hit_by_opponent` over one slot's frames sorted by frame: a hit
    (percent rose, ``last_hit_by`` the opponent) sets it; standing on the ground outside
    hitstun, or dying, clears it; it holds in between. Replays before Slippi 3.0 have no
    ``airborne``, so there only a death clears it."""
    same_stock = pl.col("stocks") == pl.col("stocks").shift(1)
    hit = (
        same_stock
        & (pl.col("percent") > pl.col("percent").shift(1))
        & (pl.col("last_hit_by").cast(pl.Int16) == pl.col("opponent_index"))
    )
    died = pl.col("stocks") < pl.col("stocks").shift(1)
    grounded = ~pl.col("airborne").fill_null(True) & ~pl.col("hitstun")
    event = pl.when(hit).then(True).when(died | grounded).then(False).otherwise(None)
    return event.forward_fill().fill_null(False)


def _one_v_one_ports(frames: pl.DataFrame) -> pl.DataFrame:
    """``game_id`` and its two leader ``ports`` (sorted) for every game with exactly two."""
    return (
        frames.filter(~pl.col("is_follower"))
        .group_by("game_id")
        .agg(pl.col("port").unique().sort().alias("ports"))
        .filter(pl.col("ports").list.len() == 2)
    )


def reward_frames_from_frames_table(frames: pl.DataFrame) -> dict[str, RewardFrames]:
    """``[T, 2]`` frames of every 1v1 game in a ``frames`` table, by game id.

    Only leaders count (Nana is not a player). Games whose leaders are not exactly two ports
    (doubles, free-for-alls) are left out: they have no single opponent. ``T`` is the game's
    frame count and the two players are its two ports in increasing order. A frame where a
    player is absent (``present`` false) keeps that player's last known state.
    ``hitstun`` is a damage action state with hitstun left (``hitstun_misc`` > 0; replays
    before Slippi 2.0 lack it, and there the whole damage animation counts).
    """
    leaders = frames.filter(~pl.col("is_follower"))
    state = ["stocks", "percent", "x", "y", "action_state", "character", "airborne"]
    table = (
        leaders.join(_one_v_one_ports(frames), on="game_id")
        .sort("game_id", "port", "frame")
        .with_columns(
            pl.col(state).forward_fill().over("game_id", "port"),
            opponent_index=(
                pl.col("ports").list.sum().cast(pl.Int16) - pl.col("port").cast(pl.Int16) - 1
            ),
        )
        .with_columns(
            hitstun=pl.col("action_state").is_in(HITSTUN_STATES)
            & pl.col("hitstun_misc").fill_null(1.0).gt(0)
        )
    )
    table = table.with_columns(hit_by_opponent=_hit_by_opponent().over("game_id", "port"))
    out: dict[str, RewardFrames] = {}
    for (game_id,), game in table.group_by("game_id", maintain_order=True):
        out[str(game_id)] = RewardFrames(
            **{f.name: _time_series(game, f.name) for f in fields(RewardFrames)}
        )
    return out


def _time_series(game: pl.DataFrame, column: str) -> np.ndarray:
    """``column`` of one game's rows (sorted by port, then frame) as ``[T, 2]``."""
    values = game[column].fill_null(0).to_numpy()
    return values.reshape(2, game.height // 2).T.copy()


def replay_returns(frames: pl.DataFrame, config: RewardConfig) -> pl.DataFrame:
    """One row per (game_id, port) of every 1v1 game in ``frames``: the undiscounted
    ``return`` over the whole game under ``config``, and the stocks and percent behind it
    (``stocks_taken``, ``stocks_lost``, ``damage_dealt``, ``damage_taken``)."""
    ports = dict(_one_v_one_ports(frames).iter_rows())
    rows: list[tuple[object, ...]] = []
    for game_id, game in reward_frames_from_frames_table(frames).items():
        before, after = game[:-1], game[1:]
        returns = frame_rewards(before, after, config).sum(axis=0, dtype=np.float64)
        lost = stocks_lost(before, after).sum(axis=0)
        taken = damage_taken(before, after).sum(axis=0, dtype=np.float64)
        for player, port in enumerate(ports[game_id]):
            opponent = 1 - player
            rows.append(
                (
                    game_id,
                    port,
                    float(returns[player]),
                    int(lost[opponent]),
                    int(lost[player]),
                    float(taken[opponent]),
                    float(taken[player]),
                )
            )
    schema = {
        "game_id": pl.String,
        "port": pl.UInt8,
        "return": pl.Float64,
        "stocks_taken": pl.Int64,
        "stocks_lost": pl.Int64,
        "damage_dealt": pl.Float64,
        "damage_taken": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema, orient="row").sort("game_id", "port")
