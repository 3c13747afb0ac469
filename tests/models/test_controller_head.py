import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from models import AutoregressiveControllerHead, controller_metrics, sample_inverse_cdf
from runtime.controller_spec import CONTROLLER_SPEC
from tests.models.synthetic import random_targets

HIDDEN = 16
NUM_HEADS = CONTROLLER_SPEC.num_heads


@pytest.fixture
def head() -> AutoregressiveControllerHead:
    torch.manual_seed(0)
    return AutoregressiveControllerHead(
        HIDDEN, CONTROLLER_SPEC.head_classes, joint_heads=len(CONTROLLER_SPEC.buttons), mlp_dim=16
    ).eval()


def test_groups_are_the_buttons_then_each_axis_then_shoulder(
    head: AutoregressiveControllerHead,
) -> None:
    assert head.groups == (tuple(range(8)), (8,), (9,), (10,), (11,), (12,))


@torch.no_grad()
def test_teacher_forced_logits_shapes(head: AutoregressiveControllerHead) -> None:
    generator = torch.Generator().manual_seed(0)
    targets = random_targets((2, 5), CONTROLLER_SPEC.head_classes, generator)
    logits = head(torch.randn(2, 5, HIDDEN), targets)
    assert [t.shape for t in logits] == [(2, 5, n) for n in CONTROLLER_SPEC.head_classes]


@torch.no_grad()
def test_later_heads_depend_on_earlier_classes_and_not_on_later_ones(
    head: AutoregressiveControllerHead,
) -> None:
    hidden = torch.randn(1, HIDDEN)
    targets = torch.zeros(1, NUM_HEADS, dtype=torch.long)
    changed_main_y = targets.clone()
    changed_main_y[0, 9] = 3
    base, changed = head(hidden, targets), head(hidden, changed_main_y)
    for index in range(10):  # buttons, main x, main y: predicted before main y is known
        torch.testing.assert_close(base[index], changed[index])
    assert not torch.allclose(base[10], changed[10])


@torch.no_grad()
def test_temperature_zero_is_greedy_autoregressive_decoding(
    head: AutoregressiveControllerHead,
) -> None:
    hidden = torch.randn(6, HIDDEN)
    classes, probs = head.sample(hidden, torch.rand(6, NUM_HEADS), torch.tensor(0.0))
    # Feeding the chosen classes back under teacher forcing reproduces each choice as argmax.
    logits = head(hidden, classes)
    for index, head_logits in enumerate(logits):
        assert torch.equal(classes[:, index], head_logits.argmax(-1))
        chosen = torch.softmax(head_logits, -1).gather(-1, classes[:, index, None])[:, 0]
        torch.testing.assert_close(probs[:, index], chosen)


@torch.no_grad()
def test_sampled_probs_are_the_teacher_forced_probabilities(
    head: AutoregressiveControllerHead,
) -> None:
    hidden = torch.randn(6, HIDDEN)
    classes, probs = head.sample(hidden, torch.rand(6, NUM_HEADS), torch.tensor(1.5))
    logits = head(hidden, classes)
    for index, head_logits in enumerate(logits):
        chosen = torch.softmax(head_logits, -1).gather(-1, classes[:, index, None])[:, 0]
        torch.testing.assert_close(probs[:, index], chosen)


@torch.no_grad()
def test_fixed_uniforms_give_identical_samples(head: AutoregressiveControllerHead) -> None:
    hidden, uniforms = torch.randn(4, HIDDEN), torch.rand(4, NUM_HEADS)
    first = head.sample(hidden, uniforms, torch.tensor(1.0))
    second = head.sample(hidden, uniforms, torch.tensor(1.0))
    assert torch.equal(first[0], second[0])
    assert torch.equal(first[1], second[1])
    limits = torch.tensor(CONTROLLER_SPEC.head_classes)
    assert ((first[0] >= 0) & (first[0] < limits)).all()
    assert first[0].dtype == torch.long


@torch.no_grad()
def test_per_row_temperature_mixes_greedy_and_sampled_rows(
    head: AutoregressiveControllerHead,
) -> None:
    hidden = torch.randn(1, HIDDEN).expand(2, HIDDEN)
    uniforms = torch.full((2, NUM_HEADS), 0.999)
    classes, _ = head.sample(hidden, uniforms, torch.tensor([0.0, 1.0]))
    greedy, _ = head.sample(hidden[:1], uniforms[:1], torch.tensor(0.0))
    sampled, _ = head.sample(hidden[1:], uniforms[1:], torch.tensor(1.0))
    assert torch.equal(classes, torch.cat([greedy, sampled]))


def test_uniform_zero_picks_the_first_class_with_nonzero_probability() -> None:
    logits = torch.tensor([[float("-inf"), float("-inf"), 0.0, 1.0], [0.0, 1.0, 2.0, 3.0]])
    classes, probs = sample_inverse_cdf(logits, torch.zeros(2), torch.ones(2))
    assert classes.tolist() == [2, 0]
    torch.testing.assert_close(probs, torch.softmax(logits, -1)[[0, 1], [2, 0]])


