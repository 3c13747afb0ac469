"""The arena: scripted levels, random inputs and an exported policy play simulated games;
win rates with Wilson intervals; the matches table and ``exphil arena``.

Games are short (2 stocks, a 2000-frame timer) and all of a run's games play at once. Both
players play Mewtwo, so the outcome measures the players, not the matchup (in this simulator
Fox beats Mewtwo at every scripted level), and both port halves share one engine. Not Fox: in
Fox dittos the scripted levels are not ordered (level 2 beats level 3).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from exphil_pipeline.environments.dolphin_env import DolphinConfig
from exphil_pipeline.environments.simulator_env import SimulatorEnvironment
from exphil_pipeline.evaluation.arena import (
    ArenaConfig,
    ArenaReport,
    dolphin_tables,
    play_arena,
    wilson_interval,
)
from exphil_pipeline.evaluation.players import (
    NEUTRAL,
    PlayerSpecError,
    PolicyPlayer,
    parse_player,
)
from exphil_pipeline.storage.layout import DataLayout
from runtime.controller_spec import CONTROLLER_SPEC
from runtime.embedding_spec import EMBEDDING_SPEC, PREVIOUS_INPUT_COLUMNS
from tests.exphil_pipeline.environments.test_dolphin_env import ReplayConsoles
from tests.runtime.conftest import export_small_policy

SHORT = ArenaConfig(characters=("MEWTWO", "MEWTWO"), stocks=2, max_frames=2000)
GAMES = 48


def arena(spec_a: str, spec_b: str, games: int = GAMES, seed: int = 0) -> ArenaReport:
    layout = DataLayout(Path("unused"))
    return play_arena(
        parse_player(spec_a, layout), parse_player(spec_b, layout), games, SHORT, seed
    )


def test_wilson_interval_matches_published_values() -> None:
    # Newcombe (1998), Statistics in Medicine 17:857, table I, method 3 (score, no correction).
    published = {(81, 263): (0.2553, 0.3662), (15, 148): (0.0624, 0.1605), (0, 20): (0, 0.1611)}
    for (successes, trials), expected in published.items():
        assert wilson_interval(successes, trials) == pytest.approx(expected, abs=5e-5)
    low, high = wilson_interval(5, 10)
    assert low + high == pytest.approx(1.0)  # symmetric around one half
    with pytest.raises(ValueError, match="trials"):
        wilson_interval(0, 0)


def test_the_reference_script_beats_random_inputs() -> None:
    games = 80  # as fast as 40: all play at once; the true rate is near 99%, leave it room
    report = arena("scripted:3", "random", games)
    scripted, random = report.players
    assert report.games == len(report.matches) == games
    assert [m.number for m in report.matches] == list(range(games))
    assert {m.a_port for m in report.matches if m.number % 2} == {1}
    assert scripted.win_rate >= 0.95, report.to_markdown()
    assert scripted.wins + scripted.losses + scripted.draws == games
    assert scripted.win_rate + random.win_rate == pytest.approx(1.0)
    assert scripted.net_stocks_per_minute > 0 > random.net_stocks_per_minute
    assert scripted.damage_dealt_per_minute == pytest.approx(random.damage_taken_per_minute)
    assert 0 < scripted.mean_game_seconds <= SHORT.max_frames / 60
    assert 0 < scripted.p50_decision_us <= scripted.p99_decision_us


def test_a_player_against_itself_wins_half_within_its_interval() -> None:
    report = arena("scripted:2", "scripted:2", seed=2)
    a, b = report.players
    assert (a.name, b.name) == ("scripted:2 (A)", "scripted:2 (B)")
    assert a.ci_low <= 0.5 <= a.ci_high, report.to_markdown()
    assert a.wins > 0 and b.wins > 0  # the games differ: each copy draws its own mistakes


def test_scripted_levels_are_ordered() -> None:
    report = arena("scripted:3", "scripted:0", games=40)
    assert report.players[0].win_rate >= 0.8, report.to_markdown()
    assert report.players[0].ci_low > 0.5


def test_an_exported_policy_plays_in_the_arena(tmp_path: Path) -> None:
    artifact = export_small_policy(tmp_path, "mlp", frame_delay=0).path
    layout = DataLayout(tmp_path)
    policy, scripted = parse_player(str(artifact), layout), parse_player("scripted:0", layout)
    config = ArenaConfig(characters=("FOX", "FOX"), stocks=1, max_frames=300)
    report = play_arena(policy, scripted, 4, config, seed=0)
    stats = report.players[0]
    assert stats.name == str(artifact)
    assert stats.wins + stats.losses + stats.draws == 4
    assert 0 <= stats.ci_low <= stats.win_rate <= stats.ci_high <= 1
    assert len(policy.latencies_us()) >= 4 * 300  # one sample per game and frame
    assert 0 < stats.p50_decision_us <= stats.p99_decision_us
    assert {m.a_port for m in report.matches} == {0, 1}


def save_tiny_teacher(layout: DataLayout, experiment: str) -> None:
    """An untrained GRU teacher at ``teachers/<experiment>/best.pt`` (frame delay 2, Fox)."""
    import torch

    from exphil_pipeline.training.policy_contract import PolicyContract
    from exphil_pipeline.training.teacher_config import TeacherConfig
    from models import Policy, PolicyConfig, categorical_columns

    torch.manual_seed(0)
    config = PolicyConfig(
        input_dim=EMBEDDING_SPEC.dim,
        embedding_spec_hash=EMBEDDING_SPEC.content_hash,
        categorical=categorical_columns(list(EMBEDDING_SPEC.categorical), max_embedding_dim=8),
        backbone="gru",
        hidden_dim=16,
        num_layers=1,
        head_mlp_dim=16,
    )
    contract = PolicyContract(
        frame_delay=2,
        frame_delay_range=(2, 2),
        characters=("FOX",),
        embedding_spec_version=EMBEDDING_SPEC.version,
        embedding_spec_hash=EMBEDDING_SPEC.content_hash,
        controller_spec_hash=CONTROLLER_SPEC.content_hash,
        training_set=experiment,
        training_set_fingerprint="test",
    )
    paths = layout.experiment(experiment)
    paths.teacher.mkdir(parents=True)
    checkpoint = {
        "policy": Policy.from_config(config).checkpoint(),
        "config": TeacherConfig().model_dump(),
        "contract": contract.to_dict(),
    }
    torch.save(checkpoint, paths.teacher_best)


def test_a_teacher_plays_by_experiment_name(tmp_path: Path) -> None:
    layout = DataLayout(tmp_path)
    save_tiny_teacher(layout, "tiny")
    teacher = parse_player("tiny", layout)
    assert (teacher.name, teacher.character, teacher.frame_delay) == ("tiny", "FOX", 2)
    config = ArenaConfig(characters=("FOX", "FOX"), stocks=1, max_frames=200)
    report = play_arena(teacher, parse_player("scripted:1", layout), 6, config, seed=0)
    stats = report.players[0]
    assert stats.wins + stats.losses + stats.draws == 6
    assert stats.p99_decision_us > 0
    env = SimulatorEnvironment(config.environment((0, 0), observe=(0,)))
    features = env.reset(seed=0)[:, 0]
    teacher.start(np.zeros(2, dtype=np.int64), seed=0)
    for _ in range(3):
        teacher.act(env, features)
    hidden = teacher._state[0]  # a GRU's hidden state: [layers, games, width]
    assert hidden[:, 0].abs().sum() > 0 and hidden[:, 1].abs().sum() > 0
    teacher.reset_games(np.array([1]))
    assert hidden[:, 1].abs().sum() == 0 and hidden[:, 0].abs().sum() > 0


class CountingPolicy(PolicyPlayer):
    """Chooses main_x = the number of frames since its game started, and remembers the
    previous-input columns it was shown."""

    def __init__(self, frame_delay: int) -> None:
        super().__init__("counting", frame_delay, (frame_delay, frame_delay), temperature=0.0)

    def _load(self, games: int) -> None:
        self.frames = np.zeros(games, dtype=np.uint8)
        self.seen: list[np.ndarray] = []

    def _choose(self, rows: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
        self.seen.append(rows[:, PREVIOUS_INPUT_COLUMNS].copy())
        self.frames += 1
        classes = np.tile(NEUTRAL, (len(rows), 1))
        classes[:, CONTROLLER_SPEC.heads.index("main_x")] = self.frames
        return classes

    def _forget(self, games: np.ndarray) -> None:
        self.frames[games] = 0


def test_policy_players_keep_the_runtime_agents_timing() -> None:
    player = CountingPolicy(frame_delay=3)  # waits 2 frames in the queue
    player.start(np.array([0, 1]), seed=0)
    features = np.full((2, EMBEDDING_SPEC.dim), 7.0, dtype=np.float32)  # env's applied input
    main_x = CONTROLLER_SPEC.heads.index("main_x")
    sent = [player.act(None, features)[:, main_x] for _ in range(4)]  # type: ignore[arg-type]
    assert [s.tolist() for s in sent] == [[8, 8], [8, 8], [1, 1], [2, 2]]  # 8: neutral stick
    # The previous input shown is the last one chosen, not the one the environment applied.
    assert player.seen[0][:, main_x].tolist() == [8, 8]
    assert player.seen[3][:, main_x].tolist() == [3, 3]
    player.reset_games(np.array([1]))
    assert player.act(None, features)[:, main_x].tolist() == [3, 8]  # type: ignore[arg-type]
    assert player.seen[4][:, main_x].tolist() == [4, 8]


def test_player_specs_refuse_what_the_simulator_cannot_play(tmp_path: Path) -> None:
    layout = DataLayout(tmp_path)
    with pytest.raises(PlayerSpecError, match="only Dolphin"):
        parse_player("cpu:9", layout)
    with pytest.raises(PlayerSpecError, match="0-3"):
        parse_player("scripted:4", layout)
    with pytest.raises(PlayerSpecError, match="no trained teacher"):
        parse_player("my-experiment", layout)


def test_players_refuse_the_environment_they_cannot_play_in(tmp_path: Path) -> None:
    layout = DataLayout(tmp_path)
    with pytest.raises(PlayerSpecError, match=r"only Dolphin runs.*scripted:LEVEL"):
        parse_player("cpu:3", layout, "simulator")
    with pytest.raises(PlayerSpecError, match=r"engine state.*cpu:LEVEL"):
        parse_player("scripted:3", layout, "dolphin")
    assert parse_player("cpu:3", layout, "dolphin").cpu_level == 3
    with pytest.raises(PlayerSpecError, match="1-9"):
        parse_player("cpu:0", layout, "dolphin")
    cpu = parse_player("cpu:3", layout, "dolphin")
    with pytest.raises(PlayerSpecError, match="only Dolphin"):
        play_arena(cpu, parse_player("random", layout), 2, SHORT, seed=0)
    with pytest.raises(ValueError, match="4 stocks"):
        ArenaConfig(env="dolphin", stocks=2)


def test_a_dolphin_arena_seats_melees_cpu_on_either_port(real_replays: Path) -> None:
    consoles = ReplayConsoles(real_replays / "peppi-v3.12.slp")  # Marth against Marth
    layout = DataLayout(Path("unused"))
    random, cpu = (
        parse_player("random", layout, "dolphin"),
        parse_player("cpu:3", layout, "dolphin"),
    )
    config = ArenaConfig(characters=("MARTH", "MARTH"), env="dolphin", parallel=1)
    base = DolphinConfig(dolphin="unused", iso="unused", step_timeout_s=1.0, menu_frames_limit=50)
    report = play_arena(random, cpu, 2, config, seed=0, environments=dolphin_tables(base, consoles))
    assert report.to_dict()["env"] == "dolphin"
    assert [(m.number, m.a_port, m.result.void) for m in report.matches] == [
        (0, 0, False),
        (1, 1, False),
    ]
    # One Dolphin per side: the CPU on port 2, then on port 1, where nothing is sent in game.
    (_, _, first), (_, _, second) = consoles.launched
    for controllers, cpu_port in ((first, 2), (second, 1)):
        assert not [call for in_game, call in controllers[cpu_port].calls if in_game]
        assert [call for in_game, call in controllers[3 - cpu_port].calls if in_game]


def exphil(home: Path, *args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "exphil"), *args]
    environment = {**os.environ, "EXPHIL_HOME": str(home)}
    environment.pop("EXPHIL_DOLPHIN", None)
    environment.update(variables)
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)


def test_arena_command_prints_json_and_records_matches(tmp_path: Path) -> None:
    done = exphil(
        tmp_path, "arena", "scripted:3", "random", "--games", "8", "--json", "--max-frames", "1500"
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["games"] == 8 and report["env"] == "simulator"
    contract = {"name", "win_rate", "ci_low", "ci_high", "net_stocks_per_minute"}
    contract |= {"damage_dealt_per_minute", "damage_taken_per_minute", "sd_per_minute"}
    contract |= {"p99_decision_us"}
    assert [p["name"] for p in report["players"]] == ["scripted:3", "random"]
    assert all(contract <= set(p) for p in report["players"])
    assert len(list((tmp_path / "matches").glob("*.parquet"))) == 1
    assert "arena" in done.stderr  # the progress bar
    query = (
        "SELECT count(*) AS n, count(*) FILTER (WHERE player_1 = 'random') AS swapped FROM matches"
    )
    rows = json.loads(exphil(tmp_path, "sql", query, "--format", "json").stdout)
    assert rows == [{"n": 8, "swapped": 4}]


def test_arena_command_refuses_dolphin_without_its_paths(tmp_path: Path) -> None:
    done = exphil(tmp_path, "arena", "cpu:9", "random", "--env", "dolphin")
    assert done.returncode == 2
    assert "EXPHIL_DOLPHIN" in done.stderr


def test_arena_command_refuses_scripted_players_in_dolphin(tmp_path: Path) -> None:
    (tmp_path / "dolphin").touch()
    (tmp_path / "melee.iso").touch()
    paths = {"EXPHIL_DOLPHIN": str(tmp_path / "dolphin"), "EXPHIL_ISO": str(tmp_path / "melee.iso")}
    done = exphil(tmp_path, "arena", "scripted:3", "random", "--env", "dolphin", **paths)
    assert done.returncode == 2
    assert "cpu:LEVEL" in done.stderr and "scripted:3" in done.stderr
