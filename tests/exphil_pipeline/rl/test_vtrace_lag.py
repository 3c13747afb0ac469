"""Known answer: V-trace corrects lagged actors where treating stale samples as on-policy fails.

A two-state chain. At the start, ``exit`` pays 0.3 and ends the episode; ``enter`` pays 0 and
leads to a room with four doors, one paying +1 and three paying -1, each ending the
episode. The optimum (enter, then the +1 door) returns 1; a random room returns -0.5, so
early on exiting looks better, and a learner must keep entering long enough to learn the room.

Actors play with the parameters of ``LAG`` updates ago. Without correction, the learner
judges ``enter`` by the stale room policy it sampled, keeps preferring ``exit`` for ``LAG``
updates after the room has been learned, and by then no longer enters the room at all: it
settles on the 0.3 exit. With V-trace targets and importance-weighted policy gradients it
judges ``enter`` by the current room policy and reaches the optimum.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator

import pytest
import torch

from exphil_pipeline.rl.advantages import vtrace

EXIT_REWARD = 0.3
DOORS = 4
LAG = 15
UPDATES = 100
UNROLL, ACTORS = 4, 32
GAMMA = 0.99
LEARNING_RATE = 1.0
# Start state: actions 0 (exit) and 1 (enter); the doors beyond 1 do not exist there.
START_MASK = torch.tensor([[0.0, 0.0] + [-1e9] * (DOORS - 2), [0.0] * DOORS])


def _expected_return(logits: torch.Tensor) -> float:
    start, room = torch.softmax(logits + START_MASK, dim=-1)
    room_return = room[0] - room[1:].sum()
    return float(start[0] * EXIT_REWARD + start[1] * room_return)


def _train(corrected: bool, lag: int, seed: int) -> float:
    """Expected return of the learned policy (the optimum is 1, exiting 0.3)."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.zeros(2, DOORS, requires_grad=True)
    values = torch.zeros(2, requires_grad=True)
    optimizer = torch.optim.SGD([logits, values], lr=LEARNING_RATE)
    snapshots = collections.deque([logits.detach().clone()], maxlen=lag + 1)
    state = torch.zeros(ACTORS, dtype=torch.long)
    for _ in range(UPDATES):
        behaviour = snapshots[0] + START_MASK  # the oldest kept: LAG updates ago
        states, actions, rewards, dones = [], [], [], []
        for _ in range(UNROLL):
            probs = torch.softmax(behaviour[state], dim=-1)
            action = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
            at_start = state == 0
            reward = torch.where(
                at_start,
                torch.where(action == 0, EXIT_REWARD, 0.0),
                torch.where(action == 0, 1.0, -1.0),
            )
            done = ~at_start | (action == 0)
            states.append(state), actions.append(action), rewards.append(reward)
            dones.append(done)
            state = torch.where(done, 0, 1)
        s, a = torch.stack(states), torch.stack(actions)
        target_log_probs = (
            torch.log_softmax((logits + START_MASK)[s], -1).gather(-1, a[..., None]).squeeze(-1)
        )
        behaviour_log_probs = (
            torch.log_softmax(behaviour[s], -1).gather(-1, a[..., None]).squeeze(-1)
            if corrected
            else target_log_probs.detach()  # stale samples taken as the current policy's
        )
        targets = vtrace(
            behaviour_log_probs,
            target_log_probs.detach(),
            torch.stack(rewards),
            values[s].detach(),
            values[state].detach(),
            GAMMA * (~torch.stack(dones)).float(),
        )
        policy_loss = -(targets.pg_advantages * target_log_probs).mean()
        value_loss = 0.5 * (values[s] - targets.vs).pow(2).mean()
        optimizer.zero_grad()
        (policy_loss + value_loss).backward()
        optimizer.step()
        snapshots.append(logits.detach().clone())
    return _expected_return(logits.detach())


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    # Tensors of a few elements: on a busy machine handing each op to a second thread costs
    # far more than the op (30x slower measured), so train on one and restore afterwards.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("seed", [0, 1])
def test_vtrace_reaches_the_optimum_with_lagged_actors_where_the_uncorrected_update_fails(
    seed: int,
) -> None:
    corrected = _train(corrected=True, lag=LAG, seed=seed)
    uncorrected = _train(corrected=False, lag=LAG, seed=seed)
    assert corrected > 0.9, corrected
    assert uncorrected < 0.4, uncorrected  # settled on the exit
    assert corrected - uncorrected > 0.5


def test_without_lag_the_uncorrected_update_also_reaches_the_optimum() -> None:
    # The failure above is the lag's: fresh samples are on-policy and need no correction.
    assert _train(corrected=False, lag=0, seed=0) > 0.9
