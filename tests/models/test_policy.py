import json
from pathlib import Path

import pytest
import torch

from models import BACKBONE_KINDS, CategoricalColumn, Policy, PolicyConfig, controller_metrics
from runtime.controller_spec import CONTROLLER_SPEC
from tests.models.synthetic import random_targets, synthetic_frames, tiny_config

NUM_HEADS = CONTROLLER_SPEC.num_heads


def test_config_round_trips_through_json() -> None:
    config = tiny_config("hybrid", value_head=True, dropout=0.1)
    data = json.loads(json.dumps(config.to_dict()))
    assert PolicyConfig.from_dict(data) == config
    assert data["head_classes"] == list(CONTROLLER_SPEC.head_classes)
    assert data["controller_spec_hash"] == CONTROLLER_SPEC.content_hash


@pytest.mark.parametrize(
    "overrides",
    [
        {"backbone": "transformer"},
        {"hidden_dim": 0},
        {"window": 1},
        {"backbone": "attention", "hidden_dim": 30, "num_attention_heads": 4},
        {"dropout": 1.0},
        {"embedding_spec_hash": ""},
        {"categorical": (CategoricalColumn(8, 4, 2),)},
        {"categorical": (CategoricalColumn(1, 4, 2), CategoricalColumn(1, 3, 2))},
        {"head_classes": (2, 1)},
        {"head_classes": (2, 3, 4), "joint_heads": 2},
        {"joint_heads": 14},
    ],
)
def test_config_rejects_invalid_settings(overrides: dict[str, object]) -> None:
    settings = {"backbone": "gru", **overrides}
    backbone = str(settings.pop("backbone"))
    with pytest.raises(ValueError, match="invalid PolicyConfig"):
        tiny_config(backbone, **settings)


def test_config_rejects_unknown_fields() -> None:
    with pytest.raises(ValueError, match="unknown"):
        PolicyConfig.from_dict({**tiny_config("mlp").to_dict(), "hidden": 3})


