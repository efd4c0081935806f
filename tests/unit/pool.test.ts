/**
 * The pool on its own, over in-memory fake connections and a fake clock:
 * limits, first-come-first-served waiters, acquire timeouts, lending and
 * sharing busy connections, min fill, idle timeout and lifetime, checks
 * before reuse, and close. No database, no real time: each test moves the
 * clock itself and runs in milliseconds, but for a few on the runtime's own
 * clock, for what its timers cannot wait.
 */
import assert from "node:assert/strict";
import process from "node:process";
import { describe, test } from "node:test";
import { ClosedError, ConnectionError, PoolTimeoutError } from "../../src/errors.ts";
import { Pool, poolDefaults, type PooledConnection, type PoolOptions, recentFor, shareWithin } from "../../src/pool.ts";
import { FakeClock } from "../support/fake_clock.ts";
import { type FakeConnection, FakeDriver, fakePoolHooks, settle, stateOf } from "../support/fake_driver.ts";

type Item = PooledConnection<FakeConnection>;

/** A pool named "test pool" over one fake server, on a fake clock. */
function setup(options: PoolOptions = {}, reuse = true) {
  const clock = new FakeClock();
  const server = new FakeDriver().server("pool");
  const pool = new Pool(fakePoolHooks(server, clock), { ...poolDefaults, ...options }, "test pool", reuse);
  return { pool, server, clock };
}

describe("pool: limits and waiters", () => {
  test("never opens more than max; callers beyond it wait, and stats count them", async () => {
    const { pool, server } = setup({ max: 2 });
    const a = await pool.acquire();
    const b = await pool.acquire();
    const c = pool.acquire();
    assert.equal(await stateOf(c), "pending");
    assert.equal(server.connections.length, 2);
    assert.deepEqual(pool.stats(), { size: 2, idle: 0, busy: 2, waiting: 1 });
    pool.release(a);
    assert.equal(await c, a, "the released connection went to the waiter");
    assert.deepEqual(pool.stats(), { size: 2, idle: 0, busy: 2, waiting: 0 });
    pool.release(a);
    pool.release(b);
    assert.deepEqual(pool.stats(), { size: 2, idle: 2, busy: 0, waiting: 0 });
    assert.equal(server.connections.length, 2);
    await pool.close();
  });

  test("connections being opened count toward max", async () => {
    const { pool, server } = setup({ max: 1 });
    server.connects = "hang";
    const first = pool.acquire();
    const second = pool.acquire();
    assert.deepEqual(pool.stats(), { size: 1, idle: 0, busy: 1, waiting: 1 });
    assert.equal(server.attempts, 1, "the second caller waits instead of connecting");
    server.held[0].accept();
    const item = await first;
    pool.release(item);
    assert.equal(await second, item);
    pool.release(item);
    await pool.close();
  });

  test("waiters are served first come, first served", async () => {
    const { pool } = setup({ max: 1 });
    const held = await pool.acquire();
    const served: number[] = [];
    const waiters = [1, 2, 3].map((n) => pool.acquire().then((item) => (served.push(n), item)));
    let item = held;
    for (const waiter of waiters) {
      pool.release(item);
      item = await waiter;
    }
    pool.release(item);
    assert.deepEqual(served, [1, 2, 3]);
    await pool.close();
  });

  test("acquireTimeout: a wait fails with PoolTimeoutError after exactly that long and leaves the queue", async () => {
    const { pool, clock } = setup({ max: 1, acquireTimeout: 1_000 });
    const held = await pool.acquire();
    const waiting = pool.acquire();
    clock.advance(999);
    assert.equal(await stateOf(waiting), "pending");
    clock.advance(1);
    await assert.rejects(waiting, (error: Error) => {
      assert.ok(error instanceof PoolTimeoutError);
      assert.equal(
        error.message,
        "no connection became free in 1000 ms (acquireTimeout 1000 ms; test pool: 1 of 1 busy, max 1, 0 more waiting)",
      );
      return true;
    });
    assert.equal(pool.stats().waiting, 0);
    pool.release(held);
    assert.deepEqual(pool.stats(), { size: 1, idle: 1, busy: 0, waiting: 0 }, "nobody took the connection");
    assert.equal(clock.pending("wait"), 0);
    await pool.close();
  });

  test("acquireTimeout: waiters that came at different times each fail at their own deadline; no timer outlives the queue", async () => {
    // The queue keeps one timer for its earliest deadline (not one per waiter).
    const { pool, clock } = setup({ max: 1, acquireTimeout: 1_000 });
    const held = await pool.acquire();
    const first = pool.acquire();
    clock.advance(400);
    const second = pool.acquire();
    clock.advance(600);
    await assert.rejects(first, PoolTimeoutError);
    assert.equal(await stateOf(second), "pending", "the later waiter keeps its own deadline");
    clock.advance(399);
    assert.equal(await stateOf(second), "pending");
    clock.advance(1);
    await assert.rejects(second, /no connection became free in 1000 ms/);
    assert.equal(clock.pending("wait"), 0);
    const third = pool.acquire();
    assert.equal(clock.pending("wait"), 1);
    pool.release(held);
    pool.release(await third);
    assert.equal(clock.pending("wait"), 0, "served: nothing keeps the process alive");
    await pool.close();
  });

  test("acquireTimeout 0 waits as long as it takes", async () => {
    const { pool, clock } = setup({ max: 1, acquireTimeout: 0, idleTimeout: 0, maxLifetime: 0 });
    const held = await pool.acquire();
    const waiting = pool.acquire();
    assert.equal(clock.pending("wait"), 0, "no timer for the wait");
    clock.advance(365 * 24 * 3_600_000);
    assert.equal(await stateOf(waiting), "pending");
    pool.release(held);
    assert.equal(await waiting, held);
    pool.release(held);
    await pool.close();
  });

  test("a failed connect fails only its caller; the next caller connects again", async () => {
    const { pool, server } = setup();
    server.connects = "refuse";
    await assert.rejects(pool.acquire(), ConnectionError);
    assert.deepEqual(pool.stats(), { size: 0, idle: 0, busy: 0, waiting: 0 });
    server.connects = "accept";
    const item = await pool.acquire();
    assert.equal(server.attempts, 2);
    pool.release(item);
    await pool.close();
  });

  test("when a connect fails, the caller waiting behind it gets a connect of its own", async () => {
    const { pool, server } = setup({ max: 1 });
    server.connects = "hang";
    const first = pool.acquire();
    const second = pool.acquire();
    server.held[0].refuse();
    await assert.rejects(first, ConnectionError);
    await settle();
    assert.equal(server.held.length, 2, "the waiter is connecting");
    server.held[1].accept();
    const item = await second;
    pool.release(item);
    await pool.close();
  });

  test("a connection released as broken is closed, and a waiter gets a new one", async () => {
    const { pool, server } = setup({ max: 1 });
    const held = await pool.acquire();
    const waiting = pool.acquire();
    pool.release(held, true);
    const fresh = await waiting;
    assert.notEqual(fresh.connection, held.connection);
    assert.equal(held.connection.closes, 1);
    assert.equal(server.open.length, 1);
    pool.release(fresh);
    await pool.close();
  });
});

