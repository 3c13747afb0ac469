"""Deterministic scripted Melee games, as the records of a Slippi replay.

``generate_games`` plays scripted players (:mod:`.scripted_players`: the reference script on
port 1, a weaker level drawn per game on port 2) against each other in the simulator's engine
(:mod:`.engine`), all games of a call at once, and records every frame the way Slippi does: a
pre-frame update with the state before the frame and the controller inputs as the game reports
them (processed and raw sticks, trigger, physical and processed button bits), and a post-frame
update with the state after it, flags and hurtbox included. Inputs are written as sent: A, B
and Z as themselves, a jump as X, a shield as R, the analog shoulder as the trigger. Every id
written (action states, characters, attacks, stages) is a real Melee value, so the result
reads like a real replay. A game ends when a player runs out of stocks (GAME), when the timer
runs out (TIME) or, when the requested frames run out first, as a no contest.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from melee.enums import Action, Character

from exphil_pipeline.simulator import engine
from exphil_pipeline.simulator.action_groups import UNTOUCHABLE
from exphil_pipeline.simulator.engine_state import EngineState, new_games
from exphil_pipeline.simulator.melee_data import (
    SIM_CHARACTERS,
    SIM_STAGES,
    character_slot,
    external_stage_id,
    sim_tables,
)
from exphil_pipeline.simulator.pad_inputs import PadInputs
from exphil_pipeline.simulator.scripted_players import STRONGEST, ScriptedPlayers
from exphil_pipeline.simulator.slp_records import (
    Frame,
    Game,
    GameEnd,
    GameEndMethod,
    GameStart,
    Hurtbox,
    LCancel,
    PlayerFrame,
    PlayerStart,
    PostFrame,
    PreFrame,
)

MEWTWO = 10
"""Mewtwo's external character id."""
FOX = 2
"""Fox's external character id."""
FINAL_DESTINATION = 32
"""Final Destination's external stage id."""

# Slippi's external (character select) ids of the simulated characters, mapped to the game's
# internal ids.
EXTERNAL_TO_INTERNAL = {
    2: Character.FOX,
    3: Character.GAMEANDWATCH,
    6: Character.LINK,
    10: Character.MEWTWO,
    18: Character.ZELDA,
    19: Character.SHEIK,
    25: Character.GANONDORF,
}
EXTERNAL_IDS = {internal.name: external for external, internal in EXTERNAL_TO_INTERNAL.items()}
"""External id of each simulated character, by libmelee ``Character`` name."""
OPPONENT_LEVELS = (1, 2)
"""Levels the second player's script is drawn from, one per game."""

TIMER_SECONDS = 480
_SAMPLE_START_AT = datetime(2001, 12, 3, tzinfo=UTC)
_CONSOLE_NICK = "exphil sample_games"  # the metadata's consoleNick in every generated replay

# Processed stick value from which a direction bit is set in the processed buttons. The spec
# gives no threshold and real replays vary (0.375-0.75), so this one is ours.
_DIRECTION_THRESHOLD = 0.5
_FULL_TILT = 80  # raw stick value of a full tilt; processed = raw / 80

_BUTTON_X = 0x0400
_BUTTON_A = 0x0100
_BUTTON_B = 0x0200
_BUTTON_Z = 0x0010
_BUTTON_R = 0x0020
_JOYSTICK_BITS = (0x00010000, 0x00020000, 0x00040000, 0x00080000)  # up, down, left, right
_CSTICK_BITS = (0x00100000, 0x00200000, 0x00400000, 0x00800000)
_ANY_TRIGGER = 0x80000000
_SHIELDING = {Action.SHIELD_START.value, Action.SHIELD.value, Action.SHIELD_STUN.value}
_DEAD = {a.value for a in (Action.DEAD_LEFT, Action.DEAD_RIGHT, Action.DEAD_UP, Action.DEAD_DOWN)}


def internal_characters(characters: tuple[int, int]) -> tuple[Character, Character]:
    """The internal ids of two external ids, or a ValueError naming the supported ones."""
    unknown = [c for c in characters if c not in EXTERNAL_TO_INTERNAL]
    if unknown:
        raise ValueError(
            f"unsupported external character ids {unknown}; the simulator plays "
            f"{sorted(EXTERNAL_TO_INTERNAL)}"
        )
    first, second = (EXTERNAL_TO_INTERNAL[c] for c in characters)
    return first, second


def stage_index(stage: int) -> int:
    """Index of an external stage id among the simulator's legal stages."""
    ids = [external_stage_id(s) for s in SIM_STAGES]
    if stage not in ids:
        raise ValueError(f"unsupported external stage id {stage}; the simulator has {ids}")
    return ids.index(stage)


@dataclass
class FrameRecord:
    """What one frame of every game looked like: the pre-frame state and inputs, and the
    post-frame state (copies, one per frame)."""

    pre: EngineState
    inputs: PadInputs
    post: EngineState


