"""Deterministic scripted Melee games, as the records of a Slippi replay.

``generate_game`` plays two scripted players (``scripted_players``) against each other in the
simulation engine (``physics``) and records every frame the way Slippi does: a pre-frame update
with the state before the frame and the controller inputs as the game reports them (processed
and raw sticks, trigger, physical and processed button bits), and a post-frame update with the
state after it, flags and hurtbox included. Every id written (action states, characters,
attacks) is a real Melee value, so the result reads like a real replay. The game ends when a
player runs out of stocks (GAME), when the timer runs out (TIME) or, when the requested frames
run out first, as a no contest.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

from melee.enums import Character

from exphil_pipeline.simulator import physics
from exphil_pipeline.simulator.fighter import (
    DEAD_ACTIONS,
    FULL_TILT,
    HALO_ACTIONS,
    SHIELD_ACTIONS,
    SPAWN_X,
    Fighter,
    Inputs,
    new_fighter,
)
from exphil_pipeline.simulator.scripted_players import (
    REFERENCE_TRAITS,
    Traits,
    choose_inputs,
    draw_opponent_traits,
)
from exphil_pipeline.simulator.slp_records import (
    FIRST_FRAME,
    Frame,
    Game,
    GameEnd,
    GameEndMethod,
    GameStart,
    Hurtbox,
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

# Slippi's external (character select) ids mapped to the game's internal ids. Ice Climbers
# are left out: Nana is a second character per frame, which the replay model does not hold.
_INTERNAL_CHARACTER = {
    0: Character.CPTFALCON,
    1: Character.DK,
    2: Character.FOX,
    3: Character.GAMEANDWATCH,
    4: Character.KIRBY,
    5: Character.BOWSER,
    6: Character.LINK,
    7: Character.LUIGI,
    8: Character.MARIO,
    9: Character.MARTH,
    10: Character.MEWTWO,
    11: Character.NESS,
    12: Character.PEACH,
    13: Character.PIKACHU,
    15: Character.JIGGLYPUFF,
    16: Character.SAMUS,
    17: Character.YOSHI,
    18: Character.ZELDA,
    19: Character.SHEIK,
    20: Character.FALCO,
    21: Character.YLINK,
    22: Character.DOC,
    23: Character.ROY,
    24: Character.PICHU,
    25: Character.GANONDORF,
}

_TIMER_SECONDS = 480
_SAMPLE_START_AT = datetime(2001, 12, 3, tzinfo=UTC)
_CONSOLE_NICK = "exphil sample_games"  # the metadata's consoleNick in every generated replay

# Processed stick value from which a direction bit is set in the processed buttons. The spec
# gives no threshold and real replays vary (0.375-0.75), so this one is ours.
_DIRECTION_THRESHOLD = 0.5

_BUTTON_X = 0x0400
_BUTTON_A = 0x0100
_BUTTON_R = 0x0020
_JOYSTICK_BITS = (0x00010000, 0x00020000, 0x00040000, 0x00080000)  # up, down, left, right
_CSTICK_BITS = (0x00100000, 0x00200000, 0x00400000, 0x00800000)
_ANY_TRIGGER = 0x80000000


def generate_game(
    seed: int,
    frames: int,
    characters: tuple[int, int] = (MEWTWO, FOX),
    stage: int = FINAL_DESTINATION,
) -> Game:
    """Simulate a scripted two-player game.

    ``frames`` is the most frames the replay holds, counted from frame -123; the game stops
    earlier when a player loses the last stock (GAME) or the timer runs out (TIME), and ends
    as a no contest otherwise. ``characters`` are external ids for ports 0 and 1. Any
    ``stage`` id is written as given, but the simulated stage is always Final Destination's
    shape. The same arguments always give the same game.
    """
    if frames < 1:
        raise ValueError(f"frames must be at least 1, got {frames}")
    unknown = [c for c in characters if c not in _INTERNAL_CHARACTER]
    if unknown:
        raise ValueError(f"unsupported external character ids {unknown}")
    rng = random.Random(seed)
    start = GameStart(
        stage=stage,
        players=tuple(PlayerStart(port, c) for port, c in enumerate(characters)),
        random_seed=rng.getrandbits(32),
        timer=_TIMER_SECONDS,
    )
    fighters = [
        new_fighter(player.port, _INTERNAL_CHARACTER[player.character], spawn_x, player.stocks)
        for player, spawn_x in zip(start.players, SPAWN_X, strict=True)
    ]
    traits = [REFERENCE_TRAITS, draw_opponent_traits(rng)]
    game_frames, method = _play(fighters, traits, rng, start.random_seed, frames)
    return Game(
        start=start,
        frames=tuple(game_frames),
        end=GameEnd(method, placements=_placements(fighters)),
        start_at=_SAMPLE_START_AT,
        console_nick=_CONSOLE_NICK,
    )


def _play(
    fighters: list[Fighter], traits: list[Traits], rng: random.Random, seed: int, frames: int
) -> tuple[list[Frame], GameEndMethod]:
    """Record up to ``frames`` frames from FIRST_FRAME on, and how the game ended."""
    last_timer_frame = _TIMER_SECONDS * 60 - 1
    game_frames = []
    for number in range(FIRST_FRAME, FIRST_FRAME + frames):
        seed = _next_seed(seed)
        game_frames.append(_record_frame(fighters, traits, rng, number, seed))
        if any(f.stocks == 0 for f in fighters):
            return game_frames, GameEndMethod.GAME
        if number == last_timer_frame:
            return game_frames, GameEndMethod.TIME
    return game_frames, GameEndMethod.NO_CONTEST


def _next_seed(seed: int) -> int:
    # Stand-in for the game's RNG: a 32-bit LCG so the seed changes every frame like Melee's.
    return (seed * 214013 + 2531011) & 0xFFFF_FFFF


def _record_frame(
    fighters: list[Fighter], traits: list[Traits], rng: random.Random, number: int, seed: int
) -> Frame:
    """Choose inputs, step the engine and record the frame's pre- and post-frame updates."""
    inputs = choose_inputs(fighters, traits, rng)
    pres = [_pre_frame(f, i) for f, i in zip(fighters, inputs, strict=True)]
    physics.step(fighters, inputs, number)
    players = tuple(PlayerFrame(pre, _post_frame(f)) for pre, f in zip(pres, fighters, strict=True))
    return Frame(number, seed, players)