describe("pool: lending and sharing busy connections", () => {
  test("a streaming connection lent without giveBack is borrowed by one waiting caller at a time", async () => {
    const { pool } = setup({ max: 1 });
    const stream = await pool.acquire();
    const before = pool.acquire();
    pool.lend(stream);
    const borrower = await before;
    assert.equal(borrower, stream, "a caller that waited borrows it as soon as it is lent");
    assert.equal(stream.holders, 2);
    const next = pool.acquire();
    assert.equal(await stateOf(next), "pending", "one borrower at a time, so scopes never mix");
    pool.release(borrower);
    assert.equal(await next, stream, "the next waiter borrows it when the first gives it back");
    pool.release(stream);
    pool.unlend(stream);
    pool.release(stream);
    assert.deepEqual(pool.stats(), { size: 1, idle: 1, busy: 0, waiting: 0 });
    await pool.close();
  });

  test("a stream lent with giveBack is asked once, when a caller waits and no connection can be opened", async () => {
    const { pool } = setup({ max: 2 });
    const stream = await pool.acquire();
    let asked = 0;
    pool.lend(stream, () => asked++);
    assert.equal(asked, 0, "a connection can still be opened");
    const other = await pool.acquire();
    assert.equal(asked, 0, "nobody waits");
    const first = pool.acquire();
    assert.equal(asked, 1, "the first caller to wait asks the stream");
    const second = pool.acquire();
    assert.equal(asked, 1, "the stream is asked once");
    pool.release(stream);
    assert.equal(await first, stream, "the stream gave its connection back to the first waiter");
    pool.release(other);
    assert.equal(await second, other);
    pool.release(stream);
    pool.release(other);
    assert.equal(asked, 1);
    await pool.close();
  });

  test("single statements share a young busy connection only once the pool is full", async () => {
    const { pool, clock } = setup({ max: 2 });
    const a = await pool.acquire(true);
    assert.equal(a.shared, true, "a connection taken by a single statement may be joined");
    assert.equal(pool.takeShared(), undefined, "one more connection can still be opened");
    const b = await pool.acquire(true);
    assert.notEqual(b, a);
    const joined = pool.takeShared();
    assert.ok(joined === a || joined === b, "the pool is full: a busy connection is shared");
    assert.equal(joined.holders, 2);
    assert.equal(pool.takeShared(), joined === a ? b : a, "the least loaded one is shared next");
    clock.advance(shareWithin);
    assert.equal(pool.takeShared(), undefined, "statements that began shareWithin ms ago take no more");
    for (const item of [a, a, b, b]) pool.release(item);
    assert.deepEqual(pool.stats(), { size: 2, idle: 2, busy: 0, waiting: 0 });
    await pool.close();
  });

  test("a scope's connection is never shared", async () => {
    const { pool } = setup({ max: 1 });
    const scope = await pool.acquire();
    assert.equal(pool.takeShared(), undefined);
    const statement = pool.acquire(true);
    assert.equal(await stateOf(statement), "pending");
    pool.release(scope);
    const item = await statement;
    assert.equal(item, scope);
    assert.equal(item.shared, true, "once free, a single statement's connection may be shared");
    pool.release(item);
    await pool.close();
  });
});

