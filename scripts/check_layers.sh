#!/usr/bin/env bash
# The layering check: every `#include "..."` in the product folders must follow the DAG
#
#   tensor <- kernels <- layers <- models      io <- tensor      train: on top of everything
#
# that is, a folder may include from:
#   tensor : tensor
#   kernels: tensor kernels
#   layers : tensor kernels layers
#   models : tensor kernels layers models
#   io     : tensor io
#   train  : tensor kernels layers models io train
#   bench  : everything (benchmarks of any layer; bench_ops walks the op registry of tests/ops)
# and inside train/, by role (train/X/... may include train/Y/... for Y in):
#   train/eval : eval                      (metrics, detection AP, decision rule, plots)
#   train/loop : eval loop                 (the training loop, optimizers, checkpoints)
#   train/tasks: eval loop tasks           (the classifier and detector tasks and their data)
#   train/app  : eval loop tasks app       (predict, the CLI commands, the demo)
#   tests  : everything (tests of any layer, plus tests/common and the tests' own helpers)
#
# An include is resolved the way the build resolves it: first next to the including file (e.g.
# tests/io/io_test_util.h), then from the repository root (the one include directory every target
# gets: "kernels/nms/nms.h"), then, for tests/, from tests/ ("common/compare.h"). An include that
# resolves to none of the product folders is reported too (a quoted include of something outside
# the tree would hide an edge). Angle-bracket includes (<vector>, <cub/cub.cuh>) are system headers
# and not checked.
#
# The CMake targets mirror the DAG in their links (sx_kernels -> sx_tensor, sx_layers -> sx_kernels,
# sx_models -> sx_layers, sx_io -> sx_tensor, sx_train -> sx_models + sx_io), but every target
# shares one include directory (the repository root), so the compiler alone would not reject a
# header-only upward include: this script does.
#
# Usage: scripts/check_layers.sh [--root DIR]   check the tree (default: this repository)
#        scripts/check_layers.sh --self-test    build a tiny fake tree with an injected bad
#                                               include in a temporary folder and check that it
#                                               is rejected (and that the clean fake tree passes)
# Exit status: 0 when every edge is allowed, 1 otherwise (one line per offending include:
# `file:line: kernels -> layers not allowed`), 2 on a usage error. Needs only bash, find, awk, sort.
set -euo pipefail

LAYERS=(tensor kernels layers models io train bench tests)
declare -A ALLOWED=(
  [tensor]="tensor"
  [kernels]="tensor kernels"
  [layers]="tensor kernels layers"
  [models]="tensor kernels layers models"
  [io]="tensor io"
  [train]="tensor kernels layers models io train"
  [bench]="tensor kernels layers models io train bench tests"
  [tests]="tensor kernels layers models io train bench tests"
)

declare -A TRAIN_ALLOWED=(
  [eval]="eval"
  [loop]="eval loop"
  [tasks]="eval loop tasks"
  [app]="eval loop tasks app"
)

is_layer() {
  local l
  for l in "${LAYERS[@]}"; do [ "$l" = "$1" ] && return 0; done
  return 1
}

# top_folder PATH: the first component of PATH (relative to the root) after resolving "." and "..".
top_folder() {
  local -a parts=() out=()
  local p
  IFS=/ read -ra parts <<< "$1"
  for p in "${parts[@]}"; do
    case "$p" in
      "" | .) ;;
      ..) [ ${#out[@]} -gt 0 ] && unset 'out[${#out[@]}-1]' ;;
      *) out+=("$p") ;;
    esac
  done
  echo "${out[0]:-}"
}

