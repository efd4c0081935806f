/**
 * `connectionScope: "context"` on every target: each `db.context()` opens
 * connections of its own (a pool per server, sharing a Worker's 6 sockets per
 * request) and closes them before it returns; outside any context each
 * statement or scope opens a connection of its own and closes it after; a
 * replica that fails is retried by the reads that come once its recheck is
 * due, never by a timer. The server suites use a database of their own, so
 * the server-side counts see only their connections.
 */
import assert from "node:assert/strict";
import { after, afterEach, before, describe, test } from "node:test";
import {
  ClosedError,
  type Connection,
  ConnectionError,
  Database,
  type DatabaseOptions,
  type Queryable,
  type QueryEvent,
  type ReplicaStats,
  RoostError,
  sql,
  type Transaction,
} from "../../mod.ts";
import { signal, sleep, tempDatabasePath, uniqueTable, within } from "../support/support.ts";
import { OwnDatabase, type Target, targets } from "../support/targets.ts";

/** What the scopes under test have in common: `db`, a context's handle. */
interface Runner extends Queryable {
  connection<T>(fn: (conn: Connection) => Promise<T> | T): Promise<T>;
  transaction<T>(fn: (tx: Transaction) => Promise<T> | T): Promise<T>;
  begin(): Promise<Transaction>;
}

type Table = ReturnType<typeof uniqueTable>;

/**
 * Runs every kind of call through `q` on an empty `table (n integer)`,
 * checking the results; `db.*` calls made inside `q`'s transaction and
 * connection scopes must join them.
 */
async function exercise(q: Runner, db: Database, table: Table): Promise<void> {
  const insert = (n: number) => sql`insert into ${table} (n) values (${n})`;
  const numbers = async (on: Queryable = q) =>
    (await on.fetchAll<{ n: unknown }>(sql`select n from ${table} order by n`)).map((row) => Number(row.n));
  const count = async (on: Queryable = q) => Number(await on.fetchVal(sql`select count(*) from ${table}`));

  assert.equal((await q.execute(insert(1))).rowCount, 1);
  assert.equal((await q.executeMany(sql`insert into ${table} (n) values (${0})`, [[2], [3]])).rowCount, 2);
  assert.deepEqual(await numbers(), [1, 2, 3]);
  assert.equal(Number((await q.fetchOne<{ n: unknown }>(sql`select n from ${table} where n = ${2}`))?.n), 2);
  assert.equal(await q.fetchOne(sql`select n from ${table} where n = ${99}`), undefined);
  assert.equal(await count(), 3);
  const streamed: number[] = [];
  for await (
    const row of q.iterate<{ n: unknown }>(sql`select n from ${table} order by n`, undefined, { batchSize: 2 })
  ) {
    streamed.push(Number(row.n));
  }
  assert.deepEqual(streamed, [1, 2, 3]);

  const committed = await q.transaction(async (tx) => {
    await tx.execute(insert(4));
    await db.execute(insert(5)); // joins the transaction
    return await count(db);
  });
  assert.equal(committed, 5, "db.* inside the transaction callback saw its uncommitted rows");
  await assert.rejects(
    q.transaction(async (tx) => {
      await tx.execute(insert(6));
      await db.execute(insert(7));
      assert.equal(await count(tx), 7);
      throw new Error("roll it back");
    }),
    /roll it back/,
  );
  assert.deepEqual(await numbers(), [1, 2, 3, 4, 5]);

  // A temporary table exists only on the connection that made it: db.* inside the scope use that connection.
  const temp = uniqueTable("temp");
  const inScope = await q.connection(async (conn) => {
    await conn.execute(sql`create temporary table ${temp} (n integer)`);
    await conn.execute(sql`insert into ${temp} (n) values (${1})`);
    await db.execute(sql`insert into ${temp} (n) values (${2})`);
    await conn.execute(insert(8));
    const seen = Number(await db.fetchVal(sql`select count(*) from ${temp}`));
    await conn.execute(sql`drop table ${temp}`);
    return seen;
  });
  assert.equal(inScope, 2);

  const tx = await q.begin();
  await tx.execute(insert(9));
  assert.equal(Number(await tx.fetchVal(sql`select count(*) from ${table} where n = ${9}`)), 1);
  await tx.commit();
  assert.equal(tx.active, false);
  const undone = await q.begin();
  await undone.execute(insert(10));
  await undone.rollback();
  assert.equal(undone.active, false);
  assert.deepEqual(await numbers(), [1, 2, 3, 4, 5, 8, 9]);
  assert.deepEqual(await numbers(db), [1, 2, 3, 4, 5, 8, 9]);
}