describe("pool: min, idle timeout, lifetime and the reaper", () => {
  test("warm opens min connections; after idleTimeout those above min close and min stay", async () => {
    const { pool, server, clock } = setup({ min: 2, max: 4, idleTimeout: 10_000, maxLifetime: 0 });
    await pool.warm();
    assert.deepEqual(pool.stats(), { size: 2, idle: 2, busy: 0, waiting: 0 });
    const items = await Promise.all([1, 2, 3, 4].map(() => pool.acquire()));
    for (const item of items) pool.release(item);
    assert.equal(pool.stats().idle, 4);
    clock.advance(9_999);
    assert.equal(pool.stats().size, 4, "not idle long enough yet");
    clock.advance(1);
    assert.deepEqual(pool.stats(), { size: 2, idle: 2, busy: 0, waiting: 0 });
    assert.equal(server.open.length, 2);
    await pool.close();
  });

  test("maxLifetime retires idle connections, and a busy one only once it is released", async () => {
    const { pool, server, clock } = setup({ idleTimeout: 0, maxLifetime: 10_000 });
    const idle = await pool.acquire();
    const busy = await pool.acquire();
    pool.release(idle);
    clock.advance(9_000);
    assert.equal(idle.connection.closed, false, "lifetimes end at most 5% early");
    clock.advance(1_000);
    assert.equal(idle.connection.closes, 1, "the idle one retired");
    assert.equal(busy.connection.closed, false, "the busy one is never cut off");
    pool.release(busy);
    assert.equal(busy.connection.closes, 1, "and retires when released");
    assert.equal(server.open.length, 0);
    await pool.close();
  });

  test("the reaper stops once nothing is idle and min is met", async () => {
    const { pool, clock } = setup({ idleTimeout: 1_000 });
    pool.release(await pool.acquire());
    assert.equal(clock.pending("background"), 1);
    clock.advance(1_000);
    assert.equal(pool.stats().size, 0);
    assert.equal(clock.pending("background"), 0);
    await pool.close();
  });

  test("a connection that breaks while idle is dropped by the reaper and min is refilled", async () => {
    const { pool, server, clock } = setup({ min: 1 });
    await pool.warm();
    const [first] = server.connections;
    first.broken = true;
    clock.advance(1_000);
    await settle();
    assert.equal(first.closes, 1);
    assert.equal(server.connections.length, 2, "a new one replaced it");
    assert.deepEqual(pool.stats(), { size: 1, idle: 1, busy: 0, waiting: 0 });
    await pool.close();
  });

  test("min is refilled in the background once the server takes connections again", async () => {
    const { pool, server, clock } = setup({ min: 2 });
    await pool.warm();
    server.connects = "refuse";
    for (const connection of server.connections) connection.broken = true;
    clock.advance(1_000);
    await settle();
    assert.equal(pool.stats().size, 0, "the broken ones are gone and no connect succeeds");
    server.connects = "accept";
    clock.advance(1_000);
    await settle();
    assert.deepEqual(pool.stats(), { size: 2, idle: 2, busy: 0, waiting: 0 });
    await pool.close();
  });
  test("min is refilled in the background when a busy connection breaks, even while none is idle", async () => {
    const { pool, server, clock } = setup({ min: 2, max: 4 });
    await pool.warm();
    const broken = await pool.acquire();
    const busy = await pool.acquire();
    clock.advance(5_000); // the reaper finds nothing idle and min met: it stops
    pool.release(broken, true);
    clock.advance(1_000);
    await settle();
    assert.deepEqual(pool.stats(), { size: 2, idle: 1, busy: 1, waiting: 0 });
    assert.equal(server.connections.length, 3);
    pool.release(busy);
    await pool.close();
  });
});

