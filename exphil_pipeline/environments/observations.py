"""What a policy sees of a simulated game, two ways that must agree exactly.

- ``features``: the embedding spec's vectors (``runtime.embedding_spec.embed_batch``) of every
  game for each port, from the engine's arrays in one vectorized pass (throughput path);
- ``gamestates``: one libmelee ``GameState`` per game, filled the way libmelee's console fills
  it from a replay, for code that plays through ``runtime`` (``embed_gamestate``).

Both present the engine's values as Slippi records them (so a simulated game, saved as a
replay and ingested, embeds to the same vectors): the frame counter of an action as Slippi
writes it, libmelee's shift of zero-indexed actions applied on the libmelee side only.
"""

from __future__ import annotations

import numpy as np
from melee.enums import Action, Character
from melee.gamestate import GameState, PlayerState

from exphil_pipeline.simulator.combat import untouchable
from exphil_pipeline.simulator.engine_state import EngineState
from exphil_pipeline.simulator.melee_data import SIM_CHARACTERS, SIM_STAGES, external_stage_id
from runtime.embedding_spec import (
    EMBEDDING_SPEC,
    SLOT_NULL_FILL,
    ZERO_INDEXED_ACTIONS,
    GameColumns,
    ItemColumns,
    SlotColumns,
    embed_batch,
)

INTERNAL_IDS = np.array([c.value for c in SIM_CHARACTERS], dtype=np.int64)
EXTERNAL_STAGE_IDS = [external_stage_id(s) for s in SIM_STAGES]


def _slot(state: EngineState, port: int, present: bool) -> SlotColumns:
    n = state.games
    if not present:
        return SlotColumns(**{name: np.full(n, value) for name, value in SLOT_NULL_FILL.items()})
    at = (slice(None), port)
    airborne = state.airborne[at]
    protected = (state.invulnerable[at] > 0) | untouchable(state)[at]
    return SlotColumns(
        present=np.ones(n, dtype=np.bool_),
        character=INTERNAL_IDS[state.character[at]],
        action_state=state.action[at],
        action_frame=state.age[at].astype(np.float32),
        x=state.x[at],
        y=state.y[at],
        percent=state.percent[at],
        shield=state.shield[at],
        stocks=state.stocks[at],
        facing=state.facing[at],
        airborne=airborne,
        jumps_left=state.jumps[at],
        hitlag=state.hitlag[at].astype(np.float32),
        hitstun_misc=state.hitstun[at].astype(np.float32),
        vel_self_x_air=np.where(airborne, state.vx[at], np.float32(0)),
        vel_self_y=state.vy[at],
        vel_knockback_x=state.kb_x[at],
        vel_knockback_y=state.kb_y[at],
        vel_self_x_ground=np.where(airborne, np.float32(0), state.vx[at]),
        hurtbox_state=protected.astype(np.uint8),
    )


def embed_state(
    state: EngineState, previous_input: np.ndarray, ports: tuple[int, ...] = (0, 1)
) -> np.ndarray:
    """``float32[N, 2, D]``: each game embedded for port 1 and for port 2 (ego-centric), with
    each port's ``previous_input`` (``uint8[N, 2, heads]``); ports not in ``ports`` stay zero.
    One stage per call."""
    out = np.zeros((state.games, 2, EMBEDDING_SPEC.dim), dtype=np.float32)
    if not ports:
        return out
    stages = np.unique(state.stage)
    if len(stages) != 1:
        raise ValueError("embed_state takes games on one stage; group games by stage first")
    empty = _slot(state, 0, present=False)
    for port in ports:
        other = 1 - port
        columns = GameColumns(
            slots=(_slot(state, port, True), empty, _slot(state, other, True), empty),
            external_stage=EXTERNAL_STAGE_IDS[int(stages[0])],
            items=ItemColumns.empty(),
            previous_input=previous_input[:, port],
            target_port=port + 1,
            opponent_port=other + 1,
            frames=state.frame,
        )
        out[:, port] = embed_batch(columns)
    return out


def gamestate(state: EngineState, game: int) -> GameState:
    """Game ``game`` as a libmelee ``GameState`` (ports 1 and 2), as its console reports it."""
    out = GameState()
    out.frame = int(state.frame[game])
    out.stage = SIM_STAGES[int(state.stage[game])]
    out.projectiles = []
    protected = (state.invulnerable[game] > 0) | untouchable(state)[game]
    for port in range(2):
        at = (game, port)
        player = PlayerState()
        character = Character(int(INTERNAL_IDS[state.character[at]]))
        action = int(state.action[at])
        player.character = character
        player.action = Action(action)
        # libmelee counts the frames of some actions from zero and shifts them by one.
        shift = int(ZERO_INDEXED_ACTIONS[character.value, min(action, 1023)])
        player.action_frame = int(state.age[at]) + shift
        player.position.x = float(state.x[at])
        player.position.y = float(state.y[at])
        player.percent = float(state.percent[at])
        player.shield_strength = float(state.shield[at])
        player.stock = int(state.stocks[at])
        player.facing = bool(state.facing[at] > 0)
        player.on_ground = not bool(state.airborne[at])
        player.invulnerable = bool(protected[port])
        player.hitlag_left = int(state.hitlag[at])
        player.hitstun_frames_left = int(state.hitstun[at])
        player.jumps_left = int(state.jumps[at])
        airborne = bool(state.airborne[at])
        player.speed_air_x_self = float(state.vx[at]) if airborne else 0.0
        player.speed_ground_x_self = 0.0 if airborne else float(state.vx[at])
        player.speed_y_self = float(state.vy[at])
        player.speed_x_attack = float(state.kb_x[at])
        player.speed_y_attack = float(state.kb_y[at])
        player.nana = None
        out.players[port + 1] = player
    return out
