"""Training options: per-head losses, EMA weights, schedules, gradient accumulation, early
stopping and progress lines, for the teacher (and the student where they apply)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from exphil_pipeline.distillation.soft_labels import SoftLabelsConfig, build_soft_labels
from exphil_pipeline.distillation.student import StudentConfig, train_student
from exphil_pipeline.storage.layout import DataLayout
from exphil_pipeline.training.episodes import ChunkReader, epoch_chunks
from exphil_pipeline.training.losses import HeadLossOptions, head_loss, masked_loss
from exphil_pipeline.training.optimization import ema_of, ema_rate, lr_scheduler
from exphil_pipeline.training.presets import preset
from exphil_pipeline.training.progress_log import ProgressMeter
from exphil_pipeline.training.teacher_config import TeacherConfig
from exphil_pipeline.training.teacher_evaluation import evaluate
from exphil_pipeline.training.teacher_trainer import train
from exphil_pipeline.training.training_set import TrainingSet
from models import Policy
from runtime.controller_spec import CONTROLLER_SPEC
from tests.exphil_pipeline.training.teacher_fixtures import (
    build_set,
    fraction_holding_out_one_game,
    share_set,
)

REPO = Path(__file__).resolve().parents[3]
HEADS = CONTROLLER_SPEC.heads
BUTTONS = set(CONTROLLER_SPEC.buttons)
STICKS = set(CONTROLLER_SPEC.axes)


def _quiet(_: str) -> None:
    pass


def _batch(seed: int = 0) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """Logits ``[2, 8, classes]`` per head, targets and a mask with an idle tail."""
    generator = torch.Generator().manual_seed(seed)
    logits = [torch.randn(2, 8, c, generator=generator) for c in CONTROLLER_SPEC.head_classes]
    targets = torch.stack(
        [torch.randint(0, c, (2, 8), generator=generator) for c in CONTROLLER_SPEC.head_classes],
        dim=-1,
    ).to(torch.uint8)
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[1, 5:] = False
    return logits, targets, mask


def _plain_nll(logits: list[torch.Tensor], targets: torch.Tensor, mask: torch.Tensor):
    """The teacher's loss before the options existed, verbatim."""
    weights = mask.reshape(-1).float()
    count = weights.sum().clamp(min=1.0)
    total = torch.zeros((), device=targets.device)
    for head, head_logits in enumerate(logits):
        losses = F.cross_entropy(
            head_logits.reshape(-1, head_logits.shape[-1]).float(),
            targets[..., head].reshape(-1).long(),
            reduction="none",
        )
        total = total + (losses * weights).sum() / count
    return total


def _per_head(logits, targets, options: HeadLossOptions) -> dict[str, torch.Tensor]:
    return {
        name: head_loss(
            logits[h].reshape(-1, logits[h].shape[-1]),
            targets[..., h].reshape(-1).long(),
            options.smoothing[h],
            options.focal_gamma[h],
            options.positive_weight[h],
        )
        for h, name in enumerate(HEADS)
    }


def test_the_default_loss_is_the_plain_nll_bit_for_bit() -> None:
    logits, targets, mask = _batch()
    expected = _plain_nll(logits, targets, mask)
    assert torch.equal(masked_loss(logits, targets, mask), expected)
    assert TeacherConfig().loss_options() == HeadLossOptions.plain()
    assert torch.equal(masked_loss(logits, targets, mask, TeacherConfig().loss_options()), expected)