_PRE_FIELDS = ("action", "x", "y", "facing", "percent")
_PAD_FIELDS = (
    "stick_x",
    "stick_y",
    "cstick_x",
    "cstick_y",
    "a",
    "b",
    "jump",
    "z",
    "shield",
    "shoulder",
)
_POST_FIELDS = (
    "character",
    "action",
    "x",
    "y",
    "facing",
    "percent",
    "shield",
    "last_attack_landed",
    "combo",
    "last_hit_by",
    "stocks",
    "age",
    "hitstun",
    "hitlag",
    "invulnerable",
    "airborne",
    "ground",
    "jumps",
    "l_cancel",
    "vx",
    "vy",
    "kb_x",
    "kb_y",
)


@dataclass(frozen=True)
class RecordColumns:
    """The fields a replay needs of every recorded frame, stacked once for all games:
    ``[frame, game, port]`` arrays by field name, and the frame ids ``[frame, game]``. A game
    is then built from Python lists: reading numpy scalars one frame at a time made assembly
    about a quarter slower."""

    pre: dict[str, np.ndarray]
    pads: dict[str, np.ndarray]
    post: dict[str, np.ndarray]
    frame: np.ndarray

    @classmethod
    def of(cls, recordings: list[FrameRecord]) -> RecordColumns:
        def stack(records: list, names: tuple[str, ...]) -> dict[str, np.ndarray]:
            return {name: np.stack([getattr(r, name) for r in records]) for name in names}

        return cls(
            stack([r.pre for r in recordings], _PRE_FIELDS),
            stack([r.inputs for r in recordings], _PAD_FIELDS),
            stack([r.post for r in recordings], _POST_FIELDS),
            np.stack([r.post.frame for r in recordings]),
        )

    def player(self, game: int, port: int, count: int) -> tuple[dict[str, list], ...]:
        """Pre-frame state, inputs and post-frame state of one player over the first
        ``count`` frames, as flat Python lists by field name."""
        return tuple(
            {name: column[:count, game, port].tolist() for name, column in part.items()}
            for part in (self.pre, self.pads, self.post)
        )


def generate_games(
    seeds: list[int],
    frames: int,
    characters: tuple[int, int] = (MEWTWO, FOX),
    stage: int = FINAL_DESTINATION,
) -> list[Game]:
    """Simulate one scripted two-player game per seed, all at once.

    ``frames`` is the most frames a replay holds, counted from frame -123. ``characters`` are
    external ids for ports 0 and 1, ``stage`` an external stage id of a legal stage. The same
    arguments always give the same games.
    """
    if frames < 1:
        raise ValueError(f"frames must be at least 1, got {frames}")
    internal = internal_characters(characters)
    rngs = [random.Random(seed) for seed in seeds]
    n = len(seeds)
    slots = np.tile([character_slot(c) for c in internal], (n, 1))
    state = new_games(slots, np.full(n, stage_index(stage)), stocks=4)
    levels = np.array([[STRONGEST, r.choice(OPPONENT_LEVELS)] for r in rngs])
    players = ScriptedPlayers(levels, seed=rngs[0].getrandbits(32) if rngs else 0)
    random_seeds = [r.getrandbits(32) for r in rngs]
    recordings, ends = _play(state, players, frames)
    columns = RecordColumns.of(recordings)
    return [
        assemble_game(index, columns, ends[index], characters, stage, random_seeds[index])
        for index in range(n)
    ]


def generate_game(
    seed: int,
    frames: int,
    characters: tuple[int, int] = (MEWTWO, FOX),
    stage: int = FINAL_DESTINATION,
) -> Game:
    """One scripted game (see :func:`generate_games`)."""
    return generate_games([seed], frames, characters, stage)[0]


def _play(
    state: EngineState, players: ScriptedPlayers, frames: int
) -> tuple[list[FrameRecord], list[tuple[int, GameEndMethod]]]:
    """Step every game until each has ended; per game, the frame count and how it ended."""
    tables = sim_tables()
    last_timer_frame = TIMER_SECONDS * 60 - 1
    ends: list[tuple[int, GameEndMethod] | None] = [None] * state.games
    recordings = []
    for count in range(1, frames + 1):
        pad = players.inputs(state, tables)
        pre = state.copy()
        engine.step(state, pad, tables)
        recordings.append(FrameRecord(pre, pad, state.copy()))
        out = (state.stocks == 0).any(axis=1)
        for index in np.flatnonzero(out):
            ends[index] = ends[index] or (count, GameEndMethod.GAME)
        if int(state.frame[0]) == last_timer_frame:
            ends = [end or (count, GameEndMethod.TIME) for end in ends]
        if all(ends):
            break
    return recordings, [end or (len(recordings), GameEndMethod.NO_CONTEST) for end in ends]


