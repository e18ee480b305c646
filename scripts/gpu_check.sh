#!/usr/bin/env bash
# Runs on the GPU machine, from the bundle made by scripts/gpu_bundle.sh: finds the CUDA runtime,
# cuBLAS and cuDNN libraries (the toolkit's lib64, or PyTorch's nvidia/*/lib wheels), runs every test
# program (a test skipped for lack of a GPU counts as a failure here), then every benchmark
# (JSON each), and writes OUT_DIR/summary.txt. Exit status: 0 only when every test passed.
# Usage: bash gpu_check.sh [OUT_DIR] [BENCH_SECONDS_PER_PROGRAM]
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
OUT="${1:-$HERE/results}"
BENCH_LIMIT="${2:-60}"
mkdir -p "$OUT"
cd "$HERE"
if [ -f payload.tar.xz ] && [ ! -d lib ]; then
  tar -xJf payload.tar.xz || { echo "gpu_check: cannot unpack payload.tar.xz" >&2; exit 2; }
fi
dirs=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/nvidia/lib64 /usr/lib/x86_64-linux-gnu; do
  [ -d "$d" ] && dirs="$dirs:$d"
done
for py in python3 /opt/torch/.venv/bin/python3; do
  site=$($py -c 'import site,sys; print("\n".join(site.getsitepackages()))' 2>/dev/null) || continue
  for s in $site; do
    for d in "$s"/nvidia/*/lib; do [ -d "$d" ] && dirs="$dirs:$d"; done
  done
done
export LD_LIBRARY_PATH="$HERE/lib${dirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
S="$OUT/summary.txt"
{
  echo "spinexr GPU check, $(date -u +%FT%TZ)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 || echo "nvidia-smi failed"
  for lib in libcudart.so libcublas.so libcudnn.so; do
    printf '%s: %s\n' "$lib" "$(ldconfig -p 2>/dev/null | grep -m1 "$lib" || (IFS=:; for d in $LD_LIBRARY_PATH; do ls "$d"/$lib* 2>/dev/null | head -1; done | head -1))"
  done
} > "$S"
status=0
echo "== tests ==" >> "$S"
for t in ./test_*; do
  name=$(basename "$t")
  "$t" --gtest_color=no > "$OUT/$name.log" 2>&1
  rc=$?
  passed=$(grep -Eo '^\[  PASSED  \] [0-9]+' "$OUT/$name.log" | grep -Eo '[0-9]+$' || echo 0)
  failed=$(grep -Eo '^\[  FAILED  \] [0-9]+ test' "$OUT/$name.log" | grep -Eo '[0-9]+' || echo 0)
  skipped=$(grep -Eo '^\[  SKIPPED \] [0-9]+' "$OUT/$name.log" | grep -Eo '[0-9]+$' || echo 0)
  gpu_skips=$(grep -Ec 'no CUDA GPU|built without CUDA' "$OUT/$name.log")
  verdict=ok
  if [ $rc -ne 0 ]; then verdict="FAILED (exit $rc)"; status=1; fi
  if [ "$gpu_skips" -gt 0 ]; then verdict="$verdict; $gpu_skips skipped for lack of a GPU"; status=1; fi
  echo "$name: passed $passed, failed $failed, skipped $skipped: $verdict" >> "$S"
  grep -E '^\[  FAILED  \] [A-Za-z]' "$OUT/$name.log" | sort -u | head -40 >> "$S"
done
echo "== benchmarks (at most ${BENCH_LIMIT}s each) ==" >> "$S"
for b in ./bench_*; do
  name=$(basename "$b")
  timeout "$BENCH_LIMIT" "$b" --benchmark_min_time=0.05 --benchmark_format=console \
    --benchmark_out="$OUT/$name.json" --benchmark_out_format=json > "$OUT/$name.log" 2>&1
  rc=$?
  echo "-- $name (exit $rc)" >> "$S"
  grep -E '^[A-Za-z_].*(/|ms|us|ns)' "$OUT/$name.log" | grep -v '^Run on\|^CPU Caches\|^Load Average' | head -60 >> "$S"
done
echo "overall: $([ $status -eq 0 ] && echo PASS || echo FAIL)" >> "$S"
cat "$S"
exit $status