def test_smoothing_focal_and_positive_weights_change_only_their_heads() -> None:
    logits, targets, _ = _batch(1)
    plain = _per_head(logits, targets, HeadLossOptions.plain())
    cases = {
        "sticks": (HeadLossOptions.by_group(sticks=0.1), STICKS),
        "shoulder": (HeadLossOptions.by_group(shoulder=0.1), {"shoulder"}),
        "buttons": (HeadLossOptions.by_group(buttons=0.1), BUTTONS),
        "focal": (HeadLossOptions.by_group(button_focal_gamma=2.0), BUTTONS),
        "positive": (HeadLossOptions.by_group(button_positive_weight=3.0), BUTTONS),
    }
    for case, (options, changed) in cases.items():
        losses = _per_head(logits, targets, options)
        for name in HEADS:
            assert torch.equal(losses[name], plain[name]) != (name in changed), (case, name)
    # Focal: every frame counts less, the confident ones most; positive weight: pressed x3.
    focal = _per_head(logits, targets, HeadLossOptions.by_group(button_focal_gamma=2.0))
    positive = _per_head(logits, targets, HeadLossOptions.by_group(button_positive_weight=3.0))
    pressed = targets[..., 0].reshape(-1) == 1
    assert (focal["A"] < plain["A"]).all()
    torch.testing.assert_close(positive["A"][pressed], 3 * plain["A"][pressed])
    torch.testing.assert_close(positive["A"][~pressed], plain["A"][~pressed])
    # The teacher config reaches the same groups: smoothing on sticks leaves buttons alone.
    smoothed = TeacherConfig(label_smoothing_sticks=0.1, button_focal_gamma=2.0).loss_options()
    assert smoothed == HeadLossOptions.by_group(sticks=0.1, button_focal_gamma=2.0)


@pytest.fixture(scope="module")
def options_set(sample_store) -> Path:
    """Two sample games to train on (5 chunks an epoch below), one held out."""
    heldout = fraction_holding_out_one_game([g.game_id for g in sample_store.games])
    build_set(sample_store.home, "options", characters=["MEWTWO"], heldout_fraction=heldout)
    return sample_store.home


def _config(**overrides: object) -> TeacherConfig:
    fields = {
        "backbone": "gru",
        "hidden_dim": 16,
        "batch_size": 2,
        "bptt": 128,
        "epochs": 2,
        "checkpoint_every": 2,
        "dropout": 0.1,
        "progress_every_s": 3600.0,
        **overrides,
    }
    return TeacherConfig(**fields)


def _chunks_per_epoch(home: Path, config: TeacherConfig) -> int:
    reader = ChunkReader(TrainingSet.of(DataLayout(home).experiment("options")), "train")
    order = np.arange(len(reader.episodes))
    return sum(
        1 for _ in epoch_chunks(reader.episodes.length, config.batch_size, config.bptt, order)
    )


def _weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_ema_weights_are_evaluated_and_kept_in_best_pt(options_set: Path) -> None:
    config = _config(epochs=1, ema_decay=0.9, resume=False)
    result = train(config, share_set(options_set, "options", "ema"), "ema", _quiet)
    last = torch.load(result.folder / "last.pt", weights_only=False)
    best = torch.load(result.folder / "best.pt", weights_only=False)
    raw, averaged = last["policy"]["state_dict"], _weights(result.policy)
    assert not _same(raw, averaged)
    assert _same(best["policy"]["state_dict"], averaged)
    assert int(last["ema"]["n_averaged"]) == result.steps
    # The held-out loss recorded is the averaged weights' (evaluated once more here).
    reader = ChunkReader(TrainingSet.of(DataLayout(options_set).experiment("ema")), "heldout")
    heldout = evaluate(result.policy, reader, config.batch_size, "cpu", config.eval_max_frames)
    assert heldout["frames"] > 0
    assert heldout["loss"] == result.history[-1]["heldout"]["loss"]


def test_ema_accumulation_and_one_cycle_resume_to_the_uninterrupted_result(
    options_set: Path,
) -> None:
    config = _config(
        ema_decay=0.8,
        grad_accumulation=2,
        schedule="one_cycle",
        warmup_steps=3,
        label_smoothing_sticks=0.1,
        button_focal_gamma=1.0,
        mirror_probability=0.5,
    )
    full = train(config, share_set(options_set, "options", "opts-full"), "opts-full", _quiet)
    share_set(options_set, "options", "opts-cut")
    halted = train(config, options_set, "opts-cut", _quiet, halt_after_steps=3)
    assert halted.halted and halted.steps == 3  # the last checkpoint is from step 2
    resumed = train(config, options_set, "opts-cut", _quiet)
    # One optimizer step per two chunks; the sample set's odd chunk out makes a step alone.
    chunks = _chunks_per_epoch(options_set, config)
    assert chunks % 2 == 1 and full.steps == 2 * math.ceil(chunks / 2)
    assert resumed.steps == full.steps
    assert resumed.curve == full.curve
    assert _same(_weights(resumed.policy), _weights(full.policy))
    raw = [torch.load(r.folder / "last.pt", weights_only=False) for r in (full, resumed)]
    assert _same(raw[0]["policy"]["state_dict"], raw[1]["policy"]["state_dict"])
    assert [h["heldout"]["loss"] for h in resumed.history] == [
        h["heldout"]["loss"] for h in full.history
    ]


