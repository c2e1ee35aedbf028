#!/usr/bin/env python3
"""ONNX files exported from PyTorch, with PyTorch's logits, for `models::onnx` (tests/it/onnx.rs).

Run from the crate root:  python3 tests/reference/gen_onnx_fixtures.py
(torch with onnx and onnxscript; CPU is enough; versions go into manifest.txt.)

Each model is exported with a symbolic batch dimension, by the legacy TorchScript exporter
(`dynamo=False`, opset 13) and/or the dynamo exporter (`dynamo=True`, its default opset), and
written beside a JSON file of inputs and the logits PyTorch computes for them:

  cifar_resnet20.legacy.onnx   the paper's CIFAR ResNet-20 (NormalizeLayer first, `view(n, -1)`
                               head: the Shape/Gather/Unsqueeze/Concat/Reshape chain), the same
                               weights as tests/fixtures/models/cifar_resnet20.*.pth.tar
  resnet50_w4.dynamo.onnx      the reduced torchvision ResNet-50 of those fixtures (7x7 stem,
                               3x3 max pool, bottlenecks, flatten)
  mobile.legacy.onnx / mobile.dynamo.onnx
                               MobileNetV2's inverted residual: 1x1 expand, depthwise 3x3,
                               ReLU6 (Clip), 1x1 project, residual add, average pool, linear
  mobile.unfolded.onnx         the same, legacy, without constant folding: BatchNormalization
                               and Identity nodes left in
  mlp.legacy.onnx              an MLP on 2 x 5 features, flattened by `view(size(0), -1)` (Shape,
                               Gather, Unsqueeze, Concat, Reshape), then Gemm, ReLU, Tanh,
                               Sigmoid, Mul, MatMul + Add
  vit.legacy.onnx / vit.dynamo.onnx
                               a small vision transformer (timm's layout): patch convolution,
                               class token (Expand, Concat), positions, LayerNormalization,
                               attention (Reshape, Transpose, MatMul, Softmax), GELU (Erf),
                               the class token taken (Gather); the legacy exporter's shape
                               arithmetic around them
  vit.external.onnx(.data)     the same (dynamo), its weights as external data beside it
  digits_cnn.legacy.onnx       a CNN on the digits' 1 x 8 x 8 images, 10 classes (the program's test)
  softplus.legacy.onnx         refused: an operator outside the supported list (Softplus)
  fixed_batch.legacy.onnx      refused: exported without a symbolic batch
  conv_read_twice.onnx         written with onnx.helper: Add(conv, Relu(Identity(conv))), the
                               convolution read twice under two names (logits: ONNX Runtime's)
  lying_shape.onnx             refused: an initializer declaring 4 TiB over 864 bytes
  lying_external.onnx          refused: external data named 1 TiB into vit.external.onnx.data
  STEM.json                    {"input_shape", "logits_shape"}, batch first
  STEM.inputs.f32, .logits.f32 the inputs and PyTorch's logits, little-endian f32, row-major
  FILE.ort.f32                 ONNX Runtime's logits for the same inputs from FILE.onnx
"""
import json
import os
import platform
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(__file__))
import gen_model_fixtures as golden  # noqa: E402  (the architectures, written out once)

OUT = os.path.join("tests", "fixtures", "onnx")
SEED = 20261208


class InvertedResidual(nn.Module):
    """MobileNetV2's block with a stem and a head, small enough to commit."""

    def __init__(self, channels=8, expand=3, classes=5):
        super().__init__()
        hidden = channels * expand
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, 2, 1, bias=False), nn.BatchNorm2d(channels), nn.ReLU6())
        self.block = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6(),
            nn.Conv2d(hidden, channels, 1, bias=False), nn.BatchNorm2d(channels),
        )
        self.grouped = nn.Conv2d(channels, channels, 3, 1, 1, groups=2)
        self.pool = nn.AvgPool2d(2)
        self.head = nn.Linear(channels * 4 * 4, classes)
        self.mean = torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)
        self.std = torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1)

    def forward(self, x):
        x = self.stem((x - self.mean) / self.std)
        x = x + self.block(x)
        x = self.pool(torch.relu(self.grouped(x)))
        return self.head(torch.flatten(x, 1))


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(10, 16)
        self.b = nn.Linear(16, 16)
        self.w = nn.Parameter(torch.randn(16, 3) * 0.3)
        self.c = nn.Parameter(torch.randn(3) * 0.1)

    def forward(self, x):
        # The legacy exporter writes `view(size(0), -1)` as Shape, Gather, Unsqueeze, Concat.
        h = torch.relu(self.a(x.view(x.size(0), -1)))
        h = torch.tanh(self.b(h)) * torch.sigmoid(h)
        return h @ self.w + self.c


