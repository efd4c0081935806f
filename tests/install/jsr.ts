/**
 * Roost from JSR, as a Deno user installs it. The checkout is published into
 * a copy of the local JSR registry (`../shared/jsr/publish-local`: exactly
 * the files `deno publish` uploads, bare imports rewritten as it rewrites
 * them) and served on loopback; fresh Deno apps then import
 * `jsr:@roost/db` (or `@roost/db` through the import map `deno add` writes)
 * and run on SQLite, Postgres and MariaDB: every public entry, the CLI,
 * `deno check` under strict settings, the narrowest permissions per driver
 * (docs/deno.md) and the Roost error naming the flag when one is missing,
 * and `deno install` followed by a `--frozen --cached-only` run with no
 * registry to reach.
 *
 * Run by tests/run.ts in the `install` runner (Node's test runner). Test
 * names carry `[jsr · <what>]`, so the summary prints the matrix. Without
 * the mirror (../shared/jsr or ROOST_JSR_MIRROR) the tests skip, except in
 * CI, where that fails the run.
 *
 *   node --test tests/install/jsr.ts
 *
 * @module
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { jsrMirror, startJsrRegistry } from "../support/jsr_registry.ts";
import { inCi, skipUnless } from "../support/support.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const deno = join(root, "node_modules", ".bin", "deno");
const env = process.env;
const postgresUrl = env.ROOST_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const mysqlUrl = env.ROOST_TEST_MYSQL_URL ?? "mysql://root@127.0.0.1:3306/test";
/** `host:port` of a server URL, for `--allow-net`. */
const address = (url: string) => new URL(url).host;

const mirror = jsrMirror(root, env);
if (mirror === undefined && inCi) throw new Error("CI needs the JSR mirror (../shared/jsr or ROOST_JSR_MIRROR)");
const noMirror = "no JSR mirror here (../shared/jsr or ROOST_JSR_MIRROR)";
const version: string = JSON.parse(await readFile(join(root, "deno.json"), "utf8")).version;

interface Run {
  code: number | null;
  out: string;
  err: string;
}

const show = (run: Run) => `exit ${run.code}\n--- stdout\n${run.out}\n--- stderr\n${run.err}`;

let work = "";
/** The registry's environment (JSR_URL, DENO_SQLITE_PATH) and its server's stop. */
let registry: { env: Record<string, string>; stop(): void } | undefined;
/** The Deno cache the online apps share. */
let onlineCache = "";
/** A fresh app with no configuration: `jsr:` specifiers in the code. */
let plainApp = "";
/** An app made by `deno add jsr:@roost/db npm:kysely`: bare `@roost/db` through its import map. */
let addedApp = "";

/**
 * Runs `deno args…` in `cwd` (at most 3 minutes) with the registry's
 * environment and `extra` over it; stdin is not a terminal, so Deno never
 * prompts for a permission: it refuses it.
 */
