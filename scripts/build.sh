#!/usr/bin/env bash
# npm run build [-- OUT]: compiles src/ and bench/ to OUT (default dist/) with declarations, and
# copies beside the JavaScript what it loads at run time that tsc does not emit: the worker
# entries (.mjs), the dashboard's page, the benchmarks' Python.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-dist}"
rm -rf "$out"
npx tsc -p tsconfig.build.json --outDir "$out"
while IFS= read -r f; do
  mkdir -p "$out/$(dirname "$f")"
  cp "$f" "$out/$f"
done < <(find src bench \( -name '*.mjs' -o -name '*.py' \) -not -name 'import-trace.mjs'; find src/cli/dashboard/page -type f)
echo "built $out"
