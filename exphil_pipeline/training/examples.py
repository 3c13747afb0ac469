"""One game's ``frames``/``items`` Parquet as embedding inputs and (state, action) pairs.

The embedding itself lives in ``runtime.embedding_spec``; this module only hands it columns.
Frame delay ``d`` pairs the state of frame ``t - d`` with the action (controller input) of
frame ``t``. The "previous input" feature of that pair is the input of frame ``t - 1``: the
last action the policy sent before choosing the one for ``t``, which the runtime knows too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from runtime.controller_spec import CONTROLLER_SPEC, stick_to_unit
from runtime.embedding_spec import (
    SLOT_NULL_FILL,
    GameColumns,
    ItemColumns,
    SlotColumns,
    embed_batch,
)

# Slippi's first frame in which players can act; earlier frames are the countdown.
FIRST_PLAYABLE_FRAME = -39

_CONTROLLER_COLUMNS = ("buttons_physical", "joystick_x", "joystick_y", "cstick_x", "cstick_y")
_SLOT_FIELDS = tuple(SLOT_NULL_FILL)


@dataclass(frozen=True)
class Examples:
    """Aligned (state, action) pairs of one player in one game."""

    features: np.ndarray  # float32[n, dim]
    targets: np.ndarray  # uint8[n, heads]
    action_frames: np.ndarray  # int32[n], the frame id of each target action
    frame_delay: int  # d: each state is of frame action_frame - d

    def __len__(self) -> int:
        return len(self.targets)


class GameFrames:
    """The stored frames of one game, sliced per character slot (all of them N frames long)."""

    def __init__(self, frames: pa.Table, items: pa.Table | None, external_stage: int) -> None:
        ports = frames.column("port").to_numpy()
        followers = frames.column("is_follower").to_numpy(zero_copy_only=False)
        # Rows are sorted by (port, is_follower, frame) and each slot covers every frame.
        boundaries = np.flatnonzero((np.diff(ports) != 0) | (np.diff(followers) != 0)) + 1
        starts = np.concatenate([[0], boundaries])
        self._slots: dict[tuple[int, bool], pa.Table] = {}
        for start, stop in zip(starts, [*boundaries, len(ports)], strict=True):
            key = (int(ports[start]), bool(followers[start]))
            self._slots[key] = frames.slice(int(start), int(stop - start))
        first = next(iter(self._slots.values()))
        self.frame_ids = first.column("frame").to_numpy()
        if len(self.frame_ids) and np.any(np.diff(self.frame_ids) != 1):
            raise ValueError("frames of a game must be contiguous and sorted within each slot")
        self.items = items
        self.external_stage = external_stage

    @classmethod
    def read(cls, frames_path: Path, items_path: Path | None, external_stage: int) -> GameFrames:
        items = pq.read_table(items_path) if items_path and items_path.exists() else None
        return cls(pq.read_table(frames_path), items, external_stage)

    def __len__(self) -> int:
        return len(self.frame_ids)

    @property
    def leader_ports(self) -> list[int]:
        return sorted(port for port, follower in self._slots if not follower)

    def present(self, port: int) -> np.ndarray:
        table = self._slots.get((port, False))
        if table is None:
            return np.zeros(len(self), dtype=np.bool_)
        return table.column("present").to_numpy(zero_copy_only=False)

    def slot(self, port: int, is_follower: bool) -> SlotColumns:
        table = self._slots.get((port, is_follower))
        values = {}
        for name in _SLOT_FIELDS:
            fill = SLOT_NULL_FILL[name]
            if table is None:
                values[name] = np.full(len(self), fill)
                continue
            values[name] = table.column(name).fill_null(fill).to_numpy(zero_copy_only=False)
        return SlotColumns(**values)

    def slot_table(self, port: int, is_follower: bool = False) -> pa.Table:
        """The stored rows of one slot (KeyError when the game has no such slot)."""
        return self._slots[(port, is_follower)]

    def controller_classes(self, port: int) -> np.ndarray:
        """``uint8[N, heads]``: the recorded input of ``port`` on every frame, encoded."""
        table = self.slot_table(port)
        raw = {name: table.column(name).fill_null(0).to_numpy() for name in _CONTROLLER_COLUMNS}
        return CONTROLLER_SPEC.encode_batch(
            raw["buttons_physical"],
            stick_to_unit(raw["joystick_x"]),
            stick_to_unit(raw["joystick_y"]),
            stick_to_unit(raw["cstick_x"]),
            stick_to_unit(raw["cstick_y"]),
            table.column("trigger").fill_null(0).to_numpy(),
        )

    def item_columns(self) -> ItemColumns:
        if self.items is None or self.items.num_rows == 0:
            return ItemColumns.empty()
        items = self.items
        frame_index = items.column("frame").to_numpy() - self.frame_ids[0]
        return ItemColumns(
            frame_index=frame_index,
            item_type=items.column("item_type").fill_null(0).to_numpy(),
            x=items.column("x").fill_null(0).to_numpy(),
            y=items.column("y").fill_null(0).to_numpy(),
            owner=items.column("owner").fill_null(-1).to_numpy(),
            spawn_id=items.column("spawn_id").fill_null(0).to_numpy(),
            vel_x=items.column("vel_x").fill_null(0).to_numpy(),
            vel_y=items.column("vel_y").fill_null(0).to_numpy(),
            state=items.column("item_state").fill_null(0).to_numpy(),
            timer=items.column("timer").fill_null(0).to_numpy(),
        )

    def columns(
        self,
        target_port: int,
        opponent_port: int,
        previous_input: np.ndarray,
        frame_delay: int = 0,
    ) -> GameColumns:
        """What ``embed_batch`` takes for every frame of this game, seen from ``target_port``."""
        return GameColumns(
            slots=(
                self.slot(target_port, False),
                self.slot(target_port, True),
                self.slot(opponent_port, False),
                self.slot(opponent_port, True),
            ),
            external_stage=self.external_stage,
            items=self.item_columns(),
            previous_input=previous_input,
            target_port=target_port,
            opponent_port=opponent_port,
            frames=self.frame_ids,
            frame_delay=frame_delay,
        )

    def embed(
        self,
        target_port: int,
        opponent_port: int,
        previous_input: np.ndarray,
        frame_delay: int = 0,
    ) -> np.ndarray:
        """Features of every frame for ``target_port`` (rows where it is absent are junk)."""
        return embed_batch(self.columns(target_port, opponent_port, previous_input, frame_delay))

    def examples(
        self,
        target_port: int,
        opponent_port: int,
        frame_delay: int = 0,
        first_action_frame: int = FIRST_PLAYABLE_FRAME,
    ) -> Examples:
        """(state at t - d, action at t) pairs for every t where both frames have the player."""
        if frame_delay < 0:
            raise ValueError(f"frame_delay must be >= 0, got {frame_delay}")
        n = len(self)
        classes = self.controller_classes(target_port)
        present = self.present(target_port)
        neutral = CONTROLLER_SPEC.neutral()
        # previous_input[s] = input of frame (s + d - 1), the last action before the one paired
        # with state s; neutral before the game's first frame or where the player was absent.
        shifted = np.broadcast_to(neutral, classes.shape).copy()
        source = np.arange(n) + frame_delay - 1
        valid = (source >= 0) & (source < n)
        source_ok = np.zeros(n, dtype=np.bool_)
        source_ok[valid] = present[source[valid]]
        shifted[source_ok] = classes[source[source_ok]]
        features = self.embed(target_port, opponent_port, shifted, frame_delay)

        states = np.arange(max(n - frame_delay, 0))
        actions = states + frame_delay
        keep = present[states] & present[actions] & (self.frame_ids[actions] >= first_action_frame)
        states, actions = states[keep], actions[keep]
        return Examples(
            features=np.ascontiguousarray(features[states]),
            targets=np.ascontiguousarray(classes[actions]),
            action_frames=self.frame_ids[actions].astype(np.int32),
            frame_delay=frame_delay,
        )