# check ROOT: prints the offending edges and the summary; returns 0 or 1.
check() {
  local root="$1"
  local -a files=()
  local l
  for l in "${LAYERS[@]}"; do
    [ -d "$root/$l" ] || continue
    while IFS= read -r -d '' f; do files+=("${f#"$root"/}"); done < <(
      find "$root/$l" \( -name data -o -name build -o -name 'build-*' \) -prune -o -type f \
        \( -name '*.h' -o -name '*.hpp' -o -name '*.cuh' -o -name '*.cpp' -o -name '*.cc' -o -name '*.cu' \) \
        -print0 | sort -z)
  done
  if [ ${#files[@]} -eq 0 ]; then
    echo "check_layers: no source files under $root" >&2
    return 1
  fi

  # One line per quoted include: FILE<TAB>LINE<TAB>HEADER.
  local includes
  includes=$(cd "$root" && awk '
    /^[ \t]*#[ \t]*include[ \t]*"/ {
      s = $0; sub(/^[^"]*"/, "", s); sub(/".*$/, "", s)
      printf "%s\t%d\t%s\n", FILENAME, FNR, s
    }' "${files[@]}")

  local -A pairs=()
  local bad=0 file line inc from to dir
  while IFS=$'\t' read -r file line inc; do
    [ -n "$file" ] || continue
    from="${file%%/*}"
    dir="${file%/*}"
    to=""
    if [ -e "$root/$dir/$inc" ]; then
      to="$(top_folder "$dir/$inc")"
      is_layer "$to" || to=""
    fi
    if [ -z "$to" ] && is_layer "${inc%%/*}" && [ "${inc#*/}" != "$inc" ]; then
      to="${inc%%/*}"
    fi
    if [ -z "$to" ] && [ "$from" = tests ] && [ -e "$root/tests/$inc" ]; then
      to=tests
    fi
    if [ -z "$to" ]; then
      echo "$file:$line: $from -> \"$inc\" does not resolve to a product folder"
      bad=1
      continue
    fi
    pairs["$from -> $to"]=$(( ${pairs["$from -> $to"]:-0} + 1 ))
    if [[ " ${ALLOWED[$from]} " != *" $to "* ]]; then
      echo "$file:$line: $from -> $to not allowed"
      bad=1
    fi
  done <<< "$includes"

  # Inside train/: the roles' order (an include of "train/Y/..." from train/X/).
  local sub tosub
  while IFS=$'\t' read -r file line inc; do
    [ -n "$file" ] || continue
    case "$file" in train/*/*) ;; *) continue ;; esac
    case "$inc" in train/*/*) ;; *) continue ;; esac
    sub="${file#train/}"; sub="${sub%%/*}"
    tosub="${inc#train/}"; tosub="${tosub%%/*}"
    if [[ -z "${TRAIN_ALLOWED[$sub]+x}" ]]; then
      echo "$file:$line: train/$sub is not one of train's roles (${!TRAIN_ALLOWED[*]})"
      bad=1
    elif [[ " ${TRAIN_ALLOWED[$sub]} " != *" $tosub "* ]]; then
      echo "$file:$line: train/$sub -> train/$tosub not allowed"
      bad=1
    fi
  done <<< "$includes"

  local n_inc=0 k
  for k in "${!pairs[@]}"; do n_inc=$(( n_inc + pairs[$k] )); done
  echo "layering: ${#files[@]} files scanned, $n_inc quoted includes; edges (includes per pair):"
  for k in "${!pairs[@]}"; do printf '  %-20s %5d\n' "$k" "${pairs[$k]}"; done | sort
  if [ "$bad" -ne 0 ]; then
    echo "layering: FAILED (allowed: tensor <- kernels <- layers <- models; io <- tensor; train, bench, tests on top)"
    return 1
  fi
  echo "layering: OK"
}

self_test() {
  local tmp
  tmp="$(mktemp -d "${TMPDIR:-/tmp}/check_layers.XXXXXX")"
  trap 'rm -rf "$tmp"' RETURN
  mkdir -p "$tmp"/{tensor,kernels/k,layers,models,io,train,bench,tests/common,tests/io}
  printf '#pragma once\n' > "$tmp/tensor/tensor.h"
  printf '#include "tensor/tensor.h"\n' > "$tmp/kernels/k/k.h"
  printf '#include "kernels/k/k.h"\n#include "k.h"\n' > "$tmp/kernels/k/k.cpp"
  printf '#include "kernels/k/k.h"\n' > "$tmp/layers/l.h"
  printf '#include "layers/l.h"\n' > "$tmp/models/m.h"
  printf '#include "tensor/tensor.h"\n' > "$tmp/io/io.h"
  printf '#include "models/m.h"\n#include "io/io.h"\n' > "$tmp/train/t.cpp"
  printf '#include "train/t.cpp"\n' > "$tmp/bench/bench_t.cpp"
  printf '#pragma once\n' > "$tmp/tests/common/compare.h"
  printf '#pragma once\n' > "$tmp/tests/io/util.h"
  printf '#include "common/compare.h"\n#include "util.h"\n#include "io/io.h"\n' > "$tmp/tests/io/test_io.cpp"

  local out rc fails=0
  # 1. The clean fake tree passes.
  set +e; out=$(check "$tmp" 2>&1); rc=$?; set -e
  if [ "$rc" -ne 0 ] || [[ "$out" != *"layering: OK"* ]]; then
    echo "self-test FAILED: the clean fake tree was rejected (exit $rc):"; echo "$out"; fails=1
  fi
  # 2. An upward include (kernels -> layers) is rejected, with its file and line.
  printf '#include "tensor/tensor.h"\n#include "layers/l.h"\n' > "$tmp/kernels/k/bad.cpp"
  set +e; out=$(check "$tmp" 2>&1); rc=$?; set -e
  if [ "$rc" -ne 1 ] || [[ "$out" != *"kernels/k/bad.cpp:2: kernels -> layers not allowed"* ]]; then
    echo "self-test FAILED: kernels -> layers was not rejected (exit $rc):"; echo "$out"; fails=1
  fi
  rm "$tmp/kernels/k/bad.cpp"
  # 3. A sideways include (io -> kernels) is rejected.
  printf '#include "kernels/k/k.h"\n' >> "$tmp/io/io.h"
  set +e; out=$(check "$tmp" 2>&1); rc=$?; set -e
  if [ "$rc" -ne 1 ] || [[ "$out" != *"io/io.h:2: io -> kernels not allowed"* ]]; then
    echo "self-test FAILED: io -> kernels was not rejected (exit $rc):"; echo "$out"; fails=1
  fi
  printf '#include "tensor/tensor.h"\n' > "$tmp/io/io.h"
  # 4. A quoted include that resolves nowhere is rejected.
  printf '  #  include "nowhere/x.h"\n' > "$tmp/tensor/bad.h"
  set +e; out=$(check "$tmp" 2>&1); rc=$?; set -e
  if [ "$rc" -ne 1 ] || [[ "$out" != *"tensor/bad.h:1: tensor -> \"nowhere/x.h\" does not resolve"* ]]; then
    echo "self-test FAILED: an unresolved include was not rejected (exit $rc):"; echo "$out"; fails=1
  fi
  rm "$tmp/tensor/bad.h"
  # 5. A relative path is resolved: layers/x.cpp including "../models/m.h" is layers -> models.
  printf '#include "../models/m.h"\n' > "$tmp/layers/x.cpp"
  set +e; out=$(check "$tmp" 2>&1); rc=$?; set -e
  if [ "$rc" -ne 1 ] || [[ "$out" != *"layers/x.cpp:1: layers -> models not allowed"* ]]; then
    echo "self-test FAILED: a relative layers -> models include was not rejected (exit $rc):"; echo "$out"; fails=1
  fi
  rm "$tmp/layers/x.cpp"
  # 6. Inside train/, the roles' order: train/eval may not include train/app.
  mkdir -p "$tmp/train/eval" "$tmp/train/app"
  printf '#include "train/eval/e.h"\n' > "$tmp/train/app/a.h"
  printf '#include "models/m.h"\n' > "$tmp/train/eval/e.h"
  set +e; out=$(check "$tmp" 2>&1); rc=$?; set -e
  if [ "$rc" -ne 0 ]; then
    echo "self-test FAILED: train/app -> train/eval was rejected (exit $rc):"; echo "$out"; fails=1
  fi
  printf '#include "train/app/a.h"\n' >> "$tmp/train/eval/e.h"
  set +e; out=$(check "$tmp" 2>&1); rc=$?; set -e
  if [ "$rc" -ne 1 ] || [[ "$out" != *"train/eval/e.h:2: train/eval -> train/app not allowed"* ]]; then
    echo "self-test FAILED: train/eval -> train/app was not rejected (exit $rc):"; echo "$out"; fails=1
  fi
  if [ "$fails" -ne 0 ]; then return 1; fi
  echo "check_layers self-test: OK (clean tree passes; kernels -> layers, io -> kernels, ../models from layers, an unresolved include and train/eval -> train/app fail)"
}

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case "${1:-}" in
  "") check "$root" ;;
  --root)
    [ $# -eq 2 ] || { echo "usage: $0 [--root DIR | --self-test]" >&2; exit 2; }
    check "$2" ;;
  --self-test) self_test ;;
  *) echo "usage: $0 [--root DIR | --self-test]" >&2; exit 2 ;;
esac
