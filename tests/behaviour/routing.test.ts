/**
 * Replica routing on every target: the replica is the same database opened
 * read-only (for SQLite, the same file with `mode=ro`; for the servers, the
 * same server, whose replica sessions Roost makes read-only), so every
 * runtime and driver exercises scopes, pickers, health, fallback and
 * read-your-writes. tests/behaviour/standby.test.ts repeats the essentials on a real
 * PostgreSQL hot standby.
 */
import assert from "node:assert/strict";
import { after, afterEach, before, describe, test } from "node:test";
import {
  ConfigError,
  ConnectionError,
  Database,
  type DatabaseOptions,
  QueryError,
  type QueryEvent,
  ReadOnlyError,
  type RoutingOptions,
  sql,
} from "../../mod.ts";
import { column, defineTable } from "../../src/model/mod.ts";
import { isReadStatement } from "../../src/router.ts";
import { runtime, skipUnless, sleep, tempDatabasePath, uniqueName, uniqueTable } from "../support/support.ts";
import { notTransactionPooled, type Target, targets, transactionPooled } from "../support/targets.ts";

/** The target's database, opened as a read-only replica of itself. */
function replicaUrlOf(target: Target): string | undefined {
  // A PGlite database lives in this process and has no replicas (refused at construction: tests/unit/options.test.ts).
  if (target.place === "pglite") return undefined;
  if (target.dialect !== "sqlite") return target.url;
  if (target.url.includes(":memory:")) return undefined;
  return `${target.url}${target.url.includes("?") ? "&" : "?"}mode=ro`;
}

const password = "s3cret-R00st";

/** A replica that cannot be reached: a closed port, or a SQLite file that does not exist (yet). */
function unreachableUrlOf(target: Target, path = tempDatabasePath()): string {
  if (target.dialect === "postgres") return `postgres://postgres:${password}@127.0.0.1:1/test`;
  if (target.dialect === "mysql") return `mysql://root:${password}@127.0.0.1:1/test`;
  return `sqlite://${path}?mode=ro${target.url.includes("worker=true") ? "&worker=true" : ""}`;
}

/** A query whose result says whether the session is read-only on the server. */
function readOnlyProbe(target: Target) {
  if (target.dialect === "postgres") return sql`select current_setting('transaction_read_only') as ro`;
  if (target.dialect === "mysql") return sql`select @@tx_read_only as ro`;
  return sql`pragma query_only`;
}

const isReadOnly = (value: unknown) => value === "on" || Number(value) === 1;

