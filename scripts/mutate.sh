#!/usr/bin/env bash
# Mutation testing: plants each single-line bug of scripts/mutations.txt, one at a time, into a
# scratch copy of the tree, rebuilds incrementally, runs the tests and records whether they noticed.
#
#   scripts/mutate.sh                 every mutation of the list
#   scripts/mutate.sh 3 7 12          M03, M07 and M12 (numbers, ids, or regular expressions matched
#   scripts/mutate.sh 'engine|adam'   against "id file description")
#   scripts/mutate.sh --check         only checks that every `find` occurs exactly once (no build)
#
# The repository is never modified. The scratch copy lives in $MUTATE_DIR (default out/mutate/tree,
# build in out/mutate/tree/build) and is kept between runs, so a second run rebuilds only what
# changed. Its sources are synced from the working tree (tracked and untracked, not ignored files),
# so new tests count before they are committed.
#
# Per mutation: the object file of the mutated source is saved, the edit is written, the library and
# the first test areas of the mutation (`tests:`, else the area of its folder) are rebuilt (-j1) and
# run with doctest's --abort-after=1; when they pass, every other test area is built and run. The
# source and its object are then restored (the object with a fresh time stamp, so the library is
# re-archived and nothing recompiles). Results:
#   KILLED       a test failed, crashed or timed out (MUTATE_TIMEOUT seconds per test binary, 300)
#   SURVIVED     every test passed: a gap in the tests, or an equivalent mutant to replace
#   BUILD ERROR  the mutation does not compile: not a kill; fix it in the list
#   SKIPPED      the list says `requires: FLAG` and /proc/cpuinfo lacks FLAG
#   NOT FOUND / AMBIGUOUS   `find` does not occur exactly once: the list is out of date
# The table and summary are printed and written to $MUTATE_REPORT (default out/mutation-report.txt);
# logs per mutation go to $MUTATE_DIR/logs. Exit status 1 when anything survived or could not be
# applied or built, 2 when the unmutated tree fails its own tests.
set -uo pipefail

repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
helper="python3 $repo/scripts/mutate_helper.py"
list=${MUTATIONS:-$repo/scripts/mutations.txt}
work=${MUTATE_DIR:-$repo/out/mutate}
tree=$work/tree
build=$tree/build
logs=$work/logs
report=${MUTATE_REPORT:-$repo/out/mutation-report.txt}
timeout_s=${MUTATE_TIMEOUT:-300}
# ccache finds objects compiled in sibling checkouts when paths are rewritten relative to a shared base.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$(dirname "$repo")}

check_only=0
selectors=()
for a in "$@"; do
  case "$a" in
    --check) check_only=1 ;;
    -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) selectors+=("$a") ;;
  esac
done

selection=$($helper select "$list" "$repo" "${selectors[@]}") || exit 1
if ((check_only)); then
  bad=$(awk -F'\x1f' '$5 != "ok" { printf "%s %s: %s\n", $1, $2, $5 }' <<<"$selection")
  n=$(wc -l <<<"$selection")
  if [[ -n $bad ]]; then echo "$bad"; exit 1; fi
  echo "all $n mutations apply: each find occurs exactly once"
  exit 0
fi

