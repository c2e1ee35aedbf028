#!/usr/bin/env bash
# Issue 15's GPU figures in one run of about 8 minutes, on a lent NVIDIA machine that has
# PyTorch and no Rust toolchain, priorities first; at most 560 s (run it with the device
# tool's timeout_s = 600).
#
# On the build machine (no GPU needed): CUDA binaries, stripped, and the MNIST test set, in
# one archive, target/gpu/bundle.tgz (28 MB for CUDA; the device tool carries at most 64 MiB):
#   bash benches/gpu.sh --prepare
# On the GPU machine, from the repository root:
#   bash benches/gpu.sh [OUT]          # OUT/gpu.md (default target/gpu/out), then copy into
#                                      # docs/benchmarks.md
#
# 1. CIFAR ResNet-110 (3x32x32, batch 400): the crate's certify sampling loop on Burn's CUDA
#    backend in f32, f16 and bf16 against PyTorch on the same GPU (cudnn.benchmark; eval,
#    batch norm folded, autocast f16 and bf16), and the seconds per image at n = 100,000
#    (examples/side_by_side.rs and benches/reference/torch_sampling.py).
# 2. The first-image delay cold and warm, compiling against autotuning
#    (benches/kernel_cache.sh, MNIST small CNN).
# 3. Packing: PREDICT at n = 1,000 on 100 MNIST images at batch 8,000: one image per pass
#    (passes of 1,000) against 8 (passes of 8,000); the rows' time, which the warm-up
#    leaves out.
# 4. ImageNet ResNet-50 (3x224x224, batch 64) as in 1, f32 and bf16.
# Each part has its own time limit, so that a slow one (kernel compilation) costs only its
# own figures; every line is written to OUT/gpu.md as it comes.
#
# A rehearsal without a GPU, which runs every part and its parsing: with
#   GPU_BACKEND=vulkan bash benches/gpu.sh --prepare
#   GPU_BACKEND=vulkan GPU_DEVICE=cpu SMOKE=1 PYTHON=... bash benches/gpu.sh
# the crate runs on lavapipe, PyTorch on the CPU, with small models and few samples.
set -uo pipefail
cd "$(dirname "$0")/.."
dir=target/gpu

if [ "${1:-}" = "--prepare" ]; then
    set -e
    cargo build --release --features "${GPU_BACKEND:-cuda}" --bin smoothing --example side_by_side
    rm -rf "$dir" && mkdir -p "$dir/bin/mnist"
    cp target/release/smoothing target/release/examples/side_by_side "$dir/bin/"
    strip "$dir/bin/smoothing" "$dir/bin/side_by_side"
    cp ../shared/data/mnist/t10k-* "$dir/bin/mnist/"
    tar czf "$dir/bundle.tgz" -C "$dir/bin" .
    rm -rf "$dir/bin"
    ls -l "$dir/bundle.tgz"
    exit 0
fi
out="${1:-$dir/out}"
[ -x "$dir/bin/smoothing" ] || { mkdir -p "$dir/bin" && tar xzf "$dir/bundle.tgz" -C "$dir/bin"; }
dir="$dir/bin"

backend="${GPU_BACKEND:-cuda}"
device="${GPU_DEVICE:-cuda:0}"
python="${PYTHON:-python3}"   # with torch (CUDA torch on the GPU machine)
# Samples per timing, repeats, and images of the packing part: SMOKE=1 shrinks them.
if [ "${SMOKE:-0}" = 1 ]; then
    # Vulkan caps a buffer at 128 MiB: smaller passes in part 3.
    w1=small_cnn_28x28_16 r1=800 w4=cifar_resnet20 r4=128 repeats=1 images=16 pn=250 pb=2000
else
    w1=cifar_resnet110 r1=20000 w4=resnet50 r4=1280 repeats=3 images=100 pn=1000 pb=8000
fi
mkdir -p "$out"
report="$out/gpu.md"
: >"$report"
say() { echo "$@" | tee -a "$report"; }
part() { # title, limit in seconds (0: the command keeps its own), command...
    local title="$1" limit="$2"
    shift 2
    say ""
    say "## $title"
    say ""
    local start=$SECONDS
    local timer=(timeout "$limit")
    [ "$limit" = 0 ] && timer=()
    "${timer[@]}" "$@" 2>>"$out/stderr.log" | tee -a "$report"
    local rc=${PIPESTATUS[0]}
    say ""
    say "($((SECONDS - start)) s$([ "$rc" = 124 ] && echo ", stopped at its ${limit} s limit")$([ "$rc" != 0 ] && [ "$rc" != 124 ] && echo ", exit $rc: see stderr.log"))"
}

say "# GPU figures, $(date -u +%FT%TZ)"
say ""
say "$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"
say "$("$python" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda)' 2>&1 | tail -1)"
say "crate: $backend on $device; CUBECL_AUTOTUNE_LEVEL=${CUBECL_AUTOTUNE_LEVEL:-balanced (default)}"
export XDG_CACHE_HOME="$out/cache"   # the kernel cache starts empty: part 1 is cold

part "$w1, batch 400: samples/s against PyTorch" 210 \
    "$dir/side_by_side" --python "$python" --backend "$backend" --device "$device" \
    --precisions "$([ "$backend" = vulkan ] && echo f32,f16 || echo f32,f16,bf16)" \
    --workloads "$w1" --samples "$r1" --repeats "$repeats"

model=docs/attacks/mnist/model.bpk
mnist=(--dataset mnist --data "$dir/mnist" --model "$model" --arch small_cnn --filters 16 --sigma 0.25)
part "First-image delay, MNIST small CNN (n0 = 100, n = 10,000, batch 400)" 150 \
    bash benches/kernel_cache.sh "$dir/smoothing" "$backend" "$device" "${mnist[@]}" \
    --n0 100 --n 10000 --batch 400

packing() { # each run under its own limit: a function cannot run under timeout
    for pack in 1 8; do
        rm -f "$out/predict-$pack.tsv" "$out/predict-$pack.tsv.manifest.json"
        local start end
        start="$(date +%s.%N)"
        timeout 50 "$dir/smoothing" --backend "$backend" --device "$device" predict "${mnist[@]}" --n "$pn" \
            --batch "$pb" --pack "$pack" --skip 20 --max "$images" --out "$out/predict-$pack.tsv" \
            >/dev/null 2>"$out/predict-$pack.err" || return 1
        end="$(date +%s.%N)"
        echo "- --pack $pack: $(grep -o 'warm-up: .*' "$out/predict-$pack.err"); whole run $(awk "BEGIN { printf \"%.1f\", $end - $start }") s; rows' time $(awk -F'\t' 'NR > 1 { split($NF, h, ":"); t += h[1] * 3600 + h[2] * 60 + h[3] } END { printf "%.2f", t }' "$out/predict-$pack.tsv") s"
    done
}
part "Packing: PREDICT at n = $pn on $images MNIST images, batch $pb" 0 packing

part "$w4, batch 64: samples/s against PyTorch" 100 \
    "$dir/side_by_side" --python "$python" --backend "$backend" --device "$device" \
    --precisions "$([ "$backend" = vulkan ] && echo f32,f16 || echo f32,bf16)" \
    --workloads "$w4" --batch 64 --samples "$r4" --repeats "$repeats"
