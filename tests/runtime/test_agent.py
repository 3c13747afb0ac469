"""Frame timing (delay queue, action repeat), game resets and the async worker."""

from __future__ import annotations

import time
from itertools import islice
from pathlib import Path

import numpy as np
import pytest

from runtime.agent import Agent, AgentConfig, hold_frames
from runtime.async_agent import AsyncAgent
from runtime.controller_spec import NEUTRAL_ACTION
from runtime.dry_run import replay_gamestates
from runtime.embedding_spec import FRAME_DELAY_COLUMN, frame_delay_feature
from runtime.onnx_policy import OnnxPolicy
from tests.runtime.conftest import ExportedPolicy


@pytest.fixture(scope="module")
def gamestates(sample_replays: list[Path]) -> list[object]:
    return list(islice(replay_gamestates(sample_replays[0]), 60))


def make_agent(artifact: ExportedPolicy, **overrides: object) -> Agent:
    settings: dict[str, object] = {"port": 1, "opponent_port": 2, "temperature": 1.0, "seed": 5}
    settings.update(overrides)
    return Agent(OnnxPolicy.load(artifact.path), AgentConfig(**settings))  # type: ignore[arg-type]


def test_hold_frames_count_libmelees_frame_and_the_consoles_delay() -> None:
    assert [hold_frames(d) for d in (0, 1, 2, 5)] == [0, 0, 1, 4]
    assert hold_frames(5, console_delay=2) == 2
    assert hold_frames(2, console_delay=2) == 0


def test_actions_wait_hold_frames_in_the_queue(
    gamestates: list, mlp_artifact: ExportedPolicy
) -> None:
    agent = make_agent(mlp_artifact, hold_frames=3)
    outputs = [agent.act(state) for state in gamestates]
    assert all(out.send == NEUTRAL_ACTION for out in outputs[:3])
    assert [out.send for out in outputs[3:]] == [out.decision.action for out in outputs[:-3]]


def test_action_repeat_chooses_every_n_frames(
    gamestates: list, mlp_artifact: ExportedPolicy
) -> None:
    agent = make_agent(mlp_artifact, action_repeat=4)
    decisions = [agent.act(state).decision for state in gamestates[:12]]
    for start in range(0, 12, 4):
        assert all(d is decisions[start] for d in decisions[start : start + 4])
    assert decisions[0] is not decisions[4]


def test_new_game_restarts_state_noise_aside(
    gamestates: list, gru_artifact: ExportedPolicy
) -> None:
    agent = make_agent(gru_artifact, temperature=0.0)
    first = [agent.decide(state).classes for state in gamestates[:20]]
    agent.new_game()
    again = [agent.decide(state).classes for state in gamestates[:20]]
    np.testing.assert_array_equal(np.stack(first), np.stack(again))


def test_same_seed_same_samples(gamestates: list, gru_artifact: ExportedPolicy) -> None:
    runs = [
        np.stack([make_agent(gru_artifact, seed=9).decide(s).classes for s in gamestates[:1]])
        for _ in range(2)
    ]
    np.testing.assert_array_equal(*runs)


def test_agent_config_refuses_one_port_for_both() -> None:
    with pytest.raises(ValueError, match="both on port 1"):
        AgentConfig(port=1, opponent_port=1, temperature=1.0)


def test_async_agent_sends_the_newest_finished_action(
    gamestates: list, gru_artifact: ExportedPolicy
) -> None:
    reference = make_agent(gru_artifact, temperature=0.0)
    expected = reference.decide(gamestates[0]).action
    worker = AsyncAgent(make_agent(gru_artifact, temperature=0.0))
    try:
        assert worker.latest() == NEUTRAL_ACTION
        worker.submit(gamestates[0], new_game=True)
        deadline = time.monotonic() + 10
        while worker.latest() == NEUTRAL_ACTION and time.monotonic() < deadline:
            time.sleep(0.001)
        assert worker.latest() == expected
        for state in gamestates[1:]:
            worker.submit(state)
    finally:
        worker.close()


def test_async_agent_reports_worker_failures(gru_artifact: ExportedPolicy) -> None:
    worker = AsyncAgent(make_agent(gru_artifact))
    try:
        worker.submit(object())  # not a GameState
        deadline = time.monotonic() + 10
        with pytest.raises(RuntimeError, match="policy worker failed"):
            while time.monotonic() < deadline:
                worker.latest()
                time.sleep(0.001)
    finally:
        worker.close()


def test_the_policy_reads_the_delay_it_plays_at(
    gamestates: list, mlp_artifact: ExportedPolicy
) -> None:
    agent = make_agent(mlp_artifact, delay_input=6)
    features = agent.decide(gamestates[0]).features
    assert features[FRAME_DELAY_COLUMN] == frame_delay_feature(6)