for (const target of targets()) {
  const replicaUrl = replicaUrlOf(target);
  if (replicaUrl === undefined) continue;

  // The replica here is the primary itself, read-only through the session's setting, which Roost does not send
  // behind a transaction pooler (it would land on a server session other clients share: docs/poolers.md).
  const readOnlySession = skipUnless(
    !transactionPooled(target),
    `the replica is read-only by a session setting: ${notTransactionPooled}`,
  );

  describe(`replica routing on ${target.label}`, () => {
    const table = uniqueTable("routing");
    const probe = readOnlyProbe(target);
    const count = (db: { fetchVal<T>(q: ReturnType<typeof sql>): Promise<T | undefined> }) =>
      db.fetchVal<number>(sql`select count(*) as n from ${table}`).then(Number);
    let setup: Database;
    const opened: Database[] = [];

    /** An instance with the given routing, whose events land in `events`. */
    function open(routing: RoutingOptions = {}, options: DatabaseOptions = {}) {
      const events: QueryEvent[] = [];
      const db = target.open({
        replicas: [replicaUrl!],
        routing,
        onQuery: (event) => events.push(event),
        pool: { acquireTimeout: 5_000 },
        ...options,
      });
      opened.push(db);
      return { db, events };
    }

    before(async () => {
      setup = target.open();
      await setup.execute(sql`create table ${table} (n integer)`);
      await setup.execute(sql`insert into ${table} (n) values (1)`);
    });
    // Each test's instances close after it: behind PgBouncer in session mode every idle connection they kept
    // would hold one of the pool's server sessions, and a later test waited (about 25 s) for one to free.
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((db) => db.close()));
    });
    after(async () => {
      await setup.execute(sql`drop table ${table}`);
      await setup.close();
    });

    test("replica scopes read from a replica whose session is read-only on the server", readOnlySession, async () => {
      const { db, events } = open();
      const [viaDb, viaHandle, rows] = await db.replica(async (r) => [
        await db.fetchVal(probe),
        await r.fetchVal(probe),
        await count(db),
      ]);
      assert.ok(isReadOnly(viaDb) && isReadOnly(viaHandle), "replica sessions are read-only on the server");
      assert.equal(rows, 1, "the primary's row is read back through the replica");
      assert.deepEqual(events.map((e) => [e.served, e.replica, e.reason]), [
        ["replica", 0, "replica-scope"],
        ["replica", 0, "replica-scope"],
        ["replica", 0, "replica-scope"],
      ]);
      assert.equal(isReadOnly(await db.fetchVal(probe)), false, "outside the scope, reads stay on the primary");
      assert.equal(events.at(-1)?.served, "primary");
      assert.equal(events.at(-1)?.reason, "read");
    });

    test("inside a replica scope every write path throws ReadOnlyError before reaching a server", async () => {
      const { db, events } = open();
      const insert = sql`insert into ${table} (n) values (${99})`;
      await db.replica(async (r) => {
        const attempts: [string, () => Promise<unknown>][] = [
          ["db.execute", () => db.execute(insert)],
          ["db.executeMany", () => db.executeMany(insert, [[99]])],
          ["db.transaction", () => db.transaction(() => {})],
          ["db.begin", () => db.begin()],
          ["r.execute", () => r.execute(insert)],
          ["r.executeMany", () => r.executeMany(insert, [[99]])],
          ["r.transaction", () => r.transaction(() => {})],
          ["r.begin", () => r.begin()],
          ["conn.execute", () => db.connection((conn) => conn.execute(insert))],
          ["conn.executeMany", () => r.connection((conn) => conn.executeMany(insert, [[99]]))],
          ["conn.transaction", () => db.connection((conn) => conn.transaction(() => {}))],
          ["conn.begin", () => r.connection((conn) => conn.begin())],
          ["db.execute in conn", () => db.connection(() => db.execute(insert))],
        ];
        for (const [what, attempt] of attempts) {
          await assert.rejects(attempt, ReadOnlyError, `${what} must throw ReadOnlyError`);
        }
      });
      assert.equal(events.length, 0, "no write reached a server");
      assert.equal(await count(setup), 1);
    });

    test("a write hidden in a fetch fails at the server on a replica", readOnlySession, async () => {
      const { db } = open();
      const notReadOnlyError = (error: unknown) => error instanceof QueryError && !(error instanceof ReadOnlyError);
      await assert.rejects(
        db.replica(() => db.fetchAll(sql`insert into ${table} (n) values (${2}) returning n`)),
        notReadOnlyError,
      );
      await assert.rejects(db.replica((r) => r.fetchOne(sql`delete from ${table} returning n`)), notReadOnlyError);
      const streamedWrite = db.replica(async () => {
        for await (const _ of db.iterate(sql`insert into ${table} (n) values (${3}) returning n`)) { /* none */ }
      });
      // Deno's node:sqlite ends StatementSync.iterate() silently at an error (Deno 2.9.5; all() throws):
      // the write still fails (counted below), but the stream cannot report it there.
      if (runtime === "deno" && target.driver === "node-sqlite") await streamedWrite;
      else await assert.rejects(streamedWrite, notReadOnlyError);
      assert.equal(await count(setup), 1, "nothing was written");
      assert.equal(await count(db), 1, "the replica's connections still work");
    });

    test("replica and primary scopes nest both ways", readOnlySession, async () => {
      const { db, events } = open();
      const marker = 1_000 + Math.floor(Math.random() * 1_000);
      await db.replica(async () => {
        assert.ok(isReadOnly(await db.fetchVal(probe)));
        await db.primary(async (p) => {
          assert.equal(isReadOnly(await db.fetchVal(probe)), false);
          await db.execute(sql`insert into ${table} (n) values (${marker})`);
          await p.transaction(() => db.execute(sql`delete from ${table} where n = ${marker}`));
          await db.replica(async (r) => {
            assert.ok(isReadOnly(await r.fetchVal(probe)));
            await assert.rejects(db.execute(sql`delete from ${table}`), ReadOnlyError);
          });
          assert.equal(isReadOnly(await p.fetchVal(probe)), false);
        });
        assert.ok(isReadOnly(await db.fetchVal(probe)), "back in the replica scope");
      });
      assert.deepEqual(events.map((e) => e.reason), [
        "replica-scope",
        "primary-scope",
        "primary-scope",
        "held", // the delete inside the primary scope's transaction
        "replica-scope",
        "primary-scope",
        "replica-scope",
      ]);
      assert.equal(await count(setup), 1);
    });

    test('reads: "replicas" sends fetch* and iterate outside scopes to replicas, writes to the primary', async () => {
      const { db, events } = open({ reads: "replicas" });
      assert.ok(isReadStatement("  /* why */ -- note\n (SELECT 1)"));
      await db.fetchAll(sql`select n from ${table}`);
      await db.fetchOne(sql`select n from ${table}`);
      await db.fetchVal(sql`select count(*) from ${table}`);
      for await (const _ of db.iterate(sql`select n from ${table}`)) { /* drain */ }
      assert.deepEqual(events.splice(0).map((e) => [e.method, e.served, e.reason]), [
        ["fetchAll", "replica", "read"],
        ["fetchOne", "replica", "read"],
        ["fetchOne", "replica", "read"],
        ["iterate", "replica", "read"],
      ]);
      const marker = 2_000 + Math.floor(Math.random() * 1_000);
      await db.execute(sql`insert into ${table} (n) values (${marker})`);
      const returned = await db.fetchOne<{ n: number }>(sql`delete from ${table} where n = ${marker} returning n`);
      assert.equal(Number(returned?.n), marker, "a write in a fetch goes to the primary and succeeds");
      await db.transaction(() => db.fetchAll(sql`select n from ${table}`));
      await db.connection(() => db.fetchVal(sql`select 1`));
      assert.deepEqual(events.map((e) => [e.method, e.served, e.reason]), [
        ["execute", "primary", "write"],
        ["fetchOne", "primary", "write"],
        ["fetchAll", "primary", "held"],
        ["fetchOne", "primary", "held"],
      ]);
    });

    test("pickers: round-robin, random, least-busy and a custom function", async () => {
      const three = { replicas: [replicaUrl, replicaUrl, replicaUrl] };
      const read = (db: Database) => db.replica(() => db.fetchVal(sql`select 1`));

      const roundRobin = open({ picker: "round-robin" }, three);
      for (let i = 0; i < 6; i++) await read(roundRobin.db);
      assert.deepEqual(roundRobin.events.map((e) => e.replica), [0, 1, 2, 0, 1, 2]);

      const random = open({ picker: "random" }, three);
      for (let i = 0; i < 60; i++) await read(random.db);
      assert.ok(new Set(random.events.map((e) => e.replica)).size >= 2, "random spreads reads");

      const leastBusy = open({ picker: "least-busy" }, three);
      await leastBusy.db.replica(() =>
        leastBusy.db.connection(async () => {
          const busy = leastBusy.db.stats().replicas.findIndex((r) => r.busy === 1);
          assert.ok(busy >= 0, "the held connection shows as busy");
          for (let i = 0; i < 6; i++) await read(leastBusy.db);
          assert.ok(leastBusy.events.every((e) => e.replica !== busy), "least-busy avoids the busy replica");
        })
      );

      let given: unknown[] = [];
      const custom = open({
        picker: (replicas) => {
          given = replicas.map((r) => [r.index, typeof r.url, typeof r.stats.busy]);
          return replicas.length - 1;
        },
      }, three);
      for (let i = 0; i < 3; i++) await read(custom.db);
      assert.deepEqual(custom.events.map((e) => e.replica), [2, 2, 2]);
      assert.deepEqual(given, [[0, "string", "number"], [1, "string", "number"], [2, "string", "number"]]);

      const wrong = open({ picker: () => 7 }, three);
      await assert.rejects(read(wrong.db), ConfigError);
    });

    // The name says what runs: a server coming back is tests/behaviour/standby.test.ts's job.
    test(
      `a replica that cannot connect leaves the rotation, is rechecked with backoff${
        target.dialect === "sqlite" ? ", and comes back" : ""
      }`,
      async () => {
        const missing = tempDatabasePath();
        const { db, events } = open({ recheckAfter: 50, maxRecheckAfter: 200 }, {
          replicas: [unreachableUrlOf(target, missing), replicaUrl],
        });
        for (let i = 0; i < 4; i++) assert.equal(await db.replica(() => count(db)), 1);
        const failed = events.filter((e) => e.error !== undefined);
        assert.equal(failed.length, 1, "only the first read tried the dead replica");
        assert.ok(failed[0].error instanceof ConnectionError);
        assert.deepEqual(events.filter((e) => e.error === undefined).map((e) => e.replica), [1, 1, 1, 1]);
        let [dead, alive] = db.stats().replicas;
        assert.equal(dead.healthy, false);
        assert.equal(alive.healthy, true);
        assert.ok(dead.downSince! <= Date.now() && dead.nextCheck! > dead.downSince!);
        assert.ok(!JSON.stringify(db.stats()).includes(password), "stats never show the password");
        assert.ok(!String(dead.lastError).includes(password));
        // Rechecks at +50, +100 and +200 ms (each one waiting for its failed connection attempt).
        for (let waited = 0; db.stats().replicas[0].failures < 3 && waited < 5_000; waited += 25) await sleep(25);
        dead = db.stats().replicas[0];
        assert.ok(dead.failures >= 3, `rechecked with backoff (failures: ${dead.failures})`);
        assert.ok(dead.nextCheck! - Date.now() <= 200, "the backoff is capped by maxRecheckAfter");
        if (target.dialect !== "sqlite") return; // a server coming back is tests/behaviour/standby.test.ts's job
        const revived = new Database(`sqlite://${missing}`);
        await revived.execute(sql`create table ${table} (n integer)`);
        await revived.close();
        for (let waited = 0; !db.stats().replicas[0].healthy && waited < 3_000; waited += 25) await sleep(25);
        assert.equal(db.stats().replicas[0].healthy, true, "the recheck brought it back");
        events.length = 0;
        for (let i = 0; i < 4; i++) await db.replica(() => db.fetchVal(sql`select 1`));
        const served = events.map((e) => e.replica);
        assert.deepEqual([served.slice(0, 2).sort(), served.slice(2).sort()], [[0, 1], [0, 1]], "back in the rotation");
      },
    );

    test('no healthy replica: fallback "primary" reads from the primary, "error" throws', async () => {
      const dead = { replicas: [unreachableUrlOf(target)] };
      const fallback = open({ reads: "replicas", recheckAfter: 60_000 }, dead);
      assert.equal(await fallback.db.fetchVal(sql`select count(*) from ${table}`).then(Number), 1);
      assert.equal(await fallback.db.replica(() => count(fallback.db)), 1);
      assert.deepEqual(fallback.events.map((e) => [e.served, e.reason, e.error instanceof ConnectionError]), [
        ["replica", "read", true],
        ["primary", "fallback", false],
        ["primary", "fallback", false],
      ]);
      const strict = open({ fallback: "error", recheckAfter: 60_000 }, dead);
      await assert.rejects(strict.db.replica(() => count(strict.db)), ConnectionError);
      const error = await strict.db.replica(() => count(strict.db)).catch((e) => e);
      assert.ok(error instanceof ConnectionError && error.code === "ROOST_NO_REPLICA", String(error));
      assert.ok(!String(error.message).includes(password) && !String(error.stack).includes(password));
    });

    test("without replicas, replica scopes read from the primary and still refuse writes", async () => {
      const { db, events } = open({}, { replicas: [] });
      assert.equal(await db.replica(() => count(db)), 1);
      await assert.rejects(db.replica(() => db.execute(sql`delete from ${table}`)), ReadOnlyError);
      assert.deepEqual(events.map((e) => [e.served, e.reason]), [["primary", "fallback"]]);
    });

    test("table.paginate with replicas: a page and its count run on one replica; after a write, both on the primary", async () => {
      const pages = defineTable(uniqueName("pages"), {
        id: column.integer().primaryKey(),
        n: column.integer().notNull(),
      });
      await setup.schema.createTables([pages]);
      try {
        await setup.executeMany(sql`insert into ${sql.ident(pages.name)} (id, n) values (${0}, ${1})`, [
          [1, 1],
          [2, 2],
          [3, 3],
          [4, 4],
          [5, 5],
        ]);
        // Two replicas taken in turn: a page's queries must not be split between them.
        const { db, events } = open({ reads: "replicas", readYourWrites: 60_000 }, {
          replicas: [replicaUrl!, replicaUrl!],
        });
        const routes = () => {
          const ours = events.filter((e) => e.sql.includes(pages.name)).map((e) =>
            `${e.served}:${e.replica ?? "-"}:${e.reason}`
          );
          events.length = 0;
          return ours;
        };
        const onOne = (seen: string[], served: string, reason: string) => {
          assert.ok(seen.length >= 1, "the page was read");
          assert.ok(seen.every((route) => route === seen[0]), `one server for the page and its count: ${seen}`);
          assert.match(seen[0], new RegExp(`^${served}:[^:]+:${reason}$`));
        };
        // Page 1 of 3: MySQL and MariaDB count in a second query, the others in the page's own.
        for (let turn = 0; turn < 2; turn++) {
          const page = await pages.paginate(db, {}, { page: 1, pageSize: 2 });
          assert.deepEqual([page.items.map((row) => row.id), page.totalRows], [[1, 2], 5]);
          onOne(routes(), "replica", "read");
        }
        await db.replica(async () => {
          const page = await pages.paginate(db, { n: 5 }, { page: 1, pageSize: 1 });
          assert.equal(page.totalRows, 1);
          onOne(routes(), "replica", "replica-scope");
          const keyset = await pages.paginate(db, {}, { pageSize: 2, after: null });
          assert.deepEqual(keyset.items.map((row) => row.id), [1, 2]);
          onOne(routes(), "replica", "replica-scope");
        });
        await db.context(async () => {
          await pages.insert(db, { id: 6, n: 6 });
          routes();
          // Read your writes: the page and its count see the new row, on the primary.
          const page = await pages.paginate(db, {}, { page: 2, pageSize: 2 });
          assert.deepEqual([page.items.map((row) => row.id), page.totalRows], [[3, 4], 6]);
          onOne(routes(), "primary", "read-your-writes");
          const inScope = await db.replica(() => pages.paginate(db, {}, { page: 1, pageSize: 4 }));
          assert.equal(inScope.totalRows, 6);
          onOne(routes(), "primary", "read-your-writes");
        });
      } finally {
        await setup.schema.dropTables([pages]);
      }
    });

    test("readYourWrites keeps a context's reads on the primary after its writes", async () => {
      const { db, events } = open({ reads: "replicas", readYourWrites: 400 });
      const select = sql`select count(*) from ${table}`;
      const where = () => events.at(-1)!.served + ":" + events.at(-1)!.reason;
      await db.fetchVal(select);
      assert.equal(where(), "replica:read");
      const marker = 3_000 + Math.floor(Math.random() * 1_000);
      await db.execute(sql`insert into ${table} (n) values (${marker})`);
      await db.fetchVal(select);
      assert.equal(where(), "primary:read-your-writes", "right after a write, reads stay on the primary");
      await db.replica(() => db.fetchVal(select));
      assert.equal(where(), "primary:read-your-writes", "also in a replica scope");
      await sleep(450);
      await db.fetchVal(select);
      assert.equal(where(), "replica:read", "after the window, reads go back to replicas");

      // Contexts: one caller's write does not pin another caller's reads.
      const written = Promise.withResolvers<void>();
      const routeOf = (text: string) =>
        events.filter((e) => e.sql.includes(text)).map((e) => `${e.served}:${e.reason}`);
      await Promise.all([
        db.context(async () => {
          await db.transaction(() => db.execute(sql`delete from ${table} where n = ${marker}`));
          written.resolve();
          await db.fetchVal(sql`select count(*) as writer from ${table}`);
        }),
        db.context(async () => {
          await written.promise;
          await db.fetchVal(sql`select count(*) as bystander from ${table}`);
        }),
      ]);
      assert.deepEqual(routeOf("writer"), ["primary:read-your-writes"]);
      assert.deepEqual(routeOf("bystander"), ["replica:read"], "another context's write does not pin its reads");
      await db.fetchVal(select);
      assert.equal(where(), "replica:read", "writes inside a context do not pin reads outside it");
      await db.context(async () => {
        await db.fetchOne(sql`insert into ${table} (n) values (${marker}) returning n`);
        await db.fetchVal(select);
        assert.equal(where(), "primary:read-your-writes", "a write made by a fetch counts too");
        await db.execute(sql`delete from ${table} where n = ${marker}`);
      });
    });

    test("the onQuery hook reports every query; a failing hook fails nothing", async () => {
      const { db, events } = open();
      await db.transaction(async (tx) => {
        await tx.fetchVal(sql`select ${1}`);
        await db.fetchAll(sql`select n from ${table}`);
      });
      assert.deepEqual(events.map((e) => [e.served, e.reason, e.method]), [
        ["primary", "held", "fetchOne"],
        ["primary", "held", "fetchAll"],
      ]);
      assert.ok(events.every((e) => typeof e.duration === "number" && e.duration >= 0 && typeof e.sql === "string"));
      await assert.rejects(db.fetchAll(sql`select * from ${uniqueTable("missing")}`), QueryError);
      assert.ok(events.at(-1)!.error instanceof QueryError);
      const throwing = target.open({
        replicas: [replicaUrl],
        onQuery: () => {
          throw new Error("hook failure");
        },
      });
      opened.push(throwing);
      assert.equal(await throwing.replica(() => count(throwing)), 1);
      assert.equal(await count(throwing), 1);
    });

    test("stats show each pool, and each replica's health", async () => {
      const { db } = open({}, { replicas: [replicaUrl, replicaUrl] });
      await db.replica(() => db.fetchVal(sql`select 1`));
      const stats = db.stats();
      assert.equal(stats.replicas.length, 2);
      assert.deepEqual(Object.keys(stats.primary).sort(), ["busy", "idle", "size", "waiting"]);
      const [first] = stats.replicas;
      assert.equal(first.healthy, true);
      assert.equal(first.failures, 0);
      assert.equal(first.size, 1);
      assert.equal(first.idle, 1);
      assert.equal(typeof first.url, "string");
    });
  });
}

describe("routing options", () => {
  test("replicas take their own pool settings", async () => {
    const db = new Database(`sqlite://${tempDatabasePath()}`, {
      replicas: [{ url: `sqlite://${tempDatabasePath()}`, pool: { max: 3 } }],
    });
    assert.deepEqual(db.toJSON().replicas.length, 1);
    await db.close();
  });

  test("isReadStatement reads the first keyword, past comments and parentheses", () => {
    for (
      const text of [
        "select 1",
        " WITH x AS (select 1) select * from x",
        "(select 1)",
        "values (1)",
        "explain select 1",
      ]
    ) {
      assert.equal(isReadStatement(text), true, text);
    }
    for (
      const text of ["insert into t values (1) returning id", "update t set a = 1", "delete from t", "selectx", ""]
    ) {
      assert.equal(isReadStatement(text), false, text);
    }
    assert.equal(isReadStatement("-- c\n/* d */ show tables"), true);
  });
});
