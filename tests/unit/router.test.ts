/**
 * Replica routing through the public `Database` API, on the in-memory fake
 * driver (no database): where reads and writes go, the pickers, a replica
 * leaving the rotation and coming back, the fallback, read-your-writes, and
 * replica and primary scopes. Each fake server is a URL's host, so a test
 * sees which server ran which statement. tests/routing.test.ts covers the
 * same on real databases.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Database } from "../../src/database.ts";
import { ConfigError, ConnectionError, ReadOnlyError } from "../../src/errors.ts";
import type { DatabaseOptions } from "../../src/options.ts";
import type { QueryEvent } from "../../src/query_event.ts";
import type { ReplicaCandidate } from "../../src/routing_options.ts";
import { FakeDriver, type FakeServer } from "../support/fake_driver.ts";

const primaryUrl = "postgres://u@primary:5432/db";
const replicaUrls = ["postgres://u@replica0:5432/db", "postgres://u@replica1:5432/db"];

/** A database over fake servers "primary", "replica0" and "replica1", with every query event recorded. */
function setup(options: DatabaseOptions = {}) {
  const driver = new FakeDriver();
  const events: QueryEvent[] = [];
  const db = new Database(primaryUrl, {
    driver,
    replicas: replicaUrls,
    onQuery: (event) => events.push(event),
    ...options,
  });
  const [primary, replica0, replica1] = ["primary", "replica0", "replica1"].map((host) => driver.server(host));
  return { db, driver, events, primary, replica0, replica1 };
}

/** Which server ran each of `servers`' queries, in the order run, as "host: sql". */
function log(...servers: FakeServer[]): string[] {
  return servers.flatMap((server) =>
    server.statements.filter((s) => !s.text.startsWith("SET SESSION")).map((s) => `${server.host}: ${s.text}`)
  );
}

