#!/usr/bin/env bash
# The tutorial's runner (docs/tutorial/): runs every command the chapters show, in chapter order,
# taken from the Markdown itself, so the docs and their test are the same text and cannot drift.
#
#   bash scripts/tutorial.sh [--spinexr PATH] [--work DIR] [--pictures] [--only NN[,NN...]] [--stop]
#
# What it reads in docs/tutorial/NN-*.md:
#   - commands: lines starting with "$ " inside ```console fences (a line ending in "\" continues on
#     the next line); other lines of those fences are sample output and are not run. Each command
#     runs with bash (-e -o pipefail) in the work folder, with `spinexr` on PATH.
#   - pictures: "<!-- picture: img/NN-name.png <- out/NN/file.png -->": after the chapter's commands
#     the source file must exist in the work folder (else the chapter fails); with --pictures it is
#     copied to docs/tutorial/img/ (the
#     commands draw them small; over 150 KB fails). Every `](img/...)` link of a chapter needs such a line, and its committed
#     file must exist.
#   - names: every `path/file.ext` in backquotes must exist in the repository, and every `name()` in
#     backquotes must occur as a word in the files named on the same line (or, when the line names
#     none, somewhere in the product folders): a rename breaks this check, not the reader.
# Every command is run even after one fails (later chapters reuse earlier outputs, so failures can
# cascade); the summary lists each failed command with its chapter:line and the end of its output,
# and the exit status is 1 if anything failed. --stop stops at the first failure instead.
# The work folder (default build/tutorial) is emptied first; logs go to WORK/logs/.
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DOCS="$ROOT/docs/tutorial"
SPINEXR="${SPINEXR:-$ROOT/build/train/spinexr}"
WORK="$ROOT/build/tutorial"
PICTURES=0
ONLY=""
STOP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --spinexr) SPINEXR="$2"; shift 2 ;;
    --work) WORK="$2"; shift 2 ;;
    --pictures) PICTURES=1; shift ;;
    --only) ONLY="$2"; shift 2 ;;
    --stop) STOP=1; shift ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "tutorial.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$SPINEXR" in /*) ;; *) SPINEXR="$PWD/$SPINEXR" ;; esac
case "$WORK" in /*) ;; *) WORK="$PWD/$WORK" ;; esac
if [ ! -x "$SPINEXR" ]; then
  echo "tutorial.sh: no spinexr program at $SPINEXR (build it, or pass --spinexr PATH)" >&2
  exit 2
fi

FAILED=()   # "chapter:line: command" of every failed step
fail() { FAILED+=("$1"); echo "tutorial: FAILED $1" >&2; }

# ---- 1. names: files and functions the chapters cite --------------------------------------------
check_names() {
  local md="$1" rel="${1#$ROOT/}" n=0 line tok files f name found
  while IFS= read -r line; do
    n=$((n + 1))
    files=()
    # Backquoted repository paths (a slash and an extension; globs and placeholders are skipped).
    for tok in $(grep -o '`[A-Za-z0-9_./-]*/[A-Za-z0-9_.-]*\.[a-z]\{1,5\}`' <<<"$line" | tr -d '`'); do
      case "$tok" in out/*|data/*|runs/*|img/*|*/NN-*) continue ;; esac
      if [ -e "$ROOT/$tok" ]; then files+=("$ROOT/$tok"); else fail "$rel:$n: names \`$tok\`, which does not exist"; fi
    done
    for tok in $(grep -o '`[A-Za-z_][A-Za-z0-9_:]*()`' <<<"$line" | tr -d '`()'); do
      name="${tok##*::}"
      found=0
      if [ ${#files[@]} -gt 0 ]; then
        for f in "${files[@]}"; do
          if [ -f "$f" ] && grep -qw -- "$name" "$f"; then found=1; break; fi
          if [ -d "$f" ] && grep -rqw -- "$name" "$f"; then found=1; break; fi
        done
      else
        grep -rqw --include='*.h' --include='*.cpp' --include='*.cu' -- "$name" \
          "$ROOT/tensor" "$ROOT/kernels" "$ROOT/layers" "$ROOT/models" "$ROOT/io" "$ROOT/train" && found=1
      fi
      [ "$found" = 1 ] || fail "$rel:$n: names \`$tok()\`, not found in ${files[*]:-the sources}"
    done
  done < "$md"
}

# ---- 2. commands ---------------------------------------------------------------------------------
run_chapter() {
  local md="$1" rel="${1#$ROOT/}" base num line cmd log k=0 rc
  base="$(basename "$md" .md)"
  num="${base%%-*}"
  # Commands: one record per command ("LINE<TAB>COMMAND", continuation lines kept), records split by \036.
  local records
  records="$(awk '
    /^```console[[:space:]]*$/ { infence = 1; next }
    /^```/ { infence = 0; next }
    infence && cont { cmd = cmd "\n" $0; if ($0 !~ /\\$/) { printf "%d\t%s\n\036\n", start, cmd; cont = 0 }; next }
    infence && /^\$ / { start = NR; cmd = substr($0, 3); if ($0 ~ /\\$/) cont = 1; else printf "%d\t%s\n\036\n", start, cmd }
  ' "$md")"
  local IFS_SAVE="$IFS"
  while IFS= read -r -d $'\x1e' rec; do
    rec="${rec#$'\n'}"
    [ -n "$rec" ] || continue
    line="${rec%%$'\t'*}"
    cmd="${rec#*$'\t'}"
    cmd="${cmd%$'\n'}"
    k=$((k + 1))
    log="$WORK/logs/$base-$k.log"
    printf 'tutorial: %s:%s: $ %s\n' "$rel" "$line" "$(head -n1 <<<"$cmd")"
    local t0=$SECONDS
    (cd "$WORK" && bash -e -o pipefail -c "$cmd") >"$log" 2>&1
    rc=$?
    if [ $rc -ne 0 ]; then
      fail "$rel:$line: \$ $(head -n1 <<<"$cmd") (exit $rc, $((SECONDS - t0)) s; log $log)"
      tail -n 15 "$log" | sed 's/^/    | /' >&2
      [ "$STOP" = 1 ] && return 1
    else
      printf '          ok in %ss\n' $((SECONDS - t0))
    fi
  done <<<"$records"
  IFS="$IFS_SAVE"

  # Pictures of the chapter.
  local links pic dest src
  links="$(grep -o '](img/[^)]*)' "$md" | sed 's/^](//; s/)$//' | sort -u)"
  for dest in $links; do
    grep -q "<!-- picture: $dest <- " "$md" || fail "$rel: $dest is linked but has no '<!-- picture: $dest <- SOURCE -->' line"
  done
  while IFS= read -r pic; do
    [ -n "$pic" ] || continue
    dest="$(sed 's/.*picture: \([^ ]*\) <- .*/\1/' <<<"$pic")"
    src="$(sed 's/.* <- \([^ ]*\) -->.*/\1/' <<<"$pic")"
    if [ ! -f "$WORK/$src" ]; then
      fail "$rel: the chapter's commands did not draw $src (for $dest)"
      continue
    fi
    if [ "$PICTURES" = 1 ]; then
      mkdir -p "$DOCS/$(dirname "$dest")"
      cp "$WORK/$src" "$DOCS/$dest"
      [ "$(wc -c <"$DOCS/$dest")" -le 153600 ] || fail "$rel: $src is over 150 KB: draw it smaller (--size, --max-png-side)"
      printf '          picture %s (%s bytes)\n' "docs/tutorial/$dest" "$(wc -c <"$DOCS/$dest")"
    fi
    [ -f "$DOCS/$dest" ] || fail "$rel: docs/tutorial/$dest is not committed (run scripts/tutorial.sh --pictures)"
  done < <(grep -o '<!-- picture: [^>]*-->' "$md")
}

rm -rf "$WORK"
mkdir -p "$WORK/bin" "$WORK/logs"
ln -s "$SPINEXR" "$WORK/bin/spinexr"
export PATH="$WORK/bin:$PATH"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
echo "tutorial: spinexr = $SPINEXR, work folder = $WORK"

chapters=("$DOCS"/[0-9][0-9]-*.md)
for md in "${chapters[@]}"; do check_names "$md"; done
for md in "${chapters[@]}"; do
  num="$(basename "$md")"; num="${num%%-*}"
  if [ -n "$ONLY" ] && ! grep -qw "$num" <<<"${ONLY//,/ }"; then continue; fi
  run_chapter "$md" || break
done

if [ ${#FAILED[@]} -gt 0 ]; then
  echo "tutorial: ${#FAILED[@]} failure(s):" >&2
  for f in "${FAILED[@]}"; do echo "  $f" >&2; done
  exit 1
fi
echo "tutorial: every command ran and every picture was drawn"
