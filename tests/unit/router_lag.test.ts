/**
 * Lag-aware routing (`routing.maxLag`) through the public `Database` API, on
 * the in-memory fake driver: each fake replica answers the lag statement
 * with what the test sets, so these tests show the router's rules (leaving
 * and rejoining the rotation, unknown lag, the fallback, read-your-writes
 * and replica scopes, a failed check, close) without a database.
 * tests/behaviour/standby.test.ts and tests/behaviour/mariadb_replica.test.ts
 * show the same against real replicas that lag.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import process from "node:process";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Database } from "../../src/database.ts";
import "../../src/lag_watch.ts"; // what the main entry (mod.ts) loads for routing.maxLag
import { ConfigError, ConnectionError } from "../../src/errors.ts";
import type { DatabaseOptions } from "../../src/options.ts";
import type { QueryEvent } from "../../src/query_event.ts";
import { FakeDriver, type FakeServer } from "../support/fake_driver.ts";
import { runtime, skipUnless } from "../support/support.ts";

/** Lag each fake replica reports, per dialect's statement; `null` is unknown. */
type Lag = number | null;

const isLagStatement = (text: string) => text.includes("pg_last_xact_replay_timestamp") || /STATUS$/.test(text);

/** A database over fake servers "primary", "replica0" and "replica1", whose replicas report `lag[host]`. */
function setup(options: DatabaseOptions = {}, dialect: "postgres" | "mysql" = "postgres") {
  const driver = new FakeDriver({ dialect });
  const scheme = dialect === "postgres" ? "postgres" : "mysql";
  const events: QueryEvent[] = [];
  const lag: Record<string, Lag | undefined> = { replica0: 0, replica1: 0 };
  const db = new Database(`${scheme}://u@primary/db`, {
    driver,
    replicas: [`${scheme}://u@replica0/db`, `${scheme}://u@replica1/db`],
    onQuery: (event) => events.push(event),
    ...options,
    routing: { reads: "replicas", recheckAfter: 10, ...options.routing },
  });
  const [primary, replica0, replica1] = ["primary", "replica0", "replica1"].map((host) => driver.server(host));
  for (const server of [replica0, replica1]) {
    server.answer = (text) => {
      if (!isLagStatement(text)) return [{ value: 1 }];
      const value = lag[server.host];
      if (dialect === "postgres") return [{ lag: value }];
      if (value === undefined) return []; // not a replica: SHOW REPLICA STATUS returns no row
      return [{ Seconds_Behind_Master: value === null ? null : value / 1_000 }];
    };
  }
  return { db, events, lag, primary, replica0, replica1 };
}

/** The lag checks a server received. */
const checks = (server: FakeServer) => server.queries.filter(isLagStatement).length;
/** The reads (not lag checks) a server received. */
const reads = (server: FakeServer) => server.queries.filter((text) => !isLagStatement(text)).length;

