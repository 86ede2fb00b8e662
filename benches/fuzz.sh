#!/usr/bin/env bash
# Fuzzing (issue 13, point 13): builds the cargo-fuzz targets in fuzz/ and runs each for a
# while with libFuzzer, then records executions and crashes per target in
# benches/RESULTS-fuzz.md (this run's table, and the totals over every recorded run, which
# benches/fuzz-runs.tsv keeps).
#
# Usage: benches/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (from anywhere; default 300 s,
#        every target from `cargo fuzz list`)
# Env:   FUZZ_JOBS   libFuzzer fork jobs per target (default: the machine's cores; never more)
#        FUZZ_WORK   where new corpus inputs accumulate between runs (default fuzz/work/,
#                    git-ignored; the committed seeds in fuzz/corpus/ are read, never written)
#        NO_RECORD=1 run without touching the results files
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). cargo fuzz passes nightly-only flags
# (-Zsanitizer=address) to rustc; RUSTC_BOOTSTRAP=1 lets the stable toolchain take them.
# Crashes land in fuzz/artifacts/TARGET/; replay one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run -O -a TARGET fuzz/artifacts/TARGET/crash-...
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT/fuzz"
SECS=${1:-300}
shift || true
CORES=$(nproc)
JOBS=${FUZZ_JOBS:-$CORES}
if [ "$JOBS" -gt "$CORES" ]; then JOBS=$CORES; fi
WORK=${FUZZ_WORK:-$ROOT/fuzz/work}
export RUSTC_BOOTSTRAP=1

# -O: optimised; -a: debug assertions (and overflow checks) on, so an overflow is a crash.
BUILD=(cargo fuzz build -O -a)
"${BUILD[@]}"
if [ $# -gt 0 ]; then TARGETS=("$@"); else mapfile -t TARGETS < <(cargo fuzz list); fi

COMMIT=$(git -C "$ROOT" rev-parse --short HEAD)
if ! git -C "$ROOT" diff --quiet HEAD -- fuzz api router storage predictor fuzz-checks; then
  COMMIT="$COMMIT+changes"
fi
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
ROWS=()
for t in "${TARGETS[@]}"; do
  mkdir -p "$WORK/corpus/$t" "artifacts/$t"
  log="$WORK/$t.log"
  before=$(find "artifacts/$t" -type f | wc -l)
  start=$(date +%s)
  # Fork mode: JOBS child processes; crashes, timeouts and OOMs are saved and counted, and
  # fuzzing goes on. New inputs go to the first corpus folder, the seeds are only read.
  cargo fuzz run -O -a "$t" "$WORK/corpus/$t" "corpus/$t" -- \
    -fork="$JOBS" -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
    -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    > "$log" 2>&1 || true
  secs=$(( $(date +%s) - start ))
  # Fork mode's status lines: "#RUNS: cov: C ft: F corp: N exec/s E oom/timeout/crash: O/T/X time: S ..."
  stats=$(grep -E '^#[0-9]+: cov:' "$log" | tail -1 || true)
  runs=$(sed -E 's/^#([0-9]+):.*/\1/' <<<"$stats")
  cov=$(sed -E 's/.* cov: ([0-9]+).*/\1/' <<<"$stats")
  otc=$(sed -E 's#.*oom/timeout/crash: ([0-9]+/[0-9]+/[0-9]+).*#\1#' <<<"$stats")
  after=$(find "artifacts/$t" -type f | wc -l)
  runs=${runs:-0} cov=${cov:-?} otc=${otc:-?}
  echo "$t: $runs executions in ${secs}s, coverage $cov, oom/timeout/crash $otc, $((after - before)) new artifacts"
  ROWS+=("$t	$secs	$runs	$cov	$otc	$((after - before))")
done

[ "${NO_RECORD:-}" = 1 ] && exit 0
TSV="$ROOT/benches/fuzz-runs.tsv"
[ -f "$TSV" ] || printf 'date\tcommit\tjobs\ttarget\tseconds\texecutions\tcoverage\toom/timeout/crash\tnew_artifacts\n' > "$TSV"
for row in "${ROWS[@]}"; do printf '%s\t%s\t%s\t%s\n' "$DATE" "$COMMIT" "$JOBS" "$row" >> "$TSV"; done

OUT="$ROOT/benches/RESULTS-fuzz.md"
{
  cat <<'EOF'
# Fuzzing results (issue 13, point 13) — `benches/fuzz.sh`

Coverage-guided fuzzing of every parser that takes bytes from outside (fuzz/README.md lists
the targets and what each checks). Every run of `benches/fuzz.sh` adds its rows to
`benches/fuzz-runs.tsv` and rewrites this file from it. Goal: 10^7 executions per target over
the sessions of the issue, every crash fixed with its input added to `fuzz/corpus/`.
The build machine has 2 CPUs shared with other builds; fork jobs never exceed its cores.

## Totals over every recorded run

| target | runs | seconds | executions | goal 10^7 | crashes (oom/timeout/crash) |
|---|--:|--:|--:|---|---|
EOF
  awk -F'\t' 'NR > 1 {
      if (!($4 in runs)) order[++n] = $4
      runs[$4]++; secs[$4] += $5; execs[$4] += $6
      split($8, o, "/"); oom[$4] += o[1]; tmo[$4] += o[2]; crash[$4] += o[3]
    }
    END { for (i = 1; i <= n; i++) { t = order[i]
      printf "| %s | %d | %d | %d | %s | %d/%d/%d |\n", t, runs[t], secs[t], execs[t],
        (execs[t] >= 10000000 ? "met" : sprintf("%.1f%%", execs[t] / 100000)), oom[t], tmo[t], crash[t] } }' "$TSV"
  echo
  echo "## Crashes found, each fixed, its input kept in the corpus (the replay test keeps it fixed)"
  echo
  found=$(cd "$ROOT" && ls fuzz/corpus/*/crash-* 2>/dev/null || true)
  if [ -n "$found" ]; then
    for f in $found; do echo "- \`$f\` ($(git -C "$ROOT" log --format='commit %h: %s' -1 -- "$f" | cut -c1-160))"; done
  else
    echo "None yet."
  fi
  echo
  echo "A run's crash count is what that run's binaries hit; a crash fixed since counts in the"
  echo "run that found it."
  echo
  echo "## Runs, newest first"
  awk -F'\t' 'NR > 1 { key = $1 "\t" $2 "\t" $3; if (!(key in seen)) { seen[key] = ++n; keys[n] = key }
      rows[seen[key]] = rows[seen[key]] sprintf("| %s | %d | %d | %s | %s | %d |\n", $4, $5, $6, $7, $8, $9) }
    END { for (i = n; i >= 1; i--) { split(keys[i], k, "\t")
      printf "\n### %s, commit %s, %d fork jobs\n\n", k[1], k[2], k[3]
      print "| target | seconds | executions | coverage | oom/timeout/crash | new artifacts |"
      print "|---|--:|--:|--:|---|--:|"
      printf "%s", rows[i] } }' "$TSV"
  echo
  echo "Command: \`benches/fuzz.sh SECONDS [TARGET...]\` (seconds per target; see the runs above"
  echo "for each run's seconds). Replaying the corpus in the normal test suite:"
  echo "\`cargo test -p kiln-fuzz-checks\`."
} > "$OUT"
echo "recorded in $OUT"
