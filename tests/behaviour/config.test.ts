/**
 * URLs that reach a driver: SQLite's `:memory:` forms open an in-memory
 * database on every SQLite driver; a missing driver package (a project
 * without node_modules/postgres or mysql2, on each runtime) or built-in is a
 * `ConfigError` `ROOST_DRIVER_UNAVAILABLE` saying what to install, with no
 * password, in the API and the CLI. (Option validation at construction:
 * tests/unit/options.test.ts.)
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Database, type DriverName, sql } from "../../mod.ts";
import { tmpdir } from "node:os";
import { driverUnavailable } from "../../src/drivers/mod.ts";
import { assertHidden, runtime, type ScriptRun } from "../support/support.ts";
import { targets } from "../support/targets.ts";

const repository = fileURLToPath(new URL("../..", import.meta.url));

const secret = "s3cr3t-P@ss:w/rd";
const encoded = encodeURIComponent(secret);

function assertNoSecret(value: unknown): void {
  assertHidden(value, [secret, encoded], "password leaked");
}

/** Where a SQLite instance keeps its main database: "" when in memory, else the file's path. */
async function mainFile(db: Database): Promise<string> {
  return String(await db.fetchVal(sql`select file from pragma_database_list where name = 'main'`) ?? "");
}

/** How a query on a fresh instance of `url` ends: the main file, or the error's class and code. */
async function opened(url: string, driver: DriverName): Promise<string> {
  const db = new Database(url, { driver });
  try {
    await db.execute(sql`create table if not exists t (n integer)`);
    return `file "${await mainFile(db)}"`;
  } catch (error) {
    return `${(error as Error).name} ${(error as { code?: string }).code}`;
  } finally {
    await db.close();
  }
}

describe("SQLite URLs: :memory: and the filesystem root", () => {
  for (const target of targets({ places: ["sqlite memory"] })) {
    const driver = target.driver;
    test(`sqlite:///:memory: and sqlite://:memory: open an in-memory database, alone and with worker=true or mode=ro ${target.label}`, async () => {
      const queries = driver === "deno-sqlite" ? ["", "?mode=ro"] : ["", "?worker=true", "?mode=ro"];
      for (const query of queries) {
        const expected = await opened(`sqlite::memory:${query}`, driver);
        if (query !== "?mode=ro") assert.equal(expected, 'file ""', query);
        for (const form of ["sqlite://:memory:", "sqlite:///:memory:"]) {
          assert.equal(await opened(`${form}${query}`, driver), expected, `${form}${query}`);
        }
      }
    });
  }
});

/**
 * A project of its own in a temporary directory: Roost's sources (`mod.ts`,
 * `src/`), its build (`dist/`, which `bin/` runs) and `bin/` copied in, a `migrations` directory, and an empty
 * `node_modules`, so no driver package can be found (Bun installs missing
 * packages on the fly only where no `node_modules` exists).
 */
function projectWithoutDrivers(): string {
  const dir = mkdtempSync(join(tmpdir(), "roost-nodrivers-"));
  for (const part of ["mod.ts", "src", "bin", "dist"]) {
    cpSync(join(repository, part), join(dir, part), { recursive: true });
  }
  for (const empty of ["node_modules", "migrations"]) mkdirSync(join(dir, empty));
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "no-drivers", type: "module", private: true }));
  writeFileSync(
    join(dir, "probe.ts"),
    `import { Database, sql } from "./mod.ts";
const [driver, url] = process.argv.slice(-2);
const db = new Database(url, { driver });
try {
  await db.fetchVal(sql\`select 1\`);
  console.log("connected");
} catch (error) {
  console.log(JSON.stringify({ name: error.name, code: error.code, message: error.message }));
} finally {
  await db.close();
}
`,
  );
  return dir;
}

