/**
 * How single statements of a pipelining driver share busy connections,
 * tested on the pool alone with in-memory fake connections: a busy
 * connection takes a statement only while its current one is young and its
 * pipeline short, a waiting statement is withdrawn whole at its
 * acquireTimeout, and scopes, close, broken connections and streams cross it
 * as they should. tests/behaviour/pool_server.test.ts shows the same on the servers.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ClosedError, PoolTimeoutError } from "../../mod.ts";
import {
  Pool,
  poolDefaults,
  type PooledConnection,
  type PoolOptions,
  shareDepth,
  shareWithin,
} from "../../src/pool.ts";
import { FakeClock } from "../support/fake_clock.ts";

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface Fake {
  id: number;
  closed: boolean;
  /** Set by a test: the driver knows the connection is unusable (the pool's `broken` hook). */
  lost?: boolean;
}

/**
 * A pool of fake connections numbered from 1, on a fake clock that only the
 * test moves (`ageOut`, `clock.advance`), so no age or timeout depends on how
 * busy the machine is.
 */
function fakePool(
  options: PoolOptions = {},
): { pool: Pool<Fake>; opened: Fake[]; clock: FakeClock; ageOut(): void } {
  const opened: Fake[] = [];
  const clock = new FakeClock();
  const pool = new Pool<Fake>(
    {
      clock,
      open: () => {
        const fake = { id: opened.length + 1, closed: false };
        opened.push(fake);
        return Promise.resolve(fake);
      },
      close: (fake) => {
        fake.closed = true;
        return Promise.resolve();
      },
      broken: (fake) => fake.lost === true,
    },
    { ...poolDefaults, max: 1, acquireTimeout: 10_000, ...options },
    "fake pool",
  );
  // Past the age up to which a busy connection takes more statements.
  return { pool, opened, clock, ageOut: () => clock.advance(shareWithin) };
}

/** Settles to "pending" when the promise has not settled after a few turns of the event loop. */
async function state<T>(promise: Promise<T>): Promise<T | "pending"> {
  return await Promise.race([promise, sleep(20).then(() => "pending" as const)]);
}

