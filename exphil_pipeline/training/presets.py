"""Training presets for ``exphil train``: run configs of the ``train_policy`` job by character.

A preset holds one run-config section per stage (``training_set``, ``teacher``,
``soft_labels``, ``student``, ``policy_onnx``, ``policy_int8``, ``evaluation``); each section
is checked by that stage's typed config when the preset is built, so a bad field fails before
any run starts. Fields not named keep the stage config's defaults.

Recipes (``--preset NAME``):

- ``standard`` (the default): for a corpus of human netplay replays. Frame delay 18 (online
  play), games of at least 30 s, a GRU 2x256 teacher, a 256x256 student, outcome games in the
  simulator. The teacher keeps EMA weights (decay 0.999, warmed up) for evaluation and
  export, stops after 3 epochs without a lower held-out loss, and smooths the stick targets a
  little (0.05: human stick buckets are noisy; more would have the bot sample random stick
  positions more often) but never the buttons, whose smoothing made bots press rare buttons.
  Its run length is sized for a few hundred games (~2.5M frames of the character): 6 teacher
  epochs and 3 student epochs, the whole chain (ingest to evaluation) in under 30 minutes on
  a 2-core CPU (``benchmarks/human.py``). Time grows with the corpus; a corpus of thousands
  of games can afford a wider teacher (``--hidden 512``) and more epochs.
- ``quick``: the same data rules with a small teacher and few epochs: a first model on a
  laptop in minutes. The same stick smoothing, no EMA.
- ``tiny``: seconds on the generated sample replays; for tests, not for play.

Per character. The target characters (MEWTWO, GAMEANDWATCH, LINK, GANONDORF, ZELDA, SHEIK)
have few replays compared with the popular characters, so their ``standard`` teacher is
regularized (dropout 0.1); LINK, with the fewest, gets hidden 128. Any other character
(``DEFAULT_CHARACTER`` row) takes the recipe as it is. Every preset learns only the given
character (``training_set.characters``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from dagster import Config

from assets.policy_artifacts import ArtifactConfig, PolicyOnnxConfig
from exphil_pipeline.distillation.soft_labels import SoftLabelsConfig
from exphil_pipeline.distillation.student import StudentConfig
from exphil_pipeline.evaluation.evaluation_table import EvaluationConfig
from exphil_pipeline.training.teacher_config import TeacherConfig
from exphil_pipeline.training.training_set_config import TARGET_CHARACTERS, TrainingSetConfig
from runtime.melee_ids import EXTERNAL_CHARACTER_NAMES

Sections = dict[str, dict[str, Any]]

DEFAULT_PRESET = "standard"
DEFAULT_CHARACTER = "*"

_HUMAN_REPLAYS: dict[str, Any] = {
    "frame_delay": 18,
    "min_frames": 1800,
    "heldout_fraction": 0.1,
}
_HUMAN_LOSS: dict[str, Any] = {"label_smoothing_sticks": 0.05}

RECIPES: dict[str, Sections] = {
    "standard": {
        "training_set": _HUMAN_REPLAYS,
        "teacher": {
            "backbone": "gru",
            "hidden_dim": 256,
            "num_layers": 2,
            "epochs": 6,
            "batch_size": 32,
            "ema_decay": 0.999,
            "early_stopping_patience": 3,
            **_HUMAN_LOSS,
        },
        "soft_labels": {"temperature": 2.0},
        "student": {"hidden_sizes": [256, 256], "epochs": 3},
        "policy_onnx": {"eval_frames": 5000},
        "policy_int8": {"eval_frames": 5000},
        "evaluation": {"eval_frames": 5000, "outcome_games": 32},
    },
    "quick": {
        "training_set": _HUMAN_REPLAYS,
        "teacher": {"backbone": "gru", "hidden_dim": 128, "epochs": 2, **_HUMAN_LOSS},
        "soft_labels": {"temperature": 2.0},
        "student": {"hidden_sizes": [128, 128], "epochs": 4},
        "policy_onnx": {"eval_frames": 2000},
        "policy_int8": {"eval_frames": 2000},
        "evaluation": {"eval_frames": 2000, "outcome_games": 8},
    },
    "tiny": {
        # Seconds per stage on three 600-frame sample games (the scripted player reads the
        # previous frame: frame delay 1 is its rule); short games are kept.
        "training_set": {"frame_delay": 1, "min_frames": 0, "heldout_fraction": 0.34},
        "teacher": {
            "backbone": "mlp",
            "hidden_dim": 32,
            "batch_size": 4,
            "bptt": 32,
            "epochs": 1,
            "resume": False,
        },
        "soft_labels": {},
        "student": {"hidden_sizes": [64, 64], "epochs": 15, "batch_size": 64},
        "policy_onnx": {"eval_frames": 500},
        "policy_int8": {"eval_frames": 500},
        "evaluation": {"eval_frames": 500, "outcome_games": 0},
    },
}

# Overrides of the ``standard`` recipe by character (see the module docstring for why).
_SCARCE = {"teacher": {"dropout": 0.1}}
CHARACTER_OVERRIDES: dict[str, Sections] = {
    **{character: _SCARCE for character in TARGET_CHARACTERS},
    "LINK": {"teacher": {**_SCARCE["teacher"], "hidden_dim": 128}},
    DEFAULT_CHARACTER: {},
}

STAGE_CONFIGS: dict[str, type[Config]] = {
    "training_set": TrainingSetConfig,
    "teacher": TeacherConfig,
    "soft_labels": SoftLabelsConfig,
    "student": StudentConfig,
    "policy_onnx": PolicyOnnxConfig,
    "policy_int8": ArtifactConfig,
    "evaluation": EvaluationConfig,
}


class PresetError(ValueError):
    """An unknown character or preset, or a section a stage's config refuses."""


