/** Lazy connection, close, the pool's limits and the registry. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ClosedError, ConnectionError, Database, PoolTimeoutError, QueryError, RegistryError, sql } from "../../mod.ts";
import { signal, sleep, tempDatabasePath, uniqueName, within } from "../support/support.ts";
import { targets } from "../support/targets.ts";

describe("connecting and closing", () => {
  test("nothing connects before the first query", async () => {
    const db = new Database("sqlite:///roost-no-such-directory/x.db");
    assert.deepEqual(db.stats().primary, { size: 0, idle: 0, busy: 0, waiting: 0 });
    await assert.rejects(db.fetchVal(sql`select 1`), ConnectionError);
    await assert.rejects(db.connect(), ConnectionError);
    await db.close();
  });

  test("connect() opens the pool's first connections", async () => {
    const db = new Database(`sqlite://${tempDatabasePath()}`, { pool: { min: 2 } });
    await db.connect();
    assert.deepEqual(db.stats().primary, { size: 2, idle: 2, busy: 0, waiting: 0 });
    await db.close();
    assert.equal(db.stats().primary.size, 0);
  });

  for (const target of targets()) {
    test(`queries after close() reject with ClosedError (${target.label})`, async () => {
      const db = target.open();
      assert.equal(await db.fetchVal(sql`select 1`), 1);
      const closing = db.close();
      assert.equal(db.close(), closing, "closing twice returns the same promise");
      await closing;
      assert.equal(db.closed, true);
      await assert.rejects(db.execute(sql`select 1`), ClosedError);
      await assert.rejects(db.fetchAll(sql`select 1`), ClosedError);
      await assert.rejects(db.executeMany(sql`select ${0}`, [[1]]), ClosedError);
      await assert.rejects(db.transaction(() => {}), ClosedError);
      await assert.rejects(db.begin(), ClosedError);
      await assert.rejects(db.connection(() => {}), ClosedError);
      await assert.rejects(db.iterate(sql`select 1`).next(), ClosedError);
    });
  }

  test("await using closes the database at the end of the block", async () => {
    let kept: Database;
    {
      await using db = new Database("sqlite::memory:");
      kept = db;
      await db.fetchVal(sql`select 1`);
    }
    assert.equal(kept.closed, true);
    await assert.rejects(kept.fetchVal(sql`select 1`), ClosedError);
  });

  test("close() lets a scope in flight finish, then closes", async () => {
    const db = new Database(`sqlite://${tempDatabasePath()}`);
    let finished = false;
    const work = db.connection(async (conn) => {
      await sleep(30);
      await conn.fetchVal(sql`select 1`);
      finished = true;
    });
    await sleep(5);
    await db.close();
    await work;
    assert.equal(finished, true);
  });

  test("sqlite::memory: is one database for the instance's whole life", async () => {
    const db = new Database("sqlite::memory:", { pool: { max: 5, idleTimeout: 1 } });
    await db.execute(sql`create table kept (n integer)`);
    await sleep(20);
    await Promise.all([1, 2, 3].map((n) => db.execute(sql`insert into kept values (${n})`)));
    assert.equal(await db.fetchVal(sql`select count(*) from kept`), 3);
    assert.equal(db.stats().primary.size, 1);
    await db.close();
  });
});

describe("pool", () => {
  test("a full pool makes callers wait in order, and times out with a PoolTimeoutError that says why", async () => {
    const db = new Database(`sqlite://${tempDatabasePath()}`, { pool: { max: 1, acquireTimeout: 80 } });
    const order: number[] = [];
    const holder = db.connection(() => sleep(40));
    await sleep(1);
    const waiters = [1, 2, 3].map((n) => db.fetchVal(sql`select ${n}`).then((v) => order.push(Number(v))));
    assert.equal(db.stats().primary.waiting, 3);
    await Promise.all([holder, ...waiters]);
    assert.deepEqual(order, [1, 2, 3], "FIFO");

    const error = await db.connection(() => db.connection(async () => {})).then(
      () => undefined,
      (e) => e,
    );
    assert.equal(error, undefined, "nested scopes reuse the held connection instead of waiting");
    // Held until after the timeout: only the pool's own timer can end the wait.
    const release = signal();
    const blocked = db.connection(() => release.promise);
    await sleep(1);
    const timeout = await within(db.fetchVal(sql`select 1`).catch((e) => e), 10_000, "the wait past acquireTimeout");
    assert.ok(timeout instanceof PoolTimeoutError);
    assert.match(timeout.message, /80 ms/);
    assert.match(timeout.message, /max 1/);
    release.resolve();
    await blocked;
    await db.close();
  });

  test("idle connections above min are closed after idleTimeout", async () => {
    const db = new Database(`sqlite://${tempDatabasePath()}`, { pool: { max: 3, idleTimeout: 30 } });
    await Promise.all([1, 2, 3].map(() => db.connection(() => sleep(5))));
    assert.equal(db.stats().primary.size, 3);
    await sleep(150);
    assert.equal(db.stats().primary.size, 0);
    await db.close();
  });

  test("a query error leaves the connection in the pool; nothing leaks", async () => {
    const db = new Database(`sqlite://${tempDatabasePath()}`, { pool: { max: 2 } });
    for (let i = 0; i < 20; i++) await assert.rejects(db.fetchAll(sql`select * from missing_${i}`), QueryError);
    assert.deepEqual(db.stats().primary, { size: 1, idle: 1, busy: 0, waiting: 0 });
    await db.close();
  });
});

describe("registry", () => {
  test("names register, resolve, collide and free up on close", async () => {
    const name = uniqueName("main");
    const db = new Database("sqlite::memory:", { name });
    assert.equal(Database.get(name), db);
    assert.equal(Database.has(name), true);
    assert.ok(Database.names().includes(name));
    assert.throws(() => new Database("sqlite::memory:", { name }), RegistryError);
    const missing = (() => {
      try {
        Database.get(`${name}-missing`);
      } catch (error) {
        return error as Error;
      }
    })();
    assert.ok(missing instanceof RegistryError);
    assert.ok(missing.message.includes(name), "the error lists the registered names");
    await db.close();
    assert.equal(Database.has(name), false);
    const again = new Database("sqlite::memory:", { name });
    assert.equal(Database.get(name), again);
    await again.close();
  });

  test("a failed construction leaves the name free; unnamed instances are not registered", async () => {
    const name = uniqueName("failed");
    assert.throws(() => new Database("sqlite::memory:?bogus=1", { name }));
    assert.equal(Database.has(name), false);
    const before = Database.names().length;
    const unnamed = new Database("sqlite::memory:");
    assert.equal(Database.names().length, before);
    await unnamed.close();
  });

  test("closeAll closes every registered instance", async () => {
    const a = new Database("sqlite::memory:", { name: uniqueName("a") });
    const b = new Database("sqlite::memory:", { name: uniqueName("b") });
    await Database.closeAll();
    assert.equal(a.closed && b.closed, true);
    assert.equal(Database.has(a.name!), false);
  });
});