class TinyVit(nn.Module):
    """A vision transformer in timm's layout, small: 4 x 4 patches of a 3 x 16 x 16 image,
    width 16, 2 heads, one block, a class token and learned positions."""

    def __init__(self, dim=16, heads=2, classes=4):
        super().__init__()
        self.heads = heads
        self.patch = nn.Conv2d(3, dim, 4, 4)
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.5)
        self.pos = nn.Parameter(torch.randn(1, 17, dim) * 0.5)
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch(x - 0.5).flatten(2).transpose(1, 2)
        n, t, d = x.shape
        x = torch.cat([self.cls.expand(n, -1, -1), x], dim=1) + self.pos
        h = self.norm1(x)
        qkv = self.qkv(h).reshape(n, t + 1, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attention = (q @ k.transpose(-2, -1) * (d // self.heads) ** -0.5).softmax(dim=-1)
        x = x + self.proj((attention @ v).transpose(1, 2).reshape(n, t + 1, d))
        x = x + self.mlp(self.norm2(x))
        return self.head(self.norm(x)[:, 0])


def export(model, inputs, name, dynamo, fold=True, external=False):
    """Exports `model` to OUT/name and writes ONNX Runtime's logits for `inputs` beside it
    (`name` without `.onnx`, then `.ort.f32`)."""
    path = os.path.join(OUT, name)
    kwargs = dict(input_names=["input"], output_names=["logits"])
    if dynamo:
        batch = torch.export.Dim("batch", min=1, max=4096)
        torch.onnx.export(model, (inputs,), path, dynamo=True, dynamic_shapes=({0: batch},),
                          external_data=external, **kwargs)
    else:
        torch.onnx.export(model, (inputs,), path, dynamo=False, opset_version=13,
                          do_constant_folding=fold, dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, **kwargs)
    import onnxruntime
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {session.get_inputs()[0].name: inputs.numpy()})
    logits.astype("<f4").tofile(path[: -len(".onnx")] + ".ort.f32")


def write_io(stem, inputs, logits):
    """Shapes as JSON, values as little-endian f32 (`STEM.inputs.f32`, `STEM.logits.f32`)."""
    with open(os.path.join(OUT, stem + ".json"), "w") as f:
        json.dump({"input_shape": list(inputs.shape), "logits_shape": list(logits.shape)}, f)
    for part, t in [("inputs", inputs), ("logits", logits)]:
        t.contiguous().to(torch.float32).numpy().astype("<f4").tofile(os.path.join(OUT, f"{stem}.{part}.f32"))


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)

    # The paper's CIFAR ResNet-20, the weights of the checkpoint fixtures.
    ckpt = torch.load(os.path.join("tests", "fixtures", "models", "cifar_resnet20.zip.pth.tar"))
    model = nn.Sequential(golden.NormalizeLayer(golden.CIFAR_MEAN, golden.CIFAR_STD), golden.CifarResNet(20))
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    inputs = torch.rand(3, 3, 32, 32, generator=gen)
    with torch.no_grad():
        write_io("cifar_resnet20", inputs, model(inputs))
    export(model, inputs, "cifar_resnet20.legacy.onnx", dynamo=False)

    # The reduced torchvision ResNet-50 of the checkpoint fixtures, plain layout.
    net = golden.ImageNetResNet(width=4, classes=10)
    net.load_state_dict(torch.load(os.path.join("tests", "fixtures", "models", "resnet50_w4.plain.pth")))
    model = nn.Sequential(golden.NormalizeLayer(golden.IMAGENET_MEAN, golden.IMAGENET_STD), net).eval()
    inputs = torch.rand(2, 3, 64, 64, generator=gen)
    with torch.no_grad():
        write_io("resnet50_w4", inputs, model(inputs))
    export(model, inputs, "resnet50_w4.dynamo.onnx", dynamo=True)

    model = InvertedResidual()
    golden.randomize_batch_norm(model, gen)
    model.eval()
    inputs = torch.rand(3, 3, 16, 16, generator=gen)
    with torch.no_grad():
        write_io("mobile", inputs, model(inputs))
    export(model, inputs, "mobile.legacy.onnx", dynamo=False)
    export(model, inputs, "mobile.dynamo.onnx", dynamo=True)
    # Without constant folding the batch norms stay BatchNormalization nodes (and Identity).
    export(model, inputs, "mobile.unfolded.onnx", dynamo=False, fold=False)

    model = Mlp().eval()
    inputs = torch.randn(5, 2, 5, generator=gen)
    with torch.no_grad():
        write_io("mlp", inputs, model(inputs))
    export(model, inputs, "mlp.legacy.onnx", dynamo=False)

    model = TinyVit().eval()
    inputs = torch.rand(3, 3, 16, 16, generator=gen)
    with torch.no_grad():
        write_io("vit", inputs, model(inputs))
    export(model, inputs, "vit.legacy.onnx", dynamo=False)
    export(model, inputs, "vit.dynamo.onnx", dynamo=True)
    # Weights in a file of their own beside the graph (`vit.external.onnx.data`).
    export(model, inputs, "vit.external.onnx", dynamo=True, external=True)

    # The digits' shape (1 x 8 x 8, 10 classes), for the program's test of `--model FILE.onnx`.
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(64, 10)).eval()
    inputs = torch.rand(2, 1, 8, 8, generator=gen)
    with torch.no_grad():
        write_io("digits_cnn", inputs, model(inputs))
    export(model, inputs, "digits_cnn.legacy.onnx", dynamo=False)

    # Refused at load: an operator the crate does not run (Softplus), and a fixed batch.
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 4), nn.Softplus()).eval()
    export(model, torch.rand(2, 3, 4, 4), "softplus.legacy.onnx", dynamo=False)
    torch.onnx.export(nn.Sequential(nn.Flatten(), nn.Linear(48, 4)).eval(), (torch.rand(2, 3, 4, 4),),
                      os.path.join(OUT, "fixed_batch.legacy.onnx"), dynamo=False, opset_version=13,
                      input_names=["input"])

    # Lies: the first initializer of the inverted residual declared 2^20 x 2^20 (4 TiB of
    # float32) over its 864 bytes, and the external-data file named past its end.
    import onnx
    lie = onnx.load(os.path.join(OUT, "mobile.legacy.onnx"))
    first = lie.graph.initializer[0]
    del first.dims[:]
    first.dims.extend([1 << 20, 1 << 20])
    onnx.save(lie, os.path.join(OUT, "lying_shape.onnx"))
    lie = onnx.load(os.path.join(OUT, "vit.external.onnx"), load_external_data=False)
    for t in lie.graph.initializer:
        for entry in t.external_data:
            if entry.key == "offset":
                entry.value = str(1 << 40)
    onnx.save(lie, os.path.join(OUT, "lying_external.onnx"))

    # A convolution read twice, once through an Identity: Add(conv, Relu(Identity(conv))),
    # where fusing the ReLU into the convolution would change the Add's other operand. The
    # legacy exporter would not write this pattern, so it is built by hand.
    from onnx import TensorProto, helper, numpy_helper
    w = torch.randn(2, 1, 3, 3, generator=gen).numpy()
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Identity", ["c"], ["i"]),
         helper.make_node("Relu", ["i"], ["r"]),
         helper.make_node("Add", ["c", "r"], ["s"]),
         helper.make_node("Flatten", ["s"], ["logits"])],
        "twice", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 2, 2])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 8])],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, os.path.join(OUT, "conv_read_twice.onnx"))
    import onnxruntime
    inputs = torch.randn(3, 1, 2, 2, generator=gen)
    session = onnxruntime.InferenceSession(os.path.join(OUT, "conv_read_twice.onnx"),
                                           providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input": inputs.numpy()})
    write_io("conv_read_twice", inputs, torch.from_numpy(logits))
    logits.astype("<f4").tofile(os.path.join(OUT, "conv_read_twice.ort.f32"))


    with open(os.path.join(OUT, "manifest.txt"), "w") as f:
        f.write(f"torch {torch.__version__}\nonnx {onnx.__version__}\npython {platform.python_version()}\nseed {SEED}\n")


if __name__ == "__main__":
    main()