describe("pool: checks before reuse", () => {
  test("an idle connection is pinged before reuse only once idle for validateAfter", async () => {
    const { pool, clock } = setup({ validateAfter: 500 });
    const item = await pool.acquire();
    assert.equal(item.connection.pings, 0, "a new connection is not checked");
    pool.release(item);
    clock.advance(499);
    pool.release(await pool.acquire());
    assert.equal(item.connection.pings, 0);
    clock.advance(500);
    assert.equal(await pool.acquire(), item);
    assert.equal(item.connection.pings, 1);
    pool.release(item);
    await pool.close();
  });

  test("a connection that fails its check is closed and the caller gets another", async () => {
    const { pool, server, clock } = setup({ validateAfter: 500 });
    const item = await pool.acquire();
    pool.release(item);
    item.connection.dead = true;
    clock.advance(500);
    const other = await pool.acquire();
    assert.notEqual(other, item);
    assert.equal(item.connection.closes, 1);
    assert.equal(server.connections.length, 2);
    pool.release(other);
    await pool.close();
  });

  test("validateAfter 0 checks every reuse", async () => {
    const { pool } = setup({ validateAfter: 0 });
    const item = await pool.acquire();
    pool.release(item);
    pool.release(await pool.acquire());
    pool.release(await pool.acquire());
    assert.equal(item.connection.pings, 2);
    await pool.close();
  });

  test("an unwatched connection is pinged before every reuse, however briefly idle", async () => {
    const { pool, server } = setup({ validateAfter: 60_000 });
    server.unwatched = true;
    const item = await pool.acquire();
    pool.release(item);
    pool.release(await pool.acquire());
    assert.equal(item.connection.pings, 1);
    await pool.close();
  });

  test("a connection the driver marks broken while idle is closed instead of handed out", async () => {
    const { pool } = setup();
    const item = await pool.acquire();
    pool.release(item);
    item.connection.broken = true;
    assert.equal(pool.takeReady(), undefined);
    const other = await pool.acquire();
    assert.notEqual(other, item);
    assert.equal(item.connection.closes, 1);
    pool.release(other);
    await pool.close();
  });

  test("takeReady hands over an idle connection at once, unless it is due a check or others wait", async () => {
    const { pool, clock } = setup({ max: 1, validateAfter: 500 });
    const item = await pool.acquire();
    pool.release(item);
    assert.equal(pool.takeReady(), item);
    assert.equal(pool.takeReady(), undefined, "none is idle");
    const waiting = pool.acquire();
    assert.equal(pool.takeReady(), undefined);
    pool.release(item);
    assert.equal(await waiting, item);
    pool.release(item);
    clock.advance(500);
    assert.equal(pool.takeReady(), undefined, "due a check: the caller goes through acquire");
    assert.equal(await pool.acquire(), item);
    assert.equal(item.connection.pings, 1);
    pool.release(item);
    await pool.close();
  });

  test("a synchronous take reads the clock at most once per recentFor ms; a later reading still finds a check due", async () => {
    const { pool, clock } = setup({ max: 1, validateAfter: 500, maxLifetime: 0 });
    const item = await pool.acquire();
    pool.release(item);
    const read = clock.now;
    let reads = 0;
    clock.now = () => (reads++, read());
    for (let i = 0; i < 3; i++) {
      assert.equal(pool.takeReady(true), item);
      pool.releaseNow(item);
    }
    assert.equal(reads, 1, "one reading for three synchronous statements in a row");
    clock.advance(recentFor);
    assert.equal(pool.takeReady(true), item);
    pool.releaseNow(item);
    assert.equal(reads, 2, "read again once recentFor ms have passed");
    clock.advance(500);
    assert.equal(pool.takeReady(true), undefined, "idle past validateAfter by a fresh reading: due a check");
    assert.equal(await pool.acquire(), item);
    pool.release(item);
    await pool.close();
    assert.equal(clock.pending(), 0, "closing cancels the timer that keeps a reading recent");
  });

  test("with min kept, idle unwatched connections are checked in the background and a dead one is replaced", async () => {
    const { pool, server, clock } = setup({ min: 1, validateAfter: 500 });
    server.unwatched = true;
    await pool.warm();
    const [first] = server.connections;
    clock.advance(1_000);
    await settle();
    assert.equal(first.pings, 1, "checked while idle");
    assert.equal(first.closed, false);
    first.dead = true;
    clock.advance(1_000);
    await settle();
    assert.equal(first.closes, 1);
    assert.equal(server.connections.length, 2, "replaced without waiting for a caller");
    assert.deepEqual(pool.stats(), { size: 1, idle: 1, busy: 0, waiting: 0 });
    await pool.close();
  });
});

