#!/usr/bin/env bash
# The first-image delay of `smoothing certify` on a CubeCL backend (cuda, vulkan): cold, warm,
# and how much of it is compiling kernels and how much autotuning them (issue 15, item 3).
#
#   benches/kernel_cache.sh BINARY BACKEND DEVICE CERTIFY-ARGS...
#   benches/kernel_cache.sh target/release/smoothing vulkan cpu --dataset mnist \
#       --data ../shared/data/mnist --model docs/attacks/mnist/model.bpk --arch small_cnn \
#       --filters 16 --sigma 0.25 --n0 100 --n 10000 --batch 400
#
# Each case certifies one image (--max 1) in a fresh process with a kernel cache folder made
# for it, and prints the warm-up's time (every batch size's first pass: what compiling and
# autotuning cost) and the whole process's wall time:
#   cold          empty cache
#   warm          both caches of the cold run
#   no-autotune   its compiled kernels only: the warm-up pays autotuning
#   no-kernels    its autotune results only: the warm-up pays compiling
#   warm+driver   both caches, and the driver's own cache (Mesa's shader cache, NVIDIA's
#                 ComputeCache), twice (the first fills it): a user's second run
#   no-cache      CubeCL's own settings (--kernel-cache off) with an empty autotune cache
# The driver's cache is off in the other cases, so that CubeCL's caches are measured alone.
set -euo pipefail
bin="$(realpath "$1")"; backend="$2"; device="$3"; shift 3
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
kind="$([ "$backend" = cuda ] && echo cuda || echo vulkan)"

run() { # name, cache folder (or off), driver cache on|off
    local name="$1" cache="$2" driver="$3" out="$work/$1.tsv" err="$work/$1.err"
    shift 3
    local env=(MESA_SHADER_CACHE_DISABLE=true CUDA_CACHE_DISABLE=1)
    [ "$driver" = on ] && env=(MESA_SHADER_CACHE_DIR="$work/driver" CUDA_CACHE_PATH="$work/driver")
    # Without a folder of ours CubeCL keeps autotune results in the user's cache: a fresh one.
    [ "$cache" = off ] && env+=(HOME="$work/home" XDG_CACHE_HOME="$work/home")
    rm -f "$out" "$out.manifest.json"
    local start end
    start="$(date +%s.%N)"
    # The working folder is $work, where no cubecl.toml or target/ folder is found.
    (cd "$work" && env "${env[@]}" "$bin" --backend "$backend" --device "$device" \
        --kernel-cache "$cache" certify "$@" --max 1 --out "$out" >/dev/null 2>"$err")
    end="$(date +%s.%N)"
    local warm
    warm="$(sed -n 's/^warm-up: batch sizes \(.*\) in \(.*\) s$/\2 s (sizes \1)/p' "$err")"
    printf '%-12s warm-up %-28s wall %6.1f s   row: %s\n' "$name" "$warm" \
        "$(awk "BEGIN { printf \"%.1f\", $end - $start }")" "$(tail -n 1 "$out" | cut -f1-5 | tr '\t' ' ')"
}

echo "$("$bin" --version), $backend on $device, $(nproc) cores, $(date -u +%FT%TZ)"
# Paths made absolute: the runs' working folder is $work.
shift_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --data|--model|--denoiser) shift_args+=("$1" "$(realpath "$2")"); shift 2 ;;
        *) shift_args+=("$1"); shift ;;
    esac
done
run cold "$work/cold" off "${shift_args[@]}"
cp -r "$work/cold" "$work/warm"
run warm "$work/warm" off "${shift_args[@]}"
cp -r "$work/cold" "$work/no-autotune" && rm -rf "$work/no-autotune/autotune"
run no-autotune "$work/no-autotune" off "${shift_args[@]}"
cp -r "$work/cold" "$work/no-kernels" && rm -rf "$work/no-kernels/$kind"
run no-kernels "$work/no-kernels" off "${shift_args[@]}"
run warm+driver "$work/warm" on "${shift_args[@]}"
run warm+driver "$work/warm" on "${shift_args[@]}"
run no-cache off off "${shift_args[@]}"
