// Copies the dashboard's third-party files from node_modules into gateway/static, where the
// gateway serves them from its own origin (its CSP allows scripts and styles from 'self' only).
//
//   npm run build                (tsc, then this script)
//   node scripts/vendor.mjs      (this script alone)
//
// The versions are the ones package-lock.json pins (`npm ci`); `npm run check-build` fails when
// a committed copy differs from its source here. uPlot draws the analytics view's time-series
// charts: one ES module, one stylesheet, no runtime dependencies, no eval or inline styles.

import { copyFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const PACKAGE = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const STATIC = resolve(PACKAGE, "..", "..", "gateway", "static");

/** [file inside node_modules, name in gateway/static] */
export const VENDORED = [
  ["uplot/dist/uPlot.esm.js", "uPlot.esm.js"],
  ["uplot/dist/uPlot.min.css", "uPlot.min.css"],
  ["uplot/LICENSE", "uPlot.LICENSE.txt"],
];

const require = createRequire(join(PACKAGE, "package.json"));

/** Where a vendored file comes from (uplot's package exports do not list these paths). */
export function sourceOf(file) {
  const [name, ...rest] = file.split("/");
  return join(dirname(require.resolve(`${name}/package.json`)), ...rest);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const [file, name] of VENDORED) {
    copyFileSync(sourceOf(file), join(STATIC, name));
  }
  console.log(`vendor: ${VENDORED.map(([, name]) => name).join(", ")} -> gateway/static`);
}