@pytest.mark.parametrize("kind", BACKBONE_KINDS)
@torch.no_grad()
def test_checkpoint_save_and_load_gives_identical_outputs(kind: str, tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    policy = Policy.from_config(tiny_config(kind, value_head=True)).eval()
    torch.save(policy.checkpoint(), tmp_path / "policy.pt")
    loaded = Policy.from_checkpoint(torch.load(tmp_path / "policy.pt", weights_only=True)).eval()

    features = synthetic_frames(2, 9, generator)
    targets = random_targets((2, 9), CONTROLLER_SPEC.head_classes, generator)
    logits, state = policy(features, targets)
    loaded_logits, loaded_state = loaded(features, targets)
    for original, restored in zip([*logits, *state], [*loaded_logits, *loaded_state], strict=True):
        assert torch.equal(original, restored)

    uniforms, temperature = torch.rand(2, NUM_HEADS, generator=generator), torch.tensor(0.7)
    stepped = policy.step(features[:, 0], policy.initial_state(2), uniforms, temperature)
    loaded_stepped = loaded.step(features[:, 0], loaded.initial_state(2), uniforms, temperature)
    assert torch.equal(stepped[0], loaded_stepped[0])
    assert torch.equal(stepped[1], loaded_stepped[1])


@torch.no_grad()
def test_step_output_shapes_and_value_head() -> None:
    generator = torch.Generator().manual_seed(0)
    policy = Policy(tiny_config("gru", value_head=True)).eval()
    features = synthetic_frames(3, 4, generator)
    classes, probs, state = policy.step(
        features[:, 0], policy.initial_state(3), torch.rand(3, NUM_HEADS), torch.tensor(1.0)
    )
    assert classes.shape == probs.shape == (3, NUM_HEADS)
    assert ((probs > 0) & (probs <= 1)).all()
    assert [s.shape for s in state] == [spec.shape for spec in policy.state_specs(3)]
    hidden, _ = policy.encode(features)
    assert policy.predict_value(hidden).shape == (3, 4)
    with pytest.raises(ValueError, match="value head"):
        Policy(tiny_config("gru")).predict_value(hidden)


@pytest.mark.parametrize("kind", ["mlp", "gru"])
@torch.no_grad()
def test_step_logits_are_the_teacher_forced_logits_of_the_chosen_classes(kind: str) -> None:
    generator = torch.Generator().manual_seed(0)
    policy = Policy(tiny_config(kind)).eval()
    features = synthetic_frames(3, 1, generator)
    uniforms, temperature = torch.rand(3, NUM_HEADS, generator=generator), torch.tensor(0.8)
    state = policy.initial_state(3)
    classes, probs, logits, next_state = policy.step_with_logits(
        features[:, 0], state, uniforms, temperature
    )
    stepped = policy.step(features[:, 0], state, uniforms, temperature)
    assert torch.equal(stepped[0], classes) and torch.equal(stepped[1], probs)
    forced, forced_state = policy(features, classes[:, None])
    torch.testing.assert_close(logits, torch.cat(forced, dim=-1)[:, 0])
    for stepped_tensor, forced_tensor in zip(next_state, forced_state, strict=True):
        torch.testing.assert_close(stepped_tensor, forced_tensor)


@pytest.mark.parametrize("kind", BACKBONE_KINDS)
@torch.no_grad()
def test_a_step_through_the_fused_input_is_the_plain_step(kind: str) -> None:
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    policy = Policy(tiny_config(kind, periodic_frequencies=2)).eval()
    features = synthetic_frames(4, 1, generator)[:, 0]
    state = tuple(torch.randn(spec.shape) for spec in policy.state_specs(4))
    uniforms, temperature = torch.rand(4, NUM_HEADS, generator=generator), torch.tensor(0.8)
    fused = policy.fused_input()
    assert (fused is None) == (policy.backbone.input_layer is None)
    plain = policy.step_with_logits(features, state, uniforms, temperature)
    through_fused = policy.step_with_logits(features, state, uniforms, temperature, fused)
    assert torch.equal(plain[0], through_fused[0])
    for got, expected in zip(through_fused[1:3], plain[1:3], strict=True):
        torch.testing.assert_close(got, expected)
    for got, expected in zip(through_fused[3], plain[3], strict=True):
        torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("kind", BACKBONE_KINDS)
def test_encode_is_the_backbone_over_the_encoded_features(kind: str) -> None:
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    policy = Policy(tiny_config(kind, periodic_frequencies=2))
    features = synthetic_frames(2, 9, generator)
    state = tuple(torch.randn(spec.shape) for spec in policy.state_specs(2))
    weights = torch.randn(2, 9, policy.config.hidden_dim)
    parameters = [*policy.features.parameters(), *policy.backbone.parameters()]

    def outputs_and_gradients(hidden: torch.Tensor, final: tuple) -> list[torch.Tensor]:
        gradients = torch.autograd.grad((hidden * weights).sum(), parameters)
        return [hidden, *final, *gradients]

    encoded = outputs_and_gradients(*policy.encode(features, state))
    plain = outputs_and_gradients(*policy.backbone(policy.features(features), state))
    for got, expected in zip(encoded, plain, strict=True):
        torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("kind", BACKBONE_KINDS)
def test_training_overfits_a_small_fixed_batch(kind: str) -> None:
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(1)
    features = synthetic_frames(4, 32, generator)
    targets = random_targets((4, 32), CONTROLLER_SPEC.head_classes, generator)
    policy = Policy(tiny_config(kind))
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
    losses = []
    for _ in range(400):
        logits, _ = policy(features, targets)
        loss = controller_metrics(logits, targets).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if losses[-1] < 0.05 * losses[0]:
            break
    assert losses[-1] < 0.05 * losses[0], f"{kind}: loss {losses[0]:.3f} -> {losses[-1]:.3f}"
