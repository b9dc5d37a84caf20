#!/usr/bin/env bash
# Install what is needed, then run the whole test suite: type check, lint, unit tests,
# root + network-namespace tests against the real kernel, and a short benchmark smoke.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npm run -s typecheck
npm run -s lint
mkdir -p .test-results
status=0
npx vitest run --reporter=default --reporter=json --outputFile=.test-results/vitest.json || status=$?
npm run -s bench:smoke || status=$?
node scripts/summarize-tests.mjs .test-results/vitest.json || status=$?
exit "$status"
