#!/usr/bin/env bash
# Builds spinexr with CUDA here (no GPU needed) and packs every test and benchmark program, the CLI,
# the test fixtures and their non-CUDA shared libraries into one folder, gpu-bundle/, for a GPU
# machine that has the CUDA, cuBLAS and cuDNN runtime libraries but none of our Debian packages.
#
# The layer libraries are built shared (so the CUDA kernels are stored once, not in every program),
# every binary carries RPATH $ORIGIN/lib, and ldd's list of each program is copied into lib/ except
# the C runtime, libstdc++/libgcc and the CUDA libraries (the GPU machine provides those).
# Everything is packed into gpu-bundle/payload.tar.xz (beside gpu_check.sh).
# Then copy gpu-bundle/ to the GPU machine and run: bash gpu-bundle/gpu_check.sh quick|full [OUT_DIR]
# (the device tool: carry gpu-bundle, command `bash gpu-bundle/gpu_check.sh full $OUT`).
# Usage: scripts/gpu_bundle.sh [CUDA_ARCHS]   (default 90, Hopper)
source "$(dirname "$0")/common.sh"
sx_install_deps
cd "$SX_ROOT"
ARCHS="${1:-90}"
command -v xz >/dev/null 2>&1 || { echo 'gpu_bundle: needs xz (apt-get install xz-utils)' >&2; exit 1; }
sx_build build-gpu -DSX_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$ARCHS" -DSX_SHARED_LIBS=ON \
  -DSX_TEST_DATA_DIR=data -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON '-DCMAKE_INSTALL_RPATH=$ORIGIN/lib;$ORIGIN' \
  "-DCMAKE_EXE_LINKER_FLAGS=-Wl,--disable-new-dtags" "-DCMAKE_SHARED_LINKER_FLAGS=-Wl,--disable-new-dtags"
B=gpu-bundle
rm -rf "$B"
mkdir -p "$B/lib"
progs=$(find build-gpu/tests build-gpu/bench build-gpu/train -maxdepth 1 -type f -executable \
          \( -name 'test_*' -o -name 'bench_*' -o -name spinexr \))
for p in $progs; do cp "$p" "$B/"; done
find build-gpu -name 'libsx_*.so' -exec cp {} "$B/lib/" \;
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libdl\.so|librt\.so|libpthread\.so|libstdc\+\+|libgcc_s|libcuda\.so|libcudart|libcublas|libcublasLt|libcudnn|libnvrtc|libnvJitLink)'
for f in "$B"/test_* "$B"/bench_* "$B"/spinexr "$B"/lib/libsx_*.so; do
  ldd "$f" 2>/dev/null | awk '/=> \//{print $1, $3}' | while read -r name path; do
    if ! echo "$name" | grep -Eq "$skip"; then
      [ -e "$B/lib/$name" ] || cp -L "$path" "$B/lib/$name"
    fi
  done
done
strip --strip-unneeded "$B"/test_* "$B"/bench_* "$B"/spinexr "$B"/lib/*.so* 2>/dev/null || true
cp -r tests/data "$B/data"
# OpenBLAS alone is 36 MB (every CPU's kernels): pack the payload with xz so the folder that
# travels stays well under 64 MiB; gpu_check.sh unpacks it next to itself on first use.
tar -C "$B" -cf - $(cd "$B" && ls) | xz -T0 -6 > payload.tar.xz.tmp
rm -rf "$B"
mkdir -p "$B"
mv payload.tar.xz.tmp "$B/payload.tar.xz"
cp scripts/gpu_check.sh "$B/"
mkdir -p "$B/scripts"
cp scripts/bench_torch_resnet.py scripts/bench_torchvision_ops.py scripts/bench_torch_detectors.py "$B/scripts/"
du -sh "$B"
echo "bundle ready: $B (copy it to the GPU machine, then: bash $B/gpu_check.sh OUT_DIR)"
