#!/usr/bin/env bash
# Data-parallel figures on this machine's CPUs (docs/distributed.md):
#   1. the all-reduce bandwidth of the MPI path for 1, 25 and 100 MB (build/bench/dist_allreduce, 2 ranks);
#   2. train-det steps/s at the same effective batch: 1 rank x 2 threads x batch 2B against
#      2 ranks x 1 thread x batch B (RetinaNet ResNet-18, synthetic classic images).
# Usage: scripts/bench_dist.sh [BUILD_DIR] [STEPS] [SIZE]   (defaults: build 12 256)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${1:-$ROOT/build}"
STEPS="${2:-12}"
SIZE="${3:-256}"
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2)
WORK="$(mktemp -d /tmp/sx_bench_dist.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

echo "== all-reduce through MPI, 2 ranks =="
OMP_NUM_THREADS=1 "${MPIRUN[@]}" "$BUILD/bench/dist_allreduce" --repeats 10

echo "== train-det steps/s, effective batch 4 =="
"$BUILD/train/spinexr" synth --out "$WORK/data" --images 48 --size "$SIZE" --seed 1 >/dev/null 2>&1
COMMON=(train-det --data "$WORK/data" --model retinanet --arch resnet18 --fpn-channels 64 --size "$SIZE"
        --epochs 1 --max-steps "$STEPS" --val-fraction 0 --precise-bn 0 --warmup 0 --workers 1
        --probe-steps 0 --seed 3)
run() {  # label, then the command; prints steps/s from the "done" line
  local label="$1"; shift
  local out
  out="$("$@" 2>/dev/null | grep -E '^(done|interrupted):' | tail -1)"
  local steps secs
  steps="$(sed -E 's/^[a-z]+: ([0-9]+) steps in ([0-9.]+) s.*/\1/' <<<"$out")"
  secs="$(sed -E 's/^[a-z]+: ([0-9]+) steps in ([0-9.]+) s.*/\2/' <<<"$out")"
  awk -v l="$label" -v n="$steps" -v s="$secs" 'BEGIN { printf "%-28s %3d steps in %7.1f s: %.3f steps/s, %.2f img/s\n", l, n, s, n / s, 4 * n / s }'
}
run "1 rank x 2 threads, batch 4" env OMP_NUM_THREADS=2 "$BUILD/train/spinexr" "${COMMON[@]}" --batch 4 --dist off --out "$WORK/r1"
run "2 ranks x 1 thread, batch 2" env OMP_NUM_THREADS=1 "${MPIRUN[@]}" -x OMP_NUM_THREADS "$BUILD/train/spinexr" "${COMMON[@]}" --batch 2 --out "$WORK/r2"