/** Waits (polling, up to 5 s) until `condition` holds; the limit only bounds a failure. */
async function eventually(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

describe("router: where queries go", () => {
  test("by default reads outside scopes go to the primary, and db.replica() reads to a replica", async () => {
    const { db, events, primary, replica0 } = setup();
    await db.fetchAll("select 1");
    await db.replica((r) => r.fetchAll("select 2"));
    assert.deepEqual(primary.queries, ["select 1"]);
    assert.deepEqual(replica0.queries, ["select 2"]);
    assert.deepEqual(events.map((e) => [e.served, e.reason, e.replica]), [
      ["primary", "read", undefined],
      ["replica", "replica-scope", 0],
    ]);
    assert.equal(events[1].url, replicaUrls[0]);
    await db.close();
  });

  test('with reads: "replicas", reading statements go to replicas and everything else to the primary', async () => {
    const { db, events, primary, replica0, replica1 } = setup({ routing: { reads: "replicas" } });
    await db.fetchAll("select 1");
    await db.fetchOne("with t as (select 1) select * from t");
    await db.execute("update t set x = 1");
    await db.fetchAll("insert into t values (1) returning *");
    assert.deepEqual(log(primary, replica0, replica1), [
      "primary: update t set x = 1",
      "primary: insert into t values (1) returning *",
      "replica0: select 1",
      "replica1: with t as (select 1) select * from t",
    ]);
    assert.deepEqual(events.map((e) => e.reason), ["read", "read", "write", "write"]);
    await db.close();
  });

  test("replica connections are made read-only on the server; the primary's are not", async () => {
    const { db, primary, replica0 } = setup();
    await db.fetchAll("select 1");
    await db.replica((r) => r.fetchAll("select 1"));
    assert.deepEqual(primary.connections.map((c) => c.readOnly), [false]);
    assert.deepEqual(replica0.connections.map((c) => c.readOnly), [true]);
    await db.close();
  });

  test("in a replica scope, writes are refused with ReadOnlyError before reaching any server", async () => {
    const { db, primary, replica0, replica1 } = setup();
    await db.replica(async (r) => {
      await assert.rejects(r.execute("update t set x = 1"), ReadOnlyError);
      await assert.rejects(r.executeMany("insert into t values ($1)", [[1], [2]]), ReadOnlyError);
      await assert.rejects(r.transaction(() => {}), ReadOnlyError);
      await assert.rejects(r.begin(), ReadOnlyError);
    });
    assert.deepEqual(log(primary, replica0, replica1), []);
    assert.equal(primary.attempts + replica0.attempts + replica1.attempts, 0, "no connection was even opened");
    await db.close();
  });

  test("db.primary() inside db.replica() sends reads back to the primary", async () => {
    const { db, events, primary, replica0, replica1 } = setup();
    await db.replica(async (r) => {
      await r.fetchAll("select 1");
      await r.primary((p) => p.fetchAll("select 2"));
      await r.fetchAll("select 3");
    });
    assert.deepEqual(primary.queries, ["select 2"]);
    assert.deepEqual(events.map((e) => e.reason), ["replica-scope", "primary-scope", "replica-scope"]);
    assert.deepEqual([...replica0.queries, ...replica1.queries], ["select 1", "select 3"]);
    await db.close();
  });

  test("a connection scope in a replica scope holds one replica connection", async () => {
    const { db, replica0, replica1 } = setup();
    await db.replica((r) =>
      r.connection(async (conn) => {
        await conn.fetchAll("select 1");
        await conn.fetchAll("select 2");
      })
    );
    const used = [...replica0.connections, ...replica1.connections];
    assert.equal(used.length, 1);
    assert.deepEqual(used[0].server.queries, ["select 1", "select 2"]);
    await db.close();
  });
});

describe("router: pickers", () => {
  test("round-robin takes the healthy replicas in turn", async () => {
    const { db, events } = setup();
    await db.replica(async (r) => {
      for (let i = 0; i < 4; i++) await r.fetchAll("select 1");
    });
    assert.deepEqual(events.map((e) => e.replica), [0, 1, 0, 1]);
    await db.close();
  });

  test("random spreads reads over the replicas only", async () => {
    const { db, events } = setup({ routing: { picker: "random" } });
    await db.replica(async (r) => {
      for (let i = 0; i < 20; i++) await r.fetchAll("select 1");
    });
    assert.ok(events.every((e) => e.served === "replica"));
    assert.equal(events.length, 20);
    await db.close();
  });

  test("least-busy picks the replica with the fewest connections in use", async () => {
    const { db, events, replica0 } = setup({ routing: { picker: "least-busy" } });
    replica0.holdStatements = true;
    // Round-robin's first choice is replica 0: a statement held there keeps it busy.
    const busy = db.replica((r) => r.fetchAll("select 'slow'"));
    await eventually(() => replica0.running.length === 1, "the slow statement runs on replica 0");
    await db.replica(async (r) => {
      for (let i = 0; i < 3; i++) await r.fetchAll("select 1");
    });
    replica0.running[0].finish([]);
    await busy;
    assert.deepEqual(events.map((e) => e.replica), [1, 1, 1, 0]);
    await db.close();
  });

  test("a picker function gets the healthy replicas and its choice is used", async () => {
    const seen: ReplicaCandidate[][] = [];
    const { db, events } = setup({
      routing: {
        picker: (replicas) => {
          seen.push([...replicas]);
          return replicas.length - 1;
        },
      },
    });
    await db.replica((r) => r.fetchAll("select 1"));
    assert.deepEqual(events.map((e) => e.replica), [1]);
    assert.deepEqual(seen[0].map((c) => [c.index, c.url, c.stats.size]), [[0, replicaUrls[0], 0], [
      1,
      replicaUrls[1],
      0,
    ]]);
    await db.close();
  });

  test("a picker that returns no position among the healthy replicas is a ConfigError", async () => {
    const { db } = setup({ routing: { picker: () => 2 } });
    await assert.rejects(db.replica((r) => r.fetchAll("select 1")), (error: Error) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /routing\.picker returned 2/);
      return true;
    });
    await db.close();
  });
});