describe("pool sharing (in-memory fake connections)", () => {
  test("a busy connection takes at most shareDepth statements; the rest wait and start as statements end", async () => {
    const { pool } = fakePool({ max: 2 });
    let holding = 0;
    let peak = 0;
    const perConnection = new Map<number, number>();
    const run = async () => {
      const item = await pool.acquire(true);
      const count = (perConnection.get(item.connection.id) ?? 0) + 1;
      perConnection.set(item.connection.id, count);
      assert.ok(count <= shareDepth, `${count} statements on one connection`);
      peak = Math.max(peak, ++holding);
      await sleep(1);
      holding--;
      perConnection.set(item.connection.id, perConnection.get(item.connection.id)! - 1);
      pool.release(item);
    };
    await Promise.all(Array.from({ length: 40 }, run));
    assert.ok(peak > 2, `at most ${peak} in flight: statements shared no connection`);
    assert.deepEqual(pool.stats(), { size: 2, idle: 2, busy: 0, waiting: 0 });
    await pool.close();
  });

  test("a connection whose statement began more than shareWithin ms ago takes no more: the wait times out and is withdrawn", async () => {
    const { pool, clock, ageOut } = fakePool({ acquireTimeout: 100 });
    const first = await pool.acquire(true);
    ageOut();
    const waiting = pool.acquire(true);
    assert.equal(await state(waiting), "pending");
    clock.advance(100);
    await assert.rejects(waiting, PoolTimeoutError);
    assert.equal(pool.stats().waiting, 0);
    assert.equal(first.holders, 1, "nothing joined the old statement");
    pool.release(first);
    await pool.close();
  });

  test("when a statement on a shared connection ends, a waiting statement joins the next one at once", async () => {
    const { pool, ageOut } = fakePool();
    const first = await pool.acquire(true);
    const second = await pool.acquire(true);
    assert.equal(second, first, "a young connection is shared");
    ageOut();
    const third = pool.acquire(true);
    assert.equal(await state(third), "pending");
    pool.release(first);
    assert.equal(await state(third), first, "it joined the connection while the second statement still runs");
    assert.equal(first.holders, 2);
    pool.release(second);
    pool.release(first);
    await pool.close();
  });

  test("a statement waiting longer than shareWithin still joins the next statement of a connection at once", async () => {
    const { pool, clock, ageOut } = fakePool();
    const first = await pool.acquire(true);
    const second = await pool.acquire(true);
    ageOut();
    const third = pool.acquire(true);
    assert.equal(await state(third), "pending");
    clock.advance(100);
    pool.release(first);
    assert.equal(await state(third), first, "the next statement started when the first ended, not when the third came");
    pool.release(second);
    pool.release(first);
    await pool.close();
  });

  test("a statement ending while none waits starts the next one at the pool's last clock reading: older, never younger", async () => {
    const { pool, ageOut } = fakePool();
    const first = await pool.acquire(true);
    const second = await pool.acquire(true);
    ageOut();
    // The pool has not read the clock since it moved: the second statement counts as started at the last reading.
    pool.release(first);
    const third = pool.acquire(true);
    assert.equal(await state(third), "pending", "nothing joins a statement that may have run for shareWithin");
    pool.release(second);
    assert.equal(await third, first, "it gets the connection once that statement ends");
    assert.equal(first.holders, 1);
    pool.release(first);
    await pool.close();
  });

  test("while a scope waits, no statement joins a busy connection, and the scope gets it once it drains", async () => {
    const { pool } = fakePool();
    const statement = await pool.acquire(true);
    const scope = pool.acquire();
    const later = pool.acquire(true);
    assert.equal(await state(later), "pending", "a young connection is not shared while a scope waits");
    pool.release(statement);
    const held = (await scope) as PooledConnection<Fake>;
    assert.equal(held.holders, 1);
    assert.equal(await state(later), "pending", "nothing joins the scope's connection");
    pool.release(held);
    pool.release((await later) as PooledConnection<Fake>);
    await pool.close();
  });

  test("a connection a scope or stream holds is never shared", async () => {
    const { pool, clock } = fakePool({ acquireTimeout: 100 });
    const scope = await pool.acquire();
    pool.lend(scope);
    const borrower = await pool.acquire(true);
    assert.equal(borrower, scope, "a stream's connection is lent to one caller");
    const other = pool.acquire(true);
    assert.equal(await state(other), "pending");
    clock.advance(100);
    await assert.rejects(other, PoolTimeoutError, "and to no other");
    pool.release(borrower);
    pool.unlend(scope);
    pool.release(scope);
    await pool.close();
  });

  test("a broken shared connection takes no more statements, and the next one gets a new connection", async () => {
    const { pool, opened } = fakePool();
    const first = await pool.acquire(true);
    const second = await pool.acquire(true);
    pool.release(first, true);
    const third = pool.acquire(true);
    assert.equal(await state(third), "pending", "nothing joins a broken connection");
    pool.release(second);
    const fresh = (await third) as PooledConnection<Fake>;
    assert.notEqual(fresh, first);
    assert.equal(opened.length, 2);
    assert.equal(opened[0].closed, true);
    pool.release(fresh);
    await pool.close();
  });

  test("a shared connection whose session a statement changed takes no more statements, and closes once they end", async () => {
    const { pool, opened } = fakePool({ max: 1 });
    const first = await pool.acquire(true);
    const second = await pool.acquire(true);
    assert.equal(first, second, "two statements share the one connection");
    // The executor marks it: a SET ran on it (Dialect.changesSession).
    first.sessionChanged = true;
    const third = pool.acquire(true);
    assert.equal(await state(third), "pending", "nothing joins it");
    pool.release(first);
    assert.equal(opened[0].closed, false, "still in use by the other statement");
    pool.release(second);
    const fresh = (await third) as PooledConnection<Fake>;
    assert.equal(opened[0].closed, true, "closed once the last statement on it ended, not handed on");
    assert.equal(fresh.connection.id, 2);
    pool.release(fresh);
    const next = await pool.acquire();
    assert.equal(next, fresh, "an unmarked connection is handed on as usual");
    pool.release(next);
    await pool.close();
  });

  test("a shared connection its driver reports lost takes no more statements, and closes once they end", async () => {
    const { pool, opened } = fakePool({ max: 2 });
    const first = await pool.acquire(true);
    const second = await pool.acquire(true);
    assert.notEqual(first, second);
    opened[0].lost = true;
    const joined = [await pool.acquire(true), await pool.acquire(true)];
    for (const item of joined) assert.equal(item.connection.id, 2, "statements join the connection not lost");
    pool.release(first);
    assert.equal(opened[0].closed, true, "closed once its last statement ended");
    for (const item of [second, ...joined]) pool.release(item);
    assert.equal(opened[1].closed, false);
    await pool.close();
  });

  test("a shared connection past its maxLifetime takes no more statements, so it retires under steady load", async () => {
    // A lifetime shorter than shareWithin: past it, the statement is still young enough to share.
    const { pool, opened, clock } = fakePool({ maxLifetime: shareWithin - 2 });
    const first = await pool.acquire(true);
    clock.advance(shareWithin - 1);
    const second = pool.acquire(true);
    assert.equal(await state(second), "pending", "nothing joins an expired connection");
    pool.release(first);
    const fresh = (await second) as PooledConnection<Fake>;
    assert.notEqual(fresh, first);
    assert.equal(opened[0].closed, true, "the expired one retired");
    pool.release(fresh);
    await pool.close();
  });

  test("close() fails statements waiting to share with ClosedError", async () => {
    const { pool, ageOut } = fakePool();
    const first = await pool.acquire(true);
    ageOut();
    const waiting = pool.acquire(true);
    const closing = pool.close(5_000);
    await assert.rejects(waiting, ClosedError);
    pool.release(first);
    await closing;
    assert.equal(pool.stats().size, 0);
  });
});
