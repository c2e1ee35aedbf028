#!/usr/bin/env python3
"""Golden PyTorch checkpoints and logits for the crate's model loaders (tests/it/models.rs).

Run from the crate root:  python3 tests/reference/gen_model_fixtures.py
(PyTorch only, CPU is enough; the committed files were written with the version in manifest.txt.)

The architectures are written out here, independently of the Rust code, with the module and
parameter names of the code the paper used:
  * CIFAR ResNet (depth 6k+2, BasicBlock, 16/32/64 channels, 1x1 conv + BN shortcut when the
    shape changes, 8x8 average pool, linear head): bearpaw/pytorch-classification's
    `models/cifar/resnet.py`, which the paper's `archs/cifar_resnet.py` copies;
  * ImageNet ResNet-50 in torchvision's layout (Bottleneck, 3/4/6/3 blocks, stride on the 3x3
    conv, 7x7 stem and 3x3 max pool), with a `width` knob so the golden file stays small: the
    key names and the block structure are those of ResNet-50, only the channel counts shrink.
The paper's `architectures.py` returns `Sequential(NormalizeLayer, net)` and `train.py` saves
`{'epoch', 'arch', 'state_dict', 'optimizer'}`; the normalization holds no tensors, so the keys
start with `1.` (CIFAR) or `1.module.` (ImageNet, where the net is wrapped in DataParallel).

Writes into tests/fixtures/models/:
  cifar_resnet20.zip.pth.tar      paper checkpoint, zip serialization (PyTorch >= 1.6)
  cifar_resnet20.legacy.pth.tar   the same weights, legacy serialization (how the 2019 models were saved)
  cifar_resnet20.io.pt            {'inputs': [4,3,32,32] pixels in [0,1], 'logits': [4,10]}
  resnet50_w4.zip.pth.tar         reduced ResNet-50 (width 4, 10 classes), paper layout with DataParallel
  resnet50_w4.legacy.pth.tar      the same, legacy serialization, with the optimizer's momentum buffers
  resnet50_w4.plain.pth           plain torchvision-style state dict of the same net (no prefix); loaded
                                  into the crate's ResNet-50 (which normalizes first) it gives the same logits
  resnet50_w4.io.pt               {'inputs': [2,3,64,64], 'logits': [2,10]}
  keys.tsv                        arch, key, shape of every state-dict entry of the full-size
                                  cifar_resnet110 and resnet50 (the paper's layout), for the
                                  Rust test that checks the architectures without big files
  manifest.txt                    versions and seed

With `--full DIR` it also writes full-size, randomly initialised checkpoints in the paper's
layout (legacy format) to DIR: cifar_resnet110.pth.tar and resnet50.pth.tar (~100 MB), which the
`load_checkpoint` example loads and certifies; they are not committed.
"""
import argparse
import math
import os
import platform

import torch
import torch.nn as nn
import torch.nn.functional as F

SEED = 20261124
OUT = os.path.join("tests", "fixtures", "models")

CIFAR_MEAN, CIFAR_STD = [0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010]
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


class NormalizeLayer(nn.Module):
    """As the paper's: plain tensors, not buffers, so nothing lands in the state dict."""

    def __init__(self, mean, std):
        super().__init__()
        self.mean = torch.tensor(mean).view(1, -1, 1, 1)
        self.std = torch.tensor(std).view(1, -1, 1, 1)

    def forward(self, x):
        return (x - self.mean) / self.std


class CifarBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(y + shortcut)