describe("router: health and fallback", () => {
  test("a replica that cannot connect leaves the rotation, the read goes to another, and a recheck brings it back", async () => {
    const { db, events, replica0 } = setup({ routing: { recheckAfter: 5 } });
    replica0.connects = "refuse";
    assert.deepEqual(await db.replica((r) => r.fetchAll("select 1")), [{ value: 1 }]);
    assert.deepEqual(
      events.map((e) => [e.replica, e.error instanceof ConnectionError]),
      [[0, true], [1, false]],
      "the failed connect is reported, and replica 1 answers",
    );
    const [down] = db.stats().replicas;
    assert.equal(down.healthy, false);
    assert.equal(down.failures, 1);
    assert.match(down.lastError ?? "", /refused/);
    assert.equal(typeof down.nextCheck, "number");
    await db.replica(async (r) => {
      for (let i = 0; i < 3; i++) await r.fetchAll("select 1");
    });
    assert.deepEqual(events.slice(2).map((e) => e.replica), [1, 1, 1], "replica 0 is out of the rotation");
    await eventually(() => db.stats().replicas[0].failures >= 2, "a failed recheck counts");
    replica0.connects = "accept";
    await eventually(() => db.stats().replicas[0].healthy, "replica 0 passes a recheck");
    const back = db.stats().replicas[0];
    assert.equal(back.failures, 0);
    assert.equal(back.lastError, undefined);
    events.length = 0;
    await db.replica(async (r) => {
      for (let i = 0; i < 2; i++) await r.fetchAll("select 1");
    });
    assert.deepEqual(events.map((e) => e.replica).sort(), [0, 1], "both serve again");
    await db.close();
  });

  test("a recheckAfter longer than a timer takes waits (no recheck at once, no connect storm on the down replica)", async () => {
    // A timer asked for more than 2^31 - 1 ms fires after 1 ms: the recheck would run at once, over and over.
    const { db, replica0 } = setup({ routing: { recheckAfter: 3_000_000_000 } });
    replica0.connects = "refuse";
    await db.replica((r) => r.fetchAll("select 1"));
    const attempts = replica0.attempts;
    await sleep(100);
    assert.equal(replica0.attempts, attempts, "no recheck ran");
    assert.equal(db.stats().replicas[0].failures, 1);
    await db.close();
  });

  test("a replica whose connection is lost during a read leaves the rotation, and another answers", async () => {
    const { db, events, replica0 } = setup({ routing: { recheckAfter: 60_000 } });
    await db.replica(async (r) => {
      await r.fetchAll("select 1"); // replica 0
      await r.fetchAll("select 1"); // replica 1
    });
    replica0.connections[0].dead = true;
    assert.deepEqual(await db.replica((r) => r.fetchAll("select 2")), [{ value: 1 }]);
    assert.deepEqual(events.map((e) => [e.replica, e.error instanceof ConnectionError]), [
      [0, false],
      [1, false],
      [0, true],
      [1, false],
    ], "the failed read is reported, then answered elsewhere");
    assert.equal(db.stats().replicas[0].healthy, false);
    assert.equal(replica0.connections[0].closed, true, "the lost connection was closed");
    await db.close();
  });

  test('with no healthy replica, fallback "primary" reads from the primary', async () => {
    const { db, events, primary, replica0, replica1 } = setup({ routing: { recheckAfter: 60_000 } });
    replica0.connects = "refuse";
    replica1.connects = "refuse";
    await db.replica((r) => r.fetchAll("select 1"));
    assert.deepEqual(primary.queries, ["select 1"]);
    assert.deepEqual(events.map((e) => [e.served, e.reason, e.error instanceof ConnectionError]), [
      ["replica", "replica-scope", true],
      ["replica", "replica-scope", true],
      ["primary", "fallback", false],
    ]);
    assert.deepEqual(db.stats().replicas.map((r) => r.healthy), [false, false]);
    await db.close();
  });

  test('with no healthy replica, fallback "error" fails the read with ROOST_NO_REPLICA', async () => {
    const { db, primary, replica0, replica1 } = setup({ routing: { fallback: "error", recheckAfter: 60_000 } });
    replica0.connects = "refuse";
    replica1.connects = "refuse";
    await assert.rejects(db.replica((r) => r.fetchAll("select 1")), (error: Error) => {
      assert.ok(error instanceof ConnectionError);
      assert.equal(error.code, "ROOST_NO_REPLICA");
      assert.match(error.message, /replica 0 <postgres:\/\/u@replica0:5432\/db>: .*refused/);
      return true;
    });
    assert.deepEqual(primary.queries, []);
    await db.close();
  });

  test("a replica whose connection is lost inside a connection scope fails that scope and leaves the rotation", async () => {
    const { db, replica0 } = setup({ routing: { recheckAfter: 60_000 } });
    await assert.rejects(
      db.replica((r) =>
        r.connection(async (conn) => {
          await conn.fetchAll("select 1");
          replica0.connections[0].dead = true;
          await conn.fetchAll("select 2");
        })
      ),
      ConnectionError,
    );
    const [down] = db.stats().replicas;
    assert.equal(down.healthy, false);
    assert.match(down.lastError ?? "", /lost during a connection scope/);
    assert.equal(replica0.connections[0].closed, true);
    await db.close();
  });

  test("iterate is routed like the other reads, and moves to another replica when its first one cannot connect", async () => {
    const { db, events, replica0 } = setup({ routing: { reads: "replicas", recheckAfter: 60_000 } });
    replica0.connects = "refuse";
    const rows = [];
    for await (const row of db.iterate("select 1")) rows.push(row);
    assert.deepEqual(rows, [{ value: 1 }]);
    assert.deepEqual(events.map((e) => [e.method, e.replica, e.error instanceof ConnectionError]), [
      ["iterate", 0, true],
      ["iterate", 1, false],
    ]);
    await db.close();
  });

  test("without replicas, a replica scope reads from the primary, as a fallback", async () => {
    const driver = new FakeDriver();
    const events: QueryEvent[] = [];
    const db = new Database(primaryUrl, { driver, onQuery: (event) => events.push(event) });
    await db.replica((r) => r.fetchAll("select 1"));
    assert.deepEqual(driver.server("primary").queries, ["select 1"]);
    assert.deepEqual(events.map((e) => [e.served, e.reason]), [["primary", "fallback"]]);
    await db.close();
  });

  test("writes never fall back to or fail over onto replicas", async () => {
    const { db, primary, replica0, replica1 } = setup({ routing: { reads: "replicas" } });
    primary.connects = "refuse";
    await assert.rejects(db.execute("update t set x = 1"), ConnectionError);
    assert.deepEqual(log(replica0, replica1), []);
    await db.close();
  });
});

