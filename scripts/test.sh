#!/usr/bin/env bash
# The whole test suite: checks the include layering first (scripts/check_layers.sh: its self-test,
# then the tree; a bad edge fails before anything is built), installs what is missing, builds (CUDA
# auto-detected: with a toolkit the CUDA code is compiled too; CUDA tests skip without a GPU), runs
# every GoogleTest program through CTest,
# then builds tensor+io with AddressSanitizer/UBSan and runs the IO tests under them.
source "$(dirname "$0")/common.sh"
echo "== include layering (scripts/check_layers.sh) =="
bash "$SX_ROOT/scripts/check_layers.sh" --self-test
bash "$SX_ROOT/scripts/check_layers.sh"
sx_install_deps
cd "$SX_ROOT"
sx_build build -DSX_CUDA="${SX_CUDA:-AUTO}"
(cd build && ctest --output-on-failure --timeout 900)
echo "== IO tests under AddressSanitizer + UBSan =="
SX_BUILD_TYPE=RelWithDebInfo sx_build build-asan -DSX_CUDA=OFF -DSX_SANITIZE=ON -DSX_IO_ONLY=ON -DSX_BUILD_BENCH=OFF
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure --timeout 900 -R test_io)
