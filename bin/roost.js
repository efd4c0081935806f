#!/usr/bin/env node
// The `roost` command (see src/cli.ts): `npx @roost/db`, `bunx @roost/db`, `deno run -A npm:@roost/db`.
// It runs the compiled build in dist/ (`npm ci` and `npm pack` build it).
const runtime = globalThis;

if (runtime.Bun === undefined && runtime.Deno === undefined) {
  const nodeModule = await import("node:module");
  if (typeof nodeModule.registerHooks !== "function" || typeof nodeModule.stripTypeScriptTypes !== "function") {
    console.error(`error: roost needs Node.js >= 22.18 (this is ${process.version})`);
    process.exit(1);
  }
  // Node strips the types of a project's .ts migrations itself, and Node 22 flags that and node:sqlite as
  // experimental: for a command line tool those warnings are noise. Every other warning still shows.
  const emitWarning = process.emitWarning;
  process.emitWarning = function (warning, ...rest) {
    const text = typeof warning === "string" ? warning : String(warning?.message ?? "");
    const type = typeof rest[0] === "string" ? rest[0] : rest[0]?.type ?? warning?.name;
    if (type === "ExperimentalWarning" && /Type Stripping|SQLite|stripTypeScriptTypes|registerHooks/i.test(text)) {
      return;
    }
    return emitWarning.call(process, warning, ...rest);
  };
}

const { main } = await import("../dist/src/cli.js");
process.exitCode = await main(process.argv.slice(2));