def test_accumulating_gloo_processes_stay_in_sync(options_set: Path, tmp_path: Path) -> None:
    config = tmp_path / "run.json"
    share_set(options_set, "options", "ddp-options")
    run = _config(epochs=1, grad_accumulation=2, ema_decay=0.5, resume=False)
    config.write_text(run.model_dump_json())
    command = [
        *(sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"),
        *("-m", "exphil_pipeline.training.teacher_trainer", "--config", str(config)),
        *("--home", str(options_set), "--experiment", "ddp-options"),
    ]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads(line) for line in done.stdout.splitlines() if line.startswith('{"rank"')]
    assert sorted(r["rank"] for r in ranks) == [0, 1]
    assert ranks[0]["param_sum"] == ranks[1]["param_sum"]
    assert ranks[0]["steps"] == ranks[1]["steps"] > 0


def test_early_stopping_stops_and_is_recorded(options_set: Path) -> None:
    # A learning rate too small to move float32 weights: the held-out loss never improves.
    config = _config(epochs=8, learning_rate=1e-30, early_stopping_patience=2, dropout=0.0)
    lines: list[str] = []
    result = train(config, share_set(options_set, "options", "stop"), "stop", lines.append)
    assert result.stopped_early and len(result.history) == 3
    assert [h["epochs_since_best"] for h in result.history] == [0, 1, 2]
    assert json.loads((result.folder / "history.json").read_text())["stopped_early"]
    assert any(line.startswith("early stopping") for line in lines)
    # Patience is resumable: more of it continues the stopped run by one epoch.
    patient = TeacherConfig(**{**config.model_dump(), "early_stopping_patience": 3})
    longer = train(patient, options_set, "stop", _quiet)
    assert len(longer.history) == 4 and longer.stopped_early


def test_early_stopping_without_heldout_games_is_refused_with_the_fix(options_set: Path) -> None:
    build_set(options_set, "no-heldout", characters=["MEWTWO"], heldout_fraction=0.0)
    with pytest.raises(ValueError, match=r"held-out games.*heldout_fraction > 0"):
        train(_config(early_stopping_patience=1), options_set, "no-heldout", _quiet)


def test_progress_lines_report_steps_frames_and_time_left(options_set: Path) -> None:
    lines: list[str] = []
    config = _config(epochs=1, max_steps=4, progress_every_s=0.0, resume=False)
    train(config, share_set(options_set, "options", "progress"), "progress", lines.append)
    progress = [line for line in lines if "steps/s" in line]
    assert len(progress) == 4
    assert all("frames/s" in line and "ETA epoch" in line for line in progress)
    assert progress[-1].startswith("epoch 1/1 step 4/") and "(run 4/4)" in progress[-1]


def test_the_meter_logs_when_due_and_at_the_epoch_end() -> None:
    lines: list[str] = []
    ticks = iter(range(100))
    meter = ProgressMeter(lines.append, every_s=4, clock=lambda: float(next(ticks)))
    meter.start_epoch(epoch=1, epochs=3, steps=6, step=0, run_steps=18, run_step=6)
    reports = [meter.update(step, 6 + step, frames=100, loss=1.0) for step in range(1, 7)]
    logged = [r for r in reports if r is not None]
    assert [r.step for r in logged] == [4, 6]  # 4 ticks after the start, then the epoch end
    assert logged[0].steps_per_s == 1.0 and logged[0].frames_per_s == 100.0
    assert logged[0].eta_epoch_s == 2.0 and logged[0].eta_run_s == 8.0
    assert lines[0] == (
        "epoch 2/3 step 4/6 (run 10/18): 1.00 steps/s, 100 frames/s, loss 1.0000, "
        "ETA epoch 2s, run 8s"
    )