describe("pool: durations longer than a timer takes, on the runtime's own clock", () => {
  // A timer of more than 2^31 - 1 ms fires after 1 ms (with a warning) on every runtime: such a wait, or one of
  // Number.MAX_SAFE_INTEGER or Infinity meaning "as long as it takes", must wait, not end at once or spin.
  const long = [3_000_000_000, Number.MAX_SAFE_INTEGER];

  /** The runtime warnings (Node, Bun: TimeoutOverflowWarning) emitted while `fn` runs. */
  async function warnings(fn: () => Promise<void>): Promise<string[]> {
    const seen: string[] = [];
    const listen = (warning: Error) => seen.push(`${warning.name}: ${warning.message}`);
    process.on("warning", listen);
    try {
      await fn();
      await new Promise((resolve) => setTimeout(resolve, 20));
    } finally {
      process.off("warning", listen);
    }
    return seen;
  }

  for (const ms of long) {
    test(`acquireTimeout, idleTimeout and maxLifetime of ${ms} ms: a waiter waits and is served; no timer warns`, async () => {
      const server = new FakeDriver().server("pool");
      const options = { ...poolDefaults, max: 1, acquireTimeout: ms, idleTimeout: ms, maxLifetime: ms };
      const pool = new Pool(fakePoolHooks(server), options, "test pool", true);
      const seen = await warnings(async () => {
        const held = await pool.acquire();
        const waiting = pool.acquire();
        await new Promise((resolve) => setTimeout(resolve, 50));
        assert.equal(await stateOf(waiting), "pending", "the wait did not end at once");
        pool.release(held);
        assert.equal(await waiting, held);
        pool.release(held);
        await new Promise((resolve) => setTimeout(resolve, 20));
        assert.deepEqual(pool.stats(), { size: 1, idle: 1, busy: 0, waiting: 0 }, "the idle connection stays open");
        await pool.close();
      });
      assert.deepEqual(seen, []);
    });
  }

  for (const timeout of [3_000_000_000, Infinity]) {
    test(`close with a timeout of ${timeout} ms waits for a busy connection instead of cutting it off`, async () => {
      const server = new FakeDriver().server("pool");
      const pool = new Pool(fakePoolHooks(server), { ...poolDefaults, max: 1 }, "test pool", true);
      const seen = await warnings(async () => {
        const held = await pool.acquire();
        const closing = pool.close(timeout);
        await new Promise((resolve) => setTimeout(resolve, 50));
        assert.equal(await stateOf(closing), "pending", "close waits");
        assert.equal(server.connections[0].destroys, 0, "the busy connection was not cut off");
        pool.release(held);
        await closing;
      });
      assert.deepEqual(seen, []);
    });
  }
});

