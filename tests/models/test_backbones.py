"""Every backbone: stepping frame by frame equals the sequence forward, with carried state."""

import pytest
import torch

from models import BACKBONE_KINDS, Backbone, build_backbone
from models.backbones import parallel_selective_scan, selective_scan
from tests.models.synthetic import tiny_config

INPUT_DIM = 6
WINDOW = 5


def make_backbone(kind: str) -> Backbone:
    torch.manual_seed(0)
    config = tiny_config(kind, hidden_dim=16, window=WINDOW)
    return build_backbone(config, INPUT_DIM).eval()


def run_steps(backbone: Backbone, x: torch.Tensor) -> tuple[torch.Tensor, tuple]:
    state = backbone.initial_state(x.shape[0])
    outputs = []
    for t in range(x.shape[1]):
        out, state = backbone.step(x[:, t], state)
        outputs.append(out)
    return torch.stack(outputs, dim=1), state


@pytest.mark.parametrize("kind", BACKBONE_KINDS)
@torch.no_grad()
def test_steps_equal_two_carried_sequence_chunks(kind: str) -> None:
    backbone = make_backbone(kind)
    # 23 frames: longer than the window (5), split into two carried chunks of 11 and 12.
    x = torch.randn(3, 23, INPUT_DIM)
    first, state = backbone(x[:, :11])
    second, final_state = backbone(x[:, 11:], state)
    stepped, stepped_state = run_steps(backbone, x)
    whole, _ = backbone(x)

    torch.testing.assert_close(stepped, torch.cat([first, second], dim=1), atol=1e-5, rtol=0)
    torch.testing.assert_close(whole, stepped, atol=1e-5, rtol=0)
    assert len(stepped_state) == len(final_state)
    for stepped_tensor, chunked_tensor in zip(stepped_state, final_state, strict=True):
        torch.testing.assert_close(stepped_tensor, chunked_tensor, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", BACKBONE_KINDS)
@torch.no_grad()
def test_state_shapes_are_fixed_and_match_specs(kind: str) -> None:
    backbone = make_backbone(kind)
    specs = backbone.state_specs(3)
    assert len({spec.name for spec in specs}) == len(specs)
    _, state = backbone(torch.randn(3, 9, INPUT_DIM))
    _, stepped = backbone.step(torch.randn(3, INPUT_DIM), backbone.initial_state(3))
    for spec, after_sequence, after_step in zip(specs, state, stepped, strict=True):
        assert after_sequence.shape == after_step.shape == spec.shape
        assert after_sequence.dtype == torch.float32


@pytest.mark.parametrize("kind", BACKBONE_KINDS)
@torch.no_grad()
def test_outputs_do_not_depend_on_future_frames(kind: str) -> None:
    backbone = make_backbone(kind)
    x = torch.randn(2, 12, INPUT_DIM)
    changed = x.clone()
    changed[:, 7:] = torch.randn(2, 5, INPUT_DIM)
    torch.testing.assert_close(backbone(x)[0][:, :7], backbone(changed)[0][:, :7])


@torch.no_grad()
def test_attention_receptive_field_is_layers_times_window() -> None:
    backbone = make_backbone("attention")
    # Each of the 2 layers looks WINDOW - 1 frames back, so the last of 12 frames sees 3..11.
    first_seen = 11 - 2 * (WINDOW - 1)
    x = torch.randn(2, 12, INPUT_DIM)
    before_field = x.clone()
    before_field[:, :first_seen] = torch.randn(2, first_seen, INPUT_DIM)
    in_field = x.clone()
    in_field[:, first_seen] += 1.0
    last = backbone(x)[0][:, -1]
    torch.testing.assert_close(backbone(before_field)[0][:, -1], last)
    assert not torch.allclose(backbone(in_field)[0][:, -1], last)


def unrolled_selective_scan(x, dt, a, b, c, initial):
    """The scan's closed form: the initial state and every input so far, each decayed by the
    step sizes elapsed since it entered."""
    outputs = []
    for t in range(x.shape[1]):
        state = torch.exp(dt[:, : t + 1].sum(1)[..., None] * a) * initial
        for s in range(t + 1):
            decay = torch.exp(dt[:, s + 1 : t + 1].sum(1)[..., None] * a)
            state = state + decay * (dt[:, s] * x[:, s])[..., None] * b[:, s, None, :]
        outputs.append((state * c[:, t, None, :]).sum(-1))
    return torch.stack(outputs, dim=1), state


@pytest.mark.parametrize("scan", [selective_scan, parallel_selective_scan])
def test_scan_matches_its_closed_form_even_with_fast_decay(scan) -> None:
    generator = torch.Generator().manual_seed(3)
    batch, frames, inner, state_dim = 2, 37, 5, 6
    x = torch.randn(batch, frames, inner, generator=generator, dtype=torch.float64)
    # Step sizes up to 5 with decay rates up to 16: exp(-A t) alone would overflow.
    dt = 5 * torch.rand(batch, frames, inner, generator=generator, dtype=torch.float64)
    a = -torch.linspace(0.01, 16, inner * state_dim, dtype=torch.float64).view(inner, state_dim)
    b, c = (
        torch.randn(batch, frames, state_dim, generator=generator, dtype=torch.float64)
        for _ in range(2)
    )
    initial = torch.randn(batch, inner, state_dim, generator=generator, dtype=torch.float64)

    y, final = scan(x, dt, a, b, c, initial)
    expected_y, expected_final = unrolled_selective_scan(x, dt, a, b, c, initial)

    assert torch.isfinite(y).all()
    torch.testing.assert_close(y, expected_y)
    torch.testing.assert_close(final, expected_final)


@pytest.mark.parametrize("scan", [selective_scan, parallel_selective_scan])
def test_scan_gradients_are_finite(scan) -> None:
    x, dt = torch.randn(1, 20, 3), 4 * torch.rand(1, 20, 3)
    a = -16 * torch.ones(3, 2)
    b, c = torch.randn(1, 20, 2), torch.randn(1, 20, 2)
    for tensor in (x, dt, a, b, c):
        tensor.requires_grad_(True)
    y, final = scan(x, dt, a, b, c, torch.zeros(1, 3, 2))
    (y.sum() + final.sum()).backward()
    for tensor in (x, dt, a, b, c):
        assert torch.isfinite(tensor.grad).all()
