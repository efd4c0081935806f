/** The pool against the real servers: saturation, leaks, killed backends, closing with work in flight. */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ClosedError, Database, type DatabaseOptions, PoolTimeoutError, QueryError, sql } from "../mod.ts";
import { signal, sleep, targets, uniqueName } from "./support.ts";

for (const target of targets().filter((t) => t.dialect !== "sqlite")) {
  const postgres = target.dialect === "postgres";
  describe(`pool on ${target.label}`, () => {
    let observer: Database;
    const tag = uniqueName("app");
    // Postgres names the connections of each instance, so they can be counted exactly.
    const url = postgres ? `${target.url}${target.url.includes("?") ? "&" : "?"}application_name=${tag}` : target.url;
    const open = (options: DatabaseOptions = {}) => new Database(url, options);
    const serverConnections = async (): Promise<number> =>
      Number(
        postgres
          ? await observer.fetchVal(sql`select count(*) from pg_stat_activity where application_name = ${tag}`)
          : await observer.fetchVal(
            sql`select count(*) from information_schema.processlist where user = current_user()`,
          ),
      );
    const backendId = (db: Database) =>
      db.fetchVal<number>(postgres ? sql`select pg_backend_pid()` : sql`select connection_id()`);

    before(async () => {
      observer = target.open({ pool: { max: 1 } });
      await observer.connect();
    });
    after(() => observer.close());

    test("saturation: max busy, 20 waiters, each timeout fires within 100 ms of its value", async () => {
      const db = open({ pool: { max: 3, acquireTimeout: 300 } });
      const release = signal();
      const holders = [1, 2, 3].map(() => db.connection(() => release.promise));
      await sleep(50);
      assert.equal(db.stats().primary.busy, 3);
      const started = Date.now();
      const waits = await Promise.all(
        Array.from({ length: 20 }, () =>
          db.fetchVal(sql`select 1`).then(
            () => ({ ok: true, ms: Date.now() - started, error: undefined }),
            (error) => ({ ok: false, ms: Date.now() - started, error }),
          )),
      );
      for (const { ok, ms, error } of waits) {
        assert.equal(ok, false);
        assert.ok(error instanceof PoolTimeoutError, String(error));
        assert.ok(ms >= 290 && ms < 400, `timed out after ${ms} ms`);
      }
      release.resolve();
      await Promise.all(holders);
      assert.equal(await db.fetchVal(sql`select 1`), 1, "the pool serves again once connections come back");
      await db.close();
    });

    test("no leak after errors: the server-side connection count returns to its baseline", async () => {
      const baseline = await serverConnections();
      const db = open({ pool: { max: 4 } });
      await Promise.all(
        Array.from(
          { length: 40 },
          (_, i) =>
            db.fetchVal(i % 2 ? sql`select * from roost_missing_table` : sql`select 1/0`).then(() => "ok", (e) => e),
        ),
      ).then((results) => {
        for (const result of results) if (result !== "ok") assert.ok(result instanceof QueryError, String(result));
      });
      await assert.rejects(db.transaction(async (tx) => {
        await tx.execute(sql`select 1`);
        throw new Error("abandon");
      }));
      assert.ok((await serverConnections()) <= baseline + 4);
      assert.equal(db.stats().primary.busy, 0);
      await db.close();
      for (let i = 0; i < 20 && (await serverConnections()) > baseline; i++) await sleep(50);
      assert.equal(await serverConnections(), baseline);
    });

    test("a backend killed while idle in the pool is evicted and the next query succeeds", async () => {
      const db = open({ pool: { max: 1 } });
      const id = await backendId(db);
      await observer.execute(postgres ? sql`select pg_terminate_backend(${id})` : sql.unsafe(`KILL ${Number(id)}`));
      await sleep(200);
      assert.equal(await db.fetchVal(sql`select 1`), 1);
      assert.notEqual(await backendId(db), id, "a new connection replaced the killed one");
      await db.close();
    });

    test("close() lets queries in flight finish, refuses new ones, and closes every connection", async () => {
      const baseline = await serverConnections();
      const db = open({ pool: { max: 5 } });
      const slow = postgres ? sql`select pg_sleep(0.3) is null as done` : sql`select sleep(0.3) = 0 as done`;
      const inFlight = Array.from({ length: 5 }, () => db.fetchVal(slow));
      await sleep(50);
      const closing = db.close({ timeout: 5_000 });
      await assert.rejects(db.fetchVal(sql`select 1`), ClosedError);
      const results = await Promise.all(inFlight);
      await closing;
      assert.equal(results.length, 5);
      for (let i = 0; i < 20 && (await serverConnections()) > baseline; i++) await sleep(50);
      assert.equal(await serverConnections(), baseline);
    });
  });
}
