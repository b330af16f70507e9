#!/usr/bin/env bash
# Runs every Criterion suite given, then prints one total line:
#   "tests: N passed, N failed, N skipped"   (failed includes crashed; exit 1 if any)
set -u
stats=$(mktemp)
trap 'rm -f "$stats"' EXIT
failed_suites=0
for t in "$@"; do
  echo "== $t"
  HYP_TEST_STATS="$stats" "$t" --jobs="${HYP_TEST_JOBS:-2}" || failed_suites=$((failed_suites + 1))
done
read -r passed failed crashed skipped < <(awk '{p+=$1; f+=$2; c+=$3; s+=$4} END {print p+0, f+0, c+0, s+0}' "$stats")
suites_reported=$(wc -l < "$stats")
if [ "$suites_reported" -ne "$#" ]; then
  echo "$(( $# - suites_reported )) suite(s) ended without reporting (crash or bad usage)"
  failed_suites=$((failed_suites + 1))
fi
echo "tests: $passed passed, $((failed + crashed)) failed, $skipped skipped"
[ "$failed_suites" -eq 0 ] && [ $((failed + crashed)) -eq 0 ]
