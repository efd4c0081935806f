/**
 * Multi-host URLs on MySQL/MariaDB (`mysql://roost@h1:3306,h2:3307/test?
 * target_session_attrs=…`) against a real primary and replica, the twin of
 * multihost.test.ts: which host each target_session_attrs picks, in both
 * orders; prefer-standby while the replica is stopped; the typed error when
 * no host matches; replicas given as host lists; and a promotion by hand
 * with writers running (the primary fenced with `read_only`, the replica
 * caught up, its replication stopped and `read_only` turned off), after
 * which writes land on the promoted replica and every acknowledged write is
 * found there. On MySQL a server counts as a standby, and as read-only, when
 * its global `read_only` is on.
 *
 * Both servers are the file's own (tests/support/mariadb_replica.ts: two
 * `mariadbd` in a temporary directory, GTID replication, the replica
 * `read_only=1`, no MASTER_DELAY), so fencing the primary touches no server
 * another test uses; the shared MariaDB on 127.0.0.1:3306 is never made
 * read-only. Locally, a machine that cannot start them skips with the
 * reason; in CI that is a failure.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { ConnectionError, Database, type DatabaseOptions, QueryError, type RoostError, sql } from "../../mod.ts";
import { createMariaDbPair, type MariaDbPair } from "../support/mariadb_replica.ts";
import { freePort } from "../support/local_server.ts";
import { assertHidden, eventually, inCi, skipUnless, sleep, uniqueName } from "../support/support.ts";
import { type Target, targets } from "../support/targets.ts";

const mysqlTargets = targets({ places: ["mysql"] });
let pair: MariaDbPair | undefined;
let unavailable = "";
if (mysqlTargets.length > 0) {
  try {
    pair = await createMariaDbPair();
  } catch (error) {
    if (inCi) throw error;
    unavailable = error instanceof Error ? error.message : String(error);
    console.warn(`SKIPPING the MariaDB multi-host tests: ${unavailable}`);
  }
}

/** A port nothing listens on (it was free a moment ago). */
const down = await freePort();
const password = "mh-S3cret-pw";

/** A multi-host URL of the pair's servers (127.0.0.1, each port in turn). */
function hostList(ports: number[], query: string, login = "roost"): string {
  return `mysql://${login}@${ports.map((port) => `127.0.0.1:${port}`).join(",")}/test${query && `?${query}`}`;
}

/** Which server a statement ran on: its port, server_id and global read_only. */
async function server(db: Database): Promise<{ port: number; id: number; readOnly: number }> {
  const row = await db.fetchOne<Record<string, unknown>>(
    sql`select @@port as port, @@server_id as id, @@global.read_only as ro`,
  );
  return { port: Number(row?.port), id: Number(row?.id), readOnly: Number(row?.ro) };
}

