#!/usr/bin/env bash
# The README's side-by-side CPU figures, in one command: spinexr against its reference, run
# ALTERNATELY (ours, theirs, ours, theirs, ...) for ROUNDS rounds, medians printed at the end.
#
#   ResNet-18 / ResNet-50 training step (forward, cross-entropy, backward, SGD update), batch 8,
#   224 px, 2 threads: bench/bench_layers (median of 5 timed steps after 2 warm-up steps, per run)
#   vs scripts/bench_torch_resnet.py on Debian's python3-torch (the same step, same counts).
#
#   DenseNet-121 training step (the VinDr-SpineXR authors' classifier), batch 32 (their batch), 224 px,
#   2 threads: bench_layers DenseNet121_TrainStep_CPU (3 timed steps after 2 warm-up steps) vs
#   bench_torch_resnet.py --arch densenet121 (torchvision's default memory_efficient=False), with
#   each process's peak resident memory (getrusage; the process runs this one model) and the peak
#   before the model was built (the runtime itself: PyTorch's import is a few hundred MiB).
#
#   DICOM decode + window + resize to 512, 1 thread, on the very file bench_io writes (2949 x 1470,
#   12-bit, JPEG 2000 lossless): bench/bench_io BM_DecodeResize512/1 vs
#   scripts/fixtures/io_bench_pydicom.py --pipeline-only (pydicom with its GDCM handler + NumPy).
#
# Each run is a fresh process; a round runs the pairs in the order ours, reference. The machine's
# load average is printed at the start, after each round and at the end: compare figures only from
# a run whose load stayed below the core count (other jobs slow both sides, not always equally).
# Threads: OMP_NUM_THREADS=2 and OPENBLAS_NUM_THREADS=2 for ours, torch.set_num_threads(2) for
# PyTorch; OMP_WAIT_POLICY is passed through unchanged to both (printed; unset by default).
#
# Usage: scripts/bench_compare.sh [ROUNDS]      (default 5; SX_BENCH_BUILD=DIR, default build;
#        SX_BENCH_SET=all (default) | resnet (ResNets and DICOM, no DenseNet) | densenet (only it))
# Needs: the Debian packages of scripts/common.sh, python3-torch, python3-torchvision,
# python3-pydicom, python3-gdcm (installed with apt-get when missing).
source "$(dirname "$0")/common.sh"
cd "$SX_ROOT"
ROUNDS="${1:-5}"
SET="${SX_BENCH_SET:-all}"
case "$SET" in all | resnet | densenet) ;; *) echo "SX_BENCH_SET must be all, resnet or densenet, got '$SET'" >&2; exit 2 ;; esac
BUILD="${SX_BENCH_BUILD:-build}"
PY=/usr/bin/python3  # Debian's python (the one python3-torch installs into), not a pyenv one
THREADS=2

SX_PACKAGES+=(python3-torch python3-torchvision python3-pydicom python3-gdcm)
sx_install_deps
if [ ! -x "$BUILD/bench/bench_layers" ] || [ ! -x "$BUILD/bench/bench_io" ]; then
  sx_build "$BUILD" -DSX_CUDA=OFF
else
  cmake --build "$BUILD" -j"$(nproc)" --target bench_layers bench_io >/dev/null
fi

export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS
TMP=$(mktemp -d /tmp/sx_bench_compare_XXXXXX)
trap 'rm -rf "$TMP"' EXIT

load() { cut -d' ' -f1-3 /proc/loadavg; }

# ms per step (median) of our training step for depth $1
ours_step() {
  SX_BENCH_STEPS=5 "$BUILD/bench/bench_layers" --benchmark_filter="^ResNet$1_TrainStep_CPU" \
    --benchmark_format=json >"$TMP/ours.json" 2>/dev/null
  "$PY" -c 'import json,sys; b=json.load(open(sys.argv[1]))["benchmarks"][0]; print("%.1f" % b["step_ms_median"])' "$TMP/ours.json"
}
torch_step() {
  "$PY" scripts/bench_torch_resnet.py --device cpu --threads $THREADS --batch 8 --steps 5 --warmup 2 \
    --arch "resnet$1" 2>/dev/null | sed -n 's/.*: \([0-9.]*\) ms\/step.*/\1/p'
}
# DenseNet-121, batch 32: "ms peak_MiB start_MiB" of ours and of PyTorch
ours_dense() {
  SX_BENCH_STEPS=3 "$BUILD/bench/bench_layers" --benchmark_filter="^DenseNet121_TrainStep_CPU" \
    --benchmark_format=json >"$TMP/dense.json" 2>/dev/null
  "$PY" -c 'import json,sys; b=json.load(open(sys.argv[1]))["benchmarks"][0]; print("%.1f %.0f %.0f" % (b["step_ms_median"], b["peak_rss_MiB"], b["start_rss_MiB"]))' "$TMP/dense.json"
}
torch_dense() {
  "$PY" scripts/bench_torch_resnet.py --device cpu --threads $THREADS --batch 32 --steps 3 --warmup 2 \
    --arch densenet121 2>/dev/null |
    sed -n 's/.*: \([0-9.]*\) ms\/step.*peak RSS \([0-9]*\) MiB (before the model \([0-9]*\) MiB).*/\1 \2 \3/p'
}
# images/s of decode + window + resize to 512, 1 thread
ours_dicom() {
  SX_BENCH_KEEP=1 "$BUILD/bench/bench_io" --benchmark_filter='BM_DecodeResize512/1/' \
    --benchmark_format=json >"$TMP/io.json" 2>"$TMP/io.err"
  "$PY" -c 'import json,sys; b=json.load(open(sys.argv[1]))["benchmarks"][0]; print("%.2f" % b["items_per_second"])' "$TMP/io.json"
  local f
  f=$(sed -n 's/^bench_io: J2K test file //p' "$TMP/io.err")
  [ -n "$f" ] && { cp "$f" "$TMP/big.dicom"; rm -rf "$(dirname "$f")"; }
}
torch_dicom() {
  "$PY" scripts/fixtures/io_bench_pydicom.py "$TMP/big.dicom" 5 --pipeline-only 2>/dev/null |
    sed -n 's/.*1 process: \([0-9.]*\) images\/s.*/\1/p'
}
div() { awk -v a="$1" -v b="$2" 'BEGIN {print (b > 0 ? a / b : 0)}'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR]=$1} END {if (NR % 2) print v[(NR+1)/2]; else printf "%.2f\n", (v[NR/2]+v[NR/2+1])/2}'; }