describe("pool: close", () => {
  test("close fails waiters with ClosedError and waits for busy connections", async () => {
    const { pool } = setup({ max: 1 });
    const busy = await pool.acquire();
    const waiting = pool.acquire();
    const closing = pool.close();
    await assert.rejects(waiting, ClosedError);
    await assert.rejects(
      pool.acquire(),
      (error: Error) => error instanceof ClosedError && /test pool is closed/.test(error.message),
    );
    assert.equal(await stateOf(closing), "pending", "it waits for the busy connection");
    pool.release(busy);
    await closing;
    assert.equal(busy.connection.closes, 1);
    assert.equal(busy.connection.destroys, 0);
    assert.equal(pool.close(), closing, "closing again returns the same promise");
  });

  test("close closes idle connections at once", async () => {
    const { pool, server } = setup();
    const items = [await pool.acquire(), await pool.acquire()];
    for (const item of items) pool.release(item);
    const closing = pool.close();
    assert.equal(server.open.length, 0);
    await closing;
    assert.deepEqual(pool.stats(), { size: 0, idle: 0, busy: 0, waiting: 0 });
  });

  test("a connection still busy when close's timeout passes is cut off with destroy", async () => {
    const { pool, clock } = setup();
    const busy = await pool.acquire();
    const closing = pool.close(1_000);
    clock.advance(999);
    assert.equal(await stateOf(closing), "pending");
    clock.advance(1);
    await closing;
    assert.equal(busy.connection.destroys, 1);
    pool.release(busy); // after the fact: nothing happens
    assert.equal(busy.connection.closes, 0);
    assert.deepEqual(pool.stats(), { size: 0, idle: 0, busy: 0, waiting: 0 });
  });

  test("a connect that completes after close is closed, and its caller gets ClosedError", async () => {
    const { pool, server } = setup();
    server.connects = "hang";
    const opening = pool.acquire();
    const closing = pool.close(1_000);
    server.held[0].accept();
    await assert.rejects(opening, ClosedError);
    await closing;
    assert.equal(server.connections[0].closes, 1);
  });

  test("close gives up a connect under way: its caller gets ClosedError at once, close waits for nothing, a late connection is closed", async () => {
    // Before: the caller waited for the connect to end (a silent server: connect_timeout, 30 s by default), and close
    // resolved only after its own timeout, the connect still holding its socket.
    const { pool, server } = setup();
    server.connects = "hang";
    const opening = pool.acquire();
    await settle();
    const signal = server.held[0].signal;
    assert.equal(signal?.aborted, false, "the open is given a signal");
    const closing = pool.close(1_000);
    assert.equal(signal?.aborted, true, "close aborts it");
    await assert.rejects(
      opening,
      (error: Error) => error instanceof ClosedError && /test pool is closed/.test(error.message),
    );
    assert.notEqual(await stateOf(closing), "pending", "close resolved without its timeout passing");
    assert.deepEqual(pool.stats(), { size: 0, idle: 0, busy: 0, waiting: 0 });
    // A driver that cannot give up (the fake one) connects after all: the connection is closed as it comes.
    server.held[0].accept();
    await settle();
    assert.equal(server.connections[0].closes, 1);
  });

  test("close gives up the connect opened for a waiter when a busy connection broke", async () => {
    const { pool, server } = setup({ max: 1, min: 1 });
    await pool.warm();
    const busy = await pool.acquire();
    server.connects = "hang";
    const waiting = pool.acquire();
    // The busy connection breaks: the waiter is served by a new connect, which hangs.
    pool.release(busy, true);
    await settle();
    assert.equal(server.held.length, 1, "a connect for the waiter");
    const closing = pool.close(1_000);
    assert.ok(server.held.every((held) => held.signal?.aborted), "every connect under way is aborted");
    await assert.rejects(waiting, ClosedError);
    await closing;
    for (const held of server.held) held.accept();
    await settle();
    assert.equal(server.open.length, 0, "whatever connected late is closed");
  });

  test("a closed pool opens nothing more, however long its clock runs", async () => {
    const { pool, server, clock } = setup({ min: 2 });
    await pool.warm();
    const busy = await pool.acquire();
    const closing = pool.close();
    pool.release(busy, true);
    await closing;
    clock.advance(60_000);
    await settle();
    assert.equal(server.attempts, 2);
    assert.equal(clock.pending(), 0, "no timer is left");
  });

  test("without reuse, each connection is closed when released", async () => {
    const { pool, server } = setup({}, false);
    pool.release(await pool.acquire());
    pool.release(await pool.acquire());
    assert.equal(server.connections.length, 2);
    assert.equal(server.open.length, 0);
    assert.deepEqual(pool.stats(), { size: 0, idle: 0, busy: 0, waiting: 0 });
    await pool.close();
  });
});
