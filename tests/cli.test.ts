/**
 * The `roost` command line: `main()` in process, then bin/roost.js spawned
 * under the runtime running the tests (as users run it). The package as npm
 * and Bun install it (`npx @roost/db`, `bunx @roost/db`, `deno run -A
 * npm:@roost/db`) is tested in tests/install/packaged.ts.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { main } from "../src/cli.ts";
import { runtime, tempDatabasePath } from "./support.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const bin = join(root, "bin", "roost.js");

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
    assert.equal(run.out.length, 2);
    assert.match(run.out[0], /^0001_create_users {2}\d{4}-\d\d-\d\dT[\d:.]+Z {2}[0-9a-f]{12}$/);

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
    assert.deepEqual(run.out.map((line) => line.split(" ")[0]), ["0001_create_users", "0002_add_email"]);
    assert.equal((await at("upgrade", "9")).err[0].endsWith("(ROOST_MIGRATION_UNKNOWN_TARGET)"), true);
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
