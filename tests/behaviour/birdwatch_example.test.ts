/**
 * The tables, migrations and pagination example (`examples/birdwatch.ts`)
 * as its users run it: under this runtime, on the embedded SQLite and on a
 * Postgres and a MySQL/MariaDB database of its own.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { runScript, runtime, type ScriptRun } from "../support/support.ts";
import { OwnDatabase, serverDialects, serverPlaces, targets } from "../support/targets.ts";

/** Runs the example to its end with `env` over this process's environment. */
const runExample = (env: Record<string, string>) => runScript("examples/birdwatch.ts", [], env);

function assertRun(run: ScriptRun): void {
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
    assertRun(await runExample({ DATABASE_URL: "sqlite::memory:" }));
  });
});

// Postgres in the example's own process, with no server: the URL is all that changes.
for (const target of targets({ places: ["pglite"] })) {
  describe(`the birdwatch example on [example pglite memory · ${runtime}]`, () => {
    // The example's process starts PGlite (initdb): seconds of CPU, more on a busy machine.
    test(`migrates, records 10 sightings of 4 birds, pages through them and migrates back (${target.url})`, {
      timeout: 240_000,
    }, async () => {
      assertRun(await runExample({ DATABASE_URL: target.url }));
    });
  });
}

for (const target of targets({ dialects: serverDialects, places: serverPlaces, onePerDialect: true })) {
  describe(`the birdwatch example on [example ${target.dialect} · ${runtime}]`, () => {
    const own = new OwnDatabase(target, "roost_birdwatch");
    before(() => own.create());
    after(() => own.drop());

    test("migrates, records, pages and migrates back on a database of its own, leaving no table but the history", async () => {
      assertRun(await runExample({ DATABASE_URL: own.url }));
      assert.deepEqual(await own.tables(), ["roost_migrations"]);
    });
  });
}
