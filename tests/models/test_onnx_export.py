"""The single-step graph exports to ONNX and onnxruntime reproduces PyTorch's choices."""

import io
import warnings

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from models import BACKBONE_KINDS, CategoricalColumn, Policy, PolicyStepGraph
from runtime.controller_spec import CONTROLLER_SPEC
from tests.models.synthetic import INPUT_DIM, synthetic_frames, tiny_config


def export_step_graph(policy: Policy) -> tuple[PolicyStepGraph, bytes]:
    graph = PolicyStepGraph(policy).eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # onnxscript (needed by the dynamo exporter) is not a dependency: use TorchScript's.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            graph.example_inputs(batch_size=1),
            buffer,
            input_names=graph.input_names(),
            output_names=graph.output_names(),
            opset_version=17,
            dynamo=False,
        )
    return graph, buffer.getvalue()


@pytest.mark.parametrize("kind", BACKBONE_KINDS)
@torch.no_grad()
def test_onnxruntime_reproduces_policy_step(kind: str) -> None:
    torch.manual_seed(0)
    policy = Policy(tiny_config(kind)).eval()
    graph, model = export_step_graph(policy)
    session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == graph.input_names()
    assert [o.name for o in session.get_outputs()] == graph.output_names()

    generator = torch.Generator().manual_seed(1)
    frames = synthetic_frames(1, 12, generator)
    state = policy.initial_state(1)
    onnx_state = [tensor.numpy() for tensor in state]
    for t in range(frames.shape[1]):
        uniforms = torch.rand(1, CONTROLLER_SPEC.num_heads, generator=generator)
        temperature = torch.tensor(0.0 if t % 3 == 0 else 0.9)
        classes, probs, logits, state = policy.step_with_logits(
            frames[:, t], state, uniforms, temperature
        )
        inputs = [frames[:, t].numpy(), uniforms.numpy(), temperature.numpy(), *onnx_state]
        outputs = session.run(None, dict(zip(graph.input_names(), inputs, strict=True)))
        onnx_classes, onnx_probs, onnx_logits, *onnx_state = outputs

        np.testing.assert_array_equal(onnx_classes, classes.numpy())
        np.testing.assert_allclose(onnx_probs, probs.numpy(), atol=1e-4, rtol=0)
        assert onnx_logits.shape == (1, sum(CONTROLLER_SPEC.head_classes))
        np.testing.assert_allclose(onnx_logits, logits.numpy(), atol=1e-4, rtol=0)
        for onnx_tensor, tensor in zip(onnx_state, state, strict=True):
            np.testing.assert_allclose(onnx_tensor, tensor.numpy(), atol=1e-4, rtol=0)


def test_graph_size_does_not_grow_with_the_number_of_id_columns() -> None:
    def node_count(columns: int) -> int:
        categorical = tuple(CategoricalColumn(i, 3 + i, 2 + i % 2) for i in range(columns))
        policy = Policy(tiny_config("mlp", categorical=categorical)).eval()
        return len(onnx.load_from_string(export_step_graph(policy)[1]).graph.node)

    assert node_count(2) == node_count(INPUT_DIM - 1)
