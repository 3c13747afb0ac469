"""Progress lines within an epoch: steps/s, useful frames/s and the time left.

The teacher and the student send them through their ``log`` callback (``context.log.info`` in
the Dagster assets), at most one every ``every_s`` seconds and always at an epoch's last step.
Rates count this process's steps since the epoch (or the resumed part of it) began; the times
left leave out held-out evaluation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


def duration(seconds: float) -> str:
    """``1h02m03s``, ``2m03s`` or ``3s``."""
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


@dataclass(frozen=True)
class ProgressReport:
    """Where a run stands within an epoch, and how fast it goes."""

    label: str
    epoch: int
    epochs: int
    step: int
    """Optimizer steps done in this epoch, of ``steps``."""
    steps: int
    run_step: int
    """Optimizer steps done in the run, of ``run_steps``."""
    run_steps: int
    steps_per_s: float
    frames_per_s: float
    """Frames that count towards the loss (padding excluded), all processes together."""
    loss: float
    eta_epoch_s: float
    eta_run_s: float

    def line(self) -> str:
        return (
            f"{self.label}epoch {self.epoch + 1}/{self.epochs} step {self.step}/{self.steps} "
            f"(run {self.run_step}/{self.run_steps}): {self.steps_per_s:.2f} steps/s, "
            f"{self.frames_per_s:,.0f} frames/s, loss {self.loss:.4f}, "
            f"ETA epoch {duration(self.eta_epoch_s)}, run {duration(self.eta_run_s)}"
        )


class ProgressMeter:
    """Counts the steps of one epoch at a time and logs a :class:`ProgressReport` line when
    ``every_s`` seconds have passed since the last one (0: every step) or the epoch ends."""

    def __init__(
        self,
        log: Callable[[str], None],
        every_s: float,
        label: str = "",
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.log, self.every_s, self.label, self.clock = log, every_s, label, clock
        self.start_epoch(0, 1, 0, 0, 0, 0)

    def start_epoch(
        self, epoch: int, epochs: int, steps: int, step: int, run_steps: int, run_step: int
    ) -> None:
        """Epoch ``epoch`` of ``epochs`` has ``steps`` optimizer steps, ``step`` already done
        (a resumed epoch); the run has ``run_steps``, ``run_step`` done."""
        self.epoch, self.epochs, self.steps, self.run_steps = epoch, epochs, steps, run_steps
        self.first_step, self.first_run_step = step, run_step
        self.frames = 0
        self.began = self.last_line = self.clock()

    def update(self, step: int, run_step: int, frames: int, loss: float) -> ProgressReport | None:
        """After an optimizer step: ``step`` and ``run_step`` done, ``frames`` trained in it.
        Returns the report when a line was logged."""
        self.frames += frames
        now = self.clock()
        last = step >= self.steps or run_step >= self.run_steps
        if now - self.last_line < self.every_s and not last:
            return None
        self.last_line = now
        elapsed = max(now - self.began, 1e-9)
        rate = (run_step - self.first_run_step) / elapsed
        left_in_run = self.run_steps - run_step
        per_step = 1 / rate if rate else 0.0
        report = ProgressReport(
            label=self.label,
            epoch=self.epoch,
            epochs=self.epochs,
            step=step,
            steps=self.steps,
            run_step=run_step,
            run_steps=self.run_steps,
            steps_per_s=rate,
            frames_per_s=self.frames / elapsed,
            loss=loss,
            eta_epoch_s=min(self.steps - step, left_in_run) * per_step,
            eta_run_s=left_in_run * per_step,
        )
        self.log(report.line())
        return report