def test_schedules_warm_up_then_follow_their_shape() -> None:
    def rates(schedule: str) -> list[float]:
        optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        scheduler = lr_scheduler(optimizer, schedule, total_steps=10, warmup_steps=4)
        out = []
        for _ in range(10):
            out.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        return out

    cosine, constant, one_cycle = rates("cosine"), rates("constant"), rates("one_cycle")
    # Linear warm-up for cosine and constant; OneCycleLR climbs from lr / 25 to its peak.
    assert cosine[:4] == constant[:4] == [0.25, 0.5, 0.75, 1.0]
    assert constant[4:] == [1.0] * 6 and cosine[-1] < 0.1
    assert one_cycle[0] == pytest.approx(1 / 25) and one_cycle[3] == pytest.approx(1.0)
    assert one_cycle[-1] < 0.01


def test_the_weight_average_warms_up_to_its_decay() -> None:
    source = torch.nn.Linear(1, 1, bias=False)
    ema = ema_of(source, 0.999)
    expected = 0.0
    for step in range(200):
        with torch.no_grad():
            source.weight.fill_(float(step))
        ema.update_parameters(source)
        # The first update copies; the one after t others moves 1 - min(0.999, (1+t)/(10+t)).
        rate = 1.0 if step == 0 else 1.0 - min(0.999, (1 + step) / (10 + step))
        expected += rate * (step - expected)
    averaged = ema.module.weight.item()
    assert averaged == pytest.approx(expected, rel=1e-5)
    # Plain 0.999 would still hold 82% of the starting weights after 200 steps (an average
    # near 19); warmed up, the average trails the current weights by about a tenth of the run.
    assert 170 < averaged < 190
    assert ema_rate(0.999, 0) == pytest.approx(0.9)
    assert ema_rate(0.999, 10**6) == pytest.approx(1e-3)


def test_resume_accepts_a_last_pt_written_before_the_options() -> None:
    config = TeacherConfig()
    saved = {k: v for k, v in config.model_dump().items() if k != "ema_decay"}
    assert config.resume_conflicts(saved) == []
    assert TeacherConfig(ema_decay=0.99).resume_conflicts(saved) == ["ema_decay"]
    longer = TeacherConfig(early_stopping_patience=5, progress_every_s=1.0, epochs=9)
    assert longer.resume_conflicts(config.model_dump()) == []


def test_the_head_width_reaches_the_policy_and_forbids_resuming_across_a_change(
    options_set: Path,
) -> None:
    manifest = TrainingSet.of(DataLayout(options_set).experiment("options")).manifest
    assert TeacherConfig().policy_config(manifest).head_mlp_dim == 128
    narrow = TeacherConfig(head_mlp_dim=48)
    head = Policy.from_config(narrow.policy_config(manifest)).head
    assert head.first_layers.out_features == len(head.groups) * 48
    saved = {k: v for k, v in TeacherConfig().model_dump().items() if k != "head_mlp_dim"}
    assert TeacherConfig().resume_conflicts(saved) == []
    assert narrow.resume_conflicts(saved) == ["head_mlp_dim"]


def test_the_human_presets_smooth_sticks_only() -> None:
    for name in ("standard", "quick"):
        teacher = TeacherConfig(**preset("MEWTWO", name).sections["teacher"])
        assert teacher.label_smoothing_sticks > 0
        assert teacher.label_smoothing_buttons == 0 and teacher.button_positive_weight == 1
    assert TeacherConfig(**preset("MEWTWO").sections["teacher"]).ema_decay > 0


def test_the_student_logs_progress_with_ema_and_a_cosine_schedule(options_set: Path) -> None:
    experiment = DataLayout(options_set).experiment("student-options")
    share_set(options_set, "options", experiment.name)
    train(_config(max_steps=2, resume=False), options_set, experiment.name, _quiet)
    build_soft_labels(experiment, SoftLabelsConfig(temperature=2.0, lanes=4))
    lines: list[str] = []
    config = StudentConfig(
        hidden_sizes=[16],
        epochs=2,
        batch_size=256,
        schedule="cosine",
        ema_decay=0.5,
        progress_every_s=0.0,
    )
    result = train_student(experiment, config, lines.append)
    progress = [line for line in lines if line.startswith("student epoch") and "steps/s" in line]
    steps = len(progress) // 2
    assert steps > 0 and progress[-1].startswith(f"student epoch 2/2 step {steps}/{steps}")
    assert result.checkpoint.config.ema_decay == 0.5