describe("router: read-your-writes", () => {
  test("after a write, reads go to the primary for the readYourWrites window, then back to replicas", async () => {
    const { db, events } = setup({ routing: { reads: "replicas", readYourWrites: 100 } });
    await db.fetchAll("select 1");
    await db.execute("update t set x = 1");
    await db.fetchAll("select 2");
    await sleep(150); // past the window (the instance reads the system clock)
    await db.fetchAll("select 3");
    assert.deepEqual(events.map((e) => [e.served, e.reason]), [
      ["replica", "read"],
      ["primary", "write"],
      ["primary", "read-your-writes"],
      ["replica", "read"],
    ]);
    await db.close();
  });

  test("a write in one context keeps only that context's reads on the primary", async () => {
    const { db, events } = setup({ routing: { reads: "replicas", readYourWrites: 60_000 } });
    await db.context(async (writer) => {
      await writer.execute("update t set x = 1");
      await writer.fetchAll("select 'writer'");
    });
    await db.context((reader) => reader.fetchAll("select 'reader'"));
    assert.deepEqual(events.map((e) => [e.sql, e.served, e.reason]), [
      ["update t set x = 1", "primary", "write"],
      ["select 'writer'", "primary", "read-your-writes"],
      ["select 'reader'", "replica", "read"],
    ]);
    await db.close();
  });

  test("read-your-writes also keeps a replica scope's reads on the primary after a write", async () => {
    const { db, events } = setup({ routing: { readYourWrites: 60_000 } });
    await db.execute("update t set x = 1");
    await db.replica((r) => r.fetchAll("select 1"));
    assert.deepEqual(events.map((e) => [e.served, e.reason]), [["primary", "write"], ["primary", "read-your-writes"]]);
    await db.close();
  });
});
