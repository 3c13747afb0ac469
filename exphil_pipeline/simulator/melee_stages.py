"""The simulated stages: the six legal ones, with the geometry of ``runtime.stage_geometry``.

A stage's position in ``SIM_STAGES`` is its stage index in the engine's arrays.
"""

from __future__ import annotations

from melee.enums import Stage

from runtime.stage_geometry import LEGAL_STAGES, stage_data

SIM_STAGES: tuple[Stage, ...] = LEGAL_STAGES
"""The simulated (tournament-legal) stages; a stage's position here is its stage index."""


def stage_slot(stage: Stage) -> int:
    """The stage index (position in ``SIM_STAGES``) of ``stage``; ValueError if not simulated."""
    if stage not in SIM_STAGES:
        supported = ", ".join(s.name for s in SIM_STAGES)
        name = getattr(stage, "name", repr(stage))
        raise ValueError(f"stage {name} is not simulated; supported stages: {supported}")
    return SIM_STAGES.index(stage)


def external_stage_id(stage: Stage) -> int:
    """The external stage id (Slippi / peppi) of one of ``SIM_STAGES``."""
    return stage_data(SIM_STAGES[stage_slot(stage)]).external_id