@dataclass(frozen=True)
class Preset:
    """A ``train_policy`` run config for one character, by stage."""

    name: str
    character: str
    sections: Sections

    def override(self, stage: str, **fields: Any) -> Preset:
        """This preset with ``fields`` of ``stage``'s section replaced (``None`` keeps)."""
        given = {k: v for k, v in fields.items() if v is not None}
        sections = copy.deepcopy(self.sections)
        sections.setdefault(stage, {}).update(given)
        return validated(Preset(self.name, self.character, sections))

    def run_config(self) -> dict[str, Any]:
        return {
            "ops": {stage: {"config": config} for stage, config in self.sections.items()},
            "loggers": {"console": {"config": {"log_level": "INFO"}}},
        }


def known_character(character: str) -> str:
    name = character.upper()
    known = set(EXTERNAL_CHARACTER_NAMES.values())
    if name not in known:
        raise PresetError(f"unknown character {character!r}; use one of {sorted(known)}")
    return name


def preset(character: str, name: str = DEFAULT_PRESET) -> Preset:
    """Recipe ``name`` for ``character`` (a libmelee name such as MEWTWO)."""
    character = known_character(character)
    if name not in RECIPES:
        raise PresetError(f"unknown preset {name!r}; use one of {sorted(RECIPES)}")
    sections = copy.deepcopy(RECIPES[name])
    if name == DEFAULT_PRESET:
        overrides = CHARACTER_OVERRIDES.get(character, CHARACTER_OVERRIDES[DEFAULT_CHARACTER])
        for stage, fields in overrides.items():
            sections[stage].update(fields)
    sections["training_set"] = {**sections["training_set"], "characters": [character]}
    return validated(Preset(name, character, sections))


def from_run_config(character: str, name: str, run_config: dict[str, Any]) -> Preset:
    """A full run config (``ops: {stage: {config: {...}}}``, as the launchpad takes it) as a
    preset for ``character``, whose training set learns that character only."""
    character = known_character(character)
    ops = run_config.get("ops")
    if not isinstance(ops, dict):
        raise PresetError("the run config has no 'ops' mapping (ops: {stage: {config: ...}})")
    sections = {stage: dict((op or {}).get("config") or {}) for stage, op in ops.items()}
    sections["training_set"] = {**sections.get("training_set", {}), "characters": [character]}
    return validated(Preset(name, character, sections))


def validated(built: Preset) -> Preset:
    """``built`` once every section passes its stage's typed config."""
    for stage, fields in built.sections.items():
        if stage not in STAGE_CONFIGS:
            raise PresetError(f"unknown stage {stage!r}; the stages are {list(STAGE_CONFIGS)}")
        try:
            STAGE_CONFIGS[stage](**fields)
        except ValueError as error:
            raise PresetError(f"preset {built.name!r}, {stage}: {error}") from None
    return built
