#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs the demo on the synthetic dataset.
# Extra arguments go to the demo (e.g. --device cuda).
source "$(dirname "$0")/common.sh"
sx_install_deps
cd "$SX_ROOT"
# Without a GPU the CUDA backend is not built for the demo (it would only add compile time);
# set SX_CUDA=ON or AUTO to override.
if [ -z "${SX_CUDA:-}" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then SX_CUDA=AUTO; else SX_CUDA=OFF; fi
fi
sx_build build-demo -DSX_CUDA="$SX_CUDA" -DSX_BUILD_TESTS=OFF -DSX_BUILD_BENCH=OFF
# OpenMP threads sleep instead of spinning while they wait: on a small shared machine spinning
# threads were measured to slow training steps several-fold.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
exec ./build-demo/train/spinexr demo "$@"
