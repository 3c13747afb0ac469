import pytest
import torch

from models import CategoricalColumn, FeatureInput, categorical_columns


def make_input() -> FeatureInput:
    return FeatureInput(
        5, [CategoricalColumn(index=1, vocab_size=4, embedding_dim=3), CategoricalColumn(4, 2, 2)]
    )


def test_continuous_columns_pass_through_then_embeddings_follow() -> None:
    layer = make_input()
    frames = torch.tensor([[0.5, 2.0, -1.0, 3.5, 1.0]])
    out = layer(frames)
    assert layer.output_dim == 3 + 3 + 2
    assert out.shape == (1, layer.output_dim)
    torch.testing.assert_close(out[:, :3], torch.tensor([[0.5, -1.0, 3.5]]))
    torch.testing.assert_close(out[0, 3:6], layer.column_embeddings(0)[2])
    torch.testing.assert_close(out[0, 6:], layer.column_embeddings(1)[1])


def test_any_leading_shape() -> None:
    layer = make_input()
    assert layer(torch.zeros(2, 7, 5)).shape == (2, 7, layer.output_dim)


def test_out_of_range_ids_are_clamped_into_the_vocabulary() -> None:
    layer = make_input()
    nan, inf = float("nan"), float("inf")
    frames = torch.tensor(
        [[0.0, -3.0, 0.0, 0.0, 99.0], [0.0, 7.0, 0.0, 0.0, inf], [0.0, nan, 0.0, 0.0, -inf]]
    )
    out = layer(frames)
    first, second = layer.column_embeddings(0), layer.column_embeddings(1)
    for row, (first_id, second_id) in enumerate([(0, 1), (3, 1), (0, 0)]):
        torch.testing.assert_close(out[row, 3:6], first[first_id])
        torch.testing.assert_close(out[row, 6:], second[second_id])


def test_no_categorical_columns_is_the_identity() -> None:
    frames = torch.randn(3, 4)
    torch.testing.assert_close(FeatureInput(4, [])(frames), frames)


@pytest.mark.parametrize(
    "columns",
    [
        [CategoricalColumn(1, 4, 3), CategoricalColumn(1, 2, 2)],
        [CategoricalColumn(5, 4, 3)],
    ],
)
def test_rejects_repeated_or_out_of_range_columns(columns: list[CategoricalColumn]) -> None:
    with pytest.raises(ValueError):
        FeatureInput(5, columns)


def test_categorical_column_validates_and_round_trips() -> None:
    with pytest.raises(ValueError):
        CategoricalColumn(index=0, vocab_size=0, embedding_dim=2)
    column = CategoricalColumn(index=2, vocab_size=400, embedding_dim=16)
    assert CategoricalColumn.from_dict(column.to_dict()) == column


def test_categorical_columns_cap_the_embedding_width() -> None:
    columns = categorical_columns([(4, 400), (9, 6)], max_embedding_dim=16)
    assert columns == (CategoricalColumn(4, 400, 16), CategoricalColumn(9, 6, 6))


def test_table_gradients_are_those_of_one_lookup_per_column() -> None:
    torch.manual_seed(2)
    layer = make_input()
    ids = torch.tensor([[[0, 1], [3, 1], [3, 0]], [[2, 0], [3, 1], [1, 1]]])
    frames = torch.randn(2, 3, 5)
    frames[..., 1], frames[..., 4] = ids[..., 0].float(), ids[..., 1].float()
    weights = torch.randn(2, 3, layer.output_dim)
    (table_gradient,) = torch.autograd.grad((layer(frames) * weights).sum(), layer.table.weight)
    reference = torch.cat(
        [
            torch.nn.functional.embedding(ids[..., 0], layer.column_embeddings(0)),
            torch.nn.functional.embedding(ids[..., 1], layer.column_embeddings(1)),
        ],
        dim=-1,
    )
    (expected,) = torch.autograd.grad((reference * weights[..., 3:]).sum(), layer.table.weight)
    torch.testing.assert_close(table_gradient, expected)


def input_with_layer(
    periodic_frequencies: int, categorical: bool
) -> tuple[FeatureInput, torch.nn.Linear, torch.Tensor]:
    """An input, a Linear after it and frames ``[2, 3, 5]`` whose ids include out-of-range and
    NaN ones."""
    torch.manual_seed(1)
    columns = [CategoricalColumn(1, 4, 3), CategoricalColumn(4, 2, 2)] if categorical else []
    layer = FeatureInput(5, columns, periodic_frequencies=periodic_frequencies)
    linear = torch.nn.Linear(layer.output_dim, 6)
    frames = torch.randn(2, 3, 5)
    if categorical:
        frames[..., 1] = torch.tensor([[0.0, 3.0, 9.0], [-1.0, float("nan"), 2.0]])
        frames[..., 4] = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 5.0]])
    return layer, linear, frames


@pytest.mark.parametrize("periodic_frequencies", [0, 2])
@pytest.mark.parametrize("categorical", [True, False])
def test_projection_is_the_layer_applied_to_the_encoding(
    periodic_frequencies: int, categorical: bool
) -> None:
    layer, linear, frames = input_with_layer(periodic_frequencies, categorical)
    weights = torch.randn(2, 3, 6)
    parameters = [*layer.parameters(), *linear.parameters()]

    def outputs_and_gradients(out: torch.Tensor) -> list[torch.Tensor]:
        return [out, *torch.autograd.grad((out * weights).sum(), parameters)]

    projected = outputs_and_gradients(layer.project(frames, linear))
    expected = outputs_and_gradients(linear(layer(frames)))
    for got, want in zip(projected, expected, strict=True):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("periodic_frequencies", [0, 3])
@pytest.mark.parametrize("categorical", [True, False])
@torch.no_grad()
def test_the_fused_layer_is_the_layer_applied_to_the_encoding(
    periodic_frequencies: int, categorical: bool
) -> None:
    layer, linear, frames = input_with_layer(periodic_frequencies, categorical)
    frames = frames.reshape(-1, 5)
    fused = layer.fused_with(linear)
    torch.testing.assert_close(fused(frames), linear(layer(frames)))
    # A copy of the weights as they were: later training does not reach it.
    before = fused(frames)
    linear.weight.add_(1.0)
    torch.testing.assert_close(fused(frames), before)


def test_projection_refuses_a_layer_of_another_width() -> None:
    with pytest.raises(ValueError, match="inputs"):
        make_input().project(torch.zeros(1, 5), torch.nn.Linear(4, 2))
    with pytest.raises(ValueError, match="inputs"):
        make_input().fused_with(torch.nn.Linear(4, 2))