/** The error `promise` rejects with. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail("expected a rejection");
}

let suitesLeft = pair ? mysqlTargets.length : 0;

for (const target of pair ? mysqlTargets : []) {
  describe(`multi-host URLs ${target.label.replace("[mysql ·", "[mariadb primary + replica ·")}`, () => {
    const p = pair!.primaryPort;
    const r = pair!.replicaPort;
    const primary = { port: p, id: 1, readOnly: 0 };
    const replica = { port: r, id: 2, readOnly: 1 };
    const opened: Database[] = [];
    const open = (url: string, options: DatabaseOptions = {}) => {
      const db = new Database(url, {
        driver: target.driver,
        ...options,
        pool: { acquireTimeout: 10_000, ...options.pool },
      });
      opened.push(db);
      return db;
    };

    after(async () => {
      await Promise.all(opened.map((db) => db.close()));
      if (--suitesLeft === 0) await pair!.destroy();
    });

    test("each target_session_attrs picks its kind of server, whichever order the hosts are in", async () => {
      const picks = {
        "read-write": primary,
        "primary": primary,
        "read-only": replica,
        "standby": replica,
        "prefer-standby": replica,
      };
      for (const [attrs, expected] of Object.entries(picks)) {
        for (const ports of [[r, p], [p, r]]) {
          const db = open(hostList(ports, `target_session_attrs=${attrs}`));
          assert.deepEqual(await server(db), expected, `${attrs} with ${ports}`);
          await db.close();
        }
      }
      for (const [ports, first] of [[[r, p], replica], [[p, r], primary]] as const) {
        const db = open(hostList([...ports], "target_session_attrs=any"));
        assert.deepEqual(await server(db), first, `any takes the first that answers (${ports})`);
        await db.close();
      }
    });

    test("prefer-standby takes the primary while the replica is stopped, and the replica once it is back", async () => {
      try {
        await pair!.stopReplica();
        const prefer = open(hostList([r, p], "target_session_attrs=prefer-standby"));
        assert.deepEqual(await server(prefer), primary);
        await prefer.close();
        const strict = open(hostList([r, p], "target_session_attrs=standby"));
        const error = await rejection(strict.execute(sql`select 1`));
        assert.ok(error instanceof ConnectionError, String(error));
        assert.equal(error.code, "ROOST_NO_MATCHING_HOST");
        assert.match(
          error.message,
          new RegExp(`127\\.0\\.0\\.1:${r}: .*; 127\\.0\\.0\\.1:${p} is a read-write primary`),
        );
        await strict.close();
      } finally {
        await pair!.startReplica();
      }
      const prefer = open(hostList([p, r], "target_session_attrs=prefer-standby"));
      assert.deepEqual(await server(prefer), replica);
    });

    test("no host matches: ROOST_NO_MATCHING_HOST says what each host is, without the password", async () => {
      const login = uniqueName("mh");
      const withPassword = (ports: number[], query: string) => hostList(ports, query, `${login}:${password}`);
      await pair!.primarySql(
        `create user '${login}'@'127.0.0.1' identified by '${password}'; grant all on test.* to '${login}'@'127.0.0.1'`,
      );
      try {
        await eventually(
          "the user to reach the replica",
          () => pair!.replicaSql(`select count(*) from mysql.user where user = '${login}'`),
          (count) => count === "1",
          30_000,
        );
        const cases = [
          [
            [r, down],
            "read-write",
            "read-write",
            new RegExp(`^no host of 127\\.0\\.0\\.1:${r},127\\.0\\.0\\.1:${down} `),
          ],
          [[down, p], "standby", "a standby", new RegExp(`127\\.0\\.0\\.1:${p} is a read-write primary\\)$`)],
          [[p], "read-only", "read-only", new RegExp(`\\(127\\.0\\.0\\.1:${p} is a read-write primary\\)$`)],
          [[r], "primary", "a primary", new RegExp(`\\(127\\.0\\.0\\.1:${r} is a standby\\)$`)],
        ] as const;
        for (const [ports, attrs, wanted, says] of cases) {
          const db = open(withPassword([...ports], `target_session_attrs=${attrs}&connect_timeout=5`));
          const error = await rejection(db.fetchVal(sql`select 1`));
          assert.ok(error instanceof ConnectionError, String(error));
          assert.equal(error.code, "ROOST_NO_MATCHING_HOST", error.message);
          assert.ok(error.message.includes(` is ${wanted} (`), error.message);
          assert.match(error.message, says);
          if (ports.includes(r)) assert.match(error.message, new RegExp(`127\\.0\\.0\\.1:${r} is a standby`));
          if (ports.includes(down)) assert.match(error.message, new RegExp(`127\\.0\\.0\\.1:${down}: `));
          assertHidden(error, [password], `a no-matching-host error (${attrs})`);
          await db.close();
        }
        // The same user reaches both servers when a host does match: the failures above are not the login's.
        const db = open(withPassword([down, r, p], "target_session_attrs=read-write&connect_timeout=5"));
        assert.deepEqual(await server(db), primary);
        await db.close();
      } finally {
        await pair!.primarySql(`drop user '${login}'@'127.0.0.1'`);
      }
    });

    test("replicas given as host lists: reads go to the replica, writes to the primary", async () => {
      const db = open(hostList([r, p], "target_session_attrs=read-write"), {
        replicas: [hostList([down, p, r], "target_session_attrs=standby&connect_timeout=5")],
        routing: { reads: "replicas" },
      });
      assert.deepEqual(await db.replica(() => server(db)), replica);
      assert.deepEqual(await server(db), replica, "a plain read goes to a replica");
      assert.deepEqual(await db.primary(() => server(db)), primary);
      await db.transaction(async (tx) => assert.equal(Number(await tx.fetchVal(sql`select @@port`)), p));
      assert.deepEqual(db.stats().replicas.map((health) => health.healthy), [true]);
    });

    test("a replica host list with no match leaves the rotation; reads fall back to the primary", async () => {
      const db = open(hostList([p], ""), {
        replicas: [hostList([down, p], "target_session_attrs=standby&connect_timeout=5")],
        routing: { reads: "replicas", fallback: "primary" },
      });
      assert.deepEqual(await db.replica(() => server(db)), primary);
      const [health] = db.stats().replicas;
      assert.equal(health.healthy, false);
      assert.match(health.lastError ?? "", /ROOST_NO_MATCHING_HOST|is a read-write primary/);
    });

    test("primary fenced, replica promoted by hand, writers running: refused writes are typed, writes resume on the promoted replica, none is lost", async () => {
      const name = uniqueName("promote");
      await pair!.primarySql(`create table test.${name} (n integer primary key, port integer)`);
      try {
        await eventually(
          "the table to reach the replica",
          () =>
            pair!.replicaSql(
              `select count(*) from information_schema.tables where table_schema = 'test' and table_name = '${name}'`,
            ),
          (count) => count === "1",
          30_000,
        );
        await promotion(target, name, open);
      } finally {
        // Replicated: the replica's copy, with the rows written there while it was promoted, goes too.
        await pair!.primarySql(`drop table if exists test.${name}`);
      }
    });
  });
}

/** One writer's record of a promotion. */
interface Writes {
  acked: { n: number; port: number; at: number }[];
  failures: unknown[];
}

