"""A recurrent artifact in the runtime chooses what its PyTorch policy chooses, frame by frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from runtime.agent import Agent, AgentConfig
from runtime.controller_spec import CONTROLLER_SPEC
from runtime.dry_run import replay_gamestates
from runtime.onnx_policy import OnnxPolicy
from tests.runtime.conftest import ExportedPolicy

FRAMES = 400


def runtime_trace(artifact: Path, replay: Path, port: int) -> tuple[np.ndarray, np.ndarray]:
    """The frame vectors the runtime built and the classes it chose, at temperature 0."""
    agent = Agent(
        OnnxPolicy.load(artifact), AgentConfig(port=port, opponent_port=3 - port, temperature=0.0)
    )
    features, classes = [], []
    for gamestate in replay_gamestates(replay):
        decision = agent.decide(gamestate)
        features.append(decision.features)
        classes.append(decision.classes)
        if len(classes) == FRAMES:
            break
    return np.stack(features), np.stack(classes)


@pytest.fixture(params=["sample", "real"])
def game(request: pytest.FixtureRequest, sample_replays: list[Path]) -> Path:
    if request.param == "sample":
        return sample_replays[2]
    return request.getfixturevalue("real_replays") / "exphil-fox_multishine.slp"


@torch.no_grad()
def test_gru_artifact_matches_pytorch_step_by_step(
    game: Path, gru_artifact: ExportedPolicy
) -> None:
    features, classes = runtime_trace(gru_artifact.path, game, port=1)
    policy = gru_artifact.policy
    state = policy.initial_state(1)
    uniforms = torch.full((1, CONTROLLER_SPEC.num_heads), 0.5)
    for t in range(len(features)):
        chosen, _, state = policy.step(
            torch.from_numpy(features[t : t + 1]), state, uniforms, torch.tensor(0.0)
        )
        np.testing.assert_array_equal(chosen[0].numpy(), classes[t], err_msg=f"frame {t}")
    # The runtime feeds back its own choice as the next frame's previous input.
    previous = features[1:, -CONTROLLER_SPEC.num_heads :]
    np.testing.assert_array_equal(previous, classes[:-1].astype(np.float32))


@torch.no_grad()
def test_gru_artifact_choices_are_the_teacher_forced_argmax(
    game: Path, gru_artifact: ExportedPolicy
) -> None:
    features, classes = runtime_trace(gru_artifact.path, game, port=2)
    logits, _ = gru_artifact.policy(
        torch.from_numpy(features)[None], torch.from_numpy(classes.astype(np.int64))[None]
    )
    argmax = torch.stack([head[0].argmax(-1) for head in logits], dim=-1).numpy()
    np.testing.assert_array_equal(argmax, classes)