def _placements(fighters: list[Fighter]) -> tuple[int, int, int, int]:
    ranked = sorted(fighters, key=lambda f: (-f.stocks, f.percent, f.port))
    placements = [-1, -1, -1, -1]
    for place, f in enumerate(ranked):
        placements[f.port] = place
    return (placements[0], placements[1], placements[2], placements[3])


def _direction_bits(x: float, y: float, bits: tuple[int, int, int, int]) -> int:
    up, down, left, right = bits
    return (
        (up if y >= _DIRECTION_THRESHOLD else 0)
        | (down if y <= -_DIRECTION_THRESHOLD else 0)
        | (left if x <= -_DIRECTION_THRESHOLD else 0)
        | (right if x >= _DIRECTION_THRESHOLD else 0)
    )


def _pre_frame(f: Fighter, inputs: Inputs) -> PreFrame:
    # The script's stick positions all lie outside the game's dead zone, so the processed
    # value is simply raw / 80.
    stick_x, stick_y, cstick_x = (
        v / FULL_TILT for v in (inputs.stick_x, inputs.stick_y, inputs.cstick_x)
    )
    trigger = 1.0 if inputs.shield else 0.0
    physical = (
        (_BUTTON_A if inputs.a else 0)
        | (_BUTTON_X if inputs.jump else 0)
        | (_BUTTON_R if inputs.shield else 0)
    )
    processed = (
        physical
        | _direction_bits(stick_x, stick_y, _JOYSTICK_BITS)
        | _direction_bits(cstick_x, 0.0, _CSTICK_BITS)
        | (_ANY_TRIGGER if trigger else 0)
    )
    return PreFrame(
        action_state=f.action.value,
        x=f.x,
        y=f.y,
        facing=f.facing,
        joystick_x=stick_x,
        joystick_y=stick_y,
        cstick_x=cstick_x,
        cstick_y=0.0,
        trigger=trigger,
        buttons=processed,
        physical_buttons=physical,
        physical_l=0.0,
        physical_r=trigger,
        raw_analog_x=inputs.stick_x,
        percent=f.percent,
        raw_analog_y=inputs.stick_y,
    )


def _post_frame(f: Fighter) -> PostFrame:
    flags = (
        0,
        0x20 if f.hitlag else 0,
        0x80 if f.action in SHIELD_ACTIONS else 0,
        0x02 if f.hitstun else 0,
        0x40 if f.action in DEAD_ACTIONS else 0,
    )
    protected = f.invulnerable or f.action in HALO_ACTIONS
    return PostFrame(
        character=f.character.value,
        action_state=f.action.value,
        x=f.x,
        y=f.y,
        facing=f.facing,
        percent=f.percent,
        shield=f.shield,
        last_attack_landed=f.last_attack_landed,
        combo_count=f.combo,
        last_hit_by=f.last_hit_by,
        stocks=f.stocks,
        action_frame=float(f.age),
        state_flags=flags,
        misc_as=float(f.hitstun),
        airborne=f.airborne,
        last_ground_id=f.ground,
        jumps_remaining=f.jumps,
        l_cancel=f.l_cancel,
        hurtbox=Hurtbox.INVULNERABLE if protected else Hurtbox.VULNERABLE,
        self_air_x_speed=f.vx if f.airborne else 0.0,
        self_y_speed=f.vy,
        attack_x_speed=f.kb_x,
        attack_y_speed=f.kb_y,
        self_ground_x_speed=0.0 if f.airborne else f.vx,
        hitlag=float(f.hitlag),
    )
