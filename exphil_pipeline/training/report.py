"""What a person looks at after training: loss curves as a PNG, accuracy as Markdown tables."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

# Figure objects, not pyplot: no GUI backend or global figure state in headless workers.
from matplotlib.figure import Figure

from runtime.controller_spec import CONTROLLER_SPEC


def loss_curves_png(
    curve: list[tuple[int, float]], history: list[dict[str, Any]], path: Path
) -> bytes:
    """Training loss per step and held-out loss per epoch, written to ``path``; returns PNG."""
    figure = Figure(figsize=(11, 4))
    losses, accuracy = figure.subplots(1, 2)
    if curve:
        steps, values = zip(*curve, strict=True)
        losses.plot(steps, values, linewidth=0.8, label="train (per step)")
    evaluated = [h for h in history if h["heldout"]["frames"]]
    if evaluated:
        losses.plot(
            [h["step"] for h in evaluated],
            [h["heldout"]["loss"] for h in evaluated],
            marker="o",
            label="held-out (per epoch)",
        )
        last = evaluated[-1]["heldout"]["accuracy"]
        accuracy.bar(list(last), list(last.values()))
        accuracy.set_ylim(0, 1)
        accuracy.tick_params(axis="x", rotation=60)
    losses.set_xlabel("step")
    losses.set_ylabel("sum of per-head NLL")
    losses.set_yscale("log")
    losses.legend()
    losses.set_title("loss")
    accuracy.set_title("held-out top-1 accuracy per head (last epoch)")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def png_markdown(png: bytes, title: str) -> str:
    """Markdown embedding a PNG inline (Dagster renders data URIs in Markdown metadata)."""
    return f"![{title}](data:image/png;base64,{base64.b64encode(png).decode()})"


def head_accuracy_table(evaluation: dict[str, Any]) -> str:
    """Held-out NLL and top-1 accuracy per head, overall and per character."""
    heads = CONTROLLER_SPEC.heads
    header = "| rows | frames | loss | " + " | ".join(heads) + " |"
    lines = [header, "|---|---:|---:|" + "---:|" * len(heads)]

    def row(label: str, result: dict[str, Any]) -> str:
        cells = " | ".join(f"{result['accuracy'][h]:.3f}" for h in heads)
        return f"| {label} | {result['frames']:,} | {result['loss']:.3f} | {cells} |"

    if evaluation.get("frames"):
        lines.append(row("all (accuracy)", evaluation))
        for name, result in evaluation["per_character"].items():
            lines.append(row(name, result))
    return "\n".join(lines)