class CifarResNet(nn.Module):
    def __init__(self, depth, classes=10):
        super().__init__()
        assert (depth - 2) % 6 == 0
        blocks = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        cin = 16
        for i, (cout, stride) in enumerate([(16, 1), (32, 2), (64, 2)]):
            layer = []
            for b in range(blocks):
                layer.append(CifarBlock(cin, cout, stride if b == 0 else 1))
                cin = cout
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
        self.fc = nn.Linear(64, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = F.avg_pool2d(x, 8).flatten(1)
        return self.fc(x)


class Bottleneck(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        cout = planes * 4
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(y + shortcut)


class ImageNetResNet(nn.Module):
    def __init__(self, layers=(3, 4, 6, 3), width=64, classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        cin = width
        for i, n in enumerate(layers):
            planes = width * 2**i
            blocks = []
            for b in range(n):
                blocks.append(Bottleneck(cin, planes, 2 if (b == 0 and i > 0) else 1))
                cin = planes * 4
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.max_pool2d(x, 3, stride=2, padding=1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.fc(x)


def randomize_batch_norm(model, gen):
    """Non-trivial BN statistics and affine parameters, so that a loader that drops or swaps
    any of them gives different logits."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            with torch.no_grad():
                m.weight.copy_(1.0 + 0.2 * torch.randn(c, generator=gen))
                m.bias.copy_(0.1 * torch.randn(c, generator=gen))
                m.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(c, generator=gen))
                m.num_batches_tracked.fill_(1234)
    # Break the symmetry of the (in)put/output ordering: a non-zero bias on the head.
    for m in model.modules():
        if isinstance(m, nn.Linear):
            with torch.no_grad():
                m.bias.copy_(0.5 * torch.randn(m.out_features, generator=gen))


def paper_checkpoint(model, arch, with_momentum):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    if with_momentum:
        # One step on a dummy loss fills the momentum buffers as a real checkpoint has them,
        # without changing the weights the logits were computed from: lr 0 for this step.
        for group in optimizer.param_groups:
            group["lr"] = 0.0
        model.train()
        size = 32 if arch.startswith("cifar") else 64
        out = model(torch.rand(2, 3, size, size))
        out.sum().backward()
        optimizer.step()
        for group in optimizer.param_groups:
            group["lr"] = 0.1
        model.eval()
    return {
        "epoch": 90,
        "arch": arch,
        "state_dict": model.state_dict(),
        "optimizer": optimizer.state_dict(),
    }


def save(obj, path, legacy):
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)


def shape_text(t):
    return "x".join(str(d) for d in t.shape) if t.dim() > 0 else "scalar"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--full", help="also write full-size checkpoints into this folder")
    args = parser.parse_args()
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)

    # CIFAR ResNet-20 in the paper's layout: Sequential(NormalizeLayer, net), keys `1.*`.
    net = CifarResNet(20)
    randomize_batch_norm(net, gen)
    model = nn.Sequential(NormalizeLayer(CIFAR_MEAN, CIFAR_STD), net).eval()
    ckpt = paper_checkpoint(model, "cifar_resnet20", with_momentum=False)
    with torch.no_grad():
        inputs = torch.rand(4, 3, 32, 32, generator=gen)
        logits = model(inputs)
    save(ckpt, os.path.join(OUT, "cifar_resnet20.zip.pth.tar"), legacy=False)
    save(ckpt, os.path.join(OUT, "cifar_resnet20.legacy.pth.tar"), legacy=True)
    save({"inputs": inputs, "logits": logits}, os.path.join(OUT, "cifar_resnet20.io.pt"), legacy=False)

    # Reduced ResNet-50 (torchvision layout), wrapped in DataParallel as the paper's ImageNet
    # model: keys `1.module.*`.
    net = ImageNetResNet(width=4, classes=10)
    randomize_batch_norm(net, gen)
    model = nn.Sequential(NormalizeLayer(IMAGENET_MEAN, IMAGENET_STD), nn.DataParallel(net)).eval()
    with torch.no_grad():
        inputs = torch.rand(2, 3, 64, 64, generator=gen)
        logits = model(inputs)
    saved_state = {k: v.clone() for k, v in model.state_dict().items()}
    ckpt = paper_checkpoint(model, "resnet50", with_momentum=True)
    # The dummy training step ran BN in training mode, which updates running statistics;
    # store the statistics the logits were computed with.
    ckpt["state_dict"] = saved_state
    save(ckpt, os.path.join(OUT, "resnet50_w4.zip.pth.tar"), legacy=False)
    save(ckpt, os.path.join(OUT, "resnet50_w4.legacy.pth.tar"), legacy=True)
    plain = {k[len("1.module."):]: v for k, v in saved_state.items()}
    save(plain, os.path.join(OUT, "resnet50_w4.plain.pth"), legacy=False)
    save(
        {"inputs": inputs, "logits": logits},
        os.path.join(OUT, "resnet50_w4.io.pt"),
        legacy=False,
    )

    # Key manifest of the full-size architectures, in the paper's layout.
    with open(os.path.join(OUT, "keys.tsv"), "w") as f:
        f.write("arch\tkey\tshape\n")
        full = {
            "cifar_resnet110": nn.Sequential(NormalizeLayer(CIFAR_MEAN, CIFAR_STD), CifarResNet(110)),
            "resnet50": nn.Sequential(
                NormalizeLayer(IMAGENET_MEAN, IMAGENET_STD), nn.DataParallel(ImageNetResNet())
            ),
        }
        for arch, m in full.items():
            for key, t in m.state_dict().items():
                f.write(f"{arch}\t{key}\t{shape_text(t)}\n")

    with open(os.path.join(OUT, "manifest.txt"), "w") as f:
        f.write(f"torch {torch.__version__}\npython {platform.python_version()}\nseed {SEED}\n")

    if args.full:
        os.makedirs(args.full, exist_ok=True)
        for arch, net, mean, std, wrap in [
            ("cifar_resnet110", CifarResNet(110), CIFAR_MEAN, CIFAR_STD, False),
            ("resnet50", ImageNetResNet(), IMAGENET_MEAN, IMAGENET_STD, True),
        ]:
            randomize_batch_norm(net, gen)
            inner = nn.DataParallel(net) if wrap else net
            model = nn.Sequential(NormalizeLayer(mean, std), inner).eval()
            state = {k: v.clone() for k, v in model.state_dict().items()}
            ckpt = paper_checkpoint(model, arch, with_momentum=True)
            ckpt["state_dict"] = state
            save(ckpt, os.path.join(args.full, f"{arch}.pth.tar"), legacy=True)


if __name__ == "__main__":
    main()
