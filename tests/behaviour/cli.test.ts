/**
 * The `roost` command line: `main()` in process, then bin/roost.js spawned
 * under the runtime running the tests (as users run it). The package as npm
 * and Bun install it (`npx @roost/db`, `bunx @roost/db`, `deno run -A
 * npm:@roost/db`) is tested in tests/install/packaged.ts.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { after, before, describe, test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { main } from "../../src/cli.ts";
import { packageVersion } from "../../src/package_version.ts";
import { runtime, skipUnless, tempDatabasePath } from "../support/support.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const bin = join(root, "bin", "roost.js");
const version = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string }).version;

/** A Node.js older than 22.18 on this machine (the system's, say), to see bin/roost.js refuse it. */
const oldNode = ["/usr/bin/node", "/usr/local/bin/node", "/bin/node"].find((path) => {
  if (!existsSync(path)) return false;
  try {
    const [major, minor] = execFileSync(path, ["--version"], { encoding: "utf8" }).trim().slice(1).split(".")
      .map(Number);
    return major < 22 || (major === 22 && minor < 18);
  } catch {
    return false;
  }
});

interface Run {
  code: number | null;
  out: string[];
  err: string[];
}

/** Runs `main` in process with captured output. */
async function cli(args: string[], options: { cwd: string; env?: Record<string, string> }): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, {
    out: (line) => out.push(...line.split("\n")),
    err: (line) => err.push(...line.split("\n")),
    env: options.env ?? {},
    cwd: options.cwd,
  });
  return { code, out, err };
}

/** Runs a command as a child process and collects its output lines. */
function spawned(command: string, args: string[], cwd: string, env: Record<string, string | undefined>): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd,
      env: { ...process.env, NO_COLOR: "1", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => stdout += chunk);
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => stderr += chunk);
    const killer = setTimeout(() => child.kill("SIGKILL"), 50_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(killer);
      const lines = (text: string) => text.split("\n").filter((line) => line !== "");
      resolve({ code, out: lines(stdout), err: lines(stderr) });
    });
  });
}

/** Runs bin/roost.js under the current runtime, as `roost <args>`. */
function roost(args: string[], cwd: string, env: Record<string, string | undefined> = {}): Promise<Run> {
  const runArgs = runtime === "deno" ? ["run", "-A", bin, ...args] : [bin, ...args];
  return spawned(process.execPath, runArgs, cwd, env);
}

const show = (run: Run) => JSON.stringify(run);
const ms = /\(\d+ ms\)$/;

async function fill(file: string, up: string, down?: string): Promise<void> {
  await writeFile(file, `-- migrate:up\n${up}\n${down === undefined ? "" : `-- migrate:down\n${down}\n`}`);
}

