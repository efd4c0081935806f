#!/usr/bin/env node
// The `roost` command (see src/cli.ts): `npx @roost/db`, `bunx @roost/db`, `deno run -A npm:@roost/db`.
// It runs the compiled build in dist/ (`npm run build`, `npm test` and `npm pack` build it).
const runtime = globalThis;

if (runtime.Bun === undefined && runtime.Deno === undefined) {
  const tooOld = nodeTooOld(process.version, process.env);
  if (tooOld !== undefined) {
    console.error(tooOld);
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

/**
 * The message for a Node.js older than 22.18 (the oldest that strips types by
 * itself), saying how to run roost instead; `undefined` for a recent one.
 * Bun's `bunx` runs a bin with the system's Node.js unless given `--bun`, and
 * tells the child so in `npm_config_user_agent` ("bun/…").
 */
function nodeTooOld(version, env) {
  const [major, minor] = version.slice(1).split(".").map(Number);
  if (major > 22 || (major === 22 && minor >= 18)) return undefined;
  const lines = [`error: roost needs Node.js >= 22.18 (this is ${version})`];
  if (String(env.npm_config_user_agent ?? "").startsWith("bun/")) {
    lines.push("Bun started it with that Node.js: run it on Bun itself with --bun:");
    lines.push(
      env.npm_lifecycle_event === "bunx"
        ? "  bunx --bun @roost/db <command>   (or bunx --bun roost <command> where it is installed)"
        : "  bun --bun run <script>, or bunx --bun @roost/db <command>",
    );
  } else {
    lines.push("Upgrade Node.js (then npx @roost/db <command> runs it without installing it), or run it on Bun:");
    lines.push("  bunx --bun @roost/db <command>");
  }
  return lines.join("\n");
}