/**
 * Writers on `[replica, primary]?target_session_attrs=read-write` while the
 * primary is fenced and the replica promoted; restores both roles after.
 */
async function promotion(
  target: Target,
  name: string,
  open: (url: string, options?: DatabaseOptions) => Database,
): Promise<void> {
  const table = sql.ident(name);
  const p = pair!.primaryPort;
  const r = pair!.replicaPort;
  const url = hostList([r, p], "target_session_attrs=read-write&connect_timeout=5");
  const db = open(url, { pool: { max: 2 } });
  const writes: Writes = { acked: [], failures: [] };
  let stop = false;
  let n = 0;
  const writer = (async () => {
    while (!stop) {
      const mine = ++n;
      try {
        const port = await db.fetchVal(sql`insert into ${table} (n, port) values (${mine}, @@port) returning port`);
        writes.acked.push({ n: mine, port: Number(port), at: Date.now() });
        await sleep(10);
      } catch (error) {
        writes.failures.push(error);
        await sleep(20);
      }
    }
  })();
  const codes = () => writes.failures.map((error) => (error as RoostError).code);
  let fenced = false;
  let promoted = false;
  try {
    await eventually("writes on the primary", () => writes.acked.length, (count) => count >= 5, 15_000);
    assert.ok(writes.acked.every((ack) => ack.port === p), "the read-write host is the primary");

    // In flight at the fence: a transaction that wrote a row and has not committed.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => release = resolve);
    const inFlight = rejection(db.transaction(async (tx) => {
      await tx.execute(sql`insert into ${table} (n, port) values (${-1}, @@port)`);
      await gate;
    }));
    await eventually(
      "the in-flight row to be written, uncommitted",
      () => pair!.primarySql(`select count(*) from information_schema.innodb_trx where trx_rows_modified > 0`),
      (count) => Number(count) >= 1,
      15_000,
    );

    fenced = true;
    await pair!.fencePrimary(true);
    release();
    const lost = await inFlight;
    assert.ok(lost instanceof QueryError, `the in-flight commit is refused, typed: ${lost}`);
    assert.equal(lost.code, "ER_OPTION_PREVENTS_STATEMENT");
    // The writer's pooled connection is refused, discarded, and no new one finds a read-write host.
    await eventually(
      "a write refused by the fenced primary, then no read-write host",
      () => [...new Set(codes())],
      (seen) => seen.includes("ER_OPTION_PREVENTS_STATEMENT") && seen.includes("ROOST_NO_MATCHING_HOST"),
      15_000,
    );
    const fresh = open(url);
    const none = await rejection(fresh.execute(sql`select 1`));
    assert.ok(none instanceof ConnectionError && none.code === "ROOST_NO_MATCHING_HOST", String(none));
    assert.match(none.message, new RegExp(`127\\.0\\.0\\.1:${r} is a standby; 127\\.0\\.0\\.1:${p} is a standby`));
    await fresh.close();

    promoted = true;
    await pair!.promote();
    const promotedAt = Date.now();
    await eventually(
      "writes on the promoted replica",
      () => writes.acked.filter((ack) => ack.port === r).length,
      (count) => count >= 5,
      30_000,
    );
    stop = true;
    await writer;

    const check = open(pair!.replicaUrl);
    const rows = await check.fetchAll<{ n: number; port: number }>(sql`select n, port from ${table}`);
    const stored = new Set(rows.map((row) => `${Number(row.n)}/${Number(row.port)}`));
    for (const { n, port } of writes.acked) {
      assert.ok(stored.has(`${n}/${port}`), `acknowledged write ${n} (on ${port}) is on the promoted replica`);
    }
    assert.ok(!rows.some((row) => Number(row.n) === -1), "the refused transaction's row is not on the replica");
    assert.equal(
      await pair!.primarySql(`select count(*) from test.${name} where n = -1 or port <> ${p}`),
      "0",
      "nor on the old primary, which took nothing after the fence",
    );
    assert.ok(
      writes.acked.filter((ack) => ack.at > promotedAt).every((ack) => ack.port === r),
      "after the promotion, every write went to the promoted replica",
    );
    for (const error of writes.failures) {
      assert.ok(
        (error instanceof QueryError && error.code === "ER_OPTION_PREVENTS_STATEMENT") ||
          (error instanceof ConnectionError && error.code === "ROOST_NO_MATCHING_HOST"),
        `a failure is a write the fenced primary refused, or no read-write host: ${error}`,
      );
    }
    const counts = [...new Set(codes())].map((code) => `${codes().filter((c) => c === code).length} ${code}`);
    console.info(
      `MariaDB promotion (${target.driver}): ${writes.acked.length} acknowledged writes, each on the ` +
        `promoted replica; failures: ${counts.join(", ")}`,
    );
  } finally {
    stop = true;
    await writer;
    if (promoted) await pair!.demote();
    if (fenced) await pair!.fencePrimary(false);
  }
  // Both roles are back: the next suite finds the primary read-write and the replica read-only.
  const after = open(hostList([r, p], "target_session_attrs=read-write"));
  assert.equal(Number(await after.fetchVal(sql`select @@port`)), p);
}

if (unavailable !== "") {
  describe("multi-host URLs [mariadb primary + replica]", () => {
    test(
      `needs a MariaDB primary and replica: ${unavailable}`,
      skipUnless(false, "they could not be started here"),
      () => {},
    );
  });
}
