#!/usr/bin/env bash
# `npm pack` both packages, install the two tarballs into a fresh Vite app (the example's
# source with a package.json of its own naming only the tarballs and public packages: no
# file: links, no source folders), build it, render it on the server with plain Node, and run
# the end-to-end smoke test (live odds in Chromium against a real gateway) on that build.
#
#   bash clients/react/scripts/pack-check.sh      (after npm ci in clients/js, clients/react
#                                                  and clients/example)
set -euo pipefail
cd "$(dirname "$0")/../../.."
ROOT="$PWD"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/oddstream-pack-check.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
NPM_FLAGS=(--no-audit --no-fund --prefer-offline --loglevel=error)

echo "-- npm pack (each runs its prepack build)"
CLIENT_TGZ="$(cd clients/js && npm pack --silent --pack-destination "$WORK" | tail -1)"
REACT_TGZ="$(cd clients/react && npm pack --silent --pack-destination "$WORK" | tail -1)"
tar -tzf "$WORK/$REACT_TGZ" | sort > "$WORK/react-files.txt"
for f in package/dist/index.js package/dist/index.d.ts package/dist/styles.css package/package.json; do
  grep -qx "$f" "$WORK/react-files.txt" || { echo "pack-check: $f missing from $REACT_TGZ" >&2; exit 1; }
done
if grep -q "package/test/" "$WORK/react-files.txt"; then
  echo "pack-check: tests packed into $REACT_TGZ" >&2; exit 1
fi

echo "-- a fresh Vite app with the tarballs"
APP="$WORK/app"
mkdir -p "$APP"
cp -r clients/example/index.html clients/example/vite.config.ts clients/example/tsconfig.json clients/example/src "$APP/"
cat > "$APP/package.json" <<JSON
{
  "name": "fresh-oddstream-app",
  "private": true,
  "type": "module",
  "scripts": { "build": "tsc -p tsconfig.json && vite build" }
}
JSON
(
  cd "$APP"
  npm install "${NPM_FLAGS[@]}" "$WORK/$CLIENT_TGZ" "$WORK/$REACT_TGZ" \
    react@^19.3.1 react-dom@^19.3.1 zustand@^5.1.0
  npm install "${NPM_FLAGS[@]}" --save-dev vite@^8.3.8 @vitejs/plugin-react@^6.3.0 \
    typescript@~5.9.3 @types/react@19.3.0 @types/react-dom@^19.3.0
  test ! -L node_modules/@oddstream/react  # a real install, not a link
  npm run build
  # Plain Node resolves the packed ES modules (exports, .d.ts aside) and renders on the server.
  node --input-type=module -e '
    import { createElement } from "react";
    import { renderToString } from "react-dom/server";
    import { LiveWebSocketDashboard, useWebSocketStore } from "@oddstream/react";
    import { WebSocketManager } from "@oddstream/client";
    const html = renderToString(createElement(LiveWebSocketDashboard, { token: "x" }));
    if (!html.includes("Not connected")) throw new Error("unexpected SSR output: " + html.slice(0, 200));
    if (!(useWebSocketStore.getState().manager instanceof WebSocketManager)) throw new Error("two copies of @oddstream/client");
    console.log("pack-check: SSR of the packed package OK (" + html.length + " bytes)");
  '
)

echo "-- the packed app works: live odds in Chromium against a real gateway"
(cd clients/example && EXAMPLE_DIST="$APP/dist" npx playwright test --grep @smoke)
echo "pack-check: OK ($CLIENT_TGZ, $REACT_TGZ)"
