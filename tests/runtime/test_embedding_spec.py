"""The embedding spec's definition: layout, hash, id tables, runtime-only imports."""

from __future__ import annotations

import subprocess
import sys

import melee
import numpy as np
import pytest

from runtime.character_moves import SPECIAL_GROUPS
from runtime.embedding_spec import (
    EMBEDDING_SPEC,
    PLAYER_FEATURES,
    SLOT_NAMES,
    STAGES,
    ZERO_INDEXED_ACTIONS,
    embed_gamestate,
    stage_index,
)
from runtime.melee_ids import STAGE_NAMES


def test_vector_is_compact_and_names_are_unique() -> None:
    # Training sets store float32 vectors per frame: keep a frame under 768 bytes.
    assert EMBEDDING_SPEC.dim * 4 <= 768
    assert len(set(EMBEDDING_SPEC.names)) == EMBEDDING_SPEC.dim
    assert EMBEDDING_SPEC.names[: len(PLAYER_FEATURES)] == tuple(
        f"self_{f.name}" for f in PLAYER_FEATURES
    )
    assert EMBEDDING_SPEC.names[len(PLAYER_FEATURES) * len(SLOT_NAMES)] == "stage"


def test_categorical_columns_hold_integer_ranges() -> None:
    by_name = dict(zip(EMBEDDING_SPEC.names, EMBEDDING_SPEC.columns, strict=True))
    categorical = dict(EMBEDDING_SPEC.categorical)
    for name, vocab in (
        ("self_action_state", 400),
        ("opponent_character", 34),
        ("self_jumps_left", 8),
        ("stage", len(STAGES)),
        ("item0_type", 256),
        ("item3_state", 256),
        ("opponent_special", len(SPECIAL_GROUPS)),
        ("prev_main_x", 17),
        ("prev_shoulder", 5),
    ):
        index = EMBEDDING_SPEC.names.index(name)
        assert categorical[index] == vocab
        assert by_name[name].low == 0 and by_name[name].high == vocab - 1
    assert EMBEDDING_SPEC.names.index("prev_A") not in categorical


def test_content_hash_is_the_same_in_a_fresh_interpreter() -> None:
    code = "from runtime.embedding_spec import EMBEDDING_SPEC; print(EMBEDDING_SPEC.content_hash)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == EMBEDDING_SPEC.content_hash


def test_content_hash_follows_the_definition() -> None:
    from runtime.embedding_spec import EmbeddingSpec

    assert EmbeddingSpec(item_slots=3).content_hash != EMBEDDING_SPEC.content_hash


def test_stage_ids_agree_between_slippi_and_libmelee() -> None:
    # libmelee names a handful of stages and maps every other external id to NO_STAGE.
    for external in range(256):
        runtime_side = stage_index(melee.enums.to_internal_stage(external).name)
        pipeline_side = stage_index(STAGE_NAMES.get(external, "OTHER"))
        assert runtime_side == pipeline_side, external
    assert stage_index("FINAL_DESTINATION") == STAGES.index("FINAL_DESTINATION") > 0


def test_zero_indexed_actions_are_libmelees_table() -> None:
    console = melee.Console(is_dolphin=False, path="unused.slp")
    expected = {(c, a) for c, actions in console.zero_indices.items() for a in actions}
    found = {(int(c), int(a)) for c, a in zip(*np.nonzero(ZERO_INDEXED_ACTIONS), strict=True)}
    assert found == expected


def test_embed_gamestate_names_a_missing_port() -> None:
    state = melee.GameState()
    with pytest.raises(KeyError, match="port 3"):
        embed_gamestate(state, 3, 1, np.zeros(13, dtype=np.uint8))


def test_runtime_imports_none_of_the_pipeline_stack() -> None:
    code = (
        "import sys, runtime.embedding_spec, runtime.controller_spec, runtime.melee_ids\n"
        "import runtime.artifact_manifest, runtime.onnx_policy, runtime.agent\n"
        "import runtime.async_agent, runtime.controller_output, runtime.pipe_capture\n"
        "import runtime.dry_run, runtime.live_play, runtime.play\n"
        "banned = [m for m in ('dagster', 'torch', 'polars', 'pyarrow') if m in sys.modules]\n"
        "print(','.join(banned))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