def test_uniform_at_one_never_picks_an_impossible_last_class() -> None:
    logits = torch.tensor([[0.0, 0.0, float("-inf")]]).expand(2, 3)
    classes, _ = sample_inverse_cdf(logits, torch.tensor([1.0 - 1e-7, 1.0]), torch.ones(2))
    assert classes.tolist() == [1, 1]


def test_temperature_zero_ignores_the_uniforms() -> None:
    logits = torch.tensor([[0.0, 2.0, 1.0]]).expand(5, 3)
    classes, _ = sample_inverse_cdf(logits, torch.linspace(0, 0.99, 5), torch.zeros(5))
    assert classes.tolist() == [1] * 5


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_sampling_frequencies_follow_the_tempered_softmax(temperature: float) -> None:
    generator = torch.Generator().manual_seed(5)
    logits = torch.tensor([1.0, -0.5, 0.3, 2.0, 0.0])
    draws = 40_000
    classes, _ = sample_inverse_cdf(
        logits.expand(draws, 5),
        torch.rand(draws, generator=generator),
        torch.full((draws,), temperature),
    )
    frequencies = torch.bincount(classes, minlength=5).float() / draws
    expected = torch.softmax(logits / temperature, -1)
    torch.testing.assert_close(frequencies, expected, atol=0.01, rtol=0)


def test_metrics_match_cross_entropy_and_respect_the_mask() -> None:
    logits = [torch.tensor([[[2.0, 0.0], [0.0, 3.0], [1.0, 1.5]]])]
    targets = torch.tensor([[[0], [0], [1]]], dtype=torch.uint8)
    metrics = controller_metrics(logits, targets)
    expected = torch.nn.functional.cross_entropy(logits[0][0], targets[0, :, 0].long())
    torch.testing.assert_close(metrics.nll, expected[None])
    torch.testing.assert_close(metrics.accuracy, torch.tensor([2 / 3]))
    torch.testing.assert_close(metrics.loss, expected)

    masked = controller_metrics(logits, targets, mask=torch.tensor([[True, False, True]]))
    kept = torch.nn.functional.cross_entropy(logits[0][0, [0, 2]], torch.tensor([0, 1]))
    torch.testing.assert_close(masked.nll, kept[None])
    torch.testing.assert_close(masked.accuracy, torch.tensor([1.0]))


@torch.no_grad()
def test_sampled_logits_are_the_teacher_forced_logits_along_the_path(
    head: AutoregressiveControllerHead,
) -> None:
    hidden = torch.randn(5, HIDDEN)
    classes, _, logits = head.sample_with_logits(hidden, torch.rand(5, NUM_HEADS), torch.tensor(1))
    assert logits.shape == (5, sum(CONTROLLER_SPEC.head_classes))
    torch.testing.assert_close(logits, torch.cat(head(hidden, classes), dim=-1))


def test_heads_predicted_together_need_equal_class_counts() -> None:
    with pytest.raises(ValueError, match="same number of classes"):
        AutoregressiveControllerHead(HIDDEN, (2, 3, 4), joint_heads=2, mlp_dim=8)


def per_group_logits(
    head: AutoregressiveControllerHead, hidden: Tensor, targets: Tensor
) -> list[Tensor]:
    """The head's definition written out group by group: each group's MLP reads the first
    layer's slice for that group plus what every earlier group's one-hot classes add to it."""
    mlp = head.mlp_dim
    first = head.first_layers(head.norm(hidden))
    groups = targets.long().split(head.group_sizes, dim=-1)
    logits: list[Tensor] = []
    for index, group_logits in enumerate(head.group_logits):
        pre_activation = first[..., index * mlp : (index + 1) * mlp]
        for earlier in range(index):
            one_hot = F.one_hot(groups[earlier], head.group_classes[earlier]).flatten(-2)
            added = head.conditioning[earlier](one_hot.float())
            offset = (index - earlier - 1) * mlp
            pre_activation = pre_activation + added[..., offset : offset + mlp]
        group = group_logits(F.relu(pre_activation))
        logits.extend(group.split(head.group_classes[index], dim=-1))
    return logits


@pytest.mark.parametrize("joint_heads", [len(CONTROLLER_SPEC.buttons), 0])
def test_teacher_forced_logits_and_gradients_follow_the_per_group_definition(
    joint_heads: int,
) -> None:
    torch.manual_seed(3)
    head = AutoregressiveControllerHead(
        HIDDEN, CONTROLLER_SPEC.head_classes, joint_heads=joint_heads, mlp_dim=8
    )
    hidden = torch.randn(3, 4, HIDDEN, requires_grad=True)
    generator = torch.Generator().manual_seed(4)
    targets = random_targets((3, 4), CONTROLLER_SPEC.head_classes, generator)
    weights = [torch.randn(3, 4, n) for n in CONTROLLER_SPEC.head_classes]

    def gradients(logits: list[Tensor]) -> list[Tensor]:
        total = sum((w * x).sum() for w, x in zip(weights, logits, strict=True))
        return torch.autograd.grad(total, [hidden, *head.parameters()])

    fused, reference = head(hidden, targets), per_group_logits(head, hidden, targets)
    for got, expected in zip(fused, reference, strict=True):
        torch.testing.assert_close(got, expected)
    for got, expected in zip(gradients(fused), gradients(reference), strict=True):
        torch.testing.assert_close(got, expected)
