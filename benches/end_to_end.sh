#!/usr/bin/env bash
# End to end on the CPU: `smoothing certify` of the paper's CIFAR model (a ResNet-110
# checkpoint in the paper's layout) against the paper's own algorithm in PyTorch
# (benches/reference/core_certify.py: code/core.py's certify, code/certify.py's loop), on the
# same images and settings (n0 = 100, n = 10,000, batch 400, sigma 0.25, alpha 0.001), the same
# threads, in turns, so that drifts of a shared machine hit both alike.
#
#   eval "$(bash .ci/libtorch.sh --python)"
#   bash benches/end_to_end.sh target/torch-venv/bin/python [IMAGES (6)] [ROUNDS (2)]
#
# The checkpoint and the images (random weights, random pixels: speed does not depend on
# them) are written once into target/end-to-end. Each side's rate is samples (n0 + n per image)
# over the sum of its rows' seconds, so the model's loading is left out of both. The crate's
# `sample_counts` rate at the same batch, for the comparison the speed issue asks for, is
# examples/side_by_side's.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${1:?usage: end_to_end.sh PYTHON [IMAGES] [ROUNDS]}"
IMAGES="${2:-6}"
ROUNDS="${3:-2}"
THREADS="${THREADS:-$(nproc)}"
N0=100
N=10000
DIR=target/end-to-end
export RAYON_NUM_THREADS="$THREADS" OMP_NUM_THREADS="$THREADS"

[[ -f "$DIR/cifar_resnet110.pth.tar" ]] || "$PYTHON" benches/reference/core_certify.py write "$DIR"
cargo build --release --quiet --bin smoothing

# Seconds in a certify log's last column, summed (certify.py writes h:mm:ss.ffffff).
seconds() {
    awk -F'\t' 'NR > 1 { n = split($NF, t, ":"); s += (n == 3 ? t[1] * 3600 + t[2] * 60 + t[3] : $NF) } END { printf "%.3f", s }' "$1"
}

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) ($(grep -m1 flags /proc/cpuinfo | tr ' ' '\n' | grep -xE 'avx2|fma|avx512f|avx512vl' | xargs)); $THREADS threads each; $IMAGES images, n0 = $N0, n = $N, batch 400"
echo "| round | engine | s per image | samples/s |"
echo "| ---: | --- | ---: | ---: |"
for round in $(seq "$ROUNDS"); do
    log="$DIR/crate-$round.tsv"
    rm -f "$log" "$log".*
    target/release/smoothing certify --dataset cifar10 --data "$DIR/cifar-10-batches-bin" \
        --model "$DIR/cifar_resnet110.pth.tar" --backend flex --sigma 0.25 --alpha 0.001 \
        --n0 "$N0" --n "$N" --batch 400 --max "$IMAGES" --split test --out "$log" > /dev/null 2>&1
    s=$(seconds "$log")
    echo "| $round | smoothing certify, Flex ($(target/release/smoothing --version 2>/dev/null | head -1)) | $(awk "BEGIN { printf \"%.2f\", $s / $IMAGES }") | $(awk "BEGIN { printf \"%.1f\", $IMAGES * ($N0 + $N) / $s }") |"
    paper="$DIR/paper-$round.tsv"
    "$PYTHON" benches/reference/core_certify.py certify "$DIR" --n0 "$N0" --n "$N" --batch 400 \
        --sigma 0.25 --alpha 0.001 --max "$IMAGES" --threads "$THREADS" | grep -v '^total' > "$paper"
    s=$(seconds "$paper")
    echo "| $round | the paper's core.py, PyTorch $("$PYTHON" -c 'import torch; print(torch.__version__)') | $(awk "BEGIN { printf \"%.2f\", $s / $IMAGES }") | $(awk "BEGIN { printf \"%.1f\", $IMAGES * ($N0 + $N) / $s }") |"
done
echo
echo "rows (idx, label, predict, radius; crate | paper):"
paste <(cut -f1-4 "$DIR/crate-$ROUNDS.tsv") <(cut -f3-4 "$DIR/paper-$ROUNDS.tsv")
