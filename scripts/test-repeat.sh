#!/usr/bin/env bash
# Runs one test file N times in a row and prints how many runs passed: the check that a
# test which starts processes (redis-servers, peers, functions) is never flaky.
#   npm run test:repeat -- 20 test/training/network.spec.ts [more files or vitest args]
# With several files, each run runs them all, and a run passes when every one does.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ] || ! [[ "$1" =~ ^[0-9]+$ ]] || [ "$1" -lt 1 ]; then
  echo "usage: npm run test:repeat -- N FILE [FILE...] [vitest args...]   (N >= 1 runs of the files)" >&2
  exit 2
fi
runs=$1; shift
file=$1
[ -e "$file" ] || { echo "test:repeat: no such test file: $file" >&2; exit 2; }
logs=$(mktemp -d)
passed=0
for i in $(seq 1 "$runs"); do
  if npx vitest run "$@" >"$logs/run-$i.log" 2>&1; then
    passed=$((passed + 1)); echo "run $i/$runs: passed"
  else
    echo "run $i/$runs: FAILED (log: $logs/run-$i.log)"
  fi
done
echo "$*: $passed of $runs runs passed"
[ "$passed" -eq "$runs" ]
