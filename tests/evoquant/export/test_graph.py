"""FP32 export: modules found again in the graph, weights kept, untraceable models refused."""

import onnx
import pytest
import torch
from torch import nn

from evoquant.errors import UserError
from evoquant.export.graph import OPSET, export_fp32, node_module


def _node(namespace: str | None) -> onnx.NodeProto:
    node = onnx.helper.make_node("Conv", ["x", "w"], ["y"])
    if namespace is not None:
        node.metadata_props.add(key="namespace", value=namespace)
    return node


def test_node_module_is_the_innermost_module_of_the_namespace():
    nested = (
        ": torchvision.models.resnet.ResNet/layer1: torch.nn.Sequential/layer1.0: "
        "BasicBlock/layer1.0.conv1: torch.nn.Conv2d/conv2d_1: aten.conv2d.default"
    )
    assert node_module(_node(nested)) == "layer1.0.conv1"
    assert node_module(_node(": ResNet/view: aten.view.default")) == ""
    assert node_module(_node(None)) is None


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, bias=False)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


def test_export_keeps_weights_and_batchnorm_apart():
    block = _Block().eval()
    model = export_fp32(block, (torch.randn(1, 2, 5, 5),), {}, ["conv.weight"], "block")
    ops = [node.op_type for node in model.graph.node]
    assert ops == ["Conv", "BatchNormalization"]
    (conv,) = [n for n in model.graph.node if n.op_type == "Conv"]
    assert conv.input[1] == "conv.weight" and node_module(conv) == "conv"
    assert {o.version for o in model.opset_import if o.domain == ""} == {OPSET}


@torch.library.custom_op("evoquant_test::pool", mutates_args=())
def _pool(x: torch.Tensor) -> torch.Tensor:
    """An operator ONNX has no translation for, like BEVFusion's BEV pooling."""
    return x * 2


@_pool.register_fake
def _(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


class _Pooling(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _pool(x)


def test_an_operator_onnx_cannot_take_is_a_user_error():
    with pytest.raises(UserError, match="part p: ONNX export failed") as error:
        export_fp32(_Pooling().eval(), (torch.randn(2),), {}, [], "part p")
    message = str(error.value)
    assert "evoquant_test.pool" in message and "export_parts" in message
    assert "\n" not in message and "\x1b" not in message


class _DictInput(nn.Module):
    """Takes its batch as one dict, as sentence-embedding models do."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(3, 2)

    def forward(self, input: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.proj(input["x"]) * input["mask"].unsqueeze(-1)


def test_a_batch_dict_given_whole_exports_with_its_axes_free():
    batch = {"x": torch.randn(2, 5, 3), "mask": torch.ones(2, 5)}
    axes = {"*": {0: "batch", 1: "sequence"}}
    model = export_fp32(_DictInput().eval(), (batch,), {}, ["proj.weight"], "m", axes)
    shapes = {
        value.name: [
            d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim
        ]
        for value in [*model.graph.input, *model.graph.output]
    }
    (output,) = [v.name for v in model.graph.output]
    assert shapes == {
        "input.x": ["batch", "sequence", 3],
        "input.mask": ["batch", "sequence"],
        output: ["batch", "sequence", 2],
    }
