/**
 * Builds the npm package's JavaScript: every module of mod.ts and src/,
 * compiled 1:1 by TypeScript's own compiler (tsc, tsconfig.build.json) to
 * ESM in dist/, with declarations and source maps (sources inlined). Then
 * checks that every export of package.json names a file that now exists.
 *
 * One module is changed after compiling: the driver registry
 * (dist/src/drivers/mod.js), whose literal `import("./sqlite/node_sqlite.js")`
 * in each driver's `load` (there so Deno's tools see the drivers: see
 * src/drivers/mod.ts) becomes `importDriverModule("sqlite/node_sqlite")`, a
 * specifier computed at run time, so a bundler of the npm package follows
 * none of them and needs none of the optional peer packages.
 *
 *   node scripts/build.ts
 *
 * `npm run build` runs it, and so do `npm pack` (the `prepack` script), `npm test` and
 * `npm run quickstart`. It is not an install script: installing the package runs nothing.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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

// Every driver's `load` in the registry, made a computed import (see above); the build fails if one was not.
const registry = join(root, "dist", "src", "drivers", "mod.js");
const compiled = readFileSync(registry, "utf8");
const literalLoad = /load: \(\) => import\("\.\/([a-z0-9_/]+)\.js"\)/g;
const loads = compiled.match(literalLoad)?.length ?? 0;
const computed = compiled.replace(literalLoad, 'load: () => importDriverModule("$1")');
if (loads === 0 || /=>\s*import\("\.\//.test(computed)) {
  console.error(`build: ${registry}: expected each driver's load as import("./<path>.js"), found ${loads}`);
  process.exit(1);
}
writeFileSync(registry, computed);

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