/** Reads (one every 2 ms) until `condition` holds; fails naming `what` after 5 s (the limit only bounds a failure). */
async function readUntil(db: Database, condition: () => boolean | undefined, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting until ${what}`);
    await db.fetchAll("select 1").catch(() => {});
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

describe("router: routing.maxLag", () => {
  test("a replica lagging more than maxLag leaves the rotation and rejoins once within it", async () => {
    const { db, events, lag, replica0, replica1 } = setup({ routing: { maxLag: 1_000 } });
    lag.replica0 = 5_000;
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(checks(replica0) + checks(replica1), 0, "an idle instance measures nothing");
    await db.fetchAll("select 1");
    assert.deepEqual([events[0].served, events[0].replica], ["replica", 0], "in the rotation until first measured");
    await readUntil(db, () => db.stats().replicas[0].lagging, "replica0 is measured as lagging");
    assert.deepEqual(
      [db.stats().replicas[0].lag, db.stats().replicas[0].healthy, db.stats().replicas[1].lagging],
      [5_000, true, false],
    );
    const before = reads(replica0);
    for (let i = 0; i < 10; i++) await db.fetchAll("select 1");
    assert.equal(reads(replica0), before, "no read went to the lagging replica");
    assert.ok(reads(replica1) >= 10);
    lag.replica0 = 1_000; // within: maxLag is the most a replica may lag
    await readUntil(db, () => !db.stats().replicas[0].lagging, "replica0 rejoins");
    const back = reads(replica0);
    for (let i = 0; i < 4; i++) await db.fetchAll("select 1");
    assert.ok(reads(replica0) > back, "reads reach it again");
    await db.close();
  });

  test("lag is measured at most once per recheckAfter per replica, never once per read", async () => {
    const { db, replica0, replica1 } = setup({ routing: { maxLag: 1_000, recheckAfter: 60_000 } });
    for (let i = 0; i < 50; i++) await db.fetchAll("select 1");
    assert.deepEqual([checks(replica0), checks(replica1)], [1, 1]);
    await db.close();
  });

  test("without maxLag nothing is measured", async () => {
    const { db, replica0, replica1 } = setup();
    for (let i = 0; i < 10; i++) await db.fetchAll("select 1");
    assert.deepEqual([checks(replica0), checks(replica1)], [0, 0]);
    assert.equal(db.stats().replicas[0].lagging, undefined, "stats say nothing of lag");
    await db.close();
  });

  test('unknown lag counts as too far behind; with every replica out, fallback "error" says why', async () => {
    const { db, lag, primary } = setup({ routing: { maxLag: 1_000, fallback: "error" } });
    lag.replica0 = null;
    lag.replica1 = 3_000;
    await readUntil(db, () => db.stats().replicas.every((r) => r.lagging), "both replicas lag");
    assert.match(db.stats().replicas[0].lagError ?? "", /unknown/);
    const error = await db.fetchAll("select 1").catch((e) => e);
    assert.ok(error instanceof ConnectionError && error.code === "ROOST_NO_REPLICA", String(error));
    assert.match(error.message, /replica 0 <[^>]*>: its lag is unknown/);
    assert.match(error.message, /replica 1 <[^>]*>: 3000 ms behind its primary \(routing\.maxLag is 1000\)/);
    assert.equal(primary.queries.length, 0, "the primary served nothing");
    await db.close();
  });

  test('with every replica lagging, fallback "primary" reads from the primary, replica scopes included', async () => {
    const { db, events, lag } = setup({ routing: { maxLag: 1_000 } });
    lag.replica0 = lag.replica1 = 2_000;
    await readUntil(db, () => db.stats().replicas.every((r) => r.lagging), "both replicas lag");
    await db.fetchAll("select 1");
    await db.replica((r) => r.fetchAll("select 2"));
    assert.deepEqual(events.slice(-2).map((e) => [e.served, e.reason]), [
      ["primary", "fallback"],
      ["primary", "fallback"],
    ]);
    await db.close();
  });

  test("read-your-writes still sends a context's reads to the primary; after its window, lag decides", async () => {
    const { db, events, lag } = setup({ routing: { maxLag: 1_000, readYourWrites: 60_000 } });
    lag.replica0 = 2_000;
    await db.context(async () => {
      await db.execute("insert into t values (1)");
      await db.fetchAll("select 1");
      assert.deepEqual([events.at(-1)?.served, events.at(-1)?.reason], ["primary", "read-your-writes"]);
    });
    await readUntil(db, () => db.stats().replicas[0].lagging, "replica0 lags");
    await db.replica((r) => r.fetchAll("select 2"));
    assert.deepEqual([events.at(-1)?.replica, events.at(-1)?.reason], [1, "replica-scope"]);
    await db.close();
  });

  test("a check that cannot connect takes the replica out as a failure; one the server refuses, as unknown lag", async () => {
    const { db, replica0, replica1 } = setup({ routing: { maxLag: 1_000, recheckAfter: 60_000 } });
    replica0.connects = "refuse";
    replica1.answer = (text) => {
      if (isLagStatement(text)) throw new Error("permission denied for function pg_last_wal_receive_lsn");
      return [{ value: 1 }];
    };
    await readUntil(
      db,
      () => !db.stats().replicas[0].healthy && db.stats().replicas[1].lagging,
      "replica0 is down and replica1 lags",
    );
    assert.match(db.stats().replicas[0].lastError ?? "", /refused/);
    assert.match(db.stats().replicas[1].lagError ?? "", /could not be measured: permission denied/);
    await db.close();
  });

  test("a pool of one: the check takes the replica's one connection in turn with the reads", async () => {
    const { db, lag, replica0, replica1 } = setup({ routing: { maxLag: 1_000 }, pool: { max: 1 } });
    lag.replica0 = 5_000;
    const results = await Promise.all(Array.from({ length: 20 }, () => db.fetchAll("select 1")));
    assert.equal(results.length, 20);
    await readUntil(db, () => db.stats().replicas[0].lagging, "replica0 is measured as lagging");
    assert.ok(checks(replica0) >= 1 && checks(replica1) >= 1);
    assert.deepEqual(db.stats().replicas.map((r) => r.size), [1, 1]);
    await db.close();
  });

  test("a check that gets no connection within acquireTimeout keeps the last measurement", async () => {
    const { db, lag, replica0 } = setup({
      routing: { maxLag: 1_000, recheckAfter: 500, picker: () => 0 },
      pool: { max: 1, acquireTimeout: 50 },
    });
    await db.fetchAll("select 1"); // the first check: no lag
    await readUntil(db, () => db.stats().replicas[0].lag === 0, "replica0 measured");
    lag.replica0 = 5_000;
    let release!: () => void;
    const released = new Promise<void>((resolve) => release = resolve);
    // A connection scope holds replica0's one connection past the next check's due time.
    const holding = db.replica(() => db.connection(() => released));
    await new Promise((resolve) => setTimeout(resolve, 600));
    const checksBefore = checks(replica0);
    await db.fetchAll("select 2").catch(() => {}); // starts a check, which waits for the connection, as this read does
    await new Promise((resolve) => setTimeout(resolve, 100)); // past acquireTimeout
    release();
    await holding;
    assert.equal(checks(replica0), checksBefore, "the check never ran");
    const replica = db.stats().replicas[0];
    assert.deepEqual([replica.lagging, replica.lag, replica.lagError, replica.healthy], [false, 0, undefined, true]);
    await db.close();
  });

  test("MySQL/MariaDB: Seconds_Behind_Master in seconds, NULL as unknown, no row as no lag", async () => {
    const { db, lag } = setup({ routing: { maxLag: 1_500 } }, "mysql");
    lag.replica0 = 2_000;
    lag.replica1 = undefined;
    await readUntil(db, () => db.stats().replicas[0].lagging, "replica0 lags");
    assert.deepEqual([db.stats().replicas[0].lag, db.stats().replicas[1].lag], [2_000, 0]);
    lag.replica0 = null;
    await readUntil(db, () => db.stats().replicas[0].lagError !== undefined, "replica0's lag is unknown");
    assert.match(db.stats().replicas[0].lagError ?? "", /Seconds_Behind_Master is NULL/);
    lag.replica0 = 1_000;
    await readUntil(db, () => !db.stats().replicas[0].lagging, "replica0 rejoins");
    await db.close();
  });

  test("close(): a check still running settles into nothing, and none starts after", async () => {
    // The picker always takes the last healthy replica, so reads never wait on replica0's held statements.
    const { db, lag, replica0, replica1 } = setup({ routing: { maxLag: 1_000, picker: (c) => c.length - 1 } });
    await db.fetchAll("select 1"); // the first checks: no lag
    await readUntil(db, () => checks(replica0) === 1 && replica0.running.length === 0, "replica0's first check ended");
    await new Promise((resolve) => setTimeout(resolve, 15)); // past recheckAfter
    lag.replica0 = 5_000;
    replica0.holdStatements = true;
    await db.fetchAll("select 1"); // served by replica1; starts the next checks, and replica0's waits
    await readUntil(db, () => replica0.running.some((s) => isLagStatement(s.text)), "replica0's check runs");
    const closing = db.close({ timeout: 1_000 });
    while (replica0.running.length > 0) {
      for (const statement of replica0.running) statement.finish([{ lag: 5_000 }]);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    await closing;
    assert.equal(db.stats().replicas[0].lagging, false, "the answer that came after close() was not kept");
    const before = checks(replica0) + checks(replica1);
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(checks(replica0) + checks(replica1), before, "no check started after close()");
  });
});

describe("routing.maxLag: bad values", () => {
  for (const maxLag of [-1, 1.5, Number.NaN, Infinity, "1000", true]) {
    test(`maxLag ${String(maxLag)} is a ConfigError ROOST_INVALID_MAX_LAG`, () => {
      const error = (() => {
        try {
          new Database("postgres://u@primary/db", {
            driver: new FakeDriver(),
            routing: { maxLag: maxLag as number },
          });
        } catch (e) {
          return e;
        }
      })();
      assert.ok(error instanceof ConfigError && error.code === "ROOST_INVALID_MAX_LAG", String(error));
      assert.match(error.message, /routing\.maxLag must be a non-negative integer/);
    });
  }

  test("maxLag is refused for SQLite, and with connectionScope context", () => {
    assert.throws(
      () =>
        new Database("sqlite:///tmp/x.db", {
          driver: new FakeDriver({ dialect: "sqlite" }),
          replicas: ["sqlite:///tmp/x.db?mode=ro"],
          routing: { maxLag: 1 },
        }),
      (e: unknown) => e instanceof ConfigError && e.code === "ROOST_INVALID_MAX_LAG" && /SQLite/.test(e.message),
    );
    assert.throws(
      () =>
        new Database("postgres://u@primary/db", {
          driver: new FakeDriver(),
          connectionScope: "context",
          routing: { maxLag: 1_000 },
        }),
      (e: unknown) =>
        e instanceof ConfigError && e.code === "ROOST_INVALID_MAX_LAG" && /connectionScope/.test(e.message),
    );
  });

  test("maxLag 0 is off, and is the default", () => {
    const db = new Database("postgres://u@primary/db", { driver: new FakeDriver(), routing: { maxLag: 0 } });
    assert.equal(db.stats().replicas.length, 0);
    return db.close();
  });
});

describe("routing.maxLag and host lists: the Worker entry", () => {
  test(
    "edge.ts leaves the lag watch and the host choice out, and refuses maxLag and host lists with a ConfigError",
    skipUnless(runtime === "node", "run in a child Node process that loads edge.ts alone"),
    () => {
      const script = `
        import { ConfigError, Database } from "./edge.ts";
        import { FakeDriver } from "./tests/support/fake_driver.ts";
        const open = (routing) => new Database("postgres://u@primary/db", { driver: new FakeDriver(), routing });
        await open({}).close();
        const refusal = (make) => { try { make(); return "opened"; } catch (error) { return error instanceof ConfigError && error.message; } };
        console.log(refusal(() => open({ maxLag: 1000 })));
        console.log(refusal(() => new Database("postgres://u@h1,h2/db", { driver: new FakeDriver() })));
        console.log(refusal(() => new Database("postgres://u@h1/db?target_session_attrs=read-write", { driver: new FakeDriver() })));`;
      const root = fileURLToPath(new URL("../..", import.meta.url));
      const result = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
        cwd: root,
        encoding: "utf8",
      });
      const hostsRefused = "a host list or target_session_attrs: not in edge.ts";
      assert.deepEqual(
        result.stdout.trim().split("\n"),
        ["routing.maxLag: not in edge.ts", hostsRefused, hostsRefused],
        result.stderr,
      );
    },
  );
});
