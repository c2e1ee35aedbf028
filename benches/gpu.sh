#!/usr/bin/env bash
# Issue 15's GPU figures in one run of about 8 minutes, on a lent NVIDIA machine that has
# PyTorch and no Rust toolchain, priorities first.
#
# On the build machine (no GPU needed): CUDA binaries, stripped, and the MNIST test set,
# into target/gpu, which the device tool carries:
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
# 3. Packing: PREDICT at n = 1,000 on 100 MNIST images, one image per pass against 8.
# 4. ImageNet ResNet-50 (3x224x224, batch 64) as in 1, f32 and bf16.
# Each part has its own time limit, so that a slow one (kernel compilation) costs only its
# own figures; every line is written to OUT/gpu.md as it comes.
#
# A rehearsal without a GPU: GPU_BACKEND=vulkan GPU_DEVICE=cpu SMOKE=1 PYTHON=... bash benches/gpu.sh
# (binaries built with --features vulkan into target/gpu; lavapipe, PyTorch on the CPU, a
# few samples per timing), which runs every part and its parsing.
set -uo pipefail
cd "$(dirname "$0")/.."
dir=target/gpu

if [ "${1:-}" = "--prepare" ]; then
    set -e
    cargo build --release --features "${GPU_BACKEND:-cuda}" --bin smoothing --example side_by_side
    mkdir -p "$dir/mnist"
    cp target/release/smoothing target/release/examples/side_by_side "$dir/"
    strip "$dir/smoothing" "$dir/side_by_side"
    cp ../shared/data/mnist/t10k-* "$dir/mnist/"
    du -sh "$dir"
    exit 0
fi

out="${1:-$dir/out}"
backend="${GPU_BACKEND:-cuda}"
device="${GPU_DEVICE:-cuda:0}"
python="${PYTHON:-python3}"   # with torch (CUDA torch on the GPU machine)
# Samples per timing, repeats, and images of the packing part: SMOKE=1 shrinks them.
if [ "${SMOKE:-0}" = 1 ]; then r110=800 r50=64 repeats=1 images=10; else r110=20000 r50=1280 repeats=3 images=100; fi
mkdir -p "$out"
report="$out/gpu.md"
: >"$report"
say() { echo "$@" | tee -a "$report"; }
part() { # title, limit in seconds, command...
    local title="$1" limit="$2"
    shift 2
    say ""
    say "## $title"
    say ""
    local start=$SECONDS
    timeout "$limit" "$@" 2>>"$out/stderr.log" | tee -a "$report"
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

part "CIFAR ResNet-110, batch 400: samples/s against PyTorch" 200 \
    "$dir/side_by_side" --python "$python" --backend "$backend" --device "$device" \
    --precisions "$([ "$backend" = vulkan ] && echo f32,f16 || echo f32,f16,bf16)" \
    --workloads cifar_resnet110 --samples "$r110" --repeats "$repeats"

model=docs/attacks/mnist/model.bpk
mnist=(--dataset mnist --data "$dir/mnist" --model "$model" --arch small_cnn --filters 16 --sigma 0.25)
part "First-image delay, MNIST small CNN (n0 = 100, n = 10,000, batch 400)" 150 \
    bash benches/kernel_cache.sh "$dir/smoothing" "$backend" "$device" "${mnist[@]}" \
    --n0 100 --n 10000 --batch 400

packing() {
    for pack in 1 8 1 8; do
        rm -f "$out/predict-$pack.tsv" "$out/predict-$pack.tsv.manifest.json"
        local start end
        start="$(date +%s.%N)"
        "$dir/smoothing" --backend "$backend" --device "$device" predict "${mnist[@]}" --n 1000 \
            --batch 1000 --pack "$pack" --skip 20 --max "$images" --out "$out/predict-$pack.tsv" \
            >/dev/null 2>"$out/predict-$pack.err" || return 1
        end="$(date +%s.%N)"
        echo "- --pack $pack: $(grep -o 'warm-up: .*' "$out/predict-$pack.err"); whole run $(awk "BEGIN { printf \"%.1f\", $end - $start }") s; rows' time $(awk -F'\t' 'NR > 1 { split($NF, h, ":"); t += h[1] * 3600 + h[2] * 60 + h[3] } END { printf "%.2f", t }' "$out/predict-$pack.tsv") s"
    done
}
part "Packing: PREDICT at n = 1,000 on $images MNIST images, batch 1,000" 90 packing

part "ImageNet ResNet-50, batch 64: samples/s against PyTorch" 150 \
    "$dir/side_by_side" --python "$python" --backend "$backend" --device "$device" \
    --precisions "$([ "$backend" = vulkan ] && echo f32,f16 || echo f32,bf16)" \
    --workloads resnet50 --batch 64 --samples "$r50" --repeats "$repeats"
