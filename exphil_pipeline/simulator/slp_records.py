"""A typed model of a Slippi replay: the records a .slp file holds, as plain values.

A ``Game`` is the game start settings, one ``Frame`` per frame with each player's pre-frame
update (state and controller inputs before the frame) and post-frame update (state after it),
the game end event and the file's metadata. Field meanings and units follow SPEC.md of
project-slippi/slippi-wiki. The model covers games of one to four players without items or
Ice Climbers; ``slp_writer`` turns it into bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

FIRST_FRAME = -123
"""Number of a game's first frame; frame 0 is when the timer starts counting down."""


class PlayerType(IntEnum):
    """Who controls a port."""

    HUMAN = 0
    CPU = 1


class GameEndMethod(IntEnum):
    """How a game ended (values since Slippi 2.0.0)."""

    TIME = 1
    GAME = 2
    NO_CONTEST = 7


class LCancel(IntEnum):
    """L-cancel status of a post-frame update; set on the frame an aerial lands."""

    NONE = 0
    SUCCESS = 1
    FAILURE = 2


class Hurtbox(IntEnum):
    """Hurtbox collision state of a post-frame update."""

    VULNERABLE = 0
    INVULNERABLE = 1
    INTANGIBLE = 2


@dataclass(frozen=True, slots=True)
class PlayerStart:
    """One occupied port in the game start event."""

    port: int
    """Port index 0-3 (port 1 is 0)."""
    character: int
    """External (character select) character id, e.g. 2 = Fox, 10 = Mewtwo."""
    type: PlayerType = PlayerType.HUMAN
    """Human or CPU."""
    stocks: int = 4
    """Stocks the player starts with."""
    costume: int = 0
    """Costume index; its color depends on the character."""
    cpu_level: int = 1
    """CPU level 1-9; the game stores one for humans too, where it is ignored."""
    name_tag: str = ""
    """In-game name tag, at most 16 bytes once Shift JIS encoded (Melee uses full-width
    letters)."""
    netplay_name: str = ""
    """Slippi Online display name, at most 30 bytes once Shift JIS encoded."""
    connect_code: str = ""
    """Slippi Online connect code such as ``ABCD#123``; stored with a full-width ``#``."""


@dataclass(frozen=True, slots=True)
class GameStart:
    """Game settings written in the game start event."""

    stage: int
    """External stage id, e.g. 32 = Final Destination, 31 = Battlefield."""
    players: tuple[PlayerStart, ...]
    """Occupied ports in increasing port order."""
    random_seed: int = 0
    """The game's random seed before the game starts (uint32)."""
    timer: int = 480
    """Game timer in seconds."""
    is_pal: bool = False
    """Whether the PAL version of the game was played."""


@dataclass(frozen=True, slots=True)
class PreFrame:
    """One player's pre-frame update: state before this frame's inputs are applied, and the
    inputs."""

    action_state: int
    """Action state id (see melee.enums.Action)."""
    x: float
    """Horizontal position."""
    y: float
    """Vertical position."""
    facing: float
    """-1.0 facing left, +1.0 facing right."""
    joystick_x: float
    """Processed main stick x in [-1, 1]."""
    joystick_y: float
    """Processed main stick y in [-1, 1]."""
    cstick_x: float
    """Processed C-stick x in [-1, 1]."""
    cstick_y: float
    """Processed C-stick y in [-1, 1]."""
    trigger: float
    """Processed analog trigger in [0, 1], the larger of L and R."""
    buttons: int
    """Processed buttons (uint32): the physical button bits in the low 16 bits, stick
    directions in bits 16-23 and "any trigger" in bit 31."""
    physical_buttons: int
    """Physical buttons (uint16): A 0x100, B 0x200, X 0x400, Y 0x800, Start 0x1000, Z 0x10,
    R 0x20, L 0x40, D-pad 0x1-0x8."""
    physical_l: float
    """Physical analog L trigger in [0, 1]."""
    physical_r: float
    """Physical analog R trigger in [0, 1]."""
    raw_analog_x: int
    """Raw main stick x (int8) before the game's processing; processed x is raw / 80."""
    percent: float
    """Damage percent."""
    raw_analog_y: int
    """Raw main stick y (int8), added in 3.15.0."""


