#!/usr/bin/env python3
"""PyTorch reference for the crate's side-by-side sampling benchmark (examples/side_by_side.rs).

It runs the sampling loop of the paper's `core.py` (`Smooth._sample_noise`): repeat the input
`batch` times, add `torch.randn_like(batch) * sigma`, forward pass, arg-max, count the classes,
under `torch.no_grad()` with the model in eval mode. That is what a user of the paper's code
pays per noisy sample. Weights are random: speed does not depend on them.

Workloads (the same architectures as the crate; the ResNets come from the golden-model script
tests/reference/gen_model_fixtures.py, which writes them out independently of the Rust code):
  small_cnn_8x8_16     the quickstart CNN, 1x8x8, 16 filters
  small_cnn_28x28_16   the MNIST CNN, 1x28x28, 16 filters
  small_cnn_28x28_32   the same with 32 filters
  cifar_resnet20       CIFAR ResNet-20, 3x32x32
  cifar_resnet110      CIFAR ResNet-110, 3x32x32
  resnet50             ImageNet ResNet-50, 3x224x224
Modes: `eval` (as users run it), `folded` (batch norm folded into the convolutions with
torch.fx's `fuse`, as the crate folds it for inference), and `autocast-f16`, `autocast-bf16`
(eval mode under `torch.autocast`: the noise is drawn and added in f32, the model runs in
half precision, as a user of the paper's code would get half precision), and `onnxruntime`
(the eval model exported with `torch.onnx.export`, dynamic batch, run by an ONNX Runtime CPU
session with as many intra-op threads as torch has and spinning off; the loop, its noise and
its counts stay torch's, the forward pass is ONNX Runtime's).
Devices: `--device cpu` (threads from `--threads`) or `cuda` (`cudnn.benchmark` on, as the
fastest PyTorch users run it; each timing ends with a device synchronization).

Two ways to run it:
  python3 benches/reference/torch_sampling.py --threads 2 --workload cifar_resnet20 --batch 400
      prints the median samples/s of a few repeats, for a quick look;
  python3 benches/reference/torch_sampling.py --threads 2 --serve
      answers requests on standard input, one a line, `WORKLOAD MODE BATCH SAMPLES`, with the
      seconds one sampling run took (models are built once and kept), or `error: ...`. The
      Rust benchmark drives it this way so that both sides are timed interleaved in one run.
Install: `bash .ci/libtorch.sh` makes a virtual environment with torch 2.9.0 (the same
build whose libtorch the crate's `tch` feature links) and prints its python.
"""
import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "reference"))
from gen_model_fixtures import CifarResNet, ImageNetResNet  # noqa: E402

SIGMA = 0.25
NUM_CLASSES = {"resnet50": 1000}


class Normalize(nn.Module):
    """The paper's NormalizeLayer: the model's first layer, so noise is added in pixel space."""

    def __init__(self, channels, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).repeat(channels // len(mean)).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).repeat(channels // len(std)).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


class SmallCnn(nn.Module):
    """The crate's models::SmallCnn: three 3x3 convolutions (pooling after the second and
    third), global average pooling, linear head."""

    def __init__(self, channels, filters, classes=10):
        super().__init__()
        f = filters
        self.conv1 = nn.Conv2d(channels, f, 3, padding=1)
        self.conv2 = nn.Conv2d(f, f, 3, padding=1)
        self.conv3 = nn.Conv2d(f, 2 * f, 3, padding=1)
        self.head = nn.Linear(2 * f, classes)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.max_pool2d(F.relu(self.conv3(x)), 2)
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))


def build(workload):
    """(model in eval mode, input shape)."""
    if workload.startswith("small_cnn_"):
        _, _, size, filters = workload.split("_")
        side = int(size.split("x")[0])
        net, shape = SmallCnn(1, int(filters)), (1, side, side)
        norm = Normalize(1, [0.5], [0.5])
    elif workload.startswith("cifar_resnet"):
        net, shape = CifarResNet(int(workload[len("cifar_resnet"):])), (3, 32, 32)
        norm = Normalize(3, [0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010])
    elif workload == "resnet50":
        net, shape = ImageNetResNet(), (3, 224, 224)
        norm = Normalize(3, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    else:
        raise ValueError(f"unknown workload {workload!r}")
    return nn.Sequential(norm, net).eval(), shape


def fold(model):
    """Batch norm folded into the preceding convolutions (torch.fx), as the crate does."""
    from torch.fx.experimental.optimization import fuse

    return fuse(model).eval()


def sample_counts(model, x, num, batch_size, num_classes, autocast=None):
    """The paper's `_sample_noise`: counts of the arg-max class over `num` noisy copies of x,
    the model under `torch.autocast` in dtype `autocast` when given."""
    with torch.no_grad():
        counts = torch.zeros(num_classes, dtype=torch.long, device=x.device)
        remaining = num
        while remaining > 0:
            this_batch = min(batch_size, remaining)
            remaining -= this_batch
            batch = x.repeat((this_batch, 1, 1, 1))
            noise = torch.randn_like(batch) * SIGMA
            if autocast is None:
                logits = model(batch + noise)
            else:
                with torch.autocast(x.device.type, dtype=autocast):
                    logits = model(batch + noise)
            predictions = logits.argmax(1)
            counts += torch.bincount(predictions, minlength=num_classes)
        return counts


AUTOCAST = {"autocast-f16": torch.float16, "autocast-bf16": torch.bfloat16}


def export_onnx(model, shape, path):
    """The export of the onnxruntime mode: legacy exporter, opset 17, a symbolic batch."""
    torch.onnx.export(model, torch.rand(2, *shape), path, input_names=["x"], output_names=["logits"],
                      dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}}, opset_version=17,
                      dynamo=False)


