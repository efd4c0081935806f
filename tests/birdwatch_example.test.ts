/**
 * The tables, migrations and pagination example (`examples/birdwatch.ts`)
 * as its users run it: under this runtime, on the embedded SQLite and on a
 * Postgres and a MySQL/MariaDB database of its own.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import process from "node:process";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Database, sql } from "../mod.ts";
import { OwnDatabase, runtime, targets } from "./support.ts";

const root = fileURLToPath(new URL("..", import.meta.url));

/** Runs the example to its end; resolves with its exit code and output. */
function runExample(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const script = "examples/birdwatch.ts";
  const child = spawn(process.execPath, runtime === "deno" ? ["run", "-A", script] : [script], {
    cwd: root,
    env: { ...process.env, ...env },
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => stdout += chunk);
  child.stderr.on("data", (chunk) => stderr += chunk);
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
}

function assertRun(run: { code: number | null; stdout: string; stderr: string }): void {
  assert.equal(run.code, 0, run.stderr);
  const lines = run.stdout.trim().split("\n");
  assert.match(lines[0], /^migrated upgrade 0001_create_log \(\d+ ms\)$/);
  assert.match(lines[1], /^migrated upgrade 0002_add_sighting_notes \(\d+ ms\)$/);
  assert.deepEqual(lines.slice(2, 4), ["schema: created, at revision 0002", "10 reports, 4 new birds"]);
  assert.ok(lines.includes("page 1 of 3 (sightings 1-4 of 10):"), run.stdout);
  assert.ok(lines.includes("page 3 of 3 (sightings 9-10 of 10):"), run.stdout);
  assert.ok(lines.includes("exported 10 sightings in keyset pages"), run.stdout);
  assert.ok(lines.includes("kestrel seen 4 times"), run.stdout);
  assert.match(lines.at(-1)!, /^migrated downgrade 0001_create_log \(\d+ ms\)$/);
}

describe(`the birdwatch example on [example sqlite memory · ${runtime}]`, () => {
  test("migrates, records 10 sightings of 4 birds, pages through them and migrates back", async () => {
    const env: Record<string, string> = {};
    if (process.env.DATABASE_URL !== undefined) env.DATABASE_URL = "sqlite::memory:";
    assertRun(await runExample(env));
  });
});

const servers = targets().filter((target, i, all) =>
  target.dialect !== "sqlite" && all.findIndex((other) => other.dialect === target.dialect) === i
);
for (const target of servers) {
  describe(`the birdwatch example on [example ${target.dialect} · ${runtime}]`, () => {
    const own = new OwnDatabase(target, "roost_birdwatch");
    before(() => own.create());
    after(() => own.drop());

    test("migrates, records, pages and migrates back on a database of its own, leaving no table but the history", async () => {
      assertRun(await runExample({ DATABASE_URL: own.url }));
      const db = new Database(own.url);
      try {
        const tables = await db.fetchAll<{ name: string }>(
          target.dialect === "postgres"
            ? sql`select table_name as name from information_schema.tables where table_schema = 'public'`
            : sql`select table_name as name from information_schema.tables where table_schema = database()`,
        );
        assert.deepEqual(tables.map((table) => table.name), ["roost_migrations"]);
      } finally {
        await db.close();
      }
    });
  });
}