function denoRun(args: string[], cwd: string, extra: Record<string, string> = {}): Promise<Run> {
  const childEnv: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value !== undefined && !/^(npm_|DATABASE_URL$|PG|DENO_DIR$)/i.test(name)) childEnv[name] = value;
  }
  // The apps fetch their npm packages from the npm registry with a cache of their own: trust the machine's
  // certificate store as well as Deno's own (a machine behind a TLS-inspecting proxy has its CA only there, which
  // Node is given through NODE_EXTRA_CA_CERTS and Deno through this).
  childEnv.DENO_TLS_CA_STORE ??= "mozilla,system";
  Object.assign(childEnv, registry?.env, { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1", DENO_DIR: onlineCache }, extra);
  return new Promise((resolve) => {
    const child = spawn(deno, args, { cwd, env: childEnv, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (chunk) => out += chunk);
    child.stderr.on("data", (chunk) => err += chunk);
    const timer = setTimeout(() => child.kill("SIGKILL"), 180_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

/** Asserts a run ended well and returns its stdout's last line parsed as JSON. */
function answer(run: Run): unknown {
  assert.equal(run.code, 0, show(run));
  const last = run.out.trim().split("\n").at(-1) ?? "";
  try {
    return JSON.parse(last);
  } catch {
    return assert.fail(`no JSON on the last line: ${show(run)}`);
  }
}

/**
 * A user's program on `url`: a table of its own, a transaction with
 * executeMany, a stream and a scalar; it prints them, or the error's class,
 * code and message as `{ error }` when the first query fails.
 */
function program(from: string, url: string, options = "{}", imports = ""): string {
  return `import { Database, RoostError, sql } from "${from}";
${imports}
const db = new Database(${JSON.stringify(url)}, ${options});
const table = sql.ident("roost_jsr_" + Date.now().toString(36) + Math.random().toString(36).slice(2, 8));
try {
  await db.execute(sql\`create table \${table} (id integer primary key, name varchar(40) not null)\`);
  try {
    await db.transaction(async (tx) => {
      await tx.executeMany(sql\`insert into \${table} (id, name) values (\${0}, \${""})\`, [[1, "barn owl"], [2, "kestrel"]]);
    });
    const names: string[] = [];
    for await (const row of db.iterate(sql\`select name from \${table} order by id\`)) names.push(String(row.name));
    const count = await db.fetchVal(sql\`select count(*) from \${table}\`);
    console.log(JSON.stringify({ names, count: Number(count) }));
  } finally {
    await db.execute(sql\`drop table \${table}\`);
  }
} catch (error) {
  const roost = error instanceof RoostError;
  console.log(JSON.stringify({ error: { roost, name: (error as Error).name, code: (error as { code?: string }).code, message: String((error as Error).message) } }));
} finally {
  await db.close();
}
`;
}

/** What every program prints when it worked. */
const expected = { names: ["barn owl", "kestrel"], count: 2 };

/** A SQLite file inside `app`, as a URL. */
const sqliteUrl = (app: string, name: string, query = "") => `sqlite:${join(app, `${name}.db`)}${query}`;

before(async () => {
  if (mirror === undefined) return;
  work = await mkdtemp(join(tmpdir(), "roost-jsr-"));
  const published = join(work, "registry");
  const publish = await new Promise<Run>((resolve) => {
    const child = spawn(join(mirror, "publish-local"), [root, published], {
      env: { ...env, DENO: deno },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (chunk) => out += chunk);
    child.stderr.on("data", (chunk) => err += chunk);
    child.on("close", (code) => resolve({ code, out, err }));
  });
  assert.equal(publish.code, 0, show(publish));
  // Published a week ago, as users meet a release: Deno installs no version younger than its minimum dependency age
  // (24 hours by default), and publish-local dates the version at the checkout's last commit.
  const meta = join(published, "@roost", "db", "meta.json");
  const manifest = JSON.parse(await readFile(meta, "utf8"));
  manifest.versions[version].createdAt = new Date(Date.now() - 7 * 86_400_000).toISOString();
  await writeFile(meta, JSON.stringify(manifest, null, 2));
  registry = await startJsrRegistry(root, { ...env, ROOST_JSR_MIRROR: mirror }, published);
  assert.ok(registry, "the registry started");
  onlineCache = join(work, "deno-dir");
  plainApp = join(work, "plain-app");
  addedApp = join(work, "added-app");
  await mkdir(plainApp, { recursive: true });
  await mkdir(addedApp, { recursive: true });
  await writeFile(join(addedApp, "deno.json"), "{}\n");
  const add = await denoRun(["add", "jsr:@roost/db", "npm:kysely@^0.29"], addedApp);
  assert.equal(add.code, 0, show(add));
});

after(async () => {
  registry?.stop();
  if (work !== "") await rm(work, { recursive: true, force: true });
});

const applies = mirror !== undefined;

describe("a Deno app importing jsr:@roost/db", () => {
  test(
    "[jsr · add] deno add jsr:@roost/db writes the import map entry for this version",
    skipUnless(applies, noMirror),
    async () => {
      const config = JSON.parse(await readFile(join(addedApp, "deno.json"), "utf8"));
      assert.equal(config.imports["@roost/db"], `jsr:@roost/db@^${version}`);
    },
  );

  const cases = [
    {
      what: "sqlite",
      url: () => sqliteUrl(plainApp, "quick"),
      allow: () => [`--allow-read=${plainApp}`, `--allow-write=${plainApp}`],
    },
    {
      what: "sqlite-worker",
      url: () => sqliteUrl(plainApp, "worker", "?worker=true"),
      allow: () => [`--allow-read=${plainApp}`, `--allow-write=${plainApp}`],
    },
    {
      what: "postgres",
      url: () => postgresUrl,
      allow: () => [`--allow-net=${address(postgresUrl)}`, "--allow-env=PGAPPNAME,PGTARGETSESSIONATTRS"],
    },
    { what: "mysql", url: () => mysqlUrl, allow: () => [`--allow-net=${address(mysqlUrl)}`] },
  ];
  // The opt-in drivers, by name, with their narrowest grants (docs/deno.md).
  const optIn = [
    {
      what: "deno-postgres",
      url: () => postgresUrl,
      allow: () => [`--allow-net=${address(postgresUrl)}`],
    },
    {
      what: "deno-sqlite",
      url: () => sqliteUrl(plainApp, "ffi"),
      allow: () => [
        "--allow-ffi",
        "--allow-env=DENO_SQLITE_PATH,DENO_SQLITE_LOCAL",
        `--allow-read=${plainApp}`,
        `--allow-write=${plainApp}`,
      ],
    },
    // PGlite reads its own files from the Deno cache.
    { what: "pglite", url: () => "pglite::memory:", allow: () => ["--allow-read"] },
  ];
  for (const { what, url, allow } of optIn) {
    test(
      `[jsr · ${what}] jsr:@roost/db, driver "${what}" by name, with only the documented permissions`,
      skipUnless(applies, noMirror),
      async () => {
        const file = join(plainApp, `opt-in-${what}.ts`);
        await writeFile(file, program("jsr:@roost/db", url(), `{ driver: "${what}" }`));
        assert.deepEqual(answer(await denoRun(["run", ...allow(), file], plainApp)), expected);
      },
    );
  }
  for (const { what, url, allow } of cases) {
    test(
      `[jsr · ${what}] jsr:@roost/db, the default driver by name, with only the documented permissions`,
      skipUnless(applies, noMirror),
      async () => {
        const file = join(plainApp, `quick-${what}.ts`);
        await writeFile(file, program("jsr:@roost/db", url()));
        assert.deepEqual(answer(await denoRun(["run", ...allow(), file], plainApp)), expected);
      },
    );
    test(
      `[jsr · ${what}] @roost/db through deno add's import map, with -A`,
      skipUnless(applies, noMirror),
      async () => {
        const file = join(addedApp, `added-${what}.ts`);
        await writeFile(file, program("@roost/db", url().replace(plainApp, addedApp)));
        assert.deepEqual(answer(await denoRun(["run", "-A", file], addedApp)), expected);
      },
    );
  }

  /** Runs the program on `url` with `allow` and returns the error it printed. */
  async function refused(name: string, url: string, allow: string[], options = "{}"): Promise<Record<string, unknown>> {
    const file = join(plainApp, `refused-${name}.ts`);
    await writeFile(file, program("jsr:@roost/db", url, options));
    const printed = answer(await denoRun(["run", ...allow, file], plainApp)) as { error?: Record<string, unknown> };
    assert.ok(printed.error, `expected an error: ${JSON.stringify(printed)}`);
    return printed.error;
  }
  const denials = [
    ["postgres", () => postgresUrl, () => [`--allow-net=${address(postgresUrl)}`], "--allow-env=PGAPPNAME"],
    [
      "postgres",
      () => postgresUrl,
      () => ["--allow-env=PGAPPNAME,PGTARGETSESSIONATTRS"],
      `--allow-net=${address(postgresUrl)}`,
    ],
    ["mysql", () => mysqlUrl, () => [], `--allow-net=${address(mysqlUrl)}`],
    ["sqlite", () => sqliteUrl(plainApp, "denied"), () => [`--allow-read=${plainApp}`], "--allow-write="],
    // @db/sqlite loads its native library through FFI when its module loads.
    ["deno-sqlite", () => "sqlite::memory:", () => ["--allow-read", "--allow-env"], "--allow-ffi"],
  ] as const;
  for (const [index, [what, url, allow, flag]] of denials.entries()) {
    test(
      `[jsr · ${what}] without ${flag.replace(/=.*/, "")}: a ConfigError ROOST_PERMISSION_DENIED naming ${flag}`,
      skipUnless(applies, noMirror),
      async () => {
        const options = what === "deno-sqlite" ? `{ driver: "deno-sqlite" }` : "{}";
        const error = await refused(`${what}-${index}`, url(), [...allow()], options);
        assert.equal(error.roost, true, JSON.stringify(error));
        assert.equal(error.name, "ConfigError", JSON.stringify(error));
        assert.equal(error.code, "ROOST_PERMISSION_DENIED", JSON.stringify(error));
        assert.ok(String(error.message).includes(flag), JSON.stringify(error));
      },
    );
  }
});

describe("every public entry of jsr:@roost/db", () => {
  test(
    "[jsr · entries] each entry imports; each driver object that runs on Deno answers a query",
    skipUnless(applies, noMirror),
    async () => {
      const file = join(plainApp, "entries.ts");
      await writeFile(
        file,
        `import { Database, sql } from "jsr:@roost/db";
import { Database as EdgeDatabase } from "jsr:@roost/db/edge";
import { defineTable } from "jsr:@roost/db/model";
import { Migrator } from "jsr:@roost/db/migrate";
import { RoostDialect } from "jsr:@roost/db/kysely";
import { main } from "jsr:@roost/db/cli";
import { nodeSqlite } from "jsr:@roost/db/drivers/node-sqlite";
import { bunSqlite } from "jsr:@roost/db/drivers/bun-sqlite";
import { postgresJs } from "jsr:@roost/db/drivers/postgres-js";
import { mysql2 } from "jsr:@roost/db/drivers/mysql2";
import { bunSqlMysql, bunSqlPostgres } from "jsr:@roost/db/drivers/bun-sql";
import { denoPostgres } from "jsr:@roost/db/drivers/deno-postgres";
import { denoSqlite } from "jsr:@roost/db/drivers/deno-sqlite";
import { pglite } from "jsr:@roost/db/drivers/pglite";
const seen: Record<string, unknown> = {};
const runs = [
  ["node-sqlite", "sqlite::memory:", nodeSqlite],
  ["deno-sqlite", "sqlite::memory:", denoSqlite],
  ["postgres-js", ${JSON.stringify(postgresUrl)}, postgresJs],
  ["deno-postgres", ${JSON.stringify(postgresUrl)}, denoPostgres],
  ["mysql2", ${JSON.stringify(mysqlUrl)}, mysql2],
  ["pglite", "pglite::memory:", pglite],
] as const;
for (const [name, url, driver] of runs) {
  // The Worker entry has no registry: a driver object is how it runs.
  await using db = new EdgeDatabase(url, { driver });
  seen[name] = await db.fetchVal(sql\`select 1 + 1\`);
}
await using db = new Database("sqlite::memory:");
seen.model = typeof defineTable;
seen.migrate = typeof Migrator;
seen.kysely = typeof RoostDialect;
seen.cli = typeof main;
seen.bun = [bunSqlite.name, bunSqlMysql.name, bunSqlPostgres.name];
seen.core = await db.fetchVal(sql\`select 2\`);
console.log(JSON.stringify(seen));
`,
      );
      const run = await denoRun(["run", "-A", file], plainApp);
      assert.deepEqual(answer(run), {
        "node-sqlite": 2,
        "deno-sqlite": 2,
        "postgres-js": 2,
        "deno-postgres": 2,
        mysql2: 2,
        pglite: 2,
        model: "function",
        migrate: "function",
        kysely: "function",
        cli: "function",
        bun: ["bun-sqlite", "bun-sql", "bun-sql"],
        core: 2,
      });
    },
  );

  for (
    const [what, url] of [["sqlite", () => sqliteUrl(addedApp, "model")], ["postgres", () => postgresUrl]] as const
  ) {
    test(
      `[jsr · ${what}] @roost/db/model tables, @roost/db/migrate with SQL and TypeScript migrations, @roost/db/kysely`,
      skipUnless(applies, noMirror),
      async () => {
        const dir = join(addedApp, `migrations-${what}`);
        await mkdir(dir, { recursive: true });
        const tag = `roost_jsr_${what}_${Date.now().toString(36)}`;
        await writeFile(
          join(dir, "0001_create.sql"),
          `-- migrate:up\ncreate table ${tag} (id integer primary key, body text);\n-- migrate:down\ndrop table ${tag};\n`,
        );
        await writeFile(
          join(dir, "0002_seed.ts"),
          `import { type Queryable, sql } from "@roost/db";
export async function up(db: Queryable): Promise<void> {
  await db.execute(sql\`insert into ${tag} (id, body) values (\${1}, \${"hello"})\`);
}
export async function down(db: Queryable): Promise<void> {
  await db.execute(sql\`delete from ${tag}\`);
}
`,
        );
        const file = join(addedApp, `model-${what}.ts`);
        await writeFile(
          file,
          `import { Database, sql } from "@roost/db";
import { column, defineTable } from "@roost/db/model";
import { Migrator } from "@roost/db/migrate";
import { RoostDialect } from "@roost/db/kysely";
import { Kysely } from "kysely";
await using db = new Database(${JSON.stringify(url())});
const migrator = new Migrator(db, { directory: new URL("./migrations-${what}/", import.meta.url), table: "${tag}_history" });
const applied = await migrator.upgrade();
const birds = defineTable("${tag}_birds", { id: column.integer().primaryKey(), name: column.text().notNull() });
await db.schema.createTables([birds]);
await birds.insert(db, { id: 1, name: "wren" });
const found = await birds.getByPk(db, 1);
const kysely = new Kysely<{ ${tag}: { id: number; body: string } }>({ dialect: new RoostDialect({ database: db }) });
const viaKysely = await kysely.selectFrom("${tag}").select("body").executeTakeFirst();
await db.schema.dropTables([birds]);
await migrator.downgrade("base");
await db.execute(sql\`drop table ${tag}_history\`);
console.log(JSON.stringify({ applied, found, viaKysely }));
`,
        );
        assert.deepEqual(answer(await denoRun(["run", "-A", file], addedApp)), {
          applied: ["0001", "0002"],
          found: { id: 1, name: "wren" },
          viaKysely: { body: "hello" },
        });
      },
    );
  }

  test(
    "[jsr · cli] deno run -A jsr:@roost/db/cli upgrade, then status, on SQL and TypeScript migrations",
    skipUnless(applies, noMirror),
    async () => {
      const dir = join(addedApp, "migrations");
      await mkdir(dir, { recursive: true });
      await writeFile(
        join(dir, "0001_create_notes.sql"),
        "-- migrate:up\ncreate table notes (id integer primary key, body text);\n-- migrate:down\ndrop table notes;\n",
      );
      await writeFile(
        join(dir, "0002_seed.ts"),
        `import { type Queryable, sql } from "@roost/db";
export async function up(db: Queryable): Promise<void> {
  await db.execute(sql\`insert into notes (id, body) values (\${1}, \${"hello"})\`);
}
`,
      );
      const extra = { DATABASE_URL: sqliteUrl(addedApp, "cli") };
      const upgrade = await denoRun(["run", "-A", `jsr:@roost/db@${version}/cli`, "upgrade"], addedApp, extra);
      assert.equal(upgrade.code, 0, show(upgrade));
      assert.equal(upgrade.out.trim().split("\n").at(-1), "applied 2 migrations (current: 0002)", show(upgrade));
      const status = await denoRun(["run", "-A", "jsr:@roost/db/cli", "status"], addedApp, extra);
      assert.equal(status.code, 0, show(status));
      assert.ok(status.out.includes("status: up-to-date"), show(status));
    },
  );
});

describe("deno check with strict consumer settings", () => {
  test(
    "[jsr · check] every entry's types check under strict, noUncheckedIndexedAccess, exactOptionalPropertyTypes",
    skipUnless(applies, noMirror),
    async () => {
      const dir = join(work, "strict-app");
      await mkdir(dir, { recursive: true });
      await writeFile(
        join(dir, "deno.json"),
        JSON.stringify({
          imports: { "@roost/db": `jsr:@roost/db@^${version}`, kysely: "npm:kysely@^0.29" },
          compilerOptions: {
            strict: true,
            noUncheckedIndexedAccess: true,
            exactOptionalPropertyTypes: true,
            noImplicitOverride: true,
            noImplicitReturns: true,
            noFallthroughCasesInSwitch: true,
          },
        }),
      );
      await writeFile(
        join(dir, "consumer.ts"),
        `import { ConfigError, Database, type Queryable, sql } from "@roost/db";
import { Database as EdgeDatabase } from "@roost/db/edge";
import { main } from "@roost/db/cli";
import { RoostDialect } from "@roost/db/kysely";
import { Migrator } from "@roost/db/migrate";
import { column, defineTable, type TableRow } from "@roost/db/model";
import { bunSqlite } from "@roost/db/drivers/bun-sqlite";
import { bunSqlMysql, bunSqlPostgres } from "@roost/db/drivers/bun-sql";
import { denoPostgres } from "@roost/db/drivers/deno-postgres";
import { denoSqlite } from "@roost/db/drivers/deno-sqlite";
import { mysql2 } from "@roost/db/drivers/mysql2";
import { nodeSqlite } from "@roost/db/drivers/node-sqlite";
import { pglite } from "@roost/db/drivers/pglite";
import { postgresJs } from "@roost/db/drivers/postgres-js";

const birds = defineTable("birds", { id: column.serial().primaryKey(), name: column.text().notNull() });
type Bird = TableRow<typeof birds>;

export async function use(db: Queryable): Promise<string | undefined> {
  const rows = await db.fetchAll<Bird>(sql\`select id, name from birds where id > \${0}\`);
  return rows[0]?.name;
}

export async function open(): Promise<void> {
  await using db = new Database("sqlite::memory:", { driver: nodeSqlite, pool: { max: 2 } });
  await use(db);
  const edge = new EdgeDatabase("postgres://app@localhost/app", { driver: postgresJs });
  await edge.close();
  const drivers = [bunSqlite, bunSqlMysql, bunSqlPostgres, denoPostgres, denoSqlite, mysql2, pglite, postgresJs];
  console.log(drivers.map((driver) => driver.name), new RoostDialect({ database: db }), new Migrator(db, { directory: "m" }));
  console.log(await main(["--help"]), new ConfigError("x").code);
}
`,
      );
      const run = await denoRun(["check", "consumer.ts"], dir);
      assert.equal(run.code, 0, show(run));
    },
  );
});

describe("deno install, then offline", () => {
  test(
    "[jsr · offline] deno install --entrypoint, then deno run --frozen --cached-only with no registry: sqlite, sqlite-worker, postgres, mysql, pglite by name",
    skipUnless(applies, noMirror),
    async () => {
      const dir = join(work, "offline-app");
      const cache = join(work, "offline-deno-dir");
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, "deno.json"), "{}\n");
      const add = await denoRun(["add", "jsr:@roost/db"], dir, { DENO_DIR: cache });
      assert.equal(add.code, 0, show(add));
      const urls = [
        sqliteUrl(dir, "offline"),
        sqliteUrl(dir, "offline-worker", "?worker=true"),
        postgresUrl,
        mysqlUrl,
        "pglite::memory:",
      ];
      await writeFile(
        join(dir, "app.ts"),
        `import { Database, sql } from "@roost/db";
const seen: unknown[] = [];
for (const url of ${JSON.stringify(urls)}) {
  await using db = new Database(url);
  seen.push(await db.fetchVal(sql\`select 1 + 1\`));
}
console.log(JSON.stringify(seen));
`,
      );
      const install = await denoRun(["install", "--entrypoint", "app.ts"], dir, { DENO_DIR: cache });
      assert.equal(install.code, 0, show(install));
      // Nothing to reach: the registry stopped, and --cached-only keeps Deno off npm (JSR_URL stays: caches key on it).
      registry?.stop();
      const run = await denoRun(["run", "--frozen", "--cached-only", "-A", "app.ts"], dir, { DENO_DIR: cache });
      assert.deepEqual(answer(run), [2, 2, 2, 2, 2]);
    },
  );
});
