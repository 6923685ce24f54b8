#!/usr/bin/env bash
# `npm run faults`: runs the fault tests (test/faults/: function faults through a seeded proxy,
# a batch that never succeeds, a peer's Redis killed mid-round or restarted empty, a peer
# process or its redis-server killed before each phase of a round, a host cut off from the
# others in network namespaces behind a shaping proxy) and prints one line per
# fault with its outcome: what was done, and whether every promise held.
set -uo pipefail
cd "$(dirname "$0")/.."
report="$(mktemp -d)/faults.json"
npx vitest run --config vitest.faults.config.ts --reporter=json --outputFile="$report" "$@" >/dev/null 2>&1
status=$?
node -e '
  const r = require(process.argv[1]);
  const rows = r.testResults.flatMap((f) => f.assertionResults.map((a) => ({ fault: [...a.ancestorTitles, a.title].join(": "), outcome: a.status === "passed" ? "held" : a.status.toUpperCase(), s: ((a.duration ?? 0) / 1000).toFixed(1) })));
  const w = Math.max(...rows.map((x) => x.fault.length), 5);
  console.log(`${"fault".padEnd(w)}  outcome  seconds`);
  for (const x of rows) console.log(`${x.fault.padEnd(w)}  ${x.outcome.padEnd(7)}  ${x.s.padStart(7)}`);
  console.log(`\n${r.numPassedTests} passed, ${r.numFailedTests} failed`);
' "$report"
exit "$status"
