/**
 * The Kysely example (`examples/kysely.ts`) as its users run it: under this
 * runtime, on its default SQLite file with a read-only replica, on an
 * in-memory SQLite without one, and on a Postgres and a MySQL/MariaDB
 * database of its own given on the command line.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { runScript, runtime, type ScriptRun } from "../support/support.ts";
import { OwnDatabase, serverDialects, serverPlaces, targets } from "../support/targets.ts";

/** Runs the example with `args` after the script and `env` over this process's environment. */
const runExample = (args: string[], env: Record<string, string | undefined>) =>
  runScript("examples/kysely.ts", args, env);

/** What every run prints after the routing trace, whatever the database. */
const rest = [
  "controlled transaction: 1 sighting committed, 1 rolled back to its savepoint",
  "heron report rolled back (it was a stork)",
  "  herons kept: 0",
  "heron report committed: the bird (Kysely) and its sighting (Roost)",
  "5 sightings of 4 birds:",
  "  grey heron 185 cm, seen 1",
  "  barn owl    95 cm, seen 1",
  "  kestrel     76 cm, seen 1",
  "  swift       42 cm, seen 2",
  "streamed log:",
  "  06:07  kestrel    meadow        first of its kind",
  "  06:14  swift      church tower  first of its kind",
  "  06:21  swift      church tower",
  "  06:28  barn owl   barn          first of its kind",
  "  06:49  grey heron river bank    first of its kind",
  "wingspan over 80 cm: barn owl, grey heron",
  "log page 2 of 3: church tower, barn",
];

/**
 * Checks a run's exit and output: the first read on the replica when there
 * is one (else the primary), the write on the primary, the transaction's
 * read and write on its held primary connection, then the rest.
 */
function assertRun(run: ScriptRun, dialect: string, replica: boolean): void {
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stderr, "");
  const lines = run.stdout.trimEnd().split("\n");
  assert.deepEqual(lines.slice(0, 2), [
    `on ${dialect}${replica ? ", reads on a read-only replica" : ""}`,
    "where Kysely's queries run:",
  ]);
  const trace = lines.slice(2, 6);
  const expected = [
    replica ? /^ {2}replica 0 \(read\) +select .*kysely_birds/u : /^ {2}primary \(read\) +select .*kysely_birds/u,
    /^ {2}primary \(write\) +insert into .kysely_sightings/u,
    /^ {2}primary \(held\) +select .*kysely_birds/u,
    /^ {2}primary \(held\) +insert into .kysely_sightings/u,
  ];
  for (const [i, pattern] of expected.entries()) assert.match(trace[i] ?? "", pattern, run.stdout);
  assert.deepEqual(lines.slice(6), rest, run.stdout);
}

describe(`the Kysely example on [example sqlite file · ${runtime}]`, () => {
  // The example's default database lives in the system's temporary directory: point that at one of ours.
  let temp: string;
  before(() => temp = mkdtempSync(join(tmpdir(), "roost-kysely-example-")));
  after(() => rmSync(temp, { recursive: true, force: true }));

  test("runs on its SQLite file with the file as a read-only replica, and removes the file", async () => {
    const env = { DATABASE_URL: undefined, TMPDIR: temp, TMP: temp, TEMP: temp };
    assertRun(await runExample([], env), "sqlite", true);
    assert.deepEqual(readdirSync(temp), []);
  });
});

describe(`the Kysely example on [example sqlite memory · ${runtime}]`, () => {
  test("runs on an in-memory database from DATABASE_URL, without a replica", async () => {
    assertRun(await runExample([], { DATABASE_URL: "sqlite::memory:" }), "sqlite", false);
  });
});

for (const target of targets({ dialects: serverDialects, places: serverPlaces, onePerDialect: true })) {
  describe(`the Kysely example on [example ${target.dialect} · ${runtime}]`, () => {
    const own = new OwnDatabase(target, "roost_kysely");
    before(() => own.create());
    after(() => own.drop());

    test("runs on the database given as its argument, the server as its own replica, and leaves no table", async () => {
      assertRun(await runExample([own.url], { DATABASE_URL: undefined }), target.dialect, true);
      assert.deepEqual(await own.tables(), []);
    });
  });
}