describe("roost command line, in process", () => {
  let cwd: string;
  before(async () => {
    cwd = await mkdtemp(join(tmpdir(), "roost-cli-"));
  });
  after(async () => {
    await rm(cwd, { recursive: true, force: true });
  });

  test("help, and usage errors exit with 2", async () => {
    const help = await cli(["help"], { cwd });
    assert.equal(help.code, 0);
    assert.match(help.out[0], /^Usage: roost <command>/);
    assert.ok(help.out.some((line) => /^\s+--url URL/.test(line)));
    assert.equal((await cli(["--help"], { cwd })).code, 0);
    const bare = await cli([], { cwd });
    assert.equal(bare.code, 2);
    assert.match(bare.err[0], /^Usage:/);
    for (
      const [args, pattern] of [
        [["frobnicate"], /unknown command "frobnicate"/],
        [["status", "--colour=blue"], /unknown option --colour/],
        [["status", "--url"], /--url needs a value/],
        [["status", "extra"], /too many arguments for status/],
        [["upgrade", "1", "2"], /too many arguments for upgrade/],
        [["new"], /new needs a name/],
        [["new", "Add-Users"], /a migration name is lowercase letters, digits and _/],
        [["status"], /no database URL: set the DATABASE_URL environment variable or pass --url/],
      ] as const
    ) {
      const run = await cli([...args], { cwd });
      assert.equal(run.code, 2, show(run));
      assert.deepEqual(run.out, []);
      assert.match(run.err.join("\n"), pattern);
    }
  });

  test("help lists the exit codes, the version option and how to run without a local install", async () => {
    const help = (await cli(["help"], { cwd })).out.join("\n");
    assert.match(help, /^\s+version\s+print roost's version \(also --version, -v\)$/m);
    assert.match(
      help,
      /^Exit codes:\n\s+0\s+done; for status, no problem found \(pending migrations are not a problem\)$/m,
    );
    assert.match(help, /^\s+1\s+the command failed, or status found a problem/m);
    assert.match(help, /^\s+2\s+usage error: a bad command line, no database URL, no migrations directory$/m);
    assert.match(help, /^\s+npx @roost\/db <command>\s+Node\.js >= 22\.18$/m);
    assert.match(help, /^\s+bunx @roost\/db <command>\s+Bun \(add --bun/m);
    assert.match(help, /^\s+deno run -A npm:@roost\/db <command>\s+Deno$/m);
  });

  test("--version, -v and version print the version in package.json", async () => {
    for (const args of [["--version"], ["-v"], ["version"], ["status", "--version"]]) {
      const run = await cli(args, { cwd });
      assert.equal(run.code, 0, show(run));
      assert.deepEqual(run.out, [version], show(run));
      assert.deepEqual(run.err, []);
    }
    assert.equal((await cli(["version", "extra"], { cwd })).code, 2);
  });

  test("the version is found from the sources, from a build in dist/ and from JSR", async () => {
    assert.equal(await packageVersion(new URL("../../src/cli.ts", import.meta.url)), version);
    // A build that compiles src/ to dist/src/ 1:1: dist/src/cli.js, not there yet, walks up to the same package.json.
    assert.equal(await packageVersion(new URL("../../dist/src/cli.js", import.meta.url)), version);
    // Installed: other package.json files on the way (a build's dist/package.json, the project's) are passed over.
    const project = join(cwd, "installed");
    const pkg = join(project, "node_modules", "@roost", "db");
    await mkdir(join(pkg, "dist", "src"), { recursive: true });
    await writeFile(join(project, "package.json"), JSON.stringify({ name: "app", version: "1.0.0" }));
    await writeFile(join(pkg, "package.json"), JSON.stringify({ name: "@roost/db", version: "9.8.7" }));
    await writeFile(join(pkg, "dist", "package.json"), JSON.stringify({ type: "module" }));
    assert.equal(await packageVersion(pathToFileURL(join(pkg, "dist", "src", "cli.js"))), "9.8.7");
    assert.equal(await packageVersion(pathToFileURL(join(project, "src", "main.js"))), undefined);
    assert.equal(await packageVersion("https://jsr.io/@roost/db/0.3.1/src/cli.ts"), "0.3.1");
  });

  test("new numbers migrations in sequence, or by UTC time after timestamped ones", async () => {
    const first = await cli(["new", "create_users"], { cwd });
    assert.equal(first.code, 0, show(first));
    assert.deepEqual(first.out, [join("migrations", "0001_create_users.sql")]);
    const text = await readFile(join(cwd, "migrations", "0001_create_users.sql"), "utf8");
    assert.match(text, /^-- migrate:up$/m);
    assert.match(text, /^-- migrate:down$/m);
    assert.deepEqual((await cli(["new", "add_email"], { cwd })).out, [join("migrations", "0002_add_email.sql")]);

    const other = join(cwd, "other");
    await mkdir(other);
    await writeFile(join(other, "0099_a.sql"), "");
    await writeFile(join(other, "README.md"), "");
    assert.deepEqual((await cli(["new", "b", "--dir", other], { cwd })).out, [join(other, "0100_b.sql")]);

    const stamped = join(cwd, "stamped");
    await mkdir(stamped);
    await writeFile(join(stamped, "20200101000000_a.sql"), "");
    const before = new Date().toISOString().replace(/\D/g, "").slice(0, 14);
    const run = await cli(["new", "b", "--dir=stamped"], { cwd });
    const revision = run.out[0].match(/(\d+)_b\.sql$/)?.[1] ?? "";
    assert.equal(revision.length, 14, show(run));
    assert.ok(revision >= before && revision <= new Date().toISOString().replace(/\D/g, "").slice(0, 14), revision);
    assert.deepEqual((await readdir(stamped)).sort(), ["20200101000000_a.sql", `${revision}_b.sql`]);
  });

  test("upgrade, status, history and downgrade on a SQLite file, with progress lines", async () => {
    const dir = join(cwd, "flow");
    const env = { DATABASE_URL: `sqlite:${tempDatabasePath()}` };
    const at = (...args: string[]) => cli([...args, "--dir", dir], { cwd, env });
    await mkdir(dir);
    await fill(join(dir, "0001_create_users.sql"), "create table users (id integer primary key);", "drop table users;");
    await fill(
      join(dir, "0002_add_email.sql"),
      "alter table users add email text;",
      "alter table users drop column email;",
    );

    let run = await at("status");
    assert.equal(run.code, 0, show(run));
    assert.deepEqual(run.out, [
      `database: ${env.DATABASE_URL}`,
      "current: none",
      "head: 0002_add_email",
      "status: no-info",
      "pending: 0001_create_users, 0002_add_email",
    ]);

    run = await at("upgrade");
    assert.equal(run.code, 0, show(run));
    assert.equal(run.out.length, 5, show(run));
    assert.equal(run.out[0], "upgrading 0001_create_users");
    assert.match(run.out[1], /^upgraded 0001_create_users \(\d+ ms\)$/);
    assert.equal(run.out[2], "upgrading 0002_add_email");
    assert.match(run.out[3], ms);
    assert.equal(run.out[4], "applied 2 migrations (current: 0002)");
    assert.equal((await at("upgrade")).out.at(-1), "already up to date (current: 0002)");

    run = await at("status");
    assert.deepEqual(run.out.slice(1), [
      "current: 0002_add_email",
      "head: 0002_add_email",
      "status: up-to-date",
      "pending: none",
    ]);
    run = await at("history");
    assert.equal(run.code, 0, show(run));
    assert.deepEqual(run.out.length, 3, show(run));
    assert.match(run.out[0], /^migration {10}applied at \(UTC\) {10}checksum$/);
    assert.match(run.out[1], /^0001_create_users {2}\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z {2}[0-9a-f]{12}$/);
    assert.match(run.out[2], /^0002_add_email {5}\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z {2}[0-9a-f]{12}$/);

    run = await at("downgrade");
    assert.equal(run.code, 0, show(run));
    assert.deepEqual([run.out[0], run.out[2]], ["downgrading 0002_add_email", "reverted 1 migration (current: 0001)"]);
    assert.match(run.out[1], /^downgraded 0002_add_email \(\d+ ms\)$/);

    // An edited applied migration shows in status and blocks upgrade.
    await fill(
      join(dir, "0001_create_users.sql"),
      "create table users (id integer primary key, name text);",
      "drop table users;",
    );
    run = await at("status");
    assert.equal(run.out.at(-1), "problem: 0001_create_users was edited after it was applied");
    assert.equal(run.code, 1, show(run));
    run = await at("upgrade");
    assert.equal(run.code, 1);
    assert.deepEqual(run.err.length, 1, show(run));
    assert.match(
      run.err[0],
      /^error: applied migrations were edited since they ran: 0001; .* \(ROOST_MIGRATION_EDITED\)$/,
    );

    run = await at("downgrade", "base");
    assert.equal(run.code, 0, show(run));
    assert.equal(run.out.at(-1), "reverted 1 migration (current: none)");
    assert.equal((await at("downgrade")).out[0], "nothing to downgrade: no migration is applied");
    assert.equal((await at("history")).out[0], "no migration is applied");

    // --table picks another history table; a failing migration is one line on stderr and exit code 1.
    await fill(join(dir, "0003_broken.sql"), "insert into nowhere values (1);");
    run = await cli(["upgrade", "--dir", dir, "--table", "other_history"], { cwd, env });
    assert.equal(run.code, 1, show(run));
    assert.equal(run.err.length, 1, show(run));
    assert.match(
      run.err[0],
      /^error: upgrade of migration 0003_broken failed at statement 1 of 1: .*\(ROOST_MIGRATION_FAILED\)$/,
    );
    assert.ok(!run.err[0].includes("    at "), "no stack trace");
    run = await cli(["history", "--table", "other_history", "--dir", dir], { cwd, env });
    assert.deepEqual(run.out.map((line) => line.split(" ")[0]), ["migration", "0001_create_users", "0002_add_email"]);
    assert.equal((await at("upgrade", "9")).err[0].endsWith("(ROOST_MIGRATION_UNKNOWN_TARGET)"), true);
  });
});

describe("roost command line: problems, empty migrations, setup", () => {
  let cwd: string;
  before(async () => {
    cwd = await mkdtemp(join(tmpdir(), "roost-cli-"));
  });
  after(async () => {
    await rm(cwd, { recursive: true, force: true });
  });

  /** A fresh SQLite database and migrations directory, and a runner of `roost <args> --dir <it>`. */
  async function project(name: string) {
    const dir = join(cwd, name);
    await mkdir(dir);
    const env = { DATABASE_URL: `sqlite:${tempDatabasePath()}` };
    return { dir, env, at: (...args: string[]) => cli([...args, "--dir", dir], { cwd, env }) };
  }

  test("status exits 1 when it reports a problem, 0 when migrations are only pending", async () => {
    const { dir, at } = await project("problems");
    await fill(join(dir, "0001_a.sql"), "create table a (id integer);", "drop table a;");
    await fill(join(dir, "0003_c.sql"), "create table c (id integer);", "drop table c;");
    let run = await at("status");
    assert.equal(run.code, 0, show(run));
    assert.ok(run.out.includes("pending: 0001_a, 0003_c"), show(run));
    assert.equal((await at("upgrade")).code, 0);
    run = await at("status");
    assert.equal(run.code, 0, show(run));
    assert.ok(!run.out.some((line) => line.startsWith("problem:")), show(run));

    // A pending migration older than the newest applied one: upgrade refuses it, so status says so.
    await fill(join(dir, "0002_b.sql"), "create table b (id integer);", "drop table b;");
    run = await at("status");
    assert.equal(run.code, 1, show(run));
    assert.equal(
      run.out.at(-1),
      "problem: 0002_b is pending but older than the newest applied migration (0003): give it a revision after 0003",
    );
    assert.match((await at("upgrade")).err[0], /\(ROOST_MIGRATION_OUT_OF_ORDER\)$/);
    await rm(join(dir, "0002_b.sql"));

    // An applied migration whose file is gone.
    await rm(join(dir, "0003_c.sql"));
    run = await at("status");
    assert.equal(run.code, 1, show(run));
    assert.equal(run.out.at(-1), "problem: 0003_c is applied but not in the migrations directory");
    await fill(join(dir, "0003_c.sql"), "create table c (id integer);", "drop table c;");
    assert.equal((await at("status")).code, 0);

    // An applied migration edited since.
    await fill(join(dir, "0001_a.sql"), "create table a (id integer, n integer);", "drop table a;");
    run = await at("status");
    assert.equal(run.code, 1, show(run));
    assert.equal(run.out.at(-1), "problem: 0001_a was edited after it was applied");
    assert.deepEqual(run.err, []);
  });

  test("stamp records migrations without running them, re-records edited ones and forgets the rest", async () => {
    const { dir, at } = await project("stamp");
    await fill(join(dir, "0001_a.sql"), "create table a (id integer);", "drop table a;");
    await fill(join(dir, "0002_b.sql"), "create table b (id integer);", "drop table b;");
    // The schema was made some other way: stamping records it, running nothing.
    let run = await at("stamp");
    assert.equal(run.code, 0, show(run));
    assert.deepEqual(run.out, ["recorded 0001, 0002 (current: 0002); no migration ran"]);
    assert.ok((await at("status")).out.includes("status: up-to-date"));
    run = await at("upgrade");
    assert.equal(run.out.at(-1), "already up to date (current: 0002)", "upgrade runs nothing after stamp");
    assert.deepEqual((await at("stamp")).out, ["the history already matched (current: 0002); no migration ran"]);

    // An edited applied migration: status reports it until stamp accepts the edit.
    await fill(join(dir, "0001_a.sql"), "create table a (id integer, n integer);", "drop table a;");
    assert.equal((await at("status")).code, 1);
    run = await at("stamp");
    assert.deepEqual(run.out, [
      "re-recorded 0001 with their current checksums (current: 0002); no migration ran",
    ]);
    assert.equal((await at("status")).code, 0);

    // Back to a revision, then to base; an unknown target changes nothing.
    assert.deepEqual((await at("stamp", "0001")).out, ["forgot 0002 (current: 0001); no migration ran"]);
    run = await at("stamp", "7");
    assert.equal(run.code, 1, show(run));
    assert.match(run.err[0], /^error: cannot stamp to "7": .*\(ROOST_MIGRATION_UNKNOWN_TARGET\)$/);
    assert.deepEqual((await at("stamp", "base")).out, ["forgot 0001 (current: none); no migration ran"]);
    assert.ok((await at("status")).out.includes("status: no-info"));
    assert.equal((await at("stamp", "1", "2")).code, 2, "one target at most");
  });

  test("upgrade refuses a migration `new` created and nobody wrote, applying nothing of the batch", async () => {
    const { dir, env, at } = await project("empty");
    await fill(join(dir, "0001_create_users.sql"), "create table users (id integer primary key);", "drop table users;");
    const created = await cli(["new", "add_email", "--dir", dir], { cwd, env });
    assert.equal(created.code, 0, show(created));
    const file = join(dir, "0002_add_email.sql");

    let run = await at("upgrade");
    assert.equal(run.code, 1, show(run));
    assert.deepEqual(run.out, [], "nothing ran");
    assert.equal(run.err.length, 1, show(run));
    assert.equal(
      run.err[0],
      `error: pending migrations have nothing to apply: 0002_add_email (${file} has no SQL after "-- migrate:up"). ` +
        "Write the migration, or delete it; nothing was applied (ROOST_MIGRATION_EMPTY)",
    );
    assert.equal((await at("history")).out[0], "no migration is applied");
    run = await at("status");
    assert.equal(run.code, 1, show(run));
    assert.equal(
      run.out.at(-1),
      `problem: 0002_add_email is empty: write its SQL after "-- migrate:up" in ${file}, or delete it`,
    );
    // Up to a target before it, the empty migration is not in the way.
    run = await at("upgrade", "0001");
    assert.equal(run.code, 0, show(run));
    assert.equal(run.out.at(-1), "applied 1 migration (current: 0001)");

    // Written, but only its up part: it applies, and downgrade says why it cannot revert it.
    const template = await readFile(file, "utf8");
    await writeFile(file, template.replace("-- migrate:up\n", "-- migrate:up\nalter table users add email text;\n"));
    run = await at("upgrade");
    assert.equal(run.code, 0, show(run));
    assert.equal(run.out.at(-1), "applied 1 migration (current: 0002)");
    run = await at("downgrade");
    assert.equal(run.code, 1, show(run));
    assert.deepEqual(run.out, []);
    assert.equal(
      run.err[0],
      `error: migrations without a down step cannot be reverted: 0002_add_email (${file} has no SQL after ` +
        `"-- migrate:down"). Write their down step, or downgrade to a revision after them; nothing was reverted ` +
        "(ROOST_MIGRATION_IRREVERSIBLE)",
    );
    assert.equal((await at("history")).out.length, 3, "both still applied");
  });

  test("without a migrations directory, commands say which one and how to create it", async () => {
    const env = { DATABASE_URL: `sqlite:${tempDatabasePath()}` };
    for (const command of ["status", "upgrade", "downgrade"]) {
      const run = await cli([command], { cwd, env });
      assert.equal(run.code, 2, show(run));
      assert.deepEqual(run.out, []);
      assert.deepEqual(run.err, [
        `error: no migrations directory migrations (${join(cwd, "migrations")}): "roost new <name>" creates it with ` +
        "a first migration, or pass --dir DIR for another directory",
      ]);
    }
    const run = await cli(["status", "--dir", "db/migrations"], { cwd, env });
    assert.match(run.err[0], /^error: no migrations directory db\/migrations \(/);
    assert.ok(!run.err[0].includes("ENOENT"), show(run));
    await writeFile(join(cwd, "not_a_dir"), "");
    const file = await cli(["upgrade", "--dir", "not_a_dir"], { cwd, env });
    assert.equal(file.code, 2, show(file));
    assert.match(file.err[0], /^error: the migrations directory not_a_dir \(.*\) is not a directory: pass --dir DIR$/);
    // history reads only the database.
    assert.deepEqual((await cli(["history"], { cwd, env })).out, ["no migration is applied"]);
  });

  test("history aligns its columns by the widest cell", async () => {
    const { dir, at } = await project("history");
    await fill(join(dir, "1_a.sql"), "create table a (id integer);");
    await fill(join(dir, "20_create_a_longer_table.sql"), "create table b (id integer);");
    await fill(join(dir, "300_b.sql"), "create table c (id integer);");
    assert.equal((await at("upgrade")).code, 0);
    const run = await at("history");
    assert.equal(run.code, 0, show(run));
    const [header, ...rows] = run.out;
    assert.equal(header, "migration                 applied at (UTC)          checksum");
    assert.deepEqual(rows.map((row) => row.slice(0, 26)), [
      "1_a                       ",
      "20_create_a_longer_table  ",
      "300_b                     ",
    ]);
    for (const row of rows) {
      assert.match(row.slice(26), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z {2}[0-9a-f]{12}$/, row);
    }
  });
});

describe(`roost command line, spawned on ${runtime}`, () => {
  let cwd: string;
  before(async () => {
    cwd = await mkdtemp(join(tmpdir(), "roost-bin-"));
  });
  after(async () => {
    await rm(cwd, { recursive: true, force: true });
  });

  test("new, upgrade, status and downgrade in a project directory, with exit codes", async () => {
    const env = { DATABASE_URL: `sqlite:${tempDatabasePath()}` };
    let run = await roost(["new", "create_notes"], cwd, env);
    assert.equal(run.code, 0, show(run));
    assert.deepEqual(run.out, [join("migrations", "0001_create_notes.sql")]);
    await fill(
      join(cwd, "migrations", "0001_create_notes.sql"),
      "create table notes (id integer primary key, body text not null);",
      "drop table notes;",
    );
    // A TypeScript migration with type annotations, loaded by the command (on Node through its module hook).
    await writeFile(
      join(cwd, "migrations", "0002_seed.ts"),
      `interface Handle { execute(sql: string): Promise<unknown> }
export async function up(db: Handle): Promise<void> {
  await db.execute("insert into notes (id, body) values (1, 'hello')");
}
export async function down(db: Handle): Promise<void> {
  await db.execute("delete from notes");
}
`,
    );

    run = await roost(["upgrade"], cwd, env);
    assert.equal(run.code, 0, show(run));
    assert.deepEqual(run.err, []);
    assert.deepEqual(run.out.map((line) => line.replace(ms, "(… ms)")), [
      "upgrading 0001_create_notes",
      "upgraded 0001_create_notes (… ms)",
      "upgrading 0002_seed",
      "upgraded 0002_seed (… ms)",
      "applied 2 migrations (current: 0002)",
    ]);
    run = await roost(["status"], cwd, env);
    assert.equal(run.code, 0, show(run));
    assert.ok(run.out.includes("status: up-to-date"), show(run));
    run = await roost(["downgrade", "base"], cwd, env);
    assert.equal(run.code, 0, show(run));
    assert.equal(run.out.at(-1), "reverted 2 migrations (current: none)");
    run = await roost(["status"], cwd, env);
    assert.ok(run.out.includes("status: no-info"), show(run));

    run = await roost(["upgrade", "nope"], cwd, env);
    assert.equal(run.code, 1, show(run));
    assert.deepEqual(run.out, []);
    assert.match(run.err.join("\n"), /^error: cannot upgrade to "nope".*\(ROOST_MIGRATION_UNKNOWN_TARGET\)$/);
    run = await roost(["status"], cwd, { DATABASE_URL: "" });
    assert.equal(run.code, 2, show(run));
    assert.match(run.err[0], /no database URL/);
    run = await roost(["--help"], cwd);
    assert.equal(run.code, 0, show(run));
    assert.match(run.out[0], /^Usage: roost/);
  });

  test("roost --version prints the package's version", async () => {
    const run = await roost(["--version"], cwd);
    assert.equal(run.code, 0, show(run));
    assert.deepEqual(run.out, [version]);
  });

  test(
    "on a Node.js older than 22.18 it says how to run it instead (bunx --bun when Bun started it)",
    skipUnless(oldNode !== undefined, "no Node.js older than 22.18 on this machine"),
    async () => {
      const command = oldNode!;
      const nodeVersion = execFileSync(command, ["--version"], { encoding: "utf8" }).trim();
      const plain = await spawned(command, [bin, "status"], cwd, { npm_config_user_agent: "" });
      assert.equal(plain.code, 1, show(plain));
      assert.deepEqual(plain.out, []);
      assert.deepEqual(plain.err, [
        `error: roost needs Node.js >= 22.18 (this is ${nodeVersion})`,
        "Upgrade Node.js (then npx @roost/db <command> runs it without installing it), or run it on Bun:",
        "  bunx --bun @roost/db <command>",
      ]);
      // `bunx roost` runs the bin with the system's Node.js unless told --bun.
      const bunx = await spawned(command, [bin, "status"], cwd, {
        npm_config_user_agent: "bun/1.4.5 npm/? node/v24.3.0 linux x64",
        npm_lifecycle_event: "bunx",
      });
      assert.equal(bunx.code, 1, show(bunx));
      assert.deepEqual(bunx.err, [
        `error: roost needs Node.js >= 22.18 (this is ${nodeVersion})`,
        "Bun started it with that Node.js: run it on Bun itself with --bun:",
        "  bunx --bun @roost/db <command>   (or bunx --bun roost <command> where it is installed)",
      ]);
    },
  );

  test("a connection error prints no password", async () => {
    await mkdir(join(cwd, "migrations"), { recursive: true });
    const password = "s3cret-pw";
    const url = `mysql://root:${password}@127.0.0.1:3306/test`;
    for (const [args, env] of [[["status"], { DATABASE_URL: url }], [["upgrade", "--url", url], {}]] as const) {
      const run = await roost([...args], cwd, env);
      assert.equal(run.code, 1, show(run));
      const output = [...run.out, ...run.err].join("\n");
      assert.ok(!output.includes(password), output);
      assert.match(run.err.join("\n"), /^error: .*mysql/);
      assert.ok(!output.includes("    at "), "no stack trace");
    }
  });
});