class OnnxRuntime:
    """`model` exported to ONNX and run by an ONNX Runtime CPU session, called as the torch
    module was: a float tensor in, a tensor of logits out (both sides share the buffers)."""

    def __init__(self, model, shape):
        import tempfile

        import onnxruntime as ort

        path = os.path.join(tempfile.mkdtemp(), "model.onnx")
        export_onnx(model, shape, path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.version = ort.__version__
        self.torch = model

    def __call__(self, x):
        (logits,) = self.session.run(None, {"x": x.contiguous().numpy()})
        return torch.from_numpy(logits)

    def to(self, device):
        if torch.device(device).type != "cpu":
            raise ValueError("the onnxruntime mode runs on the CPU")
        return self


class Models:
    def __init__(self, device):
        self.device = torch.device(device)
        self.cache = {}

    def get(self, workload, mode):
        key = (workload, mode)
        if key not in self.cache:
            torch.manual_seed(0)
            model, shape = build(workload)
            if mode == "folded":
                model = fold(model)
            elif mode == "onnxruntime":
                model = OnnxRuntime(model, shape)
            elif mode != "eval" and mode not in AUTOCAST:
                raise ValueError(f"unknown mode {mode!r}")
            x = torch.rand(1, *shape)
            self.cache[key] = (model.to(self.device), x.to(self.device), NUM_CLASSES.get(workload, 10))
        return self.cache[key]

    def sync(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def time(self, workload, mode, batch, samples):
        model, x, classes = self.get(workload, mode)
        self.sync()
        start = time.perf_counter()
        counts = sample_counts(model, x, samples, batch, classes, AUTOCAST.get(mode))
        self.sync()
        elapsed = time.perf_counter() - start
        assert int(counts.sum()) == samples
        return elapsed


def describe(device):
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, CUDA {torch.version.cuda}, cudnn.benchmark"
    return f"threads {torch.get_num_threads()} cpu {torch.backends.cpu.get_cpu_capability()}"


def serve(models):
    try:
        import onnxruntime

        onnx = f", onnxruntime {onnxruntime.__version__}"
    except ImportError:
        onnx = ", no onnxruntime"
    print(f"ready torch {torch.__version__} {describe(models.device)}{onnx}", flush=True)
    for line in sys.stdin:
        parts = line.split()
        if not parts:
            continue
        try:
            if parts[0] == "export":
                # `export WORKLOAD PATH`: the workload's model (seed 0, as every mode builds
                # it) exported as the onnxruntime mode exports it, for the crate to load.
                torch.manual_seed(0)
                model, shape = build(parts[1])
                export_onnx(model, shape, parts[2])
                print("ok", flush=True)
                continue
            workload, mode, batch, samples = parts[0], parts[1], int(parts[2]), int(parts[3])
            print(f"{models.time(workload, mode, batch, samples):.9f}", flush=True)
        except Exception as e:  # noqa: BLE001 -- the driver prints it and stops
            print(f"error: {e}".replace("\n", " "), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, required=True, help="torch.set_num_threads")
    parser.add_argument("--serve", action="store_true", help="answer timing requests on stdin")
    parser.add_argument("--workload", default="cifar_resnet20")
    parser.add_argument("--mode", default="eval", choices=["eval", "folded", "onnxruntime", *AUTOCAST])
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:K]")
    parser.add_argument("--batch", type=int, default=400)
    parser.add_argument("--samples", type=int, default=0, help="per repeat (default: 2 batches)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True
    models = Models(args.device)
    if args.serve:
        serve(models)
        return
    samples = args.samples or 2 * args.batch
    models.time(args.workload, args.mode, args.batch, samples)  # warm-up
    rates = [samples / models.time(args.workload, args.mode, args.batch, samples) for _ in range(args.repeats)]
    print(f"{args.workload} {args.mode} batch {args.batch}: median {statistics.median(rates):.0f} samples/s "
          f"(min {min(rates):.0f}, max {max(rates):.0f}), torch {torch.__version__}, {describe(models.device)}")


if __name__ == "__main__":
    main()