log() { printf '[mutate %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# ---- scratch tree and baseline ---------------------------------------------------------------------
mkdir -p "$tree" "$logs"
digest=$(git -C "$repo" ls-files -co --exclude-standard -z | $helper sync "$repo" "$tree") || exit 2
if [[ ! -f $build/CMakeCache.txt ]]; then
  log "configuring $build"
  cmake -S "$tree" -B "$build" -DCMAKE_BUILD_TYPE=Release -DTAPEGRAD_BENCH=OFF >"$logs/configure.log" 2>&1 ||
    { cat "$logs/configure.log"; exit 2; }
fi

mapfile -t areas < <(cd "$tree/tests" && for d in */; do d=${d%/}; [[ $d != fuzz ]] && ls "$d"/*.cpp >/dev/null 2>&1 && echo "$d"; done)

# The test binaries of `areas` that exist, built (test_training needs the examples).
build_areas() {  # build_areas LOG AREA...
  local out=$1; shift
  local targets=(tapegrad)
  for a in "$@"; do targets+=("test_$a"); done
  cmake --build "$build" -j1 --target "${targets[@]}" >>"$out" 2>&1
}

# run_area LOG AREA: 0 passed; otherwise prints "area: first failing test case".
run_area() {
  local out=$1 area=$2 rc first
  local tmp="$logs/.run.$$"
  (cd "$build/tests" && timeout "$timeout_s" "./test_$area" --abort-after=1 --no-colors=true) >"$tmp" 2>&1
  rc=$?
  cat "$tmp" >>"$out"
  if ((rc == 0)); then rm -f "$tmp"; return 0; fi
  # the test case of the first failed assertion or crash (doctest also heads MESSAGE output with one)
  first=$(awk '/^TEST CASE:/ { tc = $0; if (!any) any = $0 } / ERROR: / && tc != "" { print tc; found = 1; exit }
               END { if (!found && any != "") print any }' "$tmp" | sed 's/^TEST CASE: *//')
  if ((rc == 124)); then first="${first:-timed out after ${timeout_s}s}"
  elif ((rc > 128)); then first="${first:+$first, }crashed (signal $((rc - 128)))"
  fi
  echo "$area: ${first:-exit status $rc}"
  rm -f "$tmp"
  return 1
}

stamp=$work/baseline.ok
if [[ ! -f $stamp || $(cat "$stamp") != "$digest" ]]; then
  log "baseline: building the unmutated tree (-j1; the first time takes a while)"
  : >"$logs/baseline.log"
  if ! cmake --build "$build" -j1 >>"$logs/baseline.log" 2>&1; then
    tail -30 "$logs/baseline.log"; log "the unmutated tree does not build"; exit 2
  fi
  log "baseline: running every test area"
  for a in "${areas[@]}"; do
    if ! fail=$(run_area "$logs/baseline.log" "$a"); then
      log "the unmutated tree fails its tests ($fail); see $logs/baseline.log"; exit 2
    fi
  done
  echo "$digest" >"$stamp"
fi

# ---- one mutation at a time ----------------------------------------------------------------------
cpu_flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
results=$work/results.tsv
: >"$results"
restore() {  # restore FILE OBJECT SAVED_OBJECT MTIME
  cp "$repo/$1" "$tree/$1" && touch -d "@$4" "$tree/$1"
  if [[ -f $3 ]]; then cp "$3" "$2"; else rm -f "$2"; fi  # a fresh time stamp: re-archived, not recompiled
}
started=$(date +%s)
total=$(wc -l <<<"$selection")
count=0
while IFS=$'\x1f' read -r -u 3 id file tests requires status desc; do
  count=$((count + 1))
  t0=$(date +%s)
  result="" note=""
  mlog="$logs/$id.log"
  : >"$mlog"
  if [[ $status != ok ]]; then
    result=$status note="find: see scripts/mutations.txt"
  elif [[ -n $requires ]] && ! grep -qw -- "$requires" <<<"$cpu_flags"; then
    result="SKIPPED (needs $requires)" note="this CPU lacks $requires"
  else
    obj="$build/CMakeFiles/tapegrad.dir/$file.o"
    saved="$work/saved.o"
    rm -f "$saved"
    [[ -f $obj ]] && cp -p "$obj" "$saved"
    mtime=$(stat -c %Y "$tree/$file")
    if ! $helper apply "$list" "$id" "$repo" "$tree" >>"$mlog" 2>&1; then
      result="NOT FOUND / AMBIGUOUS" note=$(tail -1 "$mlog")
    else
      # First the areas most likely to notice, then all the others.
      first_areas=()
      if [[ -n $tests ]]; then read -ra first_areas <<<"$tests"
      else case $file in
          autograd/*) first_areas=(autograd) ;; nn/*) first_areas=(nn) ;; optim/*) first_areas=(optim) ;;
          datasets/*) first_areas=(datasets) ;; train/*) first_areas=(training) ;; *) first_areas=() ;;
        esac
      fi
      rest=()
      for a in "${areas[@]}"; do [[ " ${first_areas[*]} " == *" $a "* ]] || rest+=("$a"); done
      log "[$count/$total] $id $file: $desc"
      for group in first rest; do
        [[ -n $result ]] && break
        if [[ $group == first ]]; then group_areas=("${first_areas[@]}"); else group_areas=("${rest[@]}"); fi
        ((${#group_areas[@]})) || continue
        # (test_training depends on the examples, so they are rebuilt with it)
        if ! build_areas "$mlog" "${group_areas[@]}"; then
          result="BUILD ERROR" note=$(grep -m1 'error' "$mlog")
          break
        fi
        for a in "${group_areas[@]}"; do
          if ! fail=$(run_area "$mlog" "$a"); then result=KILLED note=$fail; break; fi
        done
      done
      [[ -n $result ]] || result=SURVIVED
    fi
    restore "$file" "$obj" "$saved" "$mtime"
  fi
  secs=$(($(date +%s) - t0))
  log "    $id: $result${note:+ — $note} (${secs}s)"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$id" "$file" "$desc" "$result" "${note//$'\t'/ }" "$secs" >>"$results"
done 3<<<"$selection"

elapsed=$(($(date +%s) - started))
title="Mutation testing of $(git -C "$repo" rev-parse --short HEAD)$(git -C "$repo" diff --quiet HEAD -- . 2>/dev/null || echo ' (+ uncommitted changes)') — $(date -u +%Y-%m-%dT%H:%MZ), $total mutation(s)${selectors:+, selection: ${selectors[*]}}, $((elapsed / 60)) min $((elapsed % 60)) s"
mkdir -p "$(dirname "$report")"
$helper report "$results" "$title" | tee "$report"
log "report written to $report"
if grep -qvP '\tKILLED\t|\tSKIPPED' "$results"; then exit 1; fi
exit 0
