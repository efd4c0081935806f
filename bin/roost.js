#!/usr/bin/env node
// The `roost` command (see src/cli.ts): `npx roost`, `bunx roost`, `deno run -A bin/roost.js`.
//
// Bun and Deno run TypeScript as it is. Node strips types itself, except in
// files under node_modules, which is where this package lives once installed:
// there a module hook strips the types of every .ts file Roost (or a user's
// .ts migration, or @roost/db imported by one) loads.
const runtime = globalThis;

if (runtime.Bun === undefined && runtime.Deno === undefined) {
  const nodeModule = await import("node:module");
  if (typeof nodeModule.registerHooks !== "function" || typeof nodeModule.stripTypeScriptTypes !== "function") {
    console.error(`error: roost needs Node.js >= 22.18 (this is ${process.version})`);
    process.exit(1);
  }
  const { readFileSync } = await import("node:fs");
  const { fileURLToPath } = await import("node:url");
  // Node flags stripTypeScriptTypes (and, on some versions, registerHooks) as experimental: for a command line
  // tool those warnings are noise. Every other warning still shows.
  const emitWarning = process.emitWarning;
  process.emitWarning = function (warning, ...rest) {
    const text = typeof warning === "string" ? warning : String(warning?.message ?? "");
    const type = typeof rest[0] === "string" ? rest[0] : rest[0]?.type ?? warning?.name;
    if (type === "ExperimentalWarning" && /stripTypeScriptTypes|registerHooks/.test(text)) return;
    return emitWarning.call(process, warning, ...rest);
  };
  nodeModule.registerHooks({
    load(url, context, nextLoad) {
      if (url.startsWith("file:") && /\.m?ts$/.test(new URL(url).pathname)) {
        const source = readFileSync(fileURLToPath(url), "utf8");
        return { format: "module", source: nodeModule.stripTypeScriptTypes(source), shortCircuit: true };
      }
      return nextLoad(url, context);
    },
  });
}

const { main } = await import("../src/cli.ts");
process.exitCode = await main(process.argv.slice(2));
