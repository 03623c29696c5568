#!/usr/bin/env bash
# CI for the browser packages' React half (.ci/run calls it right after pytest): installs from
# the committed lockfiles, type-checks strictly, runs the Vitest suite against a real gateway,
# builds the example app, runs its end-to-end tests in Debian's Chromium, and checks that the
# npm-packed packages install and work in a fresh Vite app. Any failure fails the run.
#
# `oddstream` for the tests: ODDSTREAM_DEV_COMMAND, else .ci-venv/bin/oddstream (CI) or
# .venv/bin/oddstream (see scripts/oddstreamDev.mjs).
set -euo pipefail
cd "$(dirname "$0")/../.."
CI_NPM=(--no-audit --no-fund --loglevel=error)
started=$SECONDS

echo "== @oddstream/client: install, build dist/ (what the other two packages import)"
(cd clients/js && npm ci "${CI_NPM[@]}" && npm run --silent build:dist)

echo "== @oddstream/react: install, tsc --strict, build"
(cd clients/react && npm ci "${CI_NPM[@]}" && npx tsc -p tsconfig.json --strict --noEmit && npm run --silent build)

echo "== @oddstream/react: unit tests (Vitest + Testing Library, against a real oddstream dev)"
(cd clients/react && npm test)

echo "== example app: install (packed copies of both packages), tsc --strict, build"
(cd clients/example && npm ci "${CI_NPM[@]}" \
  && npx tsc -p tsconfig.json --strict && npx tsc -p tsconfig.e2e.json --strict && npx vite build --logLevel warn)

echo "== example app: end-to-end (websocket.spec.ts, built app in Chromium, real gateway)"
(cd clients/example && npx playwright test)

echo "== npm pack of both packages into a fresh Vite app"
bash clients/react/scripts/pack-check.sh

echo "== clients/react/ci.sh passed in $((SECONDS - started)) s"
