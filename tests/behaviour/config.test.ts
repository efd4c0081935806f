/** URLs and options: typed validation, and the password never printed anywhere. */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { inspect } from "node:util";
import { ConfigError, Database, type Driver, type DriverName, parseDatabaseUrl, sql } from "../mod.ts";
import { tmpdir } from "node:os";
import { main } from "../src/cli.ts";
import { driverUnavailable } from "../src/drivers/mod.ts";
import { runtime, type ScriptRun, targets } from "./support.ts";

const repository = fileURLToPath(new URL("..", import.meta.url));

const secret = "s3cr3t-P@ss:w/rd";
const encoded = encodeURIComponent(secret);

/** Every rendering of an error or object a user or a log could see. */
function renderings(value: unknown): string[] {
  const out = [String(value), inspect(value, { depth: 10, showHidden: true })];
  try {
    out.push(JSON.stringify(value) ?? "");
  } catch {
    // not serialisable: nothing to search
  }
  if (value instanceof Error) {
    out.push(value.message, value.stack ?? "", inspect(value.cause, { depth: 10 }), String(value.cause ?? ""));
  }
  const runtime = globalThis as { Deno?: { inspect(v: unknown): string }; Bun?: { inspect(v: unknown): string } };
  if (runtime.Deno) out.push(runtime.Deno.inspect(value));
  if (runtime.Bun) out.push(runtime.Bun.inspect(value));
  return out;
}

function assertNoSecret(value: unknown): void {
  for (const text of renderings(value)) {
    assert.ok(!text.includes(secret) && !text.includes(encoded), `password leaked in: ${text.slice(0, 200)}`);
  }
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${error}`);
    return error;
  }
  assert.fail("expected a ConfigError");
}

describe("database URLs", () => {
  test("each accepted form parses to its parts", () => {
    assert.deepEqual(
      { ...parseDatabaseUrl(`postgres://app:${encoded}@db.example:6543/shop?sslmode=require&connect_timeout=5`) },
      {
        dialect: "postgres",
        scheme: "postgres:",
        host: "db.example",
        port: 6543,
        user: "app",
        database: "shop",
        options: { sslmode: "require", connect_timeout: 5 },
      },
    );
    assert.equal(parseDatabaseUrl(`postgres://app:${encoded}@h/d`).password(), secret);
    assert.equal(parseDatabaseUrl("postgresql://h/d").port, 5432);
    assert.equal(parseDatabaseUrl("mariadb://root@127.0.0.1/test").dialect, "mysql");
    assert.equal(parseDatabaseUrl("mysql://root@[::1]:3307/test").host, "::1");
    assert.equal(parseDatabaseUrl("sqlite::memory:").inMemory, true);
    assert.equal(parseDatabaseUrl("sqlite:data/app.db").database, "data/app.db");
    assert.equal(parseDatabaseUrl("sqlite:///var/lib/app.db?mode=ro").database, "/var/lib/app.db");
    assert.deepEqual(parseDatabaseUrl("sqlite:x.db?busy_timeout=250&foreign_keys=off").options, {
      busy_timeout: 250,
      foreign_keys: false,
    });
  });

  test("bad URLs and options are ConfigErrors that never contain the password", () => {
    const bad = [
      `ftp://app:${encoded}@host/db`,
      `postgres://app:${encoded}@host:99999/db`,
      `postgres://app:${encoded}@host/db?sslmode=sometimes`,
      `postgres://app:${encoded}@host/db?colour=blue`,
      `postgres://app:${encoded}@host/db?connect_timeout=soon`,
      `postgres://app:${encoded}@host/db/extra`,
      `postgres:app:${encoded}@host/db`,
      `mysql://app:${encoded}@host/db?sslmode=require`,
      `postgres://app:${secret}@host/db`,
      `postgres://app:${encoded}%zz@host/db`,
      `sqlite://host/${encoded}.db`,
      `sqlite:`,
      `sqlite:x.db?mode=${encoded}`,
      `${secret}`,
      `postgres://app:${encoded}@host/db?sslmode=require&sslmode=disable`,
    ];
    for (const url of bad) {
      let error: unknown;
      try {
        new Database(url);
      } catch (caught) {
        error = caught;
      }
      if (error === undefined) continue; // a URL that parses is checked by the next test
      assert.ok(error instanceof ConfigError, `${url}: ${error}`);
      assertNoSecret(error);
    }
    assert.ok(
      configError(() => new Database(`postgres://app:${encoded}@host/db?colour=blue`)).message.includes("colour"),
    );
    // @ts-expect-error: not a string
    configError(() => new Database(42));
  });

  test("a parsed URL and a Database never show the password when printed, logged or serialised", () => {
    const url = parseDatabaseUrl(`postgres://app:${encoded}@host/db`);
    assertNoSecret(url);
    assert.equal(String(url), "postgres://app:***@host:5432/db");
    // This test never connects; the stand-in driver only satisfies the constructor.
    const driver: Driver = {
      name: "never-connects",
      dialect: "postgres",
      interleavedStreams: false,
      connect: () => Promise.reject(new Error("not used")),
    };
    const db = new Database(`postgres://app:${encoded}@host/db`, { driver });
    assertNoSecret(db);
    assert.ok(String(db).includes("***"));
  });
});

