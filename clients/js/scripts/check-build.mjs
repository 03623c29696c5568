// Fails when the built client committed in gateway/static differs from a fresh build of src/,
// or a vendored file there (scripts/vendor.mjs: uPlot) differs from the locked package's copy.
//
//   npm run check-build          (in clients/js; CI runs it after `npm ci`)
//
// Builds with this package's own (locked) tsc and tsconfig.json into a temporary directory,
// then compares every emitted file byte for byte with its committed copy. A declaration file
// in gateway/static that the build no longer emits (a source file was removed or renamed)
// fails the check too. Fix: `npm run build`, then commit gateway/static.

import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { VENDORED, sourceOf } from "./vendor.mjs";

const PACKAGE = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const COMMITTED = resolve(PACKAGE, "..", "..", "gateway", "static");
const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");

function files(root, dir = root) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    return entry.isDirectory() ? files(root, path) : [relative(root, path)];
  });
}

const out = mkdtempSync(join(tmpdir(), "oddstream-client-build-"));
try {
  const built = spawnSync(
    process.execPath,
    [tsc, "-p", join(PACKAGE, "tsconfig.json"), "--outDir", out, "--pretty", "false"],
    { stdio: "inherit" },
  );
  if (built.status !== 0) {
    console.error(`check-build: tsc failed (exit ${built.status ?? built.signal})`);
    process.exit(1);
  }
  const emitted = files(out).sort();
  const problems = [];
  for (const name of emitted) {
    const committed = join(COMMITTED, name);
    if (!existsSync(committed)) problems.push(`missing: gateway/static/${name}`);
    else if (!readFileSync(committed).equals(readFileSync(join(out, name)))) {
      problems.push(`stale:   gateway/static/${name}`);
    }
  }
  const leftovers = files(COMMITTED).filter((n) => n.endsWith(".d.ts") && !emitted.includes(n));
  for (const name of leftovers) problems.push(`not built from src: gateway/static/${name}`);
  for (const [file, name] of VENDORED) {
    const committed = join(COMMITTED, name);
    if (!existsSync(committed)) problems.push(`missing: gateway/static/${name} (from ${file})`);
    else if (!readFileSync(committed).equals(readFileSync(sourceOf(file)))) {
      problems.push(`stale:   gateway/static/${name} (differs from node_modules/${file})`);
    }
  }
  if (problems.length) {
    console.error(problems.join("\n"));
    console.error("check-build: gateway/static differs from a fresh build: run `npm run build`");
    console.error("in clients/js and commit gateway/static.");
    process.exit(1);
  }
  const vendored = VENDORED.map(([, name]) => name);
  console.log(
    `check-build: gateway/static matches a fresh build (${emitted.join(", ")}) and the ` +
      `vendored files (${vendored.join(", ")})`,
  );
} finally {
  rmSync(out, { recursive: true, force: true });
}