TORCH_VERSION="$("$PY" -c 'import torch; print(torch.__version__)') (Debian python3-torch $(dpkg-query -W -f='${Version}' python3-torch 2>/dev/null))"
PYDICOM_VERSION=$("$PY" -c 'import pydicom; print(pydicom.__version__)')
echo "bench_compare: $ROUNDS rounds, alternating ours/reference; $(nproc) cores; OMP_NUM_THREADS=$THREADS," \
     "OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-<unset>}; PyTorch $TORCH_VERSION, pydicom $PYDICOM_VERSION; commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "load average at start: $(load)"
r18o=() r18t=() r50o=() r50t=() dio=() dit=() dno=() dnt=() dmo=() dmt=() dso=() dst=()
for r in $(seq 1 "$ROUNDS"); do
  line="round $r:"
  if [ "$SET" != densenet ]; then
    a=$(ours_step 18); b=$(torch_step 18); c=$(ours_step 50); d=$(torch_step 50); e=$(ours_dicom); f=$(torch_dicom)
    r18o+=("$a") r18t+=("$b") r50o+=("$c") r50t+=("$d") dio+=("$e") dit+=("$f")
    line+=" ResNet-18 $a vs $b ms | ResNet-50 $c vs $d ms | DICOM $e vs $f img/s |"
  fi
  if [ "$SET" != resnet ]; then
    read -r g gm gs <<<"$(ours_dense)"; read -r h hm hs <<<"$(torch_dense)"
    dno+=("$g") dnt+=("$h") dmo+=("$gm") dmt+=("$hm") dso+=("$gs") dst+=("$hs")
    line+=" DenseNet-121 $g vs $h ms, peak $gm vs $hm MiB |"
  fi
  echo "$line load $(load)"
done
if [ "$SET" != densenet ]; then
  m18o=$(echo "${r18o[*]}" | median) m18t=$(echo "${r18t[*]}" | median)
  m50o=$(echo "${r50o[*]}" | median) m50t=$(echo "${r50t[*]}" | median)
  mdo=$(echo "${dio[*]}" | median) mdt=$(echo "${dit[*]}" | median)
fi
echo "load average at end: $(load)"
echo
echo "medians of $ROUNDS rounds                      spinexr      reference            ratio"
if [ "$SET" != densenet ]; then
  printf "ResNet-18 training step, batch 8, 224 px  %8.1f ms  %8.1f ms (PyTorch)  %.2fx PyTorch's time\n" \
    "$m18o" "$m18t" "$(div "$m18o" "$m18t")"
  printf "ResNet-50 training step, batch 8, 224 px  %8.1f ms  %8.1f ms (PyTorch)  %.2fx PyTorch's time\n" \
    "$m50o" "$m50t" "$(div "$m50o" "$m50t")"
  printf "DICOM decode+window+resize 512, 1 thread  %7.2f img/s %7.2f img/s (pydicom) %.1fx faster\n" \
    "$mdo" "$mdt" "$(div "$mdo" "$mdt")"
fi
if [ "$SET" != resnet ]; then
  mno=$(echo "${dno[*]}" | median) mnt=$(echo "${dnt[*]}" | median)
  mmo=$(echo "${dmo[*]}" | median) mmt=$(echo "${dmt[*]}" | median)
  mso=$(echo "${dso[*]}" | median) mst=$(echo "${dst[*]}" | median)
  printf "DenseNet-121 step, batch 32, 224 px     %8.1f ms  %8.1f ms (PyTorch)  %.2fx PyTorch's time\n" \
    "$mno" "$mnt" "$(div "$mno" "$mnt")"
  printf "  its peak resident memory              %8.0f MiB %8.0f MiB (PyTorch; before the model: %.0f vs %.0f MiB)\n" \
    "$mmo" "$mmt" "$mso" "$mst"
fi