def assemble_game(
    index: int,
    columns: RecordColumns,
    end: tuple[int, GameEndMethod],
    characters: tuple[int, int],
    stage: int,
    random_seed: int,
) -> Game:
    """Game ``index`` of the recorded ``columns`` (its first ``end[0]`` frames) as replay
    records."""
    count, method = end
    start = GameStart(
        stage=stage,
        players=tuple(PlayerStart(port, c) for port, c in enumerate(characters)),
        random_seed=random_seed,
        timer=TIMER_SECONDS,
    )
    players = [columns.player(index, port, count) for port in range(2)]
    frame_ids = columns.frame[:count, index].tolist()
    seed = random_seed
    game_frames = []
    for t in range(count):
        seed = _next_seed(seed)
        game_frames.append(
            Frame(
                frame_ids[t],
                seed,
                tuple(
                    PlayerFrame(_pre_frame(pre, pad, t), _post_frame(post, t))
                    for pre, pad, post in players
                ),
            )
        )
    final = [post for _, _, post in players]
    return Game(
        start=start,
        frames=tuple(game_frames),
        end=GameEnd(method, placements=_placements(final, count - 1)),
        start_at=_SAMPLE_START_AT,
        console_nick=_CONSOLE_NICK,
    )


def _next_seed(seed: int) -> int:
    # Stand-in for the game's RNG: a 32-bit LCG so the seed changes every frame like Melee's.
    return (seed * 214013 + 2531011) & 0xFFFF_FFFF


def _placements(posts: list[dict[str, list]], t: int) -> tuple[int, int, int, int]:
    ranked = sorted(range(2), key=lambda p: (-posts[p]["stocks"][t], posts[p]["percent"][t], p))
    placements = [-1, -1, -1, -1]
    for place, port in enumerate(ranked):
        placements[port] = place
    return (placements[0], placements[1], placements[2], placements[3])


def _direction_bits(x: float, y: float, bits: tuple[int, int, int, int]) -> int:
    up, down, left, right = bits
    return (
        (up if y >= _DIRECTION_THRESHOLD else 0)
        | (down if y <= -_DIRECTION_THRESHOLD else 0)
        | (left if x <= -_DIRECTION_THRESHOLD else 0)
        | (right if x >= _DIRECTION_THRESHOLD else 0)
    )


def _pre_frame(state: dict[str, list], pad: dict[str, list], t: int) -> PreFrame:
    stick_x, stick_y = pad["stick_x"][t], pad["stick_y"][t]
    cstick_x, cstick_y = pad["cstick_x"][t], pad["cstick_y"][t]
    # The analog shoulder as sent; a shield (L, R or the shoulder past its threshold) as R.
    shield, trigger = pad["shield"][t], pad["shoulder"][t]
    physical = (
        (_BUTTON_A if pad["a"][t] else 0)
        | (_BUTTON_B if pad["b"][t] else 0)
        | (_BUTTON_X if pad["jump"][t] else 0)
        | (_BUTTON_Z if pad["z"][t] else 0)
        | (_BUTTON_R if shield else 0)
    )
    processed = (
        physical
        | _direction_bits(stick_x, stick_y, _JOYSTICK_BITS)
        | _direction_bits(cstick_x, cstick_y, _CSTICK_BITS)
        | (_ANY_TRIGGER if trigger else 0)
    )
    return PreFrame(
        action_state=state["action"][t],
        x=state["x"][t],
        y=state["y"][t],
        facing=state["facing"][t],
        joystick_x=stick_x,
        joystick_y=stick_y,
        cstick_x=cstick_x,
        cstick_y=cstick_y,
        trigger=trigger,
        buttons=processed,
        physical_buttons=physical,
        physical_l=0.0,
        physical_r=trigger,
        raw_analog_x=round(stick_x * _FULL_TILT),
        percent=state["percent"][t],
        raw_analog_y=round(stick_y * _FULL_TILT),
    )


def _post_frame(state: dict[str, list], t: int) -> PostFrame:
    action = state["action"][t]
    flags = (
        0,
        0x20 if state["hitlag"][t] else 0,
        0x80 if action in _SHIELDING else 0,
        0x02 if state["hitstun"][t] else 0,
        0x40 if action in _DEAD else 0,
    )
    protected = bool(state["invulnerable"][t]) or bool(UNTOUCHABLE[action])
    airborne = bool(state["airborne"][t])
    vx = state["vx"][t]
    return PostFrame(
        character=SIM_CHARACTERS[state["character"][t]].value,
        action_state=action,
        x=state["x"][t],
        y=state["y"][t],
        facing=state["facing"][t],
        percent=state["percent"][t],
        shield=state["shield"][t],
        last_attack_landed=state["last_attack_landed"][t],
        combo_count=state["combo"][t],
        last_hit_by=state["last_hit_by"][t],
        stocks=state["stocks"][t],
        action_frame=float(state["age"][t]),
        state_flags=flags,
        misc_as=float(state["hitstun"][t]),
        airborne=airborne,
        last_ground_id=state["ground"][t],
        jumps_remaining=state["jumps"][t],
        l_cancel=LCancel(state["l_cancel"][t]),
        hurtbox=Hurtbox.INVULNERABLE if protected else Hurtbox.VULNERABLE,
        self_air_x_speed=vx if airborne else 0.0,
        self_y_speed=state["vy"][t],
        attack_x_speed=state["kb_x"][t],
        attack_y_speed=state["kb_y"][t],
        self_ground_x_speed=0.0 if airborne else vx,
        hitlag=float(state["hitlag"][t]),
    )