/** Runs `script` with this runtime in `cwd`; resolves with its exit code and output. */
function runIn(cwd: string, script: string, args: string[], env: Record<string, string> = {}): Promise<ScriptRun> {
  const argv = runtime === "deno" ? ["run", "-A", script, ...args] : [script, ...args];
  const child = spawn(process.execPath, argv, { cwd, env: { ...process.env, NO_COLOR: "1", ...env } });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => stdout += chunk);
  child.stderr.on("data", (chunk) => stderr += chunk);
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
}

const install = (name: string) =>
  runtime === "bun" ? `bun add ${name}` : runtime === "deno" ? `deno add npm:${name}` : `npm i ${name}`;

describe("a driver package that cannot be loaded", () => {
  let dir = "";
  before(() => dir = projectWithoutDrivers());
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (
    const [dialect, pkg, driver, url] of [
      ["postgres", "postgres", "postgres-js", `postgres://app:${encoded}@127.0.0.1:5432/test`],
      ["mysql", "mysql2", "mysql2", `mysql://app:${encoded}@127.0.0.1:3306/test`],
    ]
  ) {
    test(`a ${dialect} URL without the ${pkg} package: ROOST_DRIVER_UNAVAILABLE naming the dialect, driver and package`, async () => {
      const run = await runIn(dir, "probe.ts", [driver, url]);
      const error = JSON.parse(run.stdout.trim().split("\n").at(-1)!);
      assert.equal(error.name, "ConfigError", run.stdout + run.stderr);
      assert.equal(error.code, "ROOST_DRIVER_UNAVAILABLE");
      assert.ok(error.message.includes(`the ${dialect} driver "${driver}" could not be loaded`), error.message);
      assert.ok(error.message.includes(`(${install(pkg)})`), error.message);
      assert.ok(error.message.includes(`from "@roost/db/drivers/${driver}"`), error.message);
      assert.match(error.message, new RegExp(`the import failed with: .*${pkg}`));
      assert.doesNotMatch(error.message, /node:sqlite/);
      assertNoSecret(error.message);
    });
  }

  test("the CLI prints the same message and code on one line, exit code 1, no password", async () => {
    // A dialect whose default driver is a package on this runtime (Bun's Postgres default is built in).
    const [dialect, pkg, driver, url] = runtime === "bun"
      ? ["mysql", "mysql2", "mysql2", `mysql://app:${encoded}@127.0.0.1:3306/test`]
      : ["postgres", "postgres", "postgres-js", `postgres://app:${encoded}@127.0.0.1:5432/test`];
    const run = await runIn(dir, join("bin", "roost.js"), ["status"], { DATABASE_URL: url });
    assert.equal(run.code, 1, run.stdout + run.stderr);
    assert.match(
      run.stderr,
      new RegExp(`^error: the ${dialect} driver "${driver}" could not be loaded: install the package "${pkg}"`, "m"),
    );
    assert.ok(run.stderr.includes(`(${install(pkg)})`), run.stderr);
    assert.match(run.stderr, /\(ROOST_DRIVER_UNAVAILABLE\)$/m);
    assertNoSecret(run.stderr);
  });
});

describe("a built-in driver that cannot be loaded", () => {
  test("the message names the dialect, the driver, the runtime it needs and this runtime's version", () => {
    const error = driverUnavailable("sqlite", "node-sqlite", new Error("No such built-in module: node:sqlite"));
    assert.equal(error.code, "ROOST_DRIVER_UNAVAILABLE");
    assert.match(
      error.message,
      /^the sqlite driver "node-sqlite" could not be loaded: it needs node:sqlite \(Node\.js >= 22\.13/,
    );
    const version = runtime === "bun"
      ? `Bun ${(globalThis as unknown as { Bun: { version: string } }).Bun.version}`
      : runtime === "deno"
      ? `Deno ${(globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno}`
      : `Node.js ${process.version}`;
    assert.ok(error.message.includes(`this is ${version}`), error.message);
    assert.ok(error.message.includes('import { nodeSqlite } from "@roost/db/drivers/node-sqlite"'), error.message);
    assert.match(error.message, /the import failed with: Error: No such built-in module: node:sqlite\)$/);
  });
});
