/**
 * One exports map for both manifests. deno.json's `exports` (what JSR
 * publishes, TypeScript sources) is the source; from it come package.json's
 * `exports` (the compiled build in dist/, with its declarations) and
 * deno.json's own `imports` entries for `@roost/db/…`, which let the
 * repository's examples import the package by name on Deno.
 *
 *   node scripts/exports.ts           fails (exit 1) when a manifest has drifted
 *   node scripts/exports.ts --write   rewrites both manifests to match
 *
 * @module
 */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository's root directory. */
export const root: string = join(dirname(fileURLToPath(import.meta.url)), "..");

/**
 * One entry of package.json's `exports`: the declarations first, then the
 * modules by condition (see {@linkcode edgeConditions}), then the module for
 * every other runtime.
 */
export interface CompiledExport {
  types: string;
  workerd?: string;
  worker?: string;
  "edge-light"?: string;
  default: string;
}

/**
 * The export conditions of edge bundlers (wrangler: `workerd`, `worker`;
 * Vercel Edge: `edge-light`, `worker`) and the export they pick instead of
 * `.`: the Worker entry, without the driver registry a bundle cannot use.
 */
export const edgeConditions = ["workerd", "worker", "edge-light"] as const;

/** The export the edge conditions pick for `.`. */
export const edgeExport = "./edge";

/** The compiled file for a source file: `./src/x.ts` → `./dist/src/x.js` (or `.d.ts`). */
export function compiledPath(source: string, kind: "js" | "d.ts"): string {
  if (!/^\.\/.*\.ts$/.test(source)) throw new Error(`an export must name a .ts file under the root: ${source}`);
  return `./dist/${source.slice(2, -3)}.${kind}`;
}

/** package.json's `exports`, from deno.json's. */
export function packageExports(denoExports: Record<string, string>): Record<string, CompiledExport | string> {
  const result: Record<string, CompiledExport | string> = {};
  for (const [name, source] of Object.entries(denoExports)) {
    const entry: CompiledExport = { types: compiledPath(source, "d.ts"), default: compiledPath(source, "js") };
    const edge = denoExports[edgeExport];
    if (name === "." && edge !== undefined) {
      for (const condition of edgeConditions) entry[condition] = compiledPath(edge, "js");
      // The default last: conditions match in order.
      const { default: fallback, ...conditions } = entry;
      result[name] = { ...conditions, default: fallback };
      continue;
    }
    result[name] = entry;
  }
  result["./package.json"] = "./package.json";
  return result;
}

/** deno.json's `imports` with one `@roost/db/…` entry per export (in the exports' order), other entries kept. */
export function selfImports(
  denoExports: Record<string, string>,
  imports: Record<string, string>,
): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [name, source] of Object.entries(denoExports)) result[`@roost/db${name.slice(1)}`] = source;
  for (const [name, target] of Object.entries(imports)) {
    if (name !== "@roost/db" && !name.startsWith("@roost/db/")) result[name] = target;
  }
  return result;
}

interface Manifests {
  deno: { exports: Record<string, string>; imports: Record<string, string> } & Record<string, unknown>;
  npm: { exports: Record<string, unknown> } & Record<string, unknown>;
}

/** Reads both manifests from the repository. */
export function readManifests(): Manifests {
  return {
    deno: JSON.parse(readFileSync(join(root, "deno.json"), "utf8")),
    npm: JSON.parse(readFileSync(join(root, "package.json"), "utf8")),
  };
}

/** What differs between the manifests and what deno.json's exports call for, one line each. */
export function drift(manifests: Manifests): string[] {
  const problems: string[] = [];
  const wantedExports = packageExports(manifests.deno.exports);
  if (JSON.stringify(manifests.npm.exports) !== JSON.stringify(wantedExports)) {
    problems.push("package.json exports differ from deno.json's exports (run: node scripts/exports.ts --write)");
  }
  const wantedImports = selfImports(manifests.deno.exports, manifests.deno.imports);
  if (JSON.stringify(manifests.deno.imports) !== JSON.stringify(wantedImports)) {
    problems.push("deno.json imports lack or misname @roost/db entries (run: node scripts/exports.ts --write)");
  }
  return problems;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const manifests = readManifests();
  if (process.argv.includes("--write")) {
    manifests.npm.exports = packageExports(manifests.deno.exports);
    manifests.deno.imports = selfImports(manifests.deno.exports, manifests.deno.imports);
    writeFileSync(join(root, "package.json"), JSON.stringify(manifests.npm, null, 2) + "\n");
    writeFileSync(join(root, "deno.json"), JSON.stringify(manifests.deno, null, 2) + "\n");
  } else {
    const problems = drift(manifests);
    for (const problem of problems) console.error(problem);
    process.exitCode = problems.length === 0 ? 0 : 1;
  }
}
