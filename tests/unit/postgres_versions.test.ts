/**
 * The postgres.js lines the `postgres-js` driver supports, 3.4 and 4.x, are
 * the ones installed for the suite (`postgres`, and `postgres-v4` as an npm
 * alias), and the driver type-checks against each: `deno check` with
 * `postgres` mapped to that package's own declarations in node_modules, so
 * nothing is fetched. (Behaviour: tests/run.ts runs the Postgres targets of
 * the whole suite on 4.x as its `node-pg4` runner.) Driven from Node, once;
 * the other runtimes skip it.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { runtime, skipUnless } from "../support/support.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const deno = join(root, "node_modules", ".bin", "deno");

/** Runs `deno check` on the driver with `postgres` mapped to the given package's declarations. */
function checkDriver(pkg: string): Promise<{ code: number | null; output: string }> {
  const scratch = mkdtempSync(join(tmpdir(), "roost-pg-types-"));
  const importMap = join(scratch, "imports.json");
  const declarations = pathToFileURL(join(root, "node_modules", pkg, "types", "index.d.ts")).href;
  writeFileSync(importMap, JSON.stringify({ imports: { postgres: declarations } }));
  const child = spawn(
    deno,
    ["check", "--no-lock", `--import-map=${importMap}`, "src/drivers/postgres/postgres_js.ts"],
    {
      cwd: root,
      env: { ...process.env, NO_COLOR: "1" },
    },
  );
  let output = "";
  child.stdout.on("data", (chunk) => output += chunk);
  child.stderr.on("data", (chunk) => output += chunk);
  return new Promise((resolve) =>
    child.on("close", (code) => {
      rmSync(scratch, { recursive: true, force: true });
      resolve({ code, output });
    })
  );
}

const version = (pkg: string): string =>
  JSON.parse(readFileSync(join(root, "node_modules", pkg, "package.json"), "utf8")).version;

describe("postgres.js versions", () => {
  const lines = [
    { line: "3.4", pkg: "postgres", major: 3, minor: 4 },
    { line: "4.x", pkg: "postgres-v4", major: 4, minor: undefined },
  ];
  for (const { line, pkg, major, minor } of lines) {
    test(
      `the postgres-js driver type-checks against postgres.js ${line} (${pkg} in node_modules)`,
      skipUnless(runtime === "node", "checked once, from Node"),
      async () => {
        const [installedMajor, installedMinor] = version(pkg).split(".").map(Number);
        assert.equal(installedMajor, major, `${pkg} is postgres.js ${version(pkg)}`);
        if (minor !== undefined) assert.equal(installedMinor, minor, `${pkg} is postgres.js ${version(pkg)}`);
        const { code, output } = await checkDriver(pkg);
        assert.equal(code, 0, `deno check against postgres.js ${version(pkg)}:\n${output}`);
      },
    );
  }
});
