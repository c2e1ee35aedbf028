#!/usr/bin/env bash
# Installs libtorch 2.9.0 for the crate's `tch` feature (Burn's LibTorch backend, tch 0.22),
# from the Python package registry, on a machine without a CUDA toolkit.
#
#   bash .ci/libtorch.sh            # libtorch into target/libtorch; prints the export line
#   bash .ci/libtorch.sh --python   # also a virtual environment target/torch-venv with the
#                                   # full torch 2.9.0 and ONNX Runtime 1.32.0, for
#                                   # benches/reference/torch_sampling.py
#   eval "$(bash .ci/libtorch.sh)"   # sets LIBTORCH and LD_LIBRARY_PATH in this shell
#   cargo test --release --features tch --test it -- models:: smoothing::
#
# Why this way: burn-tch turns on tch's `download-libtorch`, which fetches libtorch from a
# host that no machine here reaches unless LIBTORCH is set, so LIBTORCH must always be set.
# The torch 2.9.0 wheel carries libtorch (include/, lib/) for the C++ ABI tch expects; its
# libtorch_cpu.so also needs libcupti.so.12 and libcudart.so.12 (it finds them beside itself,
# through its $ORIGIN rpath), which the two NVIDIA wheels below provide. The CUDA libraries of
# the wheel (libtorch_cuda*.so, 1.1 GB) are left out: without them torch-sys links the CPU
# library only, so LibTorch's CPU device runs and its CUDA device compiles but is not run.
# Newer torch wheels do not work: their headers need C++20, and tch 0.22 compiles C++17.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.9.0
ONNXRUNTIME_VERSION=1.32.0
ONNX_VERSION=1.23.2
CUDA_WHEELS=(nvidia-cuda-cupti-cu12==12.8.90 nvidia-cuda-runtime-cu12==12.8.90)
DEST="$PWD/target/libtorch"
PYTHON="${PYTHON:-python3}"

if [[ -f "$DEST/version.txt" && "$(cat "$DEST/version.txt")" == "$TORCH_VERSION" ]]; then
    echo "libtorch $TORCH_VERSION already in $DEST" >&2
else
    wheels="$(mktemp -d)"
    trap 'rm -rf "$wheels"' EXIT
    "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: -d "$wheels" \
        "torch==$TORCH_VERSION" "${CUDA_WHEELS[@]}"
    rm -rf "$DEST"
    mkdir -p "$DEST/lib"
    # Unpack with Python's zipfile: no unzip on a fresh machine.
    "$PYTHON" - "$wheels" "$DEST" <<'EOF'
import pathlib, shutil, sys, zipfile

wheels, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for wheel in sorted(wheels.glob("*.whl")):
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if name.startswith("torch/"):
                rel = name[len("torch/"):]
                keep = rel.startswith(("include/", "share/")) or (
                    rel.startswith("lib/") and "cuda" not in rel and "nvshmem" not in rel
                    and "libtorch_python" not in rel and "nvrtc" not in rel)
                target = dest / rel if keep else None
            elif name.startswith("nvidia/") and "/lib/" in name and ".so" in name:
                target = dest / "lib" / pathlib.Path(name).name
            else:
                target = None
            if target is None or name.endswith("/"):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with z.open(name) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
EOF
    echo "$TORCH_VERSION" > "$DEST/version.txt"
    echo "installed libtorch $TORCH_VERSION into $DEST ($(du -sh "$DEST" | cut -f1))" >&2
fi

if [[ "${1:-}" == "--python" ]]; then
    VENV="$PWD/target/torch-venv"
    if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
        "$PYTHON" -m venv "$VENV"
        "$VENV/bin/pip" install --quiet "torch==$TORCH_VERSION"
    fi
    # ONNX Runtime, the side-by-side benchmark's fastest CPU engine, and the exporter's needs.
    if ! "$VENV/bin/python" -c "import onnxruntime, onnx, sys; sys.exit(onnxruntime.__version__ != '$ONNXRUNTIME_VERSION')" 2>/dev/null; then
        "$VENV/bin/pip" install --quiet "onnxruntime==$ONNXRUNTIME_VERSION" "onnx==$ONNX_VERSION"
    fi
    echo "reference python: $VENV/bin/python" >&2
fi

# LIBTORCH for the build, LD_LIBRARY_PATH for running what it builds.
echo "export LIBTORCH=$DEST LD_LIBRARY_PATH=$DEST/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
