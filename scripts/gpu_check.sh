#!/usr/bin/env bash
# Runs on the GPU machine, from the bundle made by scripts/gpu_bundle.sh (or here, as a dry run):
# every step has its own time budget, the whole run a total budget, and everything it produces is
# packed into OUT_DIR/results.tar.gz (re-packed after every step, so a run cut short still returns
# what it did) beside OUT_DIR/summary.txt. A lent GPU has 15 minutes in all: nothing here may hang.
#
# Usage: bash gpu_check.sh MODE [OUT_DIR]
#   quick      env, CUDA tests, compute-sanitizer memcheck + racecheck        (total <= 6 min)
#   full       quick + `spinexr demo --device cuda` + CUDA benchmarks + the PyTorch/torchvision
#              side of every comparison                                       (total <= 8 min)
#   dry-quick, dry-full (dry = dry-full): the same steps with small budgets on a machine without a
#              GPU, where a missing GPU, sanitizer or PyTorch is reported, not failed (proves the
#              plumbing before a lease)
# Environment:
#   SX_LAUNCH_BLOCKING=1     run everything with CUDA_LAUNCH_BLOCKING=1 (find which kernel failed)
#   SX_TOTAL=S               total budget in seconds (default: quick 360, full 480, dry 300)
#   SX_T_<STEP>=S            one step's budget: TESTS, CPUTESTS, MEMCHECK, RACECHECK, DEMO, BENCH, TORCH
#   SX_STEPS="a b"           run only these steps (env tests cputests memcheck racecheck demo bench torch)
#   SX_DEMO_ARGS="..."       extra arguments for the demo
#   SX_BENCH_SPECS="prog:percent:filter ..."  which benchmarks, each with its share of the bench budget
#   SX_TORCH="resnet ops det" which PyTorch/torchvision scripts run
# Tests: only the CUDA and parity cases run here (gtest filter below); the CPU cases run in CI.
# A test that skips for lack of a GPU counts as a failure on the GPU machine. Exit status 0 only when
# every step that ran passed (a sanitizer that cannot run on this machine is reported, not failed).
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
MODE="${1:-quick}"
OUT="${2:-$HERE/results}"
DRY=0
case "$MODE" in
  quick|full) ;;
  dry|dry-full) DRY=1; MODE=full;;
  dry-quick) DRY=1; MODE=quick;;
  *) echo "gpu_check: MODE must be quick, full, dry-quick or dry-full, got '$MODE'" >&2; exit 2;;
esac
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
W="$(mktemp -d /tmp/sxcheck.XXXXXX)"   # logs and outputs; packed into $OUT/results.tar.gz
mkdir -p "$W/logs"
S="$W/summary.txt"
T0=$(date +%s)
case "$MODE" in quick) TOTAL=${SX_TOTAL:-360};; full) TOTAL=${SX_TOTAL:-480};; esac
if [ $DRY = 1 ]; then
  TOTAL=${SX_TOTAL:-300}
  : "${SX_T_TESTS:=120}" "${SX_T_MEMCHECK:=20}" "${SX_T_RACECHECK:=15}" "${SX_T_DEMO:=20}" "${SX_T_BENCH:=30}" "${SX_T_TORCH:=30}"
fi
T_TESTS=${SX_T_TESTS:-100}; T_CPUTESTS=${SX_T_CPUTESTS:-120}; T_MEMCHECK=${SX_T_MEMCHECK:-75}
T_RACECHECK=${SX_T_RACECHECK:-45}; T_DEMO=${SX_T_DEMO:-120}; T_BENCH=${SX_T_BENCH:-110}; T_TORCH=${SX_T_TORCH:-70}
if [ -n "${SX_STEPS:-}" ]; then STEPS="$SX_STEPS"
elif [ "$MODE" = quick ]; then STEPS="env tests memcheck racecheck"
else STEPS="env tests memcheck racecheck demo bench torch"; fi
[ "${SX_LAUNCH_BLOCKING:-0}" = 1 ] && export CUDA_LAUNCH_BLOCKING=1
export OMP_WAIT_POLICY=passive
# The CUDA and parity cases of every test program: parameterised cases end in /CUDA; the others
# carry Cuda, CUDA or Parity in their names.
GPU_FILTER='*/CUDA:*Cuda*:*CUDA*:*Parity*'

cd "$HERE"
if [ -f payload.tar.xz ] && [ ! -d lib ]; then
  tar -xJf payload.tar.xz || { echo "gpu_check: cannot unpack payload.tar.xz" >&2; exit 2; }
