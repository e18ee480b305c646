#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs the demo on the synthetic dataset.
# Extra arguments go to the demo (e.g. --device cuda).
source "$(dirname "$0")/common.sh"
sx_install_deps
cd "$SX_ROOT"
sx_build build -DSX_CUDA="${SX_CUDA:-AUTO}" -DSX_BUILD_TESTS=OFF -DSX_BUILD_BENCH=OFF
exec ./build/train/spinexr demo "$@"
