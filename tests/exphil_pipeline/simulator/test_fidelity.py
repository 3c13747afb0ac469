"""Simulator fidelity on short real games: structure and sanity of the report, not quality."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from melee.enums import Character

from exphil_pipeline.simulator.action_groups import UNTOUCHABLE
from exphil_pipeline.simulator.fidelity import (
    UnsuitableReplayError,
    fidelity_report,
    read_recordings,
    replay_errors,
    reseat,
    segment_starts,
)
from exphil_pipeline.simulator.melee_data import SIM_CHARACTERS, sim_tables

FOX_DITTO = "exphil-fox_ms_float.slp"  # Final Destination, Slippi 3.19, 1187 frames
MEWTWO_VS_DK = "js-consistencyTest_MewTwoVDK-SB-42.slp"  # Final Destination, 3.7, 664 frames
NOT_FLAT = "peppi-v3.12.slp"  # Pokemon Stadium
HORIZON = 6


def test_the_report_covers_every_simulated_port_and_its_frames(real_replays: Path) -> None:
    paths = [real_replays / FOX_DITTO, real_replays / MEWTWO_VS_DK, real_replays / NOT_FLAT]
    report = fidelity_report(paths, HORIZON)
    assert report.replays == sorted([FOX_DITTO, MEWTWO_VS_DK])
    assert "Final Destination" in report.skipped[NOT_FLAT]
    # Donkey Kong is not simulated: his port is not measured.
    assert set(report.by_character) == {"FOX", "MEWTWO"}
    summaries = [*report.by_character.values(), report.overall]
    for summary in summaries:
        assert summary.segments > 10
        assert summary.frames == summary.segments * HORIZON
        for figures in (summary.mean_abs_x, summary.p90_abs_x, summary.mean_abs_y):
            assert len(figures) == HORIZON + 1
            assert all(math.isfinite(v) and v >= 0 for v in figures)
        assert summary.mean_abs_x[0] == summary.mean_abs_y[0] == 0.0
        assert 0 <= summary.within_1 <= summary.within_5 <= 1
    assert report.overall.segments == sum(s.segments for s in report.by_character.values())


def test_segments_start_at_action_changes_and_are_exact_at_the_reseat(real_replays: Path) -> None:
    errors = replay_errors(real_replays / FOX_DITTO, HORIZON)
    assert errors.error_x.shape == errors.error_y.shape == (len(errors.start), HORIZON + 1)
    assert np.isfinite(errors.error_x).all() and np.isfinite(errors.error_y).all()
    assert (errors.error_x[:, 0] == 0).all() and (errors.error_y[:, 0] == 0).all()
    assert set(errors.character.tolist()) == {SIM_CHARACTERS.index(Character.FOX)}
    # Some segments run exactly as recorded for the whole horizon (a walk, a fall...).
    exact = (np.abs(errors.error_x) < 1e-3).all(axis=1) & (np.abs(errors.error_y) < 1e-3).all(1)
    assert exact.any()


def test_reseating_puts_the_player_at_the_recorded_state(real_replays: Path) -> None:
    recording = read_recordings(real_replays / MEWTWO_VS_DK)[0]
    assert recording["character"][0] == Character.MEWTWO.value
    starts, _ = segment_starts(recording, HORIZON)
    action = recording["action_state"]
    assert (action[starts] != action[starts - 1]).all()
    assert not UNTOUCHABLE[action[starts].astype(int)].any()
    state = reseat(recording, starts, sim_tables())
    player = np.s_[:, 0]
    assert np.array_equal(state.x[player], recording["x"][starts].astype(np.float32))
    assert np.array_equal(state.y[player], recording["y"][starts].astype(np.float32))
    assert np.array_equal(state.action[player], action[starts])
    assert np.array_equal(state.facing[player], np.sign(recording["facing"][starts]))
    assert np.array_equal(state.airborne[player], recording["airborne"][starts] > 0)
    assert np.array_equal(state.jumps[player], recording["jumps_left"][starts])
    assert np.array_equal(state.percent[player], recording["percent"][starts].astype(np.float32))
    assert np.array_equal(state.frame, recording["frame"][starts])
    assert (state.age[player] == 1).all()
    # The other slot is out of play: no attack can reach it and it never comes back.
    assert UNTOUCHABLE[state.action[:, 1]].all() and (state.stocks[:, 1] == 0).all()


def test_only_flat_stage_replays_are_measured(real_replays: Path) -> None:
    with pytest.raises(UnsuitableReplayError, match="stage id 3"):
        read_recordings(real_replays / NOT_FLAT)
    with pytest.raises(ValueError, match="horizon"):
        replay_errors(real_replays / FOX_DITTO, horizon=0)
