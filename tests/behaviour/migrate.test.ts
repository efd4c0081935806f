/**
 * Migrations (`@roost/db/migrate`): the statement splitter and the sources
 * on their own, then the migrator on every target: SQL files, modules and
 * in-memory lists, upgrade and downgrade, every status, edited and
 * out-of-order migrations, failures, primary-only traffic, racing migrators
 * and the lock timeout.
 */
import assert from "node:assert/strict";
import { cp, mkdtemp, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import {
  ConfigError,
  Database,
  type Queryable,
  QueryError,
  type QueryEvent,
  sql,
  TransactionError,
} from "../../mod.ts";
import {
  compareRevisions,
  type Migration,
  MigrationError,
  type MigrationEvent,
  Migrator,
  parseMigrationFileName,
  parseSqlMigration,
  splitStatements,
} from "../../src/migrate/mod.ts";
import { lockKey } from "../../src/migrate/lock.ts";
import { column, defineTable } from "../../src/model/mod.ts";
import { postgresJsMajor, runtime, skipUnless, tempDatabasePath, uniqueName } from "../support/support.ts";
import { migratorNeedsSession, OwnDatabase, type Target, targets, transactionPooled } from "../support/targets.ts";

const fixture = (name: string) => fileURLToPath(new URL(`../support/fixtures/${name}/`, import.meta.url));

/** Asserts that `promise` rejects with a `MigrationError` of `code`, and returns it. */
async function migrationError(promise: Promise<unknown>, code: string): Promise<MigrationError> {
  let caught: unknown;
  await assert.rejects(promise, (error) => {
    caught = error;
    return true;
  });
  assert.ok(caught instanceof MigrationError, `expected a MigrationError, got ${caught}`);
  assert.equal(caught.code, code, caught.message);
  return caught;
}

describe("migration statement splitter", () => {
  test("splits on semicolons outside strings, quoted identifiers and comments", () => {
    assert.deepEqual(
      splitStatements(
        `create table "a;b" (s text); insert into "a;b" values ('x;''y'); -- a comment; still a comment
        /* block; comment */ select 1;select 2`,
        "sqlite",
      ),
      [
        `create table "a;b" (s text)`,
        `insert into "a;b" values ('x;''y')`,
        "-- a comment; still a comment\n        /* block; comment */ select 1",
        "select 2",
      ],
    );
    assert.deepEqual(splitStatements("select `a;b` from t; select 'it\\'s;' # note; here\n;", "mysql"), [
      "select `a;b` from t",
      "select 'it\\'s;' # note; here",
    ]);
    assert.deepEqual(splitStatements("select [x;y] from t; select 2", "sqlite"), ["select [x;y] from t", "select 2"]);
  });

  test("drops empty and comment-only statements, but keeps MySQL's executable comments", () => {
    assert.deepEqual(splitStatements(" ; \n-- only a comment;\n/* and; this */ ;\n", "postgres"), []);
    assert.deepEqual(splitStatements("", "sqlite"), []);
    assert.deepEqual(splitStatements("/*!40101 set names utf8mb4 */; /* plain */;", "mysql"), [
      "/*!40101 set names utf8mb4 */",
    ]);
  });

  test("keeps Postgres dollar-quoted bodies, nested comments and BEGIN ATOMIC bodies whole", () => {
    const fn = `create function f() returns trigger language plpgsql as $fn$
begin
  new.n := 1; -- inside; the body
  return new;
end $fn$`;
    assert.deepEqual(splitStatements(`${fn};\ndo $$ begin perform 1; end $$; select $1a$, E'a\\';b'`, "postgres"), [
      fn,
      "do $$ begin perform 1; end $$",
      "select $1a$, E'a\\';b'",
    ]);
    assert.deepEqual(splitStatements("/* outer /* inner; */ still; */ select 1; select 2", "postgres"), [
      "/* outer /* inner; */ still; */ select 1",
      "select 2",
    ]);
    const atomic = "create function g(a int) returns int language sql begin atomic select a + 1; select case " +
      "when a > 0 then a end; end";
    assert.deepEqual(splitStatements(`${atomic}; begin; commit`, "postgres"), [atomic, "begin", "commit"]);
  });

  test("keeps a trigger's BEGIN … END body with its statement, CASE … END included", () => {
    const trigger = `CREATE TEMP TRIGGER log_insert AFTER INSERT ON t
BEGIN
  INSERT INTO log (n, kind) VALUES (new.n, CASE WHEN new.n > 0 THEN 'pos;itive' ELSE 'other' END);
  UPDATE t SET seen = 1 WHERE n = new.n;
END`;
    assert.deepEqual(splitStatements(`create table t (n integer);\n${trigger};\nselect 1;`, "sqlite"), [
      "create table t (n integer)",
      trigger,
      "select 1",
    ]);
    const mysql = `create trigger tr before insert on t for each row begin
  if new.n < 0 then set new.n = 0; end if;
  while new.n > 10 do set new.n = new.n - 10; end while;
end`;
    assert.deepEqual(splitStatements(`${mysql}; select 1`, "mysql"), [mysql, "select 1"]);
    // Outside a routine, BEGIN is a statement of its own.
    assert.deepEqual(splitStatements("begin; select 1; end", "sqlite"), ["begin", "select 1", "end"]);
  });
});

describe("migration sources", () => {
  test("revisions order numerically when both are digits, by code units otherwise", () => {
    const revisions = ["10", "9", "0002", "20240101120000", "b", "a.1", "a-2"];
    assert.deepEqual(revisions.sort(compareRevisions), ["0002", "9", "10", "20240101120000", "a-2", "a.1", "b"]);
    assert.equal(compareRevisions("99999999999999999999", "100000000000000000000"), -1);
  });

  test("file names give the revision and the name", () => {
    assert.deepEqual(parseMigrationFileName("0003_add_email.sql"), {
      revision: "0003",
      name: "add_email",
      extension: ".sql",
    });
    assert.deepEqual(parseMigrationFileName("2024.1-a_x_y.ts"), {
      revision: "2024.1-a",
      name: "x_y",
      extension: ".ts",
    });
    for (const name of ["README.md", "_helpers.ts", "0001.sql", "0001_.sql", "types.d.ts", "a b_c.sql"]) {
      assert.equal(parseMigrationFileName(name), undefined, name);
    }
  });

  test("a .sql file has an up section, an optional down section and a comment before them", () => {
    assert.deepEqual(parseSqlMigration("-- note\n-- migrate:up\ncreate table t (n int);\n", "x.sql"), {
      up: "create table t (n int);\n",
    });
    assert.deepEqual(parseSqlMigration("--migrate:up\r\na;\r\n  -- MIGRATE:DOWN  \r\nb;", "x.sql"), {
      up: "a;",
      down: "b;",
    });
    for (
      const [text, pattern] of [
        ["create table t (n int);", /x\.sql has no "-- migrate:up" line/],
        ["-- migrate:down\n-- migrate:up\n", /down" line before/],
        ["-- migrate:up\n-- migrate:up\n", /more than one "-- migrate:up"/],
      ] as const
    ) {
      assert.throws(() => parseSqlMigration(text, "x.sql"), (error) => {
        assert.ok(error instanceof MigrationError);
        assert.equal(error.code, "ROOST_MIGRATION_INVALID");
        assert.equal(error.file, "x.sql");
        assert.match(error.message, pattern);
        return true;
      });
    }
  });

  test("bad sources are errors naming the file or revision", async () => {
    const db = new Database("sqlite::memory:");
    try {
      const noMarker = await migrationError(
        new Migrator(db, { directory: fixture("migrations_no_marker") }).pending(),
        "ROOST_MIGRATION_INVALID",
      );
      assert.match(noMarker.message, /0001_no_marker\.sql has no "-- migrate:up" line/);
      const duplicate = await migrationError(
        new Migrator(db, { directory: fixture("migrations_duplicate") }).pending(),
        "ROOST_MIGRATION_DUPLICATE",
      );
      assert.equal(duplicate.revision, "1");
      assert.match(duplicate.message, /0001_first\.sql and .*1_again\.sql|1_again\.sql and .*0001_first\.sql/);
      await migrationError(
        new Migrator(db, { directory: join(fixture("migrations"), "missing") }).status(),
        "ROOST_MIGRATION_INVALID",
      );
      const list = (migrations: unknown[]) => new Migrator(db, { migrations: migrations as Migration[] }).pending();
      await migrationError(list([{ revision: "1 2", name: "x", up: "" }]), "ROOST_MIGRATION_INVALID");
      await migrationError(list([{ revision: "1", name: "", up: "" }]), "ROOST_MIGRATION_INVALID");
      await migrationError(list([{ revision: "1", name: "x", up: 1 }]), "ROOST_MIGRATION_INVALID");
      await migrationError(list([{ revision: "1", name: "x", up: "", down: {} }]), "ROOST_MIGRATION_INVALID");
      await migrationError(
        list([{ revision: "01", name: "x", up: "" }, { revision: "1", name: "y", up: "" }]),
        "ROOST_MIGRATION_DUPLICATE",
      );
    } finally {
      await db.close();
    }
  });

  test("upgrade refuses a pending migration whose up step has no statement, before running any", async () => {
    await using db = new Database("sqlite::memory:");
    const migrator = new Migrator(db, {
      migrations: [
        { revision: "1", name: "create", up: "create table t (n integer)", down: "drop table t" },
        { revision: "2", name: "blank", up: "\n  \n" },
        { revision: "3", name: "comments", up: "-- to do\n/* later */", down: "select 1" },
      ],
    });
    const error = await migrationError(migrator.upgrade(), "ROOST_MIGRATION_EMPTY");
    assert.deepEqual(error.revisions, ["2", "3"]);
    assert.match(
      error.message,
      /^pending migrations have nothing to apply: 2_blank \(its up step has no statement\); /,
    );
    assert.equal(await migrator.currentRevision(), null, "the migration before them did not run either");
    await migrationError(migrator.sync(), "ROOST_MIGRATION_EMPTY");
    assert.deepEqual(await migrator.upgrade("1"), ["1"], "up to a target before them, they are not in the way");
  });

  test("bad options are a ConfigError", async () => {
    await using db = new Database("sqlite::memory:");
    const bad: unknown[] = [
      {},
      { directory: "m", migrations: [] },
      { migrations: [], table: "" },
      { migrations: [], lockTimeout: -1 },
      { migrations: [], lockTimeout: Infinity },
      { migrations: [], onProgress: "yes" },
      { migrations: [], colour: "blue" },
      { migrations: "0001" },
    ];
    for (const options of bad) {
      assert.throws(
        () => new Migrator(db, options as { migrations: Migration[] }),
        ConfigError,
        JSON.stringify(options),
      );
    }
  });

  test("checksums are SHA-256 of the file text, or of an in-memory migration's steps", async () => {
    await using db = new Database("sqlite::memory:");
    const [file] = await new Migrator(db, { directory: fixture("migrations") }).migrations();
    assert.match(file.checksum, /^[0-9a-f]{64}$/);
    assert.equal(file.file, join(fixture("migrations"), "0001_create_authors.sql"));
    const one = (down?: string) => new Migrator(db, { migrations: [{ revision: "1", name: "a", up: "x", down }] });
    const [withoutDown] = await one().migrations();
    const [withDown] = await one("y").migrations();
    // sha256("x")
    assert.equal(withoutDown.checksum, "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881");
    assert.notEqual(withDown.checksum, withoutDown.checksum);
  });
});

/** A database of the test's own on `target` (fixtures use fixed table names): a fresh SQLite file or server database. */
async function isolated(target: Target): Promise<{ db: Database; drop(): Promise<void> }> {
  if (target.place === "pglite") {
    // Each pglite::memory: instance is a database of its own.
    const db = target.open();
    return { db, drop: () => db.close() };
  }
  if (target.dialect === "sqlite") {
    const url = target.url === "sqlite::memory:"
      ? target.url
      : target.url.replace(/^sqlite:\/\/[^?]*/, `sqlite://${tempDatabasePath()}`);
    const db = new Database(url, { driver: target.driver });
    return { db, drop: () => db.close() };
  }
  const own = new OwnDatabase(target, "mig");
  await own.create();
  const db = new Database(own.url, { driver: target.driver });
  return {
    db,
    drop: async () => {
      await db.close();
      await own.drop();
    },
  };
}

/** True when `table` can be read. */
async function tableExists(db: Queryable, table: string): Promise<boolean> {
  try {
    await db.fetchVal(sql`select count(*) from ${sql.ident(table)}`);
    return true;
  } catch (error) {
    if (error instanceof QueryError) return false;
    throw error;
  }
}

async function dropTables(db: Queryable, ...tables: string[]): Promise<void> {
  for (const table of tables) await db.execute(sql`drop table if exists ${sql.ident(table)}`);
}

const count = async (db: Queryable, table: string) =>
  Number(await db.fetchVal(sql`select count(*) from ${sql.ident(table)}`));

/** Three migrations on tables named after `prefix`: SQL text, SQL with two statements, functions. */
function catalog(prefix: string): Migration[] {
  return [
    {
      revision: "1",
      name: "create_items",
      up: `create table ${prefix}_items (id integer primary key, label varchar(50) not null)`,
      down: `drop table ${prefix}_items`,
    },
    {
      revision: "2",
      name: "seed_items",
      up: `insert into ${prefix}_items (id, label) values (1, 'one');
           insert into ${prefix}_items (id, label) values (2, 'two; or more')`,
      down: `delete from ${prefix}_items`,
    },
    {
      revision: "3",
      name: "create_tags",
      up: async (db) => {
        await db.execute(`create table ${prefix}_tags (id integer primary key)`);
      },
      down: async (db) => {
        await db.execute(`drop table ${prefix}_tags`);
      },
    },
  ];
}

for (const target of targets()) {
  // The migrator refuses pooler=transaction before anything runs (its own test: tests/behaviour/pgbouncer.test.ts).
  const migrates = (options = {}) => skipUnless(!transactionPooled(target), migratorNeedsSession, options);
  const migratesUnless = (applies: boolean, reason: string, options = {}) =>
    transactionPooled(target) ? migrates(options) : skipUnless(applies, reason, options);
  describe(`migrations on ${target.label}`, () => {
    let db: Database;
    let own: { db: Database; drop(): Promise<void> };
    // An in-memory database (SQLite's, PGlite's) cannot be shared with a replica or a second instance.
    const shared = !target.url.endsWith(":memory:");

    before(async () => {
      db = target.open();
      own = await isolated(target);
    });
    after(async () => {
      await db.close();
      await own.drop();
    });

    test("status, sync, currentRevision, pending and history in every state", migrates(), async () => {
      const prefix = uniqueName("st");
      const table = `${prefix}_history`;
      const migrations = catalog(prefix);
      const two = new Migrator(db, { migrations: migrations.slice(0, 2), table });
      const three = new Migrator(db, { migrations, table });
      try {
        assert.equal(await two.status(), "no-info");
        assert.equal(await two.currentRevision(), null);
        assert.deepEqual(await two.history(), []);
        assert.deepEqual((await two.pending()).map((m) => m.revision), ["1", "2"]);
        assert.equal(await tableExists(db, table), false, "reading creates no history table");

        const started = Date.now();
        assert.equal(await two.sync(), "created");
        assert.equal(await two.status(), "up-to-date");
        assert.equal(await two.currentRevision(), "2");
        assert.deepEqual(await two.pending(), []);
        assert.equal(await count(db, `${prefix}_items`), 2);
        assert.equal(await two.sync(), "already-up-to-date");

        assert.equal(await three.status(), "upgrade-available");
        assert.deepEqual((await three.pending()).map((m) => m.name), ["create_tags"]);
        assert.equal(await three.sync(), "upgraded");
        assert.equal(await three.status(), "up-to-date");
        assert.equal(await three.currentRevision(), "3");
        assert.equal(await tableExists(db, `${prefix}_tags`), true);

        const history = await three.history();
        const sources = await three.migrations();
        assert.deepEqual(history.map((h) => [h.revision, h.name]), [
          ["1", "create_items"],
          ["2", "seed_items"],
          ["3", "create_tags"],
        ]);
        assert.deepEqual(history.map((h) => h.checksum), sources.map((m) => m.checksum));
        for (const entry of history) {
          assert.ok(entry.appliedAt instanceof Date, `appliedAt is a Date: ${entry.appliedAt}`);
          const at = entry.appliedAt.getTime();
          assert.ok(at >= started - 2_000 && at <= Date.now() + 2_000, `appliedAt ${entry.appliedAt.toISOString()}`);
        }
        assert.deepEqual(await three.check(), []);

        assert.deepEqual(await three.downgrade("base"), ["3", "2", "1"]);
        assert.equal(await three.status(), "no-info");
        assert.equal(await three.currentRevision(), null);
        assert.equal(await tableExists(db, `${prefix}_items`), false);
        assert.equal(await three.sync(), "created");
        await three.downgrade("base");
      } finally {
        await dropTables(db, `${prefix}_tags`, `${prefix}_items`, table);
      }
    });

    test(
      "upgrade to a target and on to head; downgrade to a target and to base, newest first",
      migrates(),
      async () => {
        const prefix = uniqueName("ud");
        const table = `${prefix}_history`;
        const events: MigrationEvent[] = [];
        const migrator = new Migrator(db, { migrations: catalog(prefix), table, onProgress: (e) => events.push(e) });
        try {
          assert.deepEqual(await migrator.upgrade("2"), ["1", "2"]);
          assert.equal(await migrator.currentRevision(), "2");
          assert.equal(await migrator.status(), "upgrade-available");
          assert.deepEqual(await migrator.upgrade("2"), [], "a target already reached applies nothing");
          assert.deepEqual(await migrator.upgrade(), ["3"]);
          assert.deepEqual(await migrator.upgrade(), []);
          assert.deepEqual(
            events.map((e) => `${e.action} ${e.revision} ${e.name} ${e.phase}`),
            [
              "upgrade 1 create_items start",
              "upgrade 1 create_items done",
              "upgrade 2 seed_items start",
              "upgrade 2 seed_items done",
              "upgrade 3 create_tags start",
              "upgrade 3 create_tags done",
            ],
          );
          for (const event of events) {
            if (event.phase === "done") assert.ok(typeof event.ms === "number" && event.ms >= 0);
            else assert.equal(event.ms, undefined);
          }
          events.length = 0;

          assert.deepEqual(await migrator.downgrade("1"), ["3", "2"]);
          assert.equal(await migrator.currentRevision(), "1", "the target stays applied");
          assert.equal(await count(db, `${prefix}_items`), 0);
          assert.equal(await tableExists(db, `${prefix}_tags`), false);
          assert.deepEqual(await migrator.downgrade("1"), []);
          assert.deepEqual(await migrator.downgrade("base"), ["1"]);
          assert.deepEqual(await migrator.downgrade("base"), []);
          assert.deepEqual(
            events.filter((e) => e.phase === "start").map((e) => `${e.action} ${e.revision}`),
            ["downgrade 3", "downgrade 2", "downgrade 1"],
          );
          assert.equal(await tableExists(db, `${prefix}_items`), false);

          const unknown = await migrationError(migrator.upgrade("4"), "ROOST_MIGRATION_UNKNOWN_TARGET");
          assert.equal(unknown.revision, "4");
          await migrationError(migrator.downgrade("7"), "ROOST_MIGRATION_UNKNOWN_TARGET");
          await migrationError(migrator.downgrade(""), "ROOST_MIGRATION_UNKNOWN_TARGET");
          assert.equal(await migrator.currentRevision(), null);
        } finally {
          await dropTables(db, `${prefix}_tags`, `${prefix}_items`, table);
        }
      },
    );

    test("a downgrade through a migration without down is refused before anything runs", migrates(), async () => {
      const prefix = uniqueName("ir");
      const table = `${prefix}_history`;
      const [create, seed, tags] = catalog(prefix);
      const migrator = new Migrator(db, {
        migrations: [create, { ...seed, down: undefined }, { ...tags, revision: "3" }, {
          revision: "4",
          name: "empty_down",
          up: `insert into ${prefix}_items (id, label) values (4, 'four')`,
          down: "-- nothing to undo\n",
        }],
        table,
      });
      try {
        await migrator.upgrade();
        const error = await migrationError(migrator.downgrade("base"), "ROOST_MIGRATION_IRREVERSIBLE");
        assert.deepEqual(error.revisions, ["4", "2"]);
        assert.equal(await migrator.currentRevision(), "4", "nothing was reverted");
        assert.equal(await tableExists(db, `${prefix}_tags`), true);
        assert.deepEqual(await migrator.downgrade("4"), []);
        await migrationError(migrator.downgrade("3"), "ROOST_MIGRATION_IRREVERSIBLE");
      } finally {
        await dropTables(db, `${prefix}_tags`, `${prefix}_items`, table);
      }
    });

    test(
      "check() finds edited and unknown migrations; upgrade refuses edited and out-of-order ones",
      migrates(),
      async () => {
        const prefix = uniqueName("ed");
        const table = `${prefix}_history`;
        const [create, seed, tags] = catalog(prefix);
        try {
          await new Migrator(db, { migrations: [create, tags], table }).upgrade();
          const edited = new Migrator(db, { migrations: [{ ...create, up: `${create.up} ` }, tags], table });
          assert.deepEqual(await edited.check(), [{ revision: "1", name: "create_items", kind: "edited" }]);
          const refusal = await migrationError(edited.upgrade(), "ROOST_MIGRATION_EDITED");
          assert.deepEqual(refusal.revisions, ["1"]);
          await migrationError(edited.sync(), "ROOST_MIGRATION_EDITED");

          const forgetful = new Migrator(db, { migrations: [create], table });
          assert.deepEqual(await forgetful.check(), [{ revision: "3", name: "create_tags", kind: "unknown" }]);
          assert.deepEqual(await forgetful.upgrade(), [], "an unknown applied migration does not block an upgrade");
          await migrationError(forgetful.downgrade("base"), "ROOST_MIGRATION_MISSING");

          const late = new Migrator(db, { migrations: [create, seed, tags], table });
          assert.equal(await late.status(), "upgrade-available");
          const error = await migrationError(late.upgrade(), "ROOST_MIGRATION_OUT_OF_ORDER");
          assert.deepEqual(error.revisions, ["2"]);
          assert.equal(await count(db, `${prefix}_items`), 0, "nothing ran");
        } finally {
          await dropTables(db, `${prefix}_tags`, `${prefix}_items`, table);
        }
      },
    );

    test(
      target.dialect === "mysql"
        ? "a failing migration stops the run, names its statement and stays partly applied (MySQL commits DDL)"
        : "a failing migration rolls itself back and stops the run; those before it stay applied",
      migrates(),
      async () => {
        const prefix = uniqueName("fa");
        const table = `${prefix}_history`;
        const [create] = catalog(prefix);
        const broken: Migration = {
          revision: "2",
          name: "broken",
          up: `create table ${prefix}_half (id integer primary key);
               insert into ${prefix}_missing (id) values (1);
               create table ${prefix}_never (id integer)`,
        };
        const after: Migration = { revision: "3", name: "after", up: `create table ${prefix}_after (id integer)` };
        const migrator = new Migrator(db, { migrations: [create, broken, after], table });
        try {
          const error = await migrationError(migrator.upgrade(), "ROOST_MIGRATION_FAILED");
          assert.equal(error.revision, "2");
          assert.equal(error.statement, 2);
          assert.ok(error.cause instanceof QueryError, `cause: ${error.cause}`);
          assert.match(error.message, /upgrade of migration 2_broken failed at statement 2 of 3/);
          assert.deepEqual((await migrator.history()).map((h) => h.revision), ["1"]);
          assert.equal(await tableExists(db, `${prefix}_items`), true, "the migration before stays applied");
          assert.equal(await tableExists(db, `${prefix}_half`), target.dialect === "mysql");
          assert.equal(await tableExists(db, `${prefix}_never`), false);
          assert.equal(await tableExists(db, `${prefix}_after`), false, "the run stopped");

          const thrown = new Error("no way");
          const failing = new Migrator(db, {
            migrations: [create, {
              revision: "2",
              name: "function",
              up: async (q) => {
                await q.execute(`insert into ${prefix}_items (id, label) values (9, 'nine')`);
                throw thrown;
              },
            }],
            table,
          });
          const fnError = await migrationError(failing.upgrade(), "ROOST_MIGRATION_FAILED");
          assert.equal(fnError.cause, thrown);
          assert.equal(fnError.statement, undefined);
          assert.equal(await count(db, `${prefix}_items`), target.dialect === "mysql" ? 1 : 0);
          assert.equal(await failing.currentRevision(), "1");

          if (target.dialect === "postgres") {
            // A function that swallows a failed statement: Postgres has aborted the transaction all the same.
            const swallowing = new Migrator(db, {
              migrations: [create, {
                revision: "2",
                name: "swallows",
                up: async (q) => {
                  await q.execute(`insert into ${prefix}_items (id, label) values (5, 'five')`);
                  await q.execute(`insert into ${prefix}_missing (id) values (1)`).catch(() => {});
                },
              }],
              table,
            });
            const commitError = await migrationError(swallowing.upgrade(), "ROOST_MIGRATION_FAILED");
            assert.equal(commitError.revision, "2");
            // The history insert after it meets the aborted transaction (or, without one, the COMMIT fails).
            assert.ok(
              commitError.cause instanceof QueryError || commitError.cause instanceof TransactionError,
              `cause: ${commitError.cause}`,
            );
            assert.match(commitError.message, /^upgrade of migration 2_swallows failed: /);
            assert.equal(await count(db, `${prefix}_items`), 0);
            assert.equal(await swallowing.currentRevision(), "1");
          }
        } finally {
          await dropTables(db, `${prefix}_after`, `${prefix}_never`, `${prefix}_half`, `${prefix}_items`, table);
        }
      },
    );

    test("SQL files from a directory: upgrade, status and downgrade", migrates(), async () => {
      const table = uniqueName("files");
      const directory = fixture("migrations");
      const migrator = new Migrator(own.db, { directory, table });
      try {
        assert.deepEqual((await migrator.pending()).map((m) => `${m.revision}_${m.name}`), [
          "0001_create_authors",
          "0002_create_books",
          "10_add_isbn",
        ]);
        assert.deepEqual(await migrator.upgrade("0002"), ["0001", "0002"]);
        assert.deepEqual(
          await own.db.fetchAll(sql`select id, name from roost_fx_authors order by id`),
          [{ id: 1, name: "Ada; Lovelace" }, { id: 2, name: 'Grace "Amazing" Hopper' }],
        );
        assert.equal(await migrator.status(), "upgrade-available");
        assert.deepEqual(await migrator.upgrade(), ["10"]);
        assert.equal(
          await own.db.fetchVal(
            sql`select isbn from roost_fx_books where title = ${"Notes; on the Analytical Engine"}`,
          ),
          "0-00-000000-0",
        );
        assert.equal(await migrator.status(), "up-to-date");
        // A URL works as well as a path.
        assert.equal(
          await new Migrator(own.db, { directory: new URL(`file://${directory}`), table }).status(),
          "up-to-date",
        );

        assert.deepEqual(await migrator.downgrade("0002"), ["10"]);
        assert.equal(await tableExists(own.db, "roost_fx_books"), true);
        await assert.rejects(own.db.fetchAll(sql`select isbn from roost_fx_books`), QueryError);
        assert.deepEqual(await migrator.downgrade("base"), ["0002", "0001"]);
        assert.equal(await tableExists(own.db, "roost_fx_authors"), false);
        assert.equal(await migrator.status(), "no-info");
      } finally {
        await dropTables(own.db, "roost_fx_books", "roost_fx_authors", table);
      }
    });

    test("TypeScript and JavaScript modules from a directory, next to SQL files", migrates(), async () => {
      const table = uniqueName("modules");
      const migrator = new Migrator(own.db, {
        directory: new URL("../support/fixtures/migrations_modules/", import.meta.url),
        table,
      });
      try {
        assert.deepEqual(await migrator.upgrade(), ["0001", "0002", "0003"]);
        assert.deepEqual(
          (await own.db.fetchAll<{ body: string }>(sql`select body from roost_fx_notes order by id`)).map((r) =>
            r.body
          ),
          ["first", "second", "third"],
        );
        assert.equal(await migrator.status(), "up-to-date");
        const error = await migrationError(migrator.downgrade("base"), "ROOST_MIGRATION_IRREVERSIBLE");
        assert.deepEqual(error.revisions, ["0003"]);
        assert.equal(await count(own.db, "roost_fx_notes"), 3, "nothing was reverted");
      } finally {
        await dropTables(own.db, "roost_fx_notes", table);
      }
    });

    test(
      "an applied file that is edited or removed afterwards is found, and an edit blocks upgrades",
      migrates(),
      async () => {
        const table = uniqueName("edits");
        const directory = await mkdtemp(join(tmpdir(), "roost-migrations-"));
        try {
          await cp(fixture("migrations"), directory, { recursive: true });
          await unlink(join(directory, "10_add_isbn.sql"));
          const migrator = new Migrator(own.db, { directory, table });
          await migrator.upgrade();
          await writeFile(
            join(directory, "0002_create_books.sql"),
            "-- migrate:up\ncreate table roost_fx_books (id integer primary key);\n-- migrate:down\ndrop table roost_fx_books;\n",
          );
          await cp(join(fixture("migrations"), "10_add_isbn.sql"), join(directory, "10_add_isbn.sql"));
          assert.deepEqual(await migrator.check(), [{ revision: "0002", name: "create_books", kind: "edited" }]);
          const error = await migrationError(migrator.upgrade(), "ROOST_MIGRATION_EDITED");
          assert.deepEqual(error.revisions, ["0002"]);
          assert.deepEqual((await migrator.history()).map((h) => h.revision), ["0001", "0002"], "nothing ran");

          await unlink(join(directory, "0002_create_books.sql"));
          assert.deepEqual(await migrator.check(), [{ revision: "0002", name: "create_books", kind: "unknown" }]);
        } finally {
          await rm(directory, { recursive: true, force: true });
          await dropTables(own.db, "roost_fx_books", "roost_fx_authors", table);
        }
      },
    );

    // An in-memory database cannot be shared with a replica, nor by two instances: those cases need a file or a server.
    test(
      "every migrator query goes to the primary, with replica reads and inside a replica scope",
      migratesUnless(
        shared,
        "an in-memory database cannot be shared with a replica or a second instance: needs a file or a server",
      ),
      async () => {
        const events: QueryEvent[] = [];
        const routed = target.open({
          replicas: [target.url],
          routing: { reads: "replicas" },
          onQuery: (event) => events.push(event),
        });
        const prefix = uniqueName("rp");
        const table = `${prefix}_history`;
        const migrator = new Migrator(routed, { migrations: catalog(prefix), table });
        try {
          await migrator.upgrade("2");
          assert.equal(await routed.replica(() => migrator.status()), "upgrade-available");
          assert.equal(await routed.replica(() => migrator.currentRevision()), "2");
          await routed.replica(() => migrator.downgrade("base"));
          assert.ok(events.length > 5);
          assert.deepEqual(events.filter((e) => e.served !== "primary").map((e) => e.sql), []);
          events.length = 0;
          await routed.fetchAll(sql`select 1 as n`);
          assert.equal(events[0].served, "replica", "reads outside the migrator do go to the replica");
        } finally {
          await dropTables(routed, `${prefix}_tags`, `${prefix}_items`, table);
          await routed.close();
        }
      },
    );

    test(
      "two migrators racing apply each migration exactly once, and both succeed",
      migratesUnless(
        shared,
        "an in-memory database cannot be shared with a replica or a second instance: needs a file or a server",
      ),
      async () => {
        const prefix = uniqueName("race");
        const table = `${prefix}_history`;
        const log = `${prefix}_log`;
        const first = target.open();
        const second = target.open();
        await db.execute(sql`create table ${sql.ident(log)} (revision varchar(20) not null)`);
        const migrations: Migration[] = [];
        try {
          for (let round = 0; round < 3; round++) {
            for (let i = 1; i <= 3; i++) {
              const revision = String(round * 3 + i);
              migrations.push({
                revision,
                name: `step_${revision}`,
                up: i === 2
                  ? async (q) => {
                    await q.execute(`insert into ${log} (revision) values ('${revision}')`);
                  }
                  : `insert into ${log} (revision) values ('${revision}'); select 1`,
              });
            }
            const list = [...migrations];
            const [a, b] = await Promise.all([
              new Migrator(first, { migrations: list, table }).upgrade(),
              new Migrator(second, { migrations: list, table }).upgrade(),
            ]);
            const expected = list.slice(round * 3).map((m) => m.revision);
            assert.deepEqual(
              [...a, ...b].sort(compareRevisions),
              expected,
              `round ${round}: each pending migration applied by exactly one migrator (${a} / ${b})`,
            );
          }
          const logged = await db.fetchAll<{ revision: string; n: number }>(
            sql`select revision, count(*) as n from ${sql.ident(log)} group by revision`,
          );
          assert.equal(logged.length, 9);
          assert.ok(logged.every((row) => Number(row.n) === 1), JSON.stringify(logged));
          const history = await new Migrator(db, { migrations, table }).history();
          assert.deepEqual(history.map((h) => h.revision), migrations.map((m) => m.revision));
        } finally {
          await first.close();
          await second.close();
          await dropTables(db, log, table);
        }
      },
    );

    // Postgres and MySQL serialise whole runs with a lock; SQLite re-reads the history in each migration's transaction.
    test(
      "SQLite: a migration that another migrator applied after this one read the history is skipped",
      migratesUnless(
        target.dialect === "sqlite" && shared,
        "SQLite's re-read of the history, on a file (the servers serialise whole runs with a lock)",
      ),
      async () => {
        const prefix = uniqueName("skip");
        const table = `${prefix}_history`;
        const log = `${prefix}_log`;
        // Migration 1 holds the write lock until both migrators have read the history (both see 1 pending).
        const readers = new Set<string>();
        let bothRead!: () => void;
        const read = new Promise<void>((resolve) => bothRead = resolve);
        const watch = (who: string) => (event: QueryEvent) => {
          if (/^select revision, name, checksum/.test(event.sql)) readers.add(who);
          if (readers.size === 2) bothRead();
        };
        const first = target.open({ onQuery: watch("first") });
        const second = target.open({ onQuery: watch("second") });
        const insert = (revision: string) => `insert into ${log} (revision) values ('${revision}')`;
        const migrations: Migration[] = [
          { revision: "0", name: "log", up: `create table ${log} (revision varchar(20) not null)` },
          {
            revision: "1",
            name: "waits",
            up: async (q) => {
              let timer: ReturnType<typeof setTimeout> | undefined;
              await Promise.race([read, new Promise((resolve) => timer = setTimeout(resolve, 5_000))]);
              clearTimeout(timer);
              await q.execute(insert("1"));
            },
          },
          { revision: "2", name: "two", up: insert("2") },
        ];
        try {
          await new Migrator(first, { migrations: migrations.slice(0, 1), table }).upgrade();
          const [a, b] = await Promise.all([
            new Migrator(first, { migrations, table }).upgrade(),
            new Migrator(second, { migrations, table }).upgrade(),
          ]);
          assert.equal(readers.size, 2);
          assert.ok(a.includes("1") !== b.includes("1"), `one migrator applied 1, the other skipped it (${a} / ${b})`);
          assert.deepEqual([...a, ...b].sort(compareRevisions), ["1", "2"]);
          assert.equal(await count(db, log), 2);
        } finally {
          await first.close();
          await second.close();
          await dropTables(db, log, table);
        }
      },
    );

    test(
      "lockTimeout: a migrator that cannot get the lock in time fails with ROOST_MIGRATION_LOCKED",
      migratesUnless(
        shared,
        "an in-memory database cannot be shared with a replica or a second instance: needs a file or a server",
      ),
      async () => {
        const prefix = uniqueName("lock");
        const table = `${prefix}_history`;
        const migrations = catalog(prefix).slice(0, 1);
        const holder = target.open();
        const url = target.dialect === "sqlite"
          ? `${target.url}${target.url.includes("?") ? "&" : "?"}busy_timeout=50`
          : target.url;
        const waiter = new Database(url, { driver: target.driver });
        const migrator = new Migrator(waiter, { migrations, table, lockTimeout: 300 });
        try {
          await holder.connection(async (conn) => {
            let release: () => Promise<unknown>;
            if (target.dialect === "postgres") {
              await conn.fetchVal(sql`select pg_advisory_lock(${sql.unsafe(lockKey(table).toString())})`);
              release = () => conn.fetchVal(sql`select pg_advisory_unlock(${sql.unsafe(lockKey(table).toString())})`);
            } else if (target.dialect === "mysql") {
              const name = sql`concat('roost_migrate_', sha1(concat(database(), '.', ${table})))`;
              assert.equal(Number(await conn.fetchVal(sql`select get_lock(${name}, 0)`)), 1);
              release = () => conn.fetchVal(sql`select release_lock(${name})`);
            } else {
              const tx = await conn.begin();
              await tx.execute(sql`create table ${sql.ident(`${prefix}_held`)} (n integer)`);
              release = () => tx.rollback();
            }
            const started = Date.now();
            const error = await migrationError(migrator.upgrade(), "ROOST_MIGRATION_LOCKED");
            const waited = Date.now() - started;
            // Never early; the lock is held until after, so a migrator that ignored lockTimeout would wait forever.
            assert.ok(waited >= 280 && waited < 10_000, `waited ${waited} ms`);
            assert.match(error.message, /lockTimeout \(300 ms\)/);
            await release();
          });
          assert.deepEqual(await migrator.upgrade(), ["1"], "once the lock is free, the migrator runs");
          assert.deepEqual(
            await new Migrator(waiter, { migrations, table, lockTimeout: 0 }).upgrade(),
            [],
            "lockTimeout 0 takes a free lock",
          );
        } finally {
          await holder.close();
          await waiter.close();
          await dropTables(db, `${prefix}_items`, table);
        }
      },
    );
  });
}

describe("migrations on Workers", () => {
  // The Worker here bundles postgres.js (the neon driver's Worker is tests/behaviour/workerd.test.ts's).
  const postgres = targets({ places: ["postgres"] }).find((target) => target.driver !== "neon");
  const unmet = runtime !== "node"
    ? "workerd is driven from Node (miniflare)"
    : postgres === undefined
    ? "no Postgres server (the only dialect a Worker reaches without nodejs_compat)"
    : postgresJsMajor >= 4
    ? "postgres.js 4 imports node:os, node:net …: on Workers it needs nodejs_compat"
    : "";

  test(
    "@roost/db/migrate bundles without Node built-ins and migrates from a list in workerd",
    skipUnless(unmet === "", unmet),
    async () => {
      const harness = await import("../support/workerd/harness.ts");
      // Without nodejs_compat any Node built-in that esbuild can see fails the build.
      await harness.bundleWorker("src/migrate/mod.ts", { nodejsCompat: false });
      const script = await harness.bundleWorker("tests/support/fixtures/migrations_worker/worker.ts", {
        nodejsCompat: false,
      });
      let output = "";
      const worker = harness.startWorker(script, {
        nodejsCompat: false,
        bindings: { POSTGRES_URL: postgres!.url },
        onOutput: (text) => output += text,
      });
      const table = uniqueName("worker");
      try {
        const response = await worker.dispatchFetch(`http://worker/?table=${table}`);
        const body = await response.json();
        assert.equal(response.status, 200, `${JSON.stringify(body)} ${output}`);
        assert.deepEqual(body, { applied: ["1", "2"], status: "up-to-date", rows: 1, reverted: ["2", "1"] });
      } finally {
        await worker.dispose();
        const db = postgres!.open();
        await dropTables(db, `${table}_items`, table);
        await db.close();
      }
    },
  );
});

for (const target of targets()) {
  // The migrator refuses pooler=transaction before anything runs (its own test: tests/behaviour/pgbouncer.test.ts).
  const migrates = (options = {}) => skipUnless(!transactionPooled(target), migratorNeedsSession, options);
  describe(`stamp, createTables and dropTables on ${target.label}`, () => {
    let db: Database;
    before(() => {
      db = target.open();
    });
    after(async () => {
      await db.close();
    });

    /** Two related tables and the migrations that would make them (the second adds a column). */
    function project(prefix: string) {
      const authors = defineTable(`${prefix}_authors`, {
        id: column.serial().primaryKey(),
        name: column.text().notNull(),
      });
      const books = defineTable(`${prefix}_books`, {
        id: column.serial().primaryKey(),
        author: column.integer().notNull().references(authors, "id", { onDelete: "cascade" }),
        title: column.text().notNull(),
      });
      const table = `${prefix}_history`;
      const migrations: Migration[] = [
        { revision: "1", name: "authors", up: `create table ${prefix}_authors (id integer primary key)` },
        { revision: "2", name: "books", up: `create table ${prefix}_books (id integer primary key)` },
        { revision: "3", name: "seed", up: `insert into ${prefix}_authors (name) values ('from a migration')` },
      ];
      return { authors, books, table, migrations, migrator: new Migrator(db, { migrations, table }) };
    }

    test(
      "stamp records revisions without running them, re-records edited ones and forgets the rest",
      migrates(),
      async () => {
        const { table, migrations, migrator } = project(uniqueName("sp"));
        const prefix = table.replace(/_history$/, "");
        try {
          assert.deepEqual(await migrator.stamp("2"), { stamped: ["1", "2"], restamped: [], unstamped: [] });
          assert.equal(await tableExists(db, `${prefix}_authors`), false, "no migration ran");
          assert.equal(await migrator.currentRevision(), "2");
          assert.equal(await migrator.status(), "upgrade-available");
          assert.deepEqual(await migrator.stamp(), { stamped: ["3"], restamped: [], unstamped: [] });
          assert.equal(await migrator.status(), "up-to-date");
          assert.deepEqual(await migrator.upgrade(), [], "upgrade runs nothing stamped");

          // An edit is refused by upgrade until stamp records the new checksum.
          const edited = migrations.map((m) => m.revision === "1" ? { ...m, up: `${m.up} -- edited` } : m);
          const later = new Migrator(db, {
            migrations: [...edited, { revision: "4", name: "noop", up: "select 1" }],
            table,
          });
          assert.deepEqual((await later.check()).map((p) => `${p.revision} ${p.kind}`), ["1 edited"]);
          await migrationError(later.upgrade(), "ROOST_MIGRATION_EDITED");
          assert.deepEqual(await later.stamp("3"), { stamped: [], restamped: ["1"], unstamped: [] });
          assert.deepEqual(await later.check(), []);
          assert.deepEqual(await later.upgrade(), ["4"], "the pending one after the stamp runs");

          // A revision the source lacks, and those after the target, are forgotten; base forgets all.
          const shorter = new Migrator(db, { migrations: migrations.slice(0, 2), table });
          assert.deepEqual(await shorter.stamp(), { stamped: [], restamped: ["1"], unstamped: ["3", "4"] });
          assert.deepEqual((await shorter.history()).map((h) => h.revision), ["1", "2"]);
          const error = await migrationError(shorter.stamp("9"), "ROOST_MIGRATION_UNKNOWN_TARGET");
          assert.match(error.message, /cannot stamp to "9"/);
          assert.deepEqual((await shorter.history()).map((h) => h.revision), ["1", "2"], "nothing changed");
          assert.deepEqual(await shorter.stamp("base"), { stamped: [], restamped: [], unstamped: ["1", "2"] });
          assert.equal(await shorter.status(), "no-info");
        } finally {
          await dropTables(db, table);
        }
      },
    );

    test(
      "createTables makes the tables from the models and stamps head; dropTables removes them all",
      migrates(),
      async () => {
        const { authors, books, table, migrator } = project(uniqueName("ct"));
        try {
          assert.deepEqual(await migrator.createTables([books, authors]), [authors.name, books.name]);
          assert.equal(await migrator.status(), "up-to-date");
          assert.deepEqual((await migrator.history()).map((h) => h.revision), ["1", "2", "3"]);
          assert.deepEqual(await migrator.upgrade(), [], "no migration runs afterwards");
          assert.equal(await authors.count(db), 0, "the seed migration did not run");
          const ada = await authors.insert(db, { name: "Ada" });
          await books.insert(db, { author: ada.id, title: "Notes" });
          assert.equal(await books.count(db), 1, "the foreign key's table was created first");

          const refused = await migrationError(
            migrator.createTables([authors, books]),
            "ROOST_MIGRATION_ALREADY_APPLIED",
          );
          assert.equal(refused.revision, "3");
          assert.equal(await books.count(db), 1, "nothing was created or changed");

          assert.deepEqual(await migrator.dropTables([authors, books]), [books.name, authors.name, table]);
          assert.equal(await tableExists(db, authors.name), false);
          assert.equal(await tableExists(db, books.name), false);
          assert.equal(await tableExists(db, table), false, "the history table is gone too");
          assert.equal(await migrator.status(), "no-info");
          assert.deepEqual(
            await migrator.dropTables([authors, books]),
            [books.name, authors.name, table],
            "again: none",
          );
        } finally {
          await dropTables(db, books.name, authors.name, table);
        }
      },
    );

    test("createTables on a database with migrations applied creates nothing", migrates(), async () => {
      const { authors, books, table, migrations } = project(uniqueName("cr"));
      const migrator = new Migrator(db, { migrations: migrations.slice(0, 1), table });
      try {
        assert.deepEqual(await migrator.upgrade(), ["1"]);
        await migrationError(migrator.createTables([authors, books]), "ROOST_MIGRATION_ALREADY_APPLIED");
        assert.equal(await tableExists(db, books.name), false);
        assert.deepEqual((await migrator.history()).map((h) => h.revision), ["1"]);
      } finally {
        await dropTables(db, books.name, authors.name, table);
      }
    });
  });
}
