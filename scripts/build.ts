/**
 * Builds the npm package's JavaScript: every module of mod.ts and src/,
 * compiled 1:1 by TypeScript's own compiler (tsc, tsconfig.build.json) to
 * ESM in dist/, with declarations and source maps (sources inlined). Then
 * checks that every export of package.json names a file that now exists.
 *
 *   node scripts/build.ts
 *
 * `npm run build` runs it, and so do `npm pack` (the `prepack` script), `npm test` and
 * `npm run quickstart`. It is not an install script: installing the package runs nothing.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { drift, readManifests, root } from "./exports.ts";

const problems = drift(readManifests());
if (problems.length > 0) {
  for (const problem of problems) console.error(`build: ${problem}`);
  process.exit(1);
}

rmSync(join(root, "dist"), { recursive: true, force: true });
const tsc = join(root, "node_modules", ".bin", "tsc");
const compile = spawnSync(existsSync(tsc) ? tsc : "tsc", ["-p", "tsconfig.build.json"], {
  cwd: root,
  stdio: "inherit",
});
if (compile.status !== 0) {
  console.error(`build: tsc failed${compile.error ? ` (${compile.error.message}; run npm ci first)` : ""}`);
  process.exit(1);
}

const missing: string[] = [];
const { npm } = readManifests();
for (const target of Object.values(npm.exports)) {
  const files = typeof target === "string" ? [target] : Object.values(target as Record<string, string>);
  for (const file of files) if (!existsSync(join(root, file))) missing.push(file);
}
if (missing.length > 0) {
  console.error(`build: exports name files the build did not write: ${missing.join(", ")}`);
  process.exit(1);
}
