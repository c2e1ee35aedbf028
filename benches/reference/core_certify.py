#!/usr/bin/env python3
"""The paper's certification loop on the CPU, for the end-to-end row of docs/benchmarks.md.

It runs the algorithm of the paper's `code/core.py` (`Smooth.certify`: n0 selection samples,
the arg-max class, n fresh estimation samples, the Clopper-Pearson lower bound of
`statsmodels.proportion_confint(nA, n, alpha=2 * alpha, method="beta")`, abstain below 1/2,
else radius sigma * PhiInv(pA)) and of `code/certify.py` (one row per example, its seconds),
with `core.py`'s `_sample_noise` as written: repeat the input, `torch.randn_like` times sigma,
forward pass, arg-max, counts, under `torch.no_grad()` in eval mode. The model is the paper's
`Sequential(NormalizeLayer, cifar_resnet110)` read from a checkpoint in the paper's layout, the
same file `smoothing certify --model` reads. (statsmodels' beta interval is SciPy's
`beta.ppf(alpha, nA, n - nA + 1)`, used here so that statsmodels need not be installed.)

  python3 benches/reference/core_certify.py write DIR
      writes DIR/cifar_resnet110.pth.tar (the paper's layout: `arch`, `state_dict` with keys
      `1.*`; random weights and batch-norm statistics, seed 0) and
      DIR/cifar-10-batches-bin/test_batch.bin (10,000 random images in CIFAR-10's binary
      format), the inputs of both sides;
  python3 benches/reference/core_certify.py certify DIR --n0 100 --n 10000 --batch 400 \\
      --sigma 0.25 --alpha 0.001 --max 6 --threads 2
      certifies the first --max images and prints certify.py's rows
      (idx, label, predict, radius, correct, time) and a last line
      `total SECONDS samples/s RATE`.
benches/end_to_end.sh runs both sides in turns against `smoothing certify`.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
from scipy.stats import beta, norm

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "reference"))
from gen_model_fixtures import CIFAR_MEAN, CIFAR_STD, CifarResNet, NormalizeLayer, randomize_batch_norm  # noqa: E402

IMAGES = 10_000


def model_path(folder):
    return os.path.join(folder, "cifar_resnet110.pth.tar")


def data_path(folder):
    return os.path.join(folder, "cifar-10-batches-bin", "test_batch.bin")


def write(folder):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    net = CifarResNet(110)
    randomize_batch_norm(net, gen)
    model = nn.Sequential(NormalizeLayer(CIFAR_MEAN, CIFAR_STD), net).eval()
    os.makedirs(os.path.dirname(data_path(folder)), exist_ok=True)
    torch.save({"epoch": 0, "arch": "cifar_resnet110", "state_dict": model.state_dict()}, model_path(folder))
    rng = np.random.default_rng(0)
    records = np.empty((IMAGES, 1 + 3 * 32 * 32), dtype=np.uint8)
    records[:, 0] = rng.integers(0, 10, IMAGES)
    records[:, 1:] = rng.integers(0, 256, (IMAGES, 3 * 32 * 32))
    records.tofile(data_path(folder))
    print(f"wrote {model_path(folder)} and {data_path(folder)}")


def sample_noise(model, x, num, batch_size, sigma):
    """`core.py`'s `Smooth._sample_noise`."""
    with torch.no_grad():
        counts = np.zeros(10, dtype=int)
        remaining = num
        while remaining > 0:
            this_batch = min(batch_size, remaining)
            remaining -= this_batch
            batch = x.repeat((this_batch, 1, 1, 1))
            noise = torch.randn_like(batch) * sigma
            predictions = model(batch + noise).argmax(1)
            counts += np.bincount(predictions.numpy(), minlength=10)
        return counts


def certify(model, x, n0, n, alpha, batch_size, sigma):
    """`core.py`'s `Smooth.certify`: (class or -1, radius)."""
    selection = sample_noise(model, x, n0, batch_size, sigma)
    candidate = int(selection.argmax())
    estimation = sample_noise(model, x, n, batch_size, sigma)
    n_a = int(estimation[candidate])
    p_a = beta.ppf(alpha, n_a, n - n_a + 1) if n_a > 0 else 0.0
    if p_a < 0.5:
        return -1, 0.0
    return candidate, sigma * norm.ppf(p_a)


def run(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    checkpoint = torch.load(model_path(args.folder), weights_only=False)
    model = nn.Sequential(NormalizeLayer(CIFAR_MEAN, CIFAR_STD), CifarResNet(110))
    model.load_state_dict(checkpoint["state_dict"])
    model.eval()
    records = np.fromfile(data_path(args.folder), dtype=np.uint8).reshape(IMAGES, -1)
    print("idx\tlabel\tpredict\tradius\tcorrect\ttime", flush=True)
    total = 0.0
    for i in range(args.max):
        label = int(records[i, 0])
        x = torch.from_numpy(records[i, 1:].reshape(1, 3, 32, 32).astype(np.float32) / 255.0)
        start = time.perf_counter()
        prediction, radius = certify(model, x, args.n0, args.n, args.alpha, args.batch, args.sigma)
        seconds = time.perf_counter() - start
        total += seconds
        print(f"{i}\t{label}\t{prediction}\t{radius:.3}\t{int(prediction == label)}\t{seconds:.3f}", flush=True)
    print(f"total {total:.3f} samples/s {args.max * (args.n0 + args.n) / total:.1f}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["write", "certify"])
    parser.add_argument("folder")
    parser.add_argument("--n0", type=int, default=100)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=400)
    parser.add_argument("--sigma", type=float, default=0.25)
    parser.add_argument("--alpha", type=float, default=0.001)
    parser.add_argument("--max", type=int, default=6)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    if args.command == "write":
        write(args.folder)
    else:
        run(args)


if __name__ == "__main__":
    main()
