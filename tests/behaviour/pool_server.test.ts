/**
 * The pool against the real servers: saturation, fairness, leaks, killed
 * backends, validation, min, idle timeout, max lifetime and closing with work
 * in flight. Each suite connects to a database of its own, so the server-side
 * counts see only this suite's connections, whatever else runs on the server.
 */
import assert from "node:assert/strict";
import process from "node:process";
import { after, afterEach, before, describe, test } from "node:test";
import {
  ClosedError,
  ConnectionError,
  Database,
  type DatabaseOptions,
  PoolTimeoutError,
  type Queryable,
  QueryError,
  sql,
} from "../../mod.ts";
import { shareWithin } from "../../src/pool.ts";
import { eventually, signal, skipUnless, sleep, uniqueName, uniqueTable, within } from "../support/support.ts";
import { OwnDatabase, serverDialects, serverPlaces, targets } from "../support/targets.ts";

for (const target of targets({ dialects: serverDialects, places: serverPlaces })) {
  const postgres = target.dialect === "postgres";
  describe(`pool on ${target.label}`, () => {
    const own = new OwnDatabase(target, "roost_pool");
    const { name: database, url } = own;
    let observer: Database;
    const instances: Database[] = [];
    /** Opens an instance on this suite's database; whatever a failed test leaves open is closed at the end. */
    const open = (options: DatabaseOptions = {}) => {
      const db = new Database(url, { driver: target.driver, ...options });
      instances.push(db);
      return db;
    };

    const backends = () => own.backends();
    const serverConnections = () => own.connections();
    const serverCountIs = (n: number, what: string, ms?: number) => own.connectionsAre(n, what, ms);
    const backendId = async (q: Queryable) =>
      Number(await q.fetchVal(postgres ? sql`select pg_backend_pid()` : sql`select connection_id()`));
    /** Waits until the server runs `n` of the suite's slow queries (not a driver's set-up statements). */
    const slowQueriesRunning = (n: number) =>
      eventually(`${n} slow queries run on the server`, async () =>
        Number(
          await observer.fetchVal(
            postgres
              ? sql`select count(*) from pg_stat_activity
                  where datname = ${database} and state = 'active' and query like '%sleep(%'`
              : sql`select count(*) from information_schema.processlist where db = ${database} and info like '%sleep(%'`,
          ),
        ), (count) => count === n);
    /** Kills a backend from the server side and waits until it is gone. */
    const kill = async (id: number) => {
      await observer.execute(
        postgres ? sql`select pg_terminate_backend(${id}, 5000)` : sql.unsafe(`KILL ${Number(id)}`),
      );
      await eventually(`backend ${id} is gone`, backends, (ids) => !ids.includes(id));
    };
    /**
     * Cancels the suite's slow queries still running (once a test has seen
     * what it waited for, rather than sleeping out their seconds); each ends
     * with an error or, on MySQL/MariaDB, an interrupted SLEEP's result.
     */
    const cancelSlowQueries = async () => {
      const running = await observer.fetchAll<{ id: number | string }>(
        postgres
          ? sql`select pid as id from pg_stat_activity
              where datname = ${database} and state = 'active' and query like '%sleep(%'`
          : sql`select id from information_schema.processlist where db = ${database} and info like '%sleep(%'`,
      );
      for (const { id } of running) {
        await observer.execute(
          postgres ? sql`select pg_cancel_backend(${Number(id)})` : sql.unsafe(`KILL QUERY ${Number(id)}`),
        );
      }
    };
    /** A query that takes `seconds` and returns 1. */
    const slowQuery = (seconds: number) =>
      postgres ? sql`select 1 as done from pg_sleep(${seconds})` : sql`select sleep(${seconds}) + 1 as done`;

    before(async () => {
      observer = own.observer;
      await own.create();
    });
    // A failed test's instances are closed before the next test counts connections.
    afterEach(async () => {
      await Promise.all(instances.splice(0).map((db) => db.close({ timeout: 100 })));
    });
    after(() => own.drop());

    test("saturation: max busy, 20 waiters, each timeout fires at acquireTimeout and says how long and how big", async () => {
      const db = open({ pool: { max: 3, acquireTimeout: 300 } });
      const release = signal();
      const holders = [1, 2, 3].map(() => db.connection(() => release.promise));
      await eventually("three scopes hold connections", () => db.stats().primary.busy, (busy) => busy === 3);
      const started = Date.now();
      const waits = Array.from({ length: 20 }, () =>
        db.fetchVal(sql`select 1`).then(
          () => ({ ok: true, ms: Date.now() - started, error: undefined }),
          (error) => ({ ok: false, ms: Date.now() - started, error }),
        ));
      await eventually("20 callers wait", () => db.stats().primary.waiting, (waiting) => waiting === 20);
      assert.deepEqual(db.stats().primary, { size: 3, idle: 0, busy: 3, waiting: 20 });
      await serverCountIs(3, "three held");
      for (const { ok, ms, error } of await Promise.all(waits)) {
        assert.equal(ok, false);
        assert.ok(error instanceof PoolTimeoutError, String(error));
        // Never early; the holders never release before the timeouts, so only the pool's timer ends the wait
        // (the upper limit is for a busy machine, not a measurement).
        assert.ok(ms >= 290 && ms < 5_000, `timed out after ${ms} ms`);
        const waited = Number(error.message.match(/no connection became free in (\d+) ms/)?.[1]);
        // Date.now() has millisecond steps, so a timer may seem to fire 1 ms early.
        assert.ok(waited >= 299 && waited < 5_000, error.message);
        assert.match(error.message, /acquireTimeout 300 ms/);
        assert.match(error.message, /3 of 3 busy, max 3/);
      }
      assert.deepEqual(db.stats().primary, { size: 3, idle: 0, busy: 3, waiting: 0 });
      release.resolve();
      await Promise.all(holders);
      assert.deepEqual(db.stats().primary, { size: 3, idle: 3, busy: 0, waiting: 0 });
      assert.equal(await db.fetchVal(sql`select 1`), 1, "the pool serves again once connections come back");
      await db.close();
    });

    test("waiters get connections in the order they asked", async () => {
      const db = open({ pool: { max: 1, acquireTimeout: 5_000 } });
      const release = signal();
      const holder = db.connection(() => release.promise);
      await eventually("the connection is held", () => db.stats().primary.busy, (busy) => busy === 1);
      const order: number[] = [];
      const waiters = [1, 2, 3, 4, 5].map((n) => db.connection(() => order.push(n)));
      await eventually("5 callers wait", () => db.stats().primary.waiting, (waiting) => waiting === 5);
      release.resolve();
      await Promise.all([holder, ...waiters]);
      assert.deepEqual(order, [1, 2, 3, 4, 5]);
      await db.close();
    });

    test("50 statements on a pool of 2: never more connections, and each gets its own answer", async () => {
      const db = open({ pool: { max: 2, acquireTimeout: 5_000 } });
      await db.connect();
      const running = Array.from({ length: 50 }, (_, i) => db.fetchVal<number>(sql`select ${i} + 0 as n`));
      const { busy, waiting, size } = db.stats().primary;
      assert.ok(size <= 2 && busy <= 2, JSON.stringify(db.stats().primary));
      // A pipelining driver queues a few statements on each busy connection (tests/unit/pool_share.test.ts); the rest wait.
      assert.ok(waiting > 0 && waiting <= 48, JSON.stringify(db.stats().primary));
      assert.deepEqual((await Promise.all(running)).map(Number), Array.from({ length: 50 }, (_, i) => i));
      assert.ok((await serverConnections()) <= 2);
      assert.deepEqual(db.stats().primary, { size: 2, idle: 2, busy: 0, waiting: 0 });
      await db.close();
    });

    test("statements sharing one connection each get their own outcome: on a pool of 1, failing ones among 20 in flight fail alone", async () => {
      const db = open({ pool: { max: 1, acquireTimeout: 5_000 } });
      await db.connect();
      // A pipelining driver (postgres.js, Bun.SQL) sends them on the one connection before the first answers.
      const outcomes = await Promise.all(
        Array.from(
          { length: 20 },
          (_, i) =>
            db.fetchVal<number>(i % 3 === 1 ? sql`select * from roost_missing_table` : sql`select ${i} + 0 as n`).then(
              (value) => Number(value),
              (error: unknown) => error,
            ),
        ),
      );
      outcomes.forEach((outcome, i) => {
        if (i % 3 === 1) assert.ok(outcome instanceof QueryError, `statement ${i}: ${String(outcome)}`);
        else assert.equal(outcome, i);
      });
      assert.equal(Number(await db.fetchVal(sql`select 1`)), 1);
      assert.deepEqual(db.stats().primary, { size: 1, idle: 1, busy: 0, waiting: 0 });
      await db.close();
    });

    test("a statement never queues behind a long one: on a pool of 2 busy with a 5 s and a 0.1 s statement, a third ends before the 5 s one", async () => {
      // Warm with one: the long statement takes it as a statement that others may join.
      const db = open({ pool: { min: 1, max: 2, acquireTimeout: 20_000 } });
      await db.connect();
      const settled: string[] = [];
      const long = db.fetchVal(slowQuery(5)).finally(() => settled.push("long"));
      await slowQueriesRunning(1);
      // Past the age up to which a busy connection may still take a statement (a lower bound: load only adds to it).
      await sleep(10 * shareWithin);
      // The short one opens the second connection; the third finds none free and must not join the long one.
      const short = db.fetchVal(slowQuery(0.1)).finally(() => settled.push("short"));
      const third = db.fetchVal(sql`select 1`).finally(() => settled.push("third"));
      assert.equal(Number(await third), 1);
      assert.deepEqual(settled, ["short", "third"], "the third statement ran on the connection the short one freed");
      assert.equal(Number(await short), 1);
      // Seen: the long one need not run its 5 s out.
      const ended = long.catch(() => undefined);
      await cancelSlowQueries();
      await ended;
      await db.close();
    });

    test("acquireTimeout bounds the wait to start: with both connections busy on long statements, an insert fails with PoolTimeoutError and never runs", async () => {
      const db = open({ pool: { min: 2, max: 2, acquireTimeout: 300 } });
      const table = uniqueTable("late");
      await db.execute(sql`create table ${table} (n integer)`);
      await db.connect();
      assert.equal(db.stats().primary.size, 2);
      const settled: string[] = [];
      const longs = [1, 2].map(() => db.fetchVal(slowQuery(5)).finally(() => settled.push("long")));
      await slowQueriesRunning(2);
      // Past the age up to which a busy connection may still take a statement (a lower bound: load only adds to it).
      await sleep(10 * shareWithin);
      const insert = db.execute(sql`insert into ${table} (n) values (1)`).then(
        () => "inserted",
        (error: unknown) => error,
      ).finally(() => settled.push("insert"));
      const outcome = await insert;
      assert.ok(outcome instanceof PoolTimeoutError, String(outcome));
      assert.match(outcome.message, /acquireTimeout 300 ms/);
      assert.deepEqual(settled, ["insert"], "it failed before the long statements ended");
      // Seen: the long ones need not run their 5 s out; ended now, they free their connections as at their end.
      const ended = Promise.allSettled(longs);
      await cancelSlowQueries();
      await ended;
      assert.deepEqual(settled, ["insert", "long", "long"]);
      // Whatever a pool had queued on a connection has run once the long statements ended and the pool closed.
      await db.close();
      const check = open();
      assert.equal(Number(await check.fetchVal(sql`select count(*) from ${table}`)), 0, "the insert never ran");
      await check.execute(sql`drop table ${table}`);
      await check.close();
    });

    test("under a stream of statements, a transaction gets a connection of its own, and nothing rides on it", async () => {
      const db = open({ pool: { max: 2, acquireTimeout: 5_000 } });
      const table = uniqueTable("shared");
      await db.execute(sql`create table ${table} (n integer)`);
      let stop = false;
      const seen: number[] = [];
      const lanes = Array.from({ length: 20 }, async () => {
        while (!stop) seen.push(Number(await db.fetchVal(sql`select count(*) from ${table}`)));
      });
      await sleep(100);
      // A transaction starved by the stream would fail with a PoolTimeoutError after acquireTimeout (5 s).
      await db.transaction(async (tx) => {
        await tx.execute(sql`insert into ${table} (n) values (1)`);
        const before = seen.length;
        await eventually("statements still run beside the transaction", () => seen.length, (n) => n >= before + 20);
        // The row is inserted and not committed: no statement ran on this connection, so none saw it.
        assert.deepEqual(seen.slice(before).filter((n) => n !== 0), []);
      });
      stop = true;
      await Promise.all(lanes);
      assert.equal(Number(await db.fetchVal(sql`select count(*) from ${table}`)), 1);
      await db.execute(sql`drop table ${table}`);
      await db.close();
    });

    test("no leak after errors: the server-side connection count returns to zero", async () => {
      await serverCountIs(0, "the earlier tests' connections are gone");
      const db = open({ pool: { max: 4 } });
      const results = await Promise.all(
        Array.from(
          { length: 40 },
          (_, i) =>
            db.fetchVal(i % 2 ? sql`select * from roost_missing_table` : sql`select 1/0`).then(() => "ok", (e) => e),
        ),
      );
      for (const result of results) if (result !== "ok") assert.ok(result instanceof QueryError, String(result));
      await assert.rejects(db.transaction(async (tx) => {
        await tx.execute(sql`select 1`);
        throw new Error("abandon");
      }));
      assert.ok((await serverConnections()) <= 4);
      assert.equal(db.stats().primary.busy, 0);
      await db.close();
      await serverCountIs(0, "after close");
    });

    test(
      "PGQUERY_TIMEOUT and PGQUEUE_TIMEOUT in the environment time nothing out: a 1.5 s statement completes",
      skipUnless(postgres, "PG* variables are for Postgres clients; the MySQL drivers read none"),
      async () => {
        // postgres.js 4 reads them as its query_timeout and queue_timeout, client-side timeouts that would cancel the
        // statement; Roost's statementTimeout and acquireTimeout are the only ones.
        const saved = { query: process.env.PGQUERY_TIMEOUT, queue: process.env.PGQUEUE_TIMEOUT };
        process.env.PGQUERY_TIMEOUT = "1";
        process.env.PGQUEUE_TIMEOUT = "1";
        try {
          const db = open();
          assert.equal(await db.fetchVal(slowQuery(1.5)), 1);
        } finally {
          for (const [name, value] of [["PGQUERY_TIMEOUT", saved.query], ["PGQUEUE_TIMEOUT", saved.queue]] as const) {
            if (value === undefined) delete process.env[name];
            else process.env[name] = value;
          }
        }
      },
    );

    test(
      "a connection the server refuses as busy (53300) fails at once with the server's error, not retried until connect_timeout",
      skipUnless(
        postgres,
        "a role allowed no connection is Postgres's (MySQL's MAX_USER_CONNECTIONS 0 means unlimited)",
      ),
      async () => {
        // A role allowed no connection at all: the server answers every attempt with 53300, a refusal postgres.js 4
        // would retry until connect_timeout (30 s here); Roost's pool, not the driver, decides about retries.
        const role = uniqueName("roost_busy");
        await observer.execute(sql.unsafe(`create role ${role} login password 'busy' connection limit 0`));
        try {
          const refused = new URL(url);
          refused.username = role;
          refused.password = "busy";
          refused.searchParams.set("connect_timeout", "30");
          const db = new Database(refused.toString(), { driver: target.driver, pool: { acquireTimeout: 60_000 } });
          instances.push(db);
          const error = await within(
            db.fetchVal(sql`select 1`).then(() => undefined, (error: unknown) => error),
            15_000,
            "the refused connection's query",
          );
          assert.ok(error instanceof ConnectionError, `expected a ConnectionError, got ${error}`);
          assert.equal(error.code, "53300");
          assert.match(error.message, /too many connections for role/);
        } finally {
          await observer.execute(sql.unsafe(`drop role if exists ${role}`));
        }
      },
    );

    test("a backend killed while idle in the pool is evicted and the next query succeeds on a new one", async () => {
      const db = open({ pool: { max: 1, validateAfter: 100 } });
      const id = await backendId(db);
      await kill(id);
      await sleep(150); // idle longer than validateAfter: the pool checks it before handing it out
      assert.equal(await db.fetchVal(sql`select 1`), 1);
      assert.notEqual(await backendId(db), id, "a new connection replaced the killed one");
      assert.equal(db.stats().primary.size, 1);
      await db.close();
    });

    test("a backend killed inside a transaction fails it with a ConnectionError; none of it commits", async () => {
      const db = open({ pool: { max: 1 } });
      const table = uniqueTable("killed");
      await db.execute(sql`create table ${table} (n integer primary key)`);
      const outcome = await db.transaction(async (tx) => {
        await tx.execute(sql`insert into ${table} (n) values (1)`);
        await kill(await backendId(tx));
        await sleep(100); // let the client see the socket close: it must not reconnect and carry on outside the transaction
        await tx.execute(sql`insert into ${table} (n) values (2)`);
      }).then(() => "committed", (error) => error);
      assert.ok(outcome instanceof ConnectionError, String(outcome));
      assert.deepEqual(await db.fetchAll(sql`select n from ${table}`), []);
      assert.deepEqual(db.stats().primary, { size: 1, idle: 1, busy: 0, waiting: 0 });
      await db.execute(sql`drop table ${table}`);
      await db.close();
    });

    test("a backend killed during executeMany: all of it or none of it commits, never a part", async () => {
      const db = open({ pool: { max: 1 } });
      const table = uniqueTable("killed_batch");
      await db.execute(sql`create table ${table} (n integer)`);
      const id = await backendId(db);
      const rows = Array.from({ length: 100_000 }, (_, i) => [i]);
      let settled = false;
      const outcome = db.executeMany(sql`insert into ${table} (n) values (${0})`, rows).then(() => "ok", (e) => e)
        .finally(() => settled = true);
      // Kill it once the server runs the inserts (postgres.js pipelines them; the rest is queued client-side).
      await eventually("the batch runs on the server", async () =>
        settled || Number(
            await observer.fetchVal(
              postgres
                ? sql`select count(*) from pg_stat_activity where pid = ${id} and query like 'insert into%'`
                : sql`select count(*) from information_schema.processlist where id = ${id} and info like 'insert into%'`,
            ),
          ) > 0, (running) => running);
      if (!settled) await kill(id);
      const result = await outcome;
      const committed = Number(await db.fetchVal(sql`select count(*) from ${table}`));
      if (result === "ok") assert.equal(committed, rows.length);
      else {
        assert.ok(result instanceof ConnectionError, String(result));
        assert.equal(committed, 0, "statements queued behind the kill ran outside the batch's transaction");
      }
      await db.execute(sql`drop table ${table}`);
      await db.close();
    });

    test("validateAfter 0: a dead connection is replaced before it is handed out, even at once", async () => {
      const db = open({ pool: { max: 1, validateAfter: 0 } });
      const id = await backendId(db);
      await kill(id);
      assert.notEqual(await backendId(db), id, "the query ran, on a new connection");
      await serverCountIs(1, "the dead connection was not kept");
      await db.close();
    });

    test("min: connect() opens min connections, and a killed one is replaced in the background", async () => {
      const db = open({ pool: { min: 3, max: 5, idleTimeout: 100 } });
      await db.connect();
      assert.deepEqual(db.stats().primary, { size: 3, idle: 3, busy: 0, waiting: 0 });
      const opened = await eventually("three connections", backends, (ids) => ids.length === 3);
      await kill(opened[0]);
      const refilled = await eventually(
        "the pool refills to min",
        backends,
        (ids) => ids.length === 3 && !ids.includes(opened[0]),
      );
      assert.deepEqual(refilled.filter((id) => opened.includes(id)), opened.slice(1), "the others were kept");
      // The server sees a connection before the driver has finished opening it: wait for the pool too.
      await eventually("the new connection is idle in the pool", () => db.stats().primary, (stats) => stats.idle === 3);
      assert.deepEqual(db.stats().primary, { size: 3, idle: 3, busy: 0, waiting: 0 });
      await sleep(250); // well past idleTimeout: connections at min stay
      assert.deepEqual(await backends(), refilled);
      await db.close();
      await serverCountIs(0, "after close");
    });

    test("idleTimeout closes idle connections above min on the server", async () => {
      const db = open({ pool: { min: 1, max: 4, idleTimeout: 150 } });
      await db.connect();
      const release = signal();
      const scopes = [1, 2, 3, 4].map(() => db.connection(() => release.promise));
      await serverCountIs(4, "four scopes at once");
      release.resolve();
      await Promise.all(scopes);
      const idleFrom = Date.now();
      await serverCountIs(1, "idle connections above min closed");
      assert.ok(Date.now() - idleFrom >= 140, `closed after only ${Date.now() - idleFrom} ms`);
      assert.deepEqual(db.stats().primary, { size: 1, idle: 1, busy: 0, waiting: 0 });
      await db.close();
    });

    test("maxLifetime retires an idle connection after its lifetime", async () => {
      const db = open({ pool: { max: 1, maxLifetime: 300 } });
      const first = await backendId(db);
      const openedAt = Date.now();
      await serverCountIs(0, "the expired connection closed");
      assert.ok(Date.now() - openedAt >= 280, `retired after only ${Date.now() - openedAt} ms`);
      assert.notEqual(await backendId(db), first);
      await db.close();
    });

    test("maxLifetime never retires a connection inside a query, transaction or connection scope", async () => {
      const db = open({ pool: { max: 1, maxLifetime: 150 } });
      const inTransaction = await db.transaction(async (tx) => {
        const ids: number[] = [];
        for (let i = 0; i < 5; i++) {
          ids.push(await backendId(tx));
          await sleep(60);
        }
        return ids;
      });
      assert.equal(new Set(inTransaction).size, 1, `one backend for the whole transaction: ${inTransaction}`);
      const inScope = await db.connection(async (conn) => {
        const id = await backendId(conn);
        assert.equal(Number(await conn.fetchVal(slowQuery(0.3))), 1, "a query longer than the lifetime completes");
        return [id, await backendId(conn)];
      });
      assert.notEqual(inScope[0], inTransaction[0], "retired once the transaction ended");
      assert.equal(inScope[0], inScope[1], "one backend for the whole scope");
      await eventually("retired once the scope ended", backends, (ids) => !ids.includes(inScope[0]));
      await db.close();
    });

    test("close() lets queries in flight finish, refuses new ones, and closes every connection", async () => {
      const db = open({ pool: { max: 5 } });
      const inFlight = Array.from({ length: 5 }, () => db.fetchVal(slowQuery(0.3)).then(Number));
      // Callers still waiting for a connection to open when close() is called get a ClosedError: wait until all run.
      await slowQueriesRunning(5);
      const closing = db.close({ timeout: 5_000 });
      await assert.rejects(db.fetchVal(sql`select 1`), ClosedError);
      assert.deepEqual(await Promise.all(inFlight), [1, 1, 1, 1, 1]);
      await closing;
      await serverCountIs(0, "after close");
    });

    test("close() waits no longer than its timeout, then closes the connections still busy", async () => {
      const db = open({ pool: { max: 2 } });
      const idle = db.fetchVal(sql`select 1`);
      const slow = db.fetchVal(slowQuery(6)).then(() => "finished", (error) => error);
      await idle;
      await slowQueriesRunning(1);
      assert.equal(db.stats().primary.busy, 1);
      const started = Date.now();
      await db.close({ timeout: 100 });
      const took = Date.now() - started;
      // Well before the statement's 6 s: close() did not wait for it.
      assert.ok(took >= 90 && took < 3_000, `close took ${took} ms`);
      assert.equal(db.stats().primary.size, 0);
      const outcome = await slow; // the driver may let it finish or cut it off, but it settles
      assert.ok(outcome === "finished" || outcome instanceof Error, String(outcome));
      await serverCountIs(0, "after the forced close", 10_000);
    });
  });
}
