#!/usr/bin/env bash
# Peak memory of a detector training step on the CPU, spinexr vs torchvision, side by side: for
# each configuration (model x size x batch) bench/bench_memory (ours) and then
# scripts/memory_torch_detectors.py (torchvision, same model configuration, same shapes) run, each
# in a fresh process, ONE AT A TIME, and the table of peak resident set sizes (VmHWM, GB = 1e9
# bytes) is printed at the end. Both sides: one warm-up step, then the measured step; 2 threads.
#
# A configuration whose estimated peak exceeds SX_MEM_LIMIT_GB (default 14) is skipped and said
# so: the estimate scales the same model's first measured peak (of either side) by
# size^2 x batch. The machine's available memory (MemAvailable) is printed before each run.
#
# Usage: scripts/memory_compare.sh [MODELS] [SIZES] [BATCHES]
#   defaults: "retinanet faster_rcnn" "1024 1333" "2 4"; SX_BENCH_BUILD=DIR (default build)
# Needs: a build with bench_memory, Debian's python3-torch and python3-torchvision.
source "$(dirname "$0")/common.sh"
cd "$SX_ROOT"
MODELS="${1:-retinanet faster_rcnn}"
SIZES="${2:-1024 1333}"
BATCHES="${3:-2 4}"
BUILD="${SX_BENCH_BUILD:-build}"
LIMIT="${SX_MEM_LIMIT_GB:-14}"
PY=/usr/bin/python3  # Debian's python (the one python3-torch installs into), not a pyenv one
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2
[ -x "$BUILD/bench/bench_memory" ] || cmake --build "$BUILD" -j2 --target bench_memory >/dev/null

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }  # value of key=value in a bench_memory line
avail() { awk '/MemAvailable/ {printf "%.1f", $2 / 1e6}' /proc/meminfo; }

echo "memory_compare: $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')," \
  "$(nproc) cores, OMP_NUM_THREADS=2, torch threads 2, limit ${LIMIT} GB, load $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A first  # model -> "peak size batch" of its first measurement
rows=()
for m in $MODELS; do
  for s in $SIZES; do
    for b in $BATCHES; do
      if [ -n "${first[$m]:-}" ]; then
        read -r p0 s0 b0 <<<"${first[$m]}"
        est=$(awk -v p="$p0" -v s="$s" -v b="$b" -v s0="$s0" -v b0="$b0" 'BEGIN {printf "%.1f", p * s * s * b / (s0 * s0 * b0)}')
        if awk -v e="$est" -v l="$LIMIT" 'BEGIN {exit !(e > l)}'; then
          echo "skip $m ${s}px batch $b: estimated peak $est GB > $LIMIT GB"
          rows+=("| $m | $s | $b | skipped (est. $est GB) | skipped | |")
          continue
        fi
      fi
      echo "run $m ${s}px batch $b (MemAvailable $(avail) GB, load $(cut -d' ' -f1 /proc/loadavg))"
      ours=$("$BUILD/bench/bench_memory" --model "$m" --size "$s" --batch "$b") || ours=""
      echo "  $ours"
      echo "run torchvision (MemAvailable $(avail) GB)"
      tv=$("$PY" scripts/memory_torch_detectors.py --model "$m" --size "$s" --batch "$b" 2>/dev/null) || tv=""
      echo "  $tv"
      po=$(field peak_rss_gb <<<"$ours"); pt=$(field peak_rss_gb <<<"$tv")
      [ -z "${first[$m]:-}" ] && first[$m]="${po:-$pt} $s $b"
      ratio=$(awk -v a="$po" -v b="$pt" 'BEGIN {if (a > 0 && b > 0) printf "%.2f", a / b}')
      rows+=("| $m | $s | $b | ${po:-failed} | ${pt:-failed} | $ratio |")
    done
  done
done
echo
echo "| model | px | batch | spinexr peak RSS GB | torchvision peak RSS GB | ratio |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
