# Shared by scripts/*.sh: install missing Debian packages (idempotent) and configure + build.
# Usage: source scripts/common.sh; sx_install_deps; sx_build BUILD_DIR [cmake args...]
set -euo pipefail
SX_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SX_PACKAGES=(build-essential cmake pkg-config libgdcm-dev libopenjp2-7-dev libstb-dev libopenblas-dev libdnnl-dev nlohmann-json3-dev libgtest-dev libbenchmark-dev libopenmpi-dev openmpi-bin)

sx_install_deps() {
  local missing=()
  for p in "${SX_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "spinexr: installing ${missing[*]}" >&2
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

sx_build() {
  local dir="$1"; shift
  local launcher=()
  if command -v ccache >/dev/null 2>&1; then
    launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
  fi
  cmake -S "$SX_ROOT" -B "$dir" -DCMAKE_BUILD_TYPE="${SX_BUILD_TYPE:-Release}" "${launcher[@]}" "$@" >/dev/null
  cmake --build "$dir" -j"$(nproc)"
}