fi
# Libraries: ours in lib/; CUDA runtime, cuBLAS and cuDNN from the toolkit or PyTorch's wheels.
dirs=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/nvidia/lib64 /usr/lib/x86_64-linux-gnu; do
  [ -d "$d" ] && dirs="$dirs:$d"
done
PY=python3
command -v python3 >/dev/null 2>&1 || PY=/opt/torch/.venv/bin/python3
for py in python3 /opt/torch/.venv/bin/python3; do
  site=$($py -c 'import site; print("\n".join(site.getsitepackages()))' 2>/dev/null) || continue
  for s in $site; do
    for d in "$s"/nvidia/*/lib "$s"/nvidia/cu13/lib; do [ -d "$d" ] && dirs="$dirs:$d"; done
  done
done
export LD_LIBRARY_PATH="$HERE/lib${dirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
SAN=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer /opt/nvidia/*/compute-sanitizer 2>/dev/null | head -1)

status=0
say() { echo "$*" | tee -a "$S"; }
elapsed() { echo $(( $(date +%s) - T0 )); }
# Logs over 2 MB keep their first 1 MB and last 256 KB (the tool returns at most 16 MB a file; a
# failing test once wrote 900 MB).
pack() {
  cp "$S" "$OUT/summary.txt"
  find "$W" -type f -size +2M | while read -r f; do
    { head -c 1000000 "$f"; printf '\n...[truncated by gpu_check]...\n'; tail -c 262144 "$f"; } > "$f.cut" && mv "$f.cut" "$f"
  done
  tar -C "$W" -czf "$OUT/results.tar.gz.tmp" . 2>/dev/null && mv "$OUT/results.tar.gz.tmp" "$OUT/results.tar.gz"
}
# budget NAME WANTED -> the seconds this step may use (0: skip), capped by what the total leaves.
budget() {
  local left=$(( TOTAL - $(elapsed) - 10 ))
  local b=$2
  [ "$b" -gt "$left" ] && b=$left
  [ "$b" -lt 10 ] && b=0
  echo "$b"
}
# Test-log tallies: passed failed skipped gpu_skips
tally() {
  local log=$1
  local p f s g
  p=$(grep -Eo '^\[  PASSED  \] [0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1); p=${p:-0}
  f=$(grep -Eo '^\[  FAILED  \] [0-9]+ test' "$log" | grep -Eo '[0-9]+' | tail -1); f=${f:-0}
  s=$(grep -Eo '^\[  SKIPPED \] [0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1); s=${s:-0}
  g=$(grep -Ec 'no CUDA GPU|built without CUDA' "$log")
  echo "$p $f $s $g"
}
# run_tests TAG BUDGET FILTER: every test program in parallel (2 OpenMP threads each).
run_tests() {
  local tag=$1 b=$2 filter=$3 pids=() names=()
  for t in ./test_*; do
    local name; name=$(basename "$t")
    OMP_NUM_THREADS=2 timeout -k 5 "$b" "$t" --gtest_color=no "--gtest_filter=$filter" \
      > "$W/logs/$tag.$name.log" 2>&1 &
    pids+=($!); names+=("$name")
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}"; local rc=$? name=${names[$i]}
    read -r p f s g < <(tally "$W/logs/$tag.$name.log")
    local verdict=ok
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then verdict="TIMED OUT after ${b}s"; status=1
    elif [ $rc -ne 0 ]; then verdict="FAILED (exit $rc)"; status=1; fi
    if [ "$g" -gt 0 ] && [ "$tag" = tests ]; then verdict="$verdict; $g skipped for lack of a GPU"; [ $DRY = 0 ] && status=1; fi
    say "  $name: passed $p, failed $f, skipped $s: $verdict"
    grep -E '^\[  FAILED  \] [A-Za-z]' "$W/logs/$tag.$name.log" | sort -u | head -30 | sed 's/^/    /' | tee -a "$S"
    [ $rc -ne 0 ] && [ "$f" = 0 ] && tail -5 "$W/logs/$tag.$name.log" | sed 's/^/    | /' | tee -a "$S"
  done
}
# sanitize TOOL BUDGET "prog:filter" ...: one sanitizer run per program, in parallel.
sanitize() {
  local tool=$1 b=$2; shift 2
  if [ -z "$SAN" ]; then say "  compute-sanitizer not found: $tool not run (reported, not failed)"; return; fi
  local probe; probe=$("$SAN" --tool "$tool" ./test_tensor --gtest_filter='CoreDevices.*/CUDA' 2>&1 | tail -3 | tr '\n' ' ')
  if echo "$probe" | grep -qiE 'not supported|error 999|Failed to initialize|Device not supported'; then
    say "  compute-sanitizer cannot run on this machine ($probe): $tool not run (reported, not failed)"; return
  fi
  local pids=() names=()
  for spec in "$@"; do
    local prog=${spec%%:*} filter=${spec#*:}
    [ -x "./$prog" ] || continue
    timeout -k 5 "$b" "$SAN" --tool "$tool" --error-exitcode 97 --print-limit 20 "./$prog" --gtest_color=no \
      "--gtest_filter=$filter" > "$W/logs/$tool.$prog.log" 2>&1 &
    pids+=($!); names+=("$prog")
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}"; local rc=$? name=${names[$i]}
    local log="$W/logs/$tool.$name.log"
    local errs; errs=$(grep -Eo 'ERROR SUMMARY: [0-9]+ error' "$log" | grep -Eo '[0-9]+' | tail -1)
    local hz; hz=$(grep -Eo 'RACECHECK SUMMARY: [0-9]+ hazard' "$log" | grep -Eo '[0-9]+' | tail -1)
    read -r p f s g < <(tally "$log")
    local verdict="passed $p, failed $f; sanitizer errors ${errs:-?}${hz:+, hazards $hz}"
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then verdict="$verdict; TIMED OUT after ${b}s (partial)"
    elif [ $rc -ne 0 ]; then verdict="$verdict; exit $rc"; [ $DRY = 0 ] && status=1; fi
    say "  $tool $name: $verdict"
    grep -E '^========= (Invalid|Race|Error|Program hit|  Saved host backtrace)' "$log" | sort | uniq -c | sort -rn | head -8 | sed 's/^/    /' | tee -a "$S"
  done
}

say "spinexr GPU check ($MODE$([ $DRY = 1 ] && echo ", dry run")), $(date -u +%FT%TZ), total budget ${TOTAL}s"
for step in $STEPS; do
  case $step in
  env)
    say "== env =="
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader 2>&1 | tee -a "$S" || true
    nvidia-smi > "$W/logs/nvidia-smi.txt" 2>&1 || true
    for lib in libcudart.so libcublas.so libcudnn.so; do
      f=$( (IFS=:; for d in $LD_LIBRARY_PATH; do ls "$d"/$lib.* 2>/dev/null; done) | head -1)
      say "  $lib: ${f:-not found} $( [ -n "$f" ] && readlink -f "$f" | xargs basename)"
    done
    missing=$(ldd ./spinexr ./test_* 2>/dev/null | grep 'not found' | sort -u)
    [ -n "$missing" ] && { say "  MISSING LIBRARIES:"; say "$missing"; status=1; }
    env -u LD_LIBRARY_PATH $PY -c 'import torch, torchvision; print("  torch", torch.__version__, "torchvision", torchvision.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "gpu", torch.cuda.is_available())' 2>&1 | tail -1 | tee -a "$S"
    say "  compute-sanitizer: ${SAN:-not found}; uname: $(uname -r); cores: $(nproc)"
    ;;
  tests)
    b=$(budget tests "$T_TESTS"); [ "$b" = 0 ] && { say "== tests: no time left =="; continue; }
    say "== CUDA + parity tests (filter $GPU_FILTER, ${b}s) =="
    run_tests tests "$b" "$GPU_FILTER"
    ;;
  cputests)
    b=$(budget cputests "$T_CPUTESTS"); [ "$b" = 0 ] && { say "== cpu tests: no time left =="; continue; }
    say "== the other (CPU) tests, ${b}s =="
    run_tests cputests "$b" "-$GPU_FILTER"
    ;;
  memcheck)
    b=$(budget memcheck "$T_MEMCHECK"); [ "$b" = 0 ] && { say "== memcheck: no time left =="; continue; }
    say "== compute-sanitizer memcheck over the CUDA cases (${b}s) =="
    sanitize memcheck "$b" "test_kernels:$GPU_FILTER-*Large*" "test_layers:$GPU_FILTER" "test_tensor:$GPU_FILTER" \
      "test_train:$GPU_FILTER" "test_models:*/CUDA:*Cuda*:*CUDA*"
    ;;
  racecheck)
    b=$(budget racecheck "$T_RACECHECK"); [ "$b" = 0 ] && { say "== racecheck: no time left =="; continue; }
    say "== compute-sanitizer racecheck over the shared-memory kernels (${b}s) =="
    sanitize racecheck "$b" "test_kernels:Devices/NmsDevice.*/CUDA:Nms.*Cuda*:Devices/RoiAlignDevice.*/CUDA" \
      "test_layers:Devices/BatchNormParity.*/CUDA" "test_tensor:Devices/Reduce.*/CUDA"
    ;;
  demo)
    b=$(budget demo "$T_DEMO"); [ "$b" = 0 ] && { say "== demo: no time left =="; continue; }
    say "== spinexr demo --device cuda (${b}s) =="
    t=$(date +%s)
    # shellcheck disable=SC2086
    timeout -k 5 "$b" ./spinexr demo --device cuda --workers 8 --out "$W/demo" ${SX_DEMO_ARGS:-} > "$W/logs/demo.log" 2>&1
    rc=$?
    say "  exit $rc after $(( $(date +%s) - t ))s"
    [ $rc -ne 0 ] && [ $DRY = 0 ] && status=1
    sed -n '/spinexr demo: summary/,/targets/p' "$W/logs/demo.log" | tee -a "$S"
    [ $rc -ne 0 ] && tail -8 "$W/logs/demo.log" | sed 's/^/    | /' | tee -a "$S"
    # keep the small results, drop the dataset and checkpoints
    rm -rf "$W/demo/data"; find "$W/demo" -name '*.safetensors' -delete 2>/dev/null
    ;;
  bench)
    b=$(budget bench "$T_BENCH"); [ "$b" = 0 ] && { say "== benchmarks: no time left =="; continue; }
    say "== CUDA benchmarks (${b}s in all) =="
    # name:share-of-budget(%):filter
    specs=${SX_BENCH_SPECS:-"bench_detection:20:CUDA bench_tensor_ops:10:CUDA bench_matmul:8:CUDA bench_layers:30:CUDA.*(ResNet|/bwd|/fwd) bench_detectors:32:CUDA/1024"}
    for spec in $specs; do
      IFS=: read -r name share filter <<< "$spec"
      [ -x "./$name" ] || continue
      bb=$(( b * share / 100 )); [ $bb -lt 5 ] && bb=5
      t=$(date +%s)
      timeout -k 5 "$bb" "./$name" "--benchmark_filter=$filter" --benchmark_min_time=0.2 --benchmark_format=console \
        --benchmark_out="$W/logs/$name.json" --benchmark_out_format=json > "$W/logs/$name.log" 2>&1
      rc=$?
      say "-- $name (filter $filter, exit $rc, $(( $(date +%s) - t ))s of ${bb}s)"
      grep -E '^[A-Za-z_].*(ms|us|ns) ' "$W/logs/$name.log" | head -60 | tee -a "$S"
      grep -E 'ERROR OCCURRED|error' "$W/logs/$name.log" | head -5 | tee -a "$S"
    done
    ;;
  torch)
    b=$(budget torch "$T_TORCH"); [ "$b" = 0 ] && { say "== torch: no time left =="; continue; }
    say "== PyTorch / torchvision side, same shapes (${b}s in all) =="
    export PYTHONUNBUFFERED=1
    # PyTorch brings its own cuDNN: our LD_LIBRARY_PATH (system cuDNN first) must not reach it.
    tsel=${SX_TORCH:-"resnet ops det"}
    case " $tsel " in *" resnet "*) env -u LD_LIBRARY_PATH timeout -k 5 $(( b * 35 / 100 )) $PY scripts/bench_torch_resnet.py --device cuda --batch 64 --steps 10 > "$W/logs/torch_resnet.log" 2>&1;; esac
    case " $tsel " in *" ops "*) env -u LD_LIBRARY_PATH timeout -k 5 $(( b * 30 / 100 )) $PY scripts/bench_torchvision_ops.py cuda > "$W/logs/torchvision_ops.log" 2>&1;; esac
    case " $tsel " in *" det "*) env -u LD_LIBRARY_PATH timeout -k 5 $(( b * 35 / 100 )) $PY scripts/bench_torch_detectors.py --size 1024 --batch 4 > "$W/logs/torch_detectors.log" 2>&1;; esac
    for f in torch_resnet torchvision_ops torch_detectors; do
      [ -f "$W/logs/$f.log" ] || continue
      grep -vE '^\s*$|Warning|warn' "$W/logs/$f.log" | tail -14 | sed "s/^/  /" | tee -a "$S"
    done
    ;;
  *) say "unknown step '$step'"; status=1;;
  esac
  say "   [step $step done at $(elapsed)s]"
  pack
done
say "overall: $([ $status -eq 0 ] && echo PASS || echo FAIL) after $(elapsed)s"
pack
exit $status