/** A replica that cannot connect: a closed port, or a SQLite file that does not exist (yet), read-only. */
function unreachableReplica(target: Target, path: string): string {
  if (target.dialect !== "sqlite") {
    const url = new URL(target.url);
    url.hostname = "127.0.0.1";
    url.port = "1";
    return url.toString();
  }
  return `sqlite://${path}?mode=ro${target.url.includes("worker=true") ? "&worker=true" : ""}`;
}

for (const target of targets({ places: ["sqlite file", "sqlite worker", "postgres", "mysql"] })) {
  const server = target.dialect !== "sqlite";
  const postgres = target.dialect === "postgres";

  describe(`connectionScope "context" on ${target.label}`, () => {
    // Servers: a database of the suite's own, so counts see only its connections; SQLite: the target's file.
    const own = server ? new OwnDatabase(target, "roost_ctx") : undefined;
    const url = own?.url ?? target.url;
    const instances: Database[] = [];
    const tables: Table[] = [];

    /** An instance with connections scoped to contexts; whatever a failed test leaves open is closed after it. */
    const open = (options: DatabaseOptions = {}) => {
      const db = new Database(url, { driver: target.driver, connectionScope: "context", ...options });
      instances.push(db);
      return db;
    };
    const newTable = async (db: Database) => {
      const table = uniqueTable("ctx");
      await db.execute(sql`create table ${table} (n integer)`);
      tables.push(table);
      return table;
    };

    const serverCountIs = (n: number, what: string, ms = 5_000) => own!.connectionsAre(n, what, ms);
    const backendId = async (q: Queryable) =>
      Number(await q.fetchVal(postgres ? sql`select pg_backend_pid()` : sql`select connection_id()`));
    /** Sleeps ~50 ms, then reports how many connections the suite's database has (`n`) and its own id. */
    const crowd = postgres
      ? sql`select (select count(*) from pg_stat_activity
            where datname = current_database() and backend_type = 'client backend') as n,
          pg_backend_pid() as id
        from pg_sleep(${0.05})`
      : sql`select (select count(*) from information_schema.processlist where db = database()) as n,
          connection_id() as id
        from (select sleep(${0.05}) as slept) as s`;
    const crowdOf = async (q: Queryable) => {
      const row = await q.fetchOne<{ n: unknown; id: unknown }>(crowd);
      return { n: Number(row!.n), id: Number(row!.id) };
    };
    /** A query that takes `seconds` and returns 1. */
    const slowQuery = (seconds: number) =>
      postgres ? sql`select 1 as done from pg_sleep(${seconds})` : sql`select sleep(${seconds}) + 1 as done`;

    before(() => own?.create());
    afterEach(async () => {
      await Promise.all(instances.splice(0).map((db) => db.close({ timeout: 100 })));
    });
    after(async () => {
      await Promise.all(instances.splice(0).map((db) => db.close({ timeout: 100 })));
      const cleaner = new Database(url, { driver: target.driver, connectionScope: "context" });
      try {
        for (const table of tables) await cleaner.execute(sql`drop table if exists ${table}`);
      } finally {
        await cleaner.close();
      }
      await own?.drop();
    });

    test("queries, transactions, executeMany, iterate, connection() and begin() work through the context's handle", async () => {
      const db = open();
      const table = await newTable(db);
      const handle = await db.context(async (scope) => {
        assert.equal(scope.route, "auto");
        await exercise(scope, db, table);
        return scope;
      });
      assert.equal(handle.route, "auto");
      assert.deepEqual(db.stats().primary, { size: 0, idle: 0, busy: 0, waiting: 0 }, "nothing kept outside");
      await db.close();
    });

    test("the same through db.* inside the context, and in a nested context", async () => {
      const db = open();
      const table = await newTable(db);
      await db.context(() => exercise(db, db, table));
      const nested = await newTable(db);
      await db.context(() => db.context((inner) => exercise(inner, db, nested)));
      await db.close();
    });

    test("the same outside any context, one connection per statement or scope", async () => {
      const db = open({ pool: { max: 1, acquireTimeout: 1_000 } });
      const table = await newTable(db);
      await exercise(db, db, table);
      assert.deepEqual(db.stats().primary, { size: 0, idle: 0, busy: 0, waiting: 0 }, "no connection kept");
      await db.close();
    });

    test("a begin() left open when its context ends is never committed, and its connection is closed", async () => {
      const db = open({ pool: { max: 2 } });
      const table = await newTable(db);
      let leftOpen: Transaction | undefined;
      // Nothing ever ends the transaction: the context must cut it off instead of waiting for it.
      await within(
        db.context(async (scope) => {
          await scope.execute(sql`insert into ${table} (n) values (${1})`);
          await db.execute(sql`insert into ${table} (n) values (${3})`);
          leftOpen = await scope.begin();
          await leftOpen.execute(sql`insert into ${table} (n) values (${2})`);
          assert.equal(Number(await leftOpen.fetchVal(sql`select count(*) from ${table}`)), 3);
          // Servers: another connection of the context writes meanwhile, and that commits (SQLite would be locked).
          if (server) await scope.execute(sql`insert into ${table} (n) values (${4})`);
        }),
        10_000,
        "the context's end, its begin() still open (the held connection was not cut off)",
      );
      const kept = server ? [1, 3, 4] : [1, 3];
      if (server) await serverCountIs(0, "the context's connections closed, the open transaction's included");
      const other = open();
      assert.deepEqual(
        (await other.fetchAll<{ n: unknown }>(sql`select n from ${table} order by n`)).map((row) => Number(row.n)),
        kept,
        "the uncommitted insert is gone",
      );
      // Servers: a ConnectionError (the connection is gone); SQLite: a QueryError ("database is not open").
      await assert.rejects(leftOpen!.commit(), RoostError, "committing after the context ended fails");
      assert.deepEqual(
        (await other.fetchAll<{ n: unknown }>(sql`select n from ${table} order by n`)).map((row) => Number(row.n)),
        kept,
        "a late commit commits nothing",
      );
      // Nothing holds a lock on the table any more (SQLite: the write lock of the open transaction).
      await other.execute(sql`delete from ${table}`);
      await Promise.all([db.close(), other.close()]);
      if (server) await serverCountIs(0, "after close");
    });

    test("a replica that cannot connect leaves the rotation and is tried again only by a read once due", async () => {
      const missing = tempDatabasePath();
      // Outside contexts every read opens a connection (with worker=true, a thread: a few hundred ms on Deno); the
      // recheck delay must leave room for several reads before it is due: 300 ms, or more where connecting is slow.
      const timing = open();
      const from = Date.now();
      for (let i = 0; i < 2; i++) await timing.fetchVal(sql`select 1`);
      const recheck = Math.max(300, Math.ceil((Date.now() - from) * 6 / 100) * 100);
      await timing.close();
      const events: QueryEvent[] = [];
      const db = open({
        replicas: [unreachableReplica(target, missing)],
        // Its cap follows, so a long calibrated delay still doubles twice.
        routing: { reads: "replicas", recheckAfter: recheck, maxRecheckAfter: 4 * recheck },
        onQuery: (event) => events.push(event),
      });
      const replicaTries = () => events.filter((e) => e.served === "replica").length;
      const replica = (): ReplicaStats => db.stats().replicas[0];
      const read = async (via: Queryable = db) => Number(await via.fetchVal(sql`select 1 as one`));
      /** Reads (through `fn`) and returns the time window in which the replica's next check was set. */
      const timed = async (fn: () => Promise<number>) => {
        const from = Date.now();
        assert.equal(await fn(), 1, "reads keep succeeding");
        return { from, to: Date.now() };
      };

      let window = await timed(() => read());
      assert.deepEqual(events.map((e) => [e.served, e.reason, e.error instanceof ConnectionError]), [
        ["replica", "read", true],
        ["primary", "fallback", false],
      ]);
      let stats = replica();
      assert.equal(stats.healthy, false);
      assert.equal(stats.failures, 1);
      assert.equal(typeof stats.lastError, "string");
      assert.ok(
        stats.nextCheck! >= window.from + recheck && stats.nextCheck! <= window.to + recheck,
        `nextCheck ${stats.nextCheck! - window.from} ms after the read began (recheckAfter ${recheck})`,
      );
      const firstCheck = stats.nextCheck!;

      // Before the check is due, reads (outside and inside contexts) leave it alone.
      assert.equal(await read(), 1);
      assert.equal(await db.context((scope) => read(scope)), 1);
      assert.equal(replicaTries(), 1, "the replica was not tried again before its check was due");
      assert.equal(replica().failures, 1);

      // Past the check, with no read: nothing runs in the background.
      await sleep(firstCheck - Date.now() + 100);
      stats = replica();
      assert.deepEqual([stats.healthy, stats.failures, stats.nextCheck], [false, 1, firstCheck], "no timer ran");

      // The next read (here in a context) takes it on trial; it fails again and waits twice as long.
      window = await timed(() => db.context((scope) => read(scope)));
      assert.equal(replicaTries(), 2, "the trial read tried the replica once");
      stats = replica();
      assert.equal(stats.healthy, false);
      assert.equal(stats.failures, 2);
      assert.ok(
        stats.nextCheck! >= window.from + 2 * recheck && stats.nextCheck! <= window.to + 2 * recheck,
        `nextCheck ${stats.nextCheck! - window.from} ms after the trial read began (${2 * recheck} expected)`,
      );
      assert.equal(await read(), 1);
      assert.equal(replicaTries(), 2, "not tried again before the doubled delay");
      const secondCheck = stats.nextCheck!;

      if (server) {
        await sleep(secondCheck - Date.now() + 50);
        assert.equal(replica().failures, 2, "no timer ran");
        window = await timed(() => read());
        stats = replica();
        assert.deepEqual([stats.healthy, stats.failures], [false, 3]);
        assert.ok(stats.nextCheck! >= window.from + 4 * recheck && stats.nextCheck! <= window.to + 4 * recheck);
        assert.equal(replicaTries(), 3);
        await db.close();
        return;
      }

      // SQLite: the replica's file appears; only a read after its check is due brings it back.
      const maker = new Database(`sqlite://${missing}`, { driver: target.driver });
      await maker.execute(sql`create table ${uniqueTable("made")} (n integer)`);
      await maker.close();
      await sleep(secondCheck - Date.now() + 50);
      stats = replica();
      assert.deepEqual([stats.healthy, stats.failures], [false, 2], "no timer brought it back");
      events.length = 0;
      assert.equal(await read(), 1);
      assert.deepEqual(events.map((e) => [e.served, e.replica, e.reason, e.error]), [
        ["replica", 0, "read", undefined],
      ]);
      stats = replica();
      assert.deepEqual(
        [stats.healthy, stats.failures, stats.nextCheck, stats.lastError, stats.downSince],
        [true, 0, undefined, undefined, undefined],
        "its trial connection made it healthy",
      );
      assert.equal(await db.context((scope) => read(scope)), 1);
      assert.deepEqual(events.map((e) => [e.served, e.replica, e.reason]).at(-1), ["replica", 0, "read"]);
      await db.close();
    });

    test("a handle used after its context ended is a ClosedError, not a query somewhere else", async () => {
      const db = open();
      let kept: Queryable | undefined;
      assert.equal(Number(await db.context((scope) => (kept = scope).fetchVal(sql`select 1`))), 1);
      await assert.rejects(kept!.fetchVal(sql`select 1`), ClosedError);
      await db.close();
    });

    if (!server) return;

    test("a statement in flight when its context ends is cut off at once, and its connection closed", async () => {
      const db = open();
      let inFlight: Promise<unknown> | undefined;
      await db.context(async (scope) => {
        inFlight = scope.fetchVal(slowQuery(8)).catch((error: unknown) => error);
        await serverCountIs(1, "the slow query's connection is open");
        await sleep(100);
      });
      const ended = Date.now();
      const outcome = await inFlight;
      assert.ok(outcome instanceof ConnectionError, `the cut-off query fails with a ConnectionError: ${outcome}`);
      // A generous limit, well before the statement's 8 s: only a wait for the statement would reach it.
      assert.ok(
        Date.now() - ended < 4_000,
        "it failed as soon as the context ended, not when the statement would have",
      );
      // The server runs the statement to its end before it notices the closed socket.
      await serverCountIs(0, "the backend is gone once the statement ends", 15_000);
      await db.close();
    });

    test("close() also closes the connections of contexts still running", async () => {
      const db = open();
      const release = signal();
      const running = db.context((scope) => scope.connection(() => release.promise)).catch((error) => error);
      await serverCountIs(1, "the context holds a connection");
      // The context never releases its connection before close() resolves: close() must not wait for it.
      await within(db.close({ timeout: 200 }), 10_000, "close() with a context holding its connection");
      await serverCountIs(0, "closed by close()");
      release.resolve();
      await running;
    });

    for (const { max, limit } of [{ max: 10, limit: 6 }, { max: 4, limit: 4 }]) {
      test(`pool.max ${max}: a context's concurrent queries use at most ${limit} connections, closed when it returns`, async () => {
        await serverCountIs(0, "no connection of an earlier test is left");
        const db = open({ pool: { max } });
        const seen = await db.context((scope) =>
          Promise.all(Array.from({ length: 12 }, () => scope.fetchVal(crowd).then(Number)))
        );
        const most = Math.max(...seen);
        assert.ok(most <= limit, `at most ${limit} connections at once, saw ${most} (${seen})`);
        assert.ok(most >= 2, `the queries ran concurrently (saw ${seen})`);
        await serverCountIs(0, "right after db.context() resolved");
        await db.close();
        await serverCountIs(0, "after close");
      });
    }

    for (const replicas of [1, 2]) {
      const limit = Math.floor(6 / (1 + replicas));
      test(`with ${replicas} replica(s) a context uses at most ${limit} connections per server, closed when it returns`, async () => {
        await serverCountIs(0, "no connection of an earlier test is left");
        let chosen = 0;
        const db = open({
          pool: { max: 10 },
          replicas: Array.from({ length: replicas }, () => url),
          routing: { picker: (candidates) => candidates.findIndex((c) => c.index === chosen) },
        });
        const twelve = (run: () => Promise<{ n: number; id: number }>) => Promise.all(Array.from({ length: 12 }, run));
        const phases = await db.context(async (scope) => {
          const primary = await twelve(() => crowdOf(scope));
          const byReplica: { n: number; id: number }[][] = [];
          for (let i = 0; i < replicas; i++) {
            chosen = i;
            byReplica.push(await twelve(() => scope.replica((r) => crowdOf(r))));
          }
          chosen = 0;
          const mixed = await Promise.all([
            twelve(() => crowdOf(scope)),
            twelve(() => scope.replica((r) => crowdOf(r))),
            twelve(() => db.primary(() => crowdOf(db))),
          ]);
          return { primary, byReplica, mixed: mixed.flat() };
        });
        const ids = (rows: { id: number }[]) => new Set(rows.map((row) => row.id));
        const primaryIds = ids(phases.primary);
        assert.ok(primaryIds.size <= limit && primaryIds.size >= 2, `primary connections: ${[...primaryIds]}`);
        assert.ok(Math.max(...phases.primary.map((r) => r.n)) <= limit, "only the primary's were open then");
        const all = new Set(primaryIds);
        for (const [i, rows] of phases.byReplica.entries()) {
          const replicaIds = ids(rows);
          assert.ok(replicaIds.size <= limit && replicaIds.size >= 2, `replica ${i} connections: ${[...replicaIds]}`);
          for (const id of replicaIds) {
            assert.ok(!all.has(id), "each server's connections are its own");
            all.add(id);
          }
        }
        for (const id of ids(phases.mixed)) assert.ok(all.has(id), "the context reused its connections");
        const everything = [...phases.primary, ...phases.byReplica.flat(), ...phases.mixed];
        assert.ok(Math.max(...everything.map((r) => r.n)) <= 6, "never more than 6 connections in all");
        await serverCountIs(0, "right after db.context() resolved");
        await db.close();
        await serverCountIs(0, "after close");
      });
    }

    test("outside any context each statement opens and closes a connection of its own, never waiting for others", async () => {
      await serverCountIs(0, "no connection of an earlier test is left");
      const db = open({ pool: { max: 1, acquireTimeout: 300 } });
      const first = await backendId(db);
      const second = await backendId(db);
      assert.notEqual(first, second, "no connection is reused");
      await serverCountIs(0, "after two statements");
      // pool.max 1 does not make concurrent statements or scopes wait for each other: all four wait for a row lock
      // that another instance holds, each on a connection of its own, until the server has seen all of them.
      const table = await newTable(db);
      await db.execute(sql`insert into ${table} (n) values (${1})`);
      const lockRow = sql`select n from ${table} where n = ${1} for update`;
      const locker = open();
      const locked = signal();
      const unlock = signal();
      const holding = locker.transaction(async (tx) => {
        await tx.fetchVal(lockRow);
        locked.resolve();
        await unlock.promise;
      });
      await locked.promise;
      const concurrent = Promise.all([
        db.fetchVal(lockRow).then(Number),
        db.fetchVal(lockRow).then(Number),
        db.connection((conn) => conn.fetchVal(lockRow).then(Number)),
        db.transaction((tx) => tx.fetchVal(lockRow).then(Number)),
      ]);
      await serverCountIs(5, "the lock's holder and the four statements waiting for it side by side");
      unlock.resolve();
      await holding;
      assert.deepEqual(await concurrent, [1, 1, 1, 1]);
      await locker.close();
      const ids = await Promise.all([backendId(db), db.connection((conn) => backendId(conn))]);
      assert.ok(!ids.includes(first) && !ids.includes(second) && ids[0] !== ids[1]);
      assert.deepEqual(db.stats().primary, { size: 0, idle: 0, busy: 0, waiting: 0 });
      await serverCountIs(0, "after the scopes");
      await db.close();
      await serverCountIs(0, "after close");
    });

    test("a nested context uses the enclosing context's connection and keeps its own read-your-writes clock", async () => {
      await serverCountIs(0, "no connection of an earlier test is left");
      const events: QueryEvent[] = [];
      const db = open({
        pool: { max: 1, acquireTimeout: 2_000 },
        replicas: [url],
        routing: { reads: "replicas", readYourWrites: 60_000 },
        onQuery: (event) => events.push(event),
      });
      const table = await newTable(db);
      const last = () => `${events.at(-1)!.served}:${events.at(-1)!.reason}`;
      await db.context(async (outer) => {
        const outerId = await db.primary(() => backendId(db));
        const replicaId = await backendId(outer);
        assert.equal(last(), "replica:read");
        const inner = await db.context(async (inner) => {
          const ids = [await inner.primary((p) => backendId(p)), await db.primary(() => backendId(db))];
          await inner.execute(sql`insert into ${table} (n) values (${1})`);
          ids.push(await backendId(inner));
          assert.equal(last(), "primary:read-your-writes", "the nested context's write pins its reads");
          return ids;
        });
        assert.deepEqual(inner, [outerId, outerId, outerId], "the nested context ran on the outer's connection");
        assert.equal(await backendId(outer), replicaId, "the outer context's replica connection is still open");
        assert.equal(last(), "replica:read", "the nested context's write does not pin the outer's reads");
        assert.equal(await db.primary(() => backendId(db)), outerId, "and so is its primary connection");
        await serverCountIs(2, "one connection per server, the nested context's included");
      });
      await serverCountIs(0, "right after db.context() resolved");
      await db.close();
      await serverCountIs(0, "after close");
    });
  });
}