describe("Database options", () => {
  test("unknown and mistyped options are ConfigErrors naming the option", () => {
    // @ts-expect-error: unknown option
    assert.match(configError(() => new Database("sqlite::memory:", { pools: {} })).message, /pools/);
    // @ts-expect-error: unknown pool option
    assert.match(configError(() => new Database("sqlite::memory:", { pool: { maximum: 3 } })).message, /maximum/);
    configError(() => new Database("sqlite::memory:", { pool: { max: 0 } }));
    configError(() => new Database("sqlite::memory:", { pool: { max: 2, min: 3 } }));
    configError(() => new Database("sqlite::memory:", { pool: { acquireTimeout: -1 } }));
    configError(() => new Database("sqlite::memory:", { pool: { idleTimeout: 1.5 } }));
    configError(() => new Database("sqlite::memory:", { name: "" }));
    // @ts-expect-error: not a driver
    assert.match(configError(() => new Database("sqlite::memory:", { driver: "oracle" })).message, /oracle/);
    // @ts-expect-error: not an options object
    configError(() => new Database("sqlite::memory:", "fast"));
  });

  test("a driver for another dialect or runtime is refused at construction", () => {
    configError(() => new Database("sqlite::memory:", { driver: "Bun" in globalThis ? "node-sqlite" : "bun-sqlite" }));
  });
});

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
  test("`:memory:` is in memory in every SQLite URL form, with or without options", () => {
    for (const form of ["sqlite::memory:", "sqlite://:memory:", "sqlite:///:memory:", "sqlite:%3Amemory%3A"]) {
      for (const query of ["", "?mode=ro", "?worker=true&foreign_keys=off"]) {
        const url = parseDatabaseUrl(`${form}${query}`);
        assert.equal(url.inMemory, true, `${form}${query}`);
        assert.equal(url.database, ":memory:", `${form}${query}`);
        assert.deepEqual(url.options, parseDatabaseUrl(`sqlite::memory:${query}`).options, `${form}${query}`);
      }
    }
  });

  test("a SQLite file in the filesystem root is a ConfigError ROOST_SQLITE_ROOT_PATH; other absolute paths parse", () => {
    for (const url of ["sqlite:///app.db", "sqlite:////app.db", "sqlite:/app.db", "sqlite:%2Fapp.db", "sqlite:///"]) {
      const error = configError(() => new Database(`${url}?mode=rwc`));
      assert.equal(error.code, "ROOST_SQLITE_ROOT_PATH", url);
      assert.match(error.message, /filesystem root.*sqlite:app\.db/, url);
    }
    configError(() => parseDatabaseUrl("sqlite:///tmp/../app.db"));
    assert.equal(parseDatabaseUrl("sqlite:///var/data/app.db").database, "/var/data/app.db");
    assert.equal(parseDatabaseUrl("sqlite:////var/data/app.db").database, "//var/data/app.db");
    assert.equal(parseDatabaseUrl("sqlite:app.db").database, "app.db");
    assert.equal(parseDatabaseUrl("sqlite:./app.db").database, "./app.db");
  });

  for (const target of targets().filter((t) => t.label === `[sqlite memory · ${t.driver}]`)) {
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

  test("the migrate CLI refuses DATABASE_URL=sqlite:///app.db with the root-path message and code", async () => {
    const errors: string[] = [];
    const code = await main(["status"], {
      out: () => {},
      err: (line) => errors.push(line),
      env: { DATABASE_URL: "sqlite:///app.db" },
      cwd: tmpdir(),
    });
    assert.equal(code, 1);
    assert.match(errors.join("\n"), /filesystem root.*ROOST_SQLITE_ROOT_PATH/s);
  });
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
const db = new Database(process.argv.at(-1));
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
      const run = await runIn(dir, "probe.ts", [url]);
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
    const run = await runIn(dir, join("bin", "roost.js"), ["status"], {
      DATABASE_URL: `postgres://app:${encoded}@127.0.0.1:5432/test`,
    });
    assert.equal(run.code, 1, run.stdout + run.stderr);
    assert.match(
      run.stderr,
      /^error: the postgres driver "postgres-js" could not be loaded: install the package "postgres"/m,
    );
    assert.ok(run.stderr.includes(`(${install("postgres")})`), run.stderr);
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