@dataclass(frozen=True, slots=True)
class PostFrame:
    """One player's post-frame update: state after this frame's physics and collisions."""

    character: int
    """Internal character id (see melee.enums.Character), e.g. 1 = Fox, 16 = Mewtwo."""
    action_state: int
    """Action state id (see melee.enums.Action)."""
    x: float
    """Horizontal position."""
    y: float
    """Vertical position."""
    facing: float
    """-1.0 facing left, +1.0 facing right."""
    percent: float
    """Damage percent."""
    shield: float
    """Shield size in [0, 60]."""
    last_attack_landed: int
    """Attack id of the last attack this player hit with (0 when none)."""
    combo_count: int
    """The game's combo count."""
    last_hit_by: int
    """Port index of the player that last hit this one (the game reports 6 for nobody)."""
    stocks: int
    """Stocks remaining."""
    action_frame: float
    """Frames the current action state has been active."""
    state_flags: tuple[int, int, int, int, int]
    """The five state bit-flag bytes (e.g. byte 3 bit 0x80 = shield active, byte 4 bit 0x02 =
    in hitstun, byte 5 bit 0x40 = dead)."""
    misc_as: float
    """Miscellaneous action-state value; hitstun frames remaining while in hitstun."""
    airborne: bool
    """True in the air, False on the ground."""
    last_ground_id: int
    """Id of the last ground touched (65535 before touching any)."""
    jumps_remaining: int
    """Jumps left, the ground jump included while grounded."""
    l_cancel: LCancel
    """L-cancel status."""
    hurtbox: Hurtbox
    """Hurtbox collision state."""
    self_air_x_speed: float
    """Self-induced horizontal speed in the air."""
    self_y_speed: float
    """Self-induced vertical speed."""
    attack_x_speed: float
    """Horizontal speed from knockback."""
    attack_y_speed: float
    """Vertical speed from knockback."""
    self_ground_x_speed: float
    """Self-induced horizontal speed on the ground."""
    hitlag: float
    """Hitlag frames remaining (0 when not in hitlag)."""
    animation_index: int = 0xFFFF_FFFF
    """The game's animation index (3.11.0); all bits set is the game's "none"."""
    instance_hit_by: int = 0
    """Instance id of what last hit this player (3.16.0)."""
    instance_id: int = 0
    """Serial id of the current action state instance (3.16.0)."""


@dataclass(frozen=True, slots=True)
class PlayerFrame:
    """One player's pair of updates within a frame."""

    pre: PreFrame
    """State and inputs before the frame is processed."""
    post: PostFrame
    """State after the frame is processed."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame of the game."""

    number: int
    """Frame number; the first frame is FIRST_FRAME and numbers increase by one."""
    random_seed: int
    """The game's random seed at the start of the frame (uint32)."""
    players: tuple[PlayerFrame, ...]
    """One entry per player, in the order of GameStart.players."""


@dataclass(frozen=True, slots=True)
class GameEnd:
    """The game end event."""

    method: GameEndMethod
    """How the game ended."""
    lras_initiator: int | None = None
    """Port index of the player who quit with L+R+A+Start, None otherwise."""
    placements: tuple[int, int, int, int] = (-1, -1, -1, -1)
    """Placement of each port index from 0 (winner); -1 for an empty port."""


@dataclass(frozen=True, slots=True)
class Game:
    """A whole replay: settings, frames, ending and file metadata."""

    start: GameStart
    """Game settings."""
    frames: tuple[Frame, ...]
    """Every frame, the first numbered FIRST_FRAME."""
    end: GameEnd | None
    """The ending, or None for a replay that stops without one."""
    start_at: datetime
    """When the game started; must be timezone-aware."""
    played_on: str = "dolphin"
    """Platform the game was played on (the spec names dolphin, nintendont and network)."""
    console_nick: str | None = None
    """Name of the console that made the replay, if any."""
