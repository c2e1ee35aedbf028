#!/usr/bin/env bash
# Submits a sharded `smoothing certify` (or `predict`) run to Slurm: a job array with one task
# per shard, then a merge job that runs only if every shard succeeded (afterok).
#
#   examples/slurm/submit.sh OUT SHARDS certify --dataset ... --model ... --sigma ... [...]
#
# Task k runs `smoothing ... --shard k/SHARDS --out OUT/shard_k.tsv`; the merge writes
# OUT/all.tsv and its manifest. Do not pass --shard or --out yourself. Prints the array's and
# the merge's job ids. Environment:
#   SMOOTHING    the program (default: `smoothing` on the PATH; give an absolute path)
#   GRES         generic resources per task, e.g. gpu:1 for one GPU per shard
#   CPUS         CPUs per task (default 1)
#   SBATCH_ARGS  further sbatch options for both jobs (partition, time limit, account)
# A task stopped by preemption or `scontrol requeue` restarts under the same job id and
# resumes its log, so the merge still follows; see docs/workflow.md for a cancelled task.
set -euo pipefail
if [ $# -lt 3 ]; then
    sed -n '2,9p' "$0" >&2
    exit 2
fi
out=$1
shards=$2
shift 2
here="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$out"
# shellcheck disable=SC2086 # SBATCH_ARGS holds several options
array=$(sbatch --parsable --array="0-$((shards - 1))" --requeue \
    --cpus-per-task="${CPUS:-1}" ${GRES:+--gres="$GRES"} \
    --output="$out/shard_%a.out" ${SBATCH_ARGS:-} \
    "$here/shard.sbatch" "$out" "$shards" "$@")
# shellcheck disable=SC2086
merge=$(sbatch --parsable --dependency="afterok:${array}" --kill-on-invalid-dep=yes \
    --output="$out/merge.out" ${SBATCH_ARGS:-} \
    "$here/merge.sbatch" "$out" "$shards")
echo "$array $merge"
