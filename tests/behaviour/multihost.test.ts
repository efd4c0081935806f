/**
 * Multi-host URLs (`postgres://h1:p1,h2:p2/db?target_session_attrs=…`)
 * against a real primary and hot standby, which this file creates (a
 * Postgres of its own on a free port, initdb'd in a temporary directory, and
 * a pg_basebackup standby of it; the shared test server is never stopped)
 * and removes afterwards: which host each target_session_attrs picks, in
 * both orders; a closed port and a silent host first in the list; typed
 * errors when no host matches; replicas given as host lists; then one
 * fail-over for every driver at once (writers running, the primary stopped,
 * the standby promoted), after which writes land on the new primary and
 * every acknowledged write is found there. MySQL: host selection against the
 * shared MariaDB. Locally, a machine that cannot create the servers skips
 * with the reason; in CI that is a failure.
 */
import assert from "node:assert/strict";
import { createServer, type Server, type Socket } from "node:net";
import { after, describe, test } from "node:test";
import {
  ClosedError,
  ConnectionError,
  Database,
  type DatabaseOptions,
  QueryCanceledError,
  QueryError,
  RoostError,
  sql,
} from "../../mod.ts";
import { createPrimary, createStandby, type Standby, type TestPrimary } from "../support/standby.ts";
import { assertHidden, eventually, inCi, sleep, uniqueName, within } from "../support/support.ts";
import { reachedBy, type Target, targets } from "../support/targets.ts";

const postgresTargets = targets({ places: ["postgres"] });
const mysqlTargets = targets({ places: ["mysql"] });

let primary: TestPrimary | undefined;
let standby: Standby | undefined;
if (postgresTargets.length > 0) {
  try {
    primary = await createPrimary();
    standby = await createStandby(primary.url);
  } catch (error) {
    await primary?.destroy();
    primary = undefined;
    if (inCi) throw error;
    console.warn(`SKIPPING the multi-host tests: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** A port nothing listens on (it was free a moment ago). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A server that takes TCP connections and never says anything: a host that hangs a client without a timeout. */
async function silentServer(): Promise<{ port: number; readonly open: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on("error", () => {});
    socket.on("close", () => sockets.delete(socket));
    // Read and dropped: a socket left paused never sees the client close it.
    socket.resume();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  // Closed in after(), which never runs when this file defines no test (no Postgres or MySQL target): not to keep
  // the process alive then.
  server.unref();
  const { port } = server.address() as { port: number };
  return {
    port,
    /** Client sockets still open. */
    get open() {
      return sockets.size;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

const password = "mh-S3cret-pw";
const down = await closedPort();
const silent = await silentServer();

/** A multi-host URL as `target`'s driver reaches it (neon: through this process's WebSocket proxy). */
function hostList(target: Target, dialect: "postgres" | "mysql", ports: number[], query: string, db: string): string {
  const proxy = new URL(reachedBy(target.driver, `${dialect}://x/y`)).search.slice(1);
  const hosts = ports.map((port) => `127.0.0.1:${port}`).join(",");
  const user = dialect === "postgres" ? "postgres" : "root";
  return `${dialect}://${user}:${password}@${hosts}/${db}?${[proxy, query].filter(Boolean).join("&")}`;
}

/** The port of the server a statement ran on. */
const serverPort = (db: Database) => db.fetchVal<number>(sql`select inet_server_port()`).then(Number);

/** The error `promise` rejects with. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail("expected a rejection");
}

after(async () => {
  await silent.close();
  await standby?.destroy();
  await primary?.destroy();
});

const opened: Database[] = [];

/** An instance of `target`'s driver on `url`. */
function openAt(target: Target, url: string, options: DatabaseOptions = {}): Database {
  const db = new Database(url, {
    driver: target.driver,
    ...options,
    pool: { acquireTimeout: 10_000, ...options.pool },
  });
  opened.push(db);
  return db;
}

after(() => Promise.all(opened.map((db) => db.close())));

for (const target of primary && standby ? postgresTargets : []) {
  const p = primary!.port;
  const s = standby!.port;
  const open = (ports: number[], query: string, options?: DatabaseOptions) =>
    openAt(target, hostList(target, "postgres", ports, query, "postgres"), options);

  describe(`multi-host URLs ${target.label}`, () => {
    test("each target_session_attrs picks its kind of server, whichever order the hosts are in", async () => {
      const picks: Record<string, number> = {
        "read-write": p,
        "primary": p,
        "read-only": s,
        "standby": s,
        "prefer-standby": s,
      };
      for (const [attrs, expected] of Object.entries(picks)) {
        for (const ports of [[p, s], [s, p]]) {
          const db = open(ports, `target_session_attrs=${attrs}`);
          assert.equal(await serverPort(db), expected, `${attrs} with ${ports}`);
          await db.close();
        }
      }
      for (const ports of [[p, s], [s, p]]) {
        const db = open(ports, "target_session_attrs=any");
        assert.equal(await serverPort(db), ports[0], "any takes the first that answers");
        await db.close();
      }
    });

    test("a closed port and a silent host first in the list are passed over (connect_timeout per host)", async () => {
      const db = open([down, silent.port, s, p], "target_session_attrs=read-write&connect_timeout=1");
      assert.equal(await serverPort(db), p);
      await db.execute(sql`select 1`);
    });

    test("connect_timeout=0 sets no deadline per host (as in libpq): the host after a closed port is reached", async () => {
      const db = open([down, s, p], "target_session_attrs=read-write&connect_timeout=0");
      assert.equal(await serverPort(db), p);
      await db.execute(sql`select 1`);
    });

    test("prefer-standby takes a primary when no standby answers; standby then fails typed", async () => {
      const prefer = open([down, p], "target_session_attrs=prefer-standby");
      assert.equal(await serverPort(prefer), p);
      const strict = open([down, p], "target_session_attrs=standby");
      const error = await rejection(strict.execute(sql`select 1`));
      assert.ok(error instanceof ConnectionError, String(error));
      assert.equal(error.code, "ROOST_NO_MATCHING_HOST");
      assert.match(error.message, new RegExp(`127\\.0\\.0\\.1:${down}.*127\\.0\\.0\\.1:${p} is a read-write primary`));
      assertHidden(error, [password], "password in a no-matching-host error");
    });

    test("no host reachable is a ConnectionError ROOST_HOSTS_UNREACHABLE naming each host", async () => {
      const db = open([down, silent.port], "target_session_attrs=read-write&connect_timeout=1");
      const error = await rejection(db.fetchAll(sql`select 1`));
      assert.ok(error instanceof ConnectionError, String(error));
      assert.equal(error.code, "ROOST_HOSTS_UNREACHABLE");
      const causes = (error.cause as AggregateError).errors;
      assert.deepEqual(causes.map((cause) => cause instanceof ConnectionError), [true, true]);
      assert.equal(causes[1].code, "ROOST_CONNECT_TIMEOUT", "the silent host's wait ended at connect_timeout");
      assert.ok(error.message.includes(`:${down}`) && error.message.includes(`:${silent.port}`), error.message);
      assertHidden(error, [password], "password in a hosts-unreachable error");
    });

    test("a pooled connection whose primary was fenced read-only is discarded after its refused write", async () => {
      const db = open([p, s], "target_session_attrs=read-write", { pool: { max: 1 } });
      assert.equal(await serverPort(db), p);
      const admin = new Database(primary!.url);
      const fence = async (on: boolean) => {
        await admin.execute(
          sql.unsafe(
            `alter system ${on ? "set default_transaction_read_only = on" : "reset default_transaction_read_only"}`,
          ),
        );
        await admin.fetchVal(sql`select pg_reload_conf()`);
      };
      try {
        await fence(true);
        // The idle pooled connection reads the new default at its next statement: its write is refused, typed.
        const write = () => db.execute(sql`create table if not exists ${sql.ident(`fenced_${target.driver}`)} (x int)`);
        const refused = await eventually(
          "the fence to reach the pooled session",
          () => write().then(() => undefined, (error: unknown) => error),
          (error) => error instanceof QueryError,
          10_000,
        );
        assert.equal((refused as QueryError).code, "25006");
        // That connection is gone; a new one finds no read-write host (the primary fenced, the other a standby).
        const none = await rejection(db.execute(sql`select 1`));
        assert.ok(none instanceof ConnectionError, String(none));
        assert.equal(none.code, "ROOST_NO_MATCHING_HOST");
        assert.match(none.message, /is a read-only primary.*is a standby/);
      } finally {
        await fence(false);
        await admin.close();
      }
      assert.equal(await serverPort(db), p, "unfenced, the primary is found again");
      // Rows as arrays go through the same watched connection.
      const { columns, rows } = await db.fetchRows<[number]>(sql`select inet_server_port() as port`);
      assert.deepEqual([columns, rows], [["port"], [[p]]]);
    });

    test("an acquired handle held while its primary is fenced: its write fails typed, release discards the connection", async () => {
      const db = open([p, s], "target_session_attrs=read-write", { pool: { max: 2 } });
      const admin = new Database(primary!.url);
      const fence = async (on: boolean) => {
        await admin.execute(
          sql.unsafe(
            `alter system ${on ? "set default_transaction_read_only = on" : "reset default_transaction_read_only"}`,
          ),
        );
        await admin.fetchVal(sql`select pg_reload_conf()`);
      };
      const conn = await db.acquire();
      try {
        assert.equal(Number(await conn.fetchVal(sql`select inet_server_port()`)), p);
        const pid = Number(await conn.fetchVal(sql`select pg_backend_pid()`));
        await fence(true);
        // The held session reads the new default at its next statement: its write is refused, typed.
        const write = () =>
          conn.execute(sql`create table if not exists ${sql.ident(`fenced_acq_${target.driver}`)} (x int)`);
        const refused = await eventually(
          "the fence to reach the held session",
          () => write().then(() => undefined, (error: unknown) => error),
          (error) => error instanceof QueryError,
          10_000,
        );
        assert.equal((refused as QueryError).code, "25006");
        await conn.release();
        // Released, it is closed, not kept: the pool holds nothing and the next connection finds no read-write host.
        assert.deepEqual([db.stats().primary.size, db.stats().primary.idle], [0, 0]);
        const none = await rejection(db.execute(sql`select 1`));
        assert.ok(none instanceof ConnectionError && none.code === "ROOST_NO_MATCHING_HOST", String(none));
        await eventually(
          "the discarded session to leave the server",
          () => admin.fetchVal<number>(sql`select count(*) from pg_stat_activity where pid = ${pid}`).then(Number),
          (n) => n === 0,
          10_000,
        );
      } finally {
        await conn.release();
        await fence(false);
        await admin.close();
      }
      assert.equal(await serverPort(db), p, "unfenced, the primary is found again");
    });

    test("crossings: pool min, statement timeout, load_balance_hosts=random, close while a host is tried", async () => {
      const warm = open([down, s, p], "target_session_attrs=read-write&statement_timeout=200", { pool: { min: 2 } });
      await warm.connect();
      assert.equal(warm.stats().primary.size, 2);
      assert.equal(await serverPort(warm), p);
      const late = await rejection(warm.execute(sql`select pg_sleep(2)`));
      assert.ok(late instanceof QueryCanceledError, `the statement timeout holds on the chosen host: ${late}`);

      const seen = new Set<number>();
      for (let i = 0; i < 24 && seen.size < 2; i++) {
        const db = open([s, p], "load_balance_hosts=random");
        seen.add(await serverPort(db));
        await db.close();
      }
      assert.deepEqual([...seen].sort(), [p, s].sort(), "random order reaches both hosts");

      // Closing while a connection waits on a silent host: close settles, the statement fails with ClosedError at
      // once, the socket to the silent host closes, and no further host is tried (before: the statement waited out
      // the silent host's connect_timeout, then a connection opened on the next host and was closed).
      const app = uniqueName("mh_close");
      // A silent host of its own: the file's is in use by the other targets' tests meanwhile.
      const quiet = await silentServer();
      const db = open([quiet.port, p], `target_session_attrs=read-write&connect_timeout=60&application_name=${app}`);
      const statement = db.execute(sql`select 1`).then(() => undefined, (error: unknown) => error);
      const admin = new Database(primary!.url);
      try {
        await eventually("a socket to the silent host", () => quiet.open, (n) => n === 1, 10_000);
        await within(db.close(), 10_000, "close during host selection");
        const outcome = await within(statement, 10_000, "the statement during close");
        assert.ok(outcome instanceof ClosedError, `fails with ClosedError: ${outcome}`);
        await eventually("the socket to the silent host closes", () => quiet.open, (n) => n === 0, 10_000);
        await eventually(
          "no session left open by the closed instance",
          () => admin.fetchVal(sql`select count(*) from pg_stat_activity where application_name = ${app}`).then(Number),
          (count) => count === 0,
          10_000,
        );
      } finally {
        await admin.close();
        await quiet.close();
      }
    });

    test("a replica host list with no match leaves the rotation; reads fall back to the primary", async () => {
      const replica = hostList(target, "postgres", [down, p], "target_session_attrs=standby", "postgres");
      const db = open([p], "", { replicas: [replica], routing: { reads: "replicas", fallback: "primary" } });
      assert.equal(await db.replica(() => serverPort(db)), p);
      const [health] = db.stats().replicas;
      assert.equal(health.healthy, false);
      assert.match(health.lastError ?? "", /ROOST_NO_MATCHING_HOST|is a read-write primary/);
    });

    test("replicas given as host lists: reads go to the standby, writes to the primary", async () => {
      const replica = hostList(target, "postgres", [down, p, s], "target_session_attrs=standby", "postgres");
      const db = open([s, p], "target_session_attrs=read-write", {
        replicas: [replica],
        routing: { reads: "replicas" },
      });
      assert.equal(await db.replica(() => serverPort(db)), s);
      assert.equal(await serverPort(db), s, "a plain read goes to a replica");
      assert.equal(await db.primary(() => serverPort(db)), p);
      await db.transaction(async (tx) => assert.equal(Number(await tx.fetchVal(sql`select inet_server_port()`)), p));
      assert.deepEqual(db.stats().replicas.map((r) => r.healthy), [true]);
    });

    test("docs/scaling-out.md's set-up: host lists, reads on replicas, read-your-writes and maxLag together", async () => {
      const query = "connect_timeout=2";
      const db = open([s, p], `target_session_attrs=read-write&${query}`, {
        replicas: [hostList(target, "postgres", [s, p], `target_session_attrs=standby&${query}`, "postgres")],
        routing: { reads: "replicas", readYourWrites: 2_000, maxLag: 5_000 },
      });
      const table = sql.ident(uniqueName("guide"));
      try {
        assert.equal(await serverPort(db), s, "a read goes to the standby");
        await eventually(
          "the standby's lag to be measured",
          () => Promise.resolve(db.stats().replicas[0]),
          (r) => r.lag !== undefined,
          10_000,
        );
        assert.equal(db.stats().replicas[0].lagging, false, "a standby in step is in the rotation");
        await db.execute(sql`create table ${table} (x int)`);
        assert.equal(await serverPort(db), p, "right after a write, this instance's reads stay on the primary");
      } finally {
        await db.execute(sql`drop table if exists ${table}`);
      }
    });
  });
}

for (const target of mysqlTargets) {
  describe(`multi-host URLs ${target.label}`, () => {
    const url = (query: string) => hostList(target, "mysql", [down, 3306], query, "test").replace(`:${password}`, "");
    test("MySQL: a closed port first is passed over; read-write finds the server, read-only fails typed", async () => {
      const db = openAt(target, url("target_session_attrs=read-write&connect_timeout=2"));
      assert.equal(Number(await db.fetchVal(sql`select 1`)), 1);
      const ro = openAt(target, url("target_session_attrs=read-only&connect_timeout=2"));
      const error = await rejection(ro.fetchVal(sql`select 1`));
      assert.ok(error instanceof ConnectionError, String(error));
      assert.equal(error.code, "ROOST_NO_MATCHING_HOST");
    });
    test("MySQL: connect_timeout=0 sets no deadline per host: the server after a closed port is reached", async () => {
      const db = openAt(target, url("target_session_attrs=read-write&connect_timeout=0"));
      assert.equal(Number(await db.fetchVal(sql`select 1`)), 1);
    });
  });
}

/** How many sessions on the server at `port` wait in pg_sleep. */
async function active(port: number): Promise<number> {
  const db = new Database(`postgres://postgres@127.0.0.1:${port}/postgres`);
  try {
    return Number(
      await db.fetchVal(
        sql`select count(*) from pg_stat_activity where query like '%pg_sleep(%' and pid <> pg_backend_pid() and state = 'active'`,
      ),
    );
  } finally {
    await db.close();
  }
}

/** One writer's record of a fail-over. */
interface Writer {
  target: Target;
  db: Database;
  /** Acknowledged writes: sequence number and the port of the server that took it. */
  acked: { n: number; port: number; at: number }[];
  failures: { error: unknown; at: number }[];
  running: Promise<void>;
}

if (primary && standby && postgresTargets.length > 0) {
  describe("multi-host fail-over [postgres · every driver at once]", () => {
    test("primary stopped, standby promoted: in-flight work fails typed, writes resume on the new primary, none is lost or misplaced", async () => {
      const p = primary!.port;
      const s = standby!.port;
      const table = uniqueName("failover");
      const setup = new Database(primary!.url);
      await setup.execute(sql`create table ${sql.ident(table)} (driver text, n integer, port integer)`);
      await setup.close();
      // The standby has the table before the fail-over (it replays it within moments).
      const probe = new Database(standby!.url);
      await eventually(
        "the table on the standby",
        () => probe.fetchVal(sql`select to_regclass(${table}) is not null`),
        Boolean,
        15_000,
      );
      await probe.close();

      let stop = false;
      const writers: Writer[] = postgresTargets.map((target) => {
        const db = openAt(
          target,
          hostList(target, "postgres", [p, s], "target_session_attrs=read-write&connect_timeout=2", "postgres"),
          { pool: { max: 2 } },
        );
        const writer: Writer = { target, db, acked: [], failures: [], running: Promise.resolve() };
        writer.running = (async () => {
          for (let n = 1; !stop; n++) {
            try {
              const port = await db.fetchVal<number>(
                sql`insert into ${sql.ident(table)} values (${target.driver}, ${n}, inet_server_port()) returning port`,
              );
              writer.acked.push({ n, port: Number(port), at: Date.now() });
              await sleep(10);
            } catch (error) {
              writer.failures.push({ error, at: Date.now() });
              await sleep(50);
            }
          }
        })();
        return writer;
      });
      await eventually(
        "every writer writing to the old primary",
        () => writers.map((w) => w.acked.length),
        (counts) => counts.every((c) => c >= 5),
        15_000,
      );

      // In flight at the stop: a transaction that wrote a row and waits in a long statement, on each driver.
      const inFlight = writers.map(({ db, target }) =>
        rejection(db.transaction(async (tx) => {
          await tx.execute(sql`insert into ${sql.ident(table)} values (${target.driver}, ${-1}, inet_server_port())`);
          await tx.execute(sql`select pg_sleep(60)`);
        }))
      );
      await eventually(
        "the in-flight transactions to be waiting on the primary",
        () => writers.length === 0 ? 0 : active(p),
        (count) => count >= writers.length,
        15_000,
      );
      const stopped = Date.now();
      await primary!.stop();
      const stopDone = Date.now();
      await standby!.promote();
      const promoted = Date.now();
      await eventually(
        "every writer writing to the new primary",
        () => writers.map((w) => w.acked.filter((a) => a.port === s).length),
        (counts) => counts.every((c) => c >= 5),
        30_000,
      );
      stop = true;
      await Promise.all(writers.map((w) => w.running));
      const inFlightErrors = await Promise.all(inFlight);

      const check = new Database(standby!.url);
      const rows = await check.fetchAll<{ driver: string; n: number; port: number }>(
        sql`select driver, n, port from ${sql.ident(table)}`,
      );
      await check.close();
      const stored = new Set(rows.map((row) => `${row.driver}/${row.n}/${row.port}`));
      for (const writer of writers) {
        const label = writer.target.label;
        for (const { n, port } of writer.acked) {
          assert.ok(
            stored.has(`${writer.target.driver}/${n}/${port}`),
            `${label}: acknowledged write ${n} (on ${port}) is on the new primary`,
          );
        }
        const firstOnNew = writer.acked.find((a) => a.port === s)!;
        const lost = inFlightErrors[writers.indexOf(writer)];
        assert.ok(lost instanceof ConnectionError, `${label}: the in-flight transaction failed typed: ${lost}`);
        assert.ok(
          !stored.has(`${writer.target.driver}/-1/${p}`),
          `${label}: the in-flight transaction's row is nowhere`,
        );
        assert.ok(
          writer.acked.filter((a) => a.at > promoted).every((a) => a.port === s),
          `${label}: after the promotion, every write went to the new primary`,
        );
        for (const { error } of writer.failures) {
          assert.ok(error instanceof RoostError, `${label}: a failure is a typed error: ${error}`);
          assert.ok(
            error instanceof ConnectionError || (error instanceof QueryError && error.code === "57P01"),
            `${label}: a failure is a lost connection or a server shutting down: ${error}`,
          );
          assert.notEqual((error as RoostError).code, "25006", `${label}: nothing was sent to a read-only server`);
        }
        const codes = [
          ...new Set(
            writer.failures.map(({ error }) =>
              `${(error as RoostError).constructor.name}:${(error as RoostError).code ?? ""}`
            ),
          ),
        ];
        console.log(
          `fail-over ${label}: first write on the new primary ${firstOnNew.at - stopped} ms after the stop began ` +
            `(pg_ctl stop took ${stopDone - stopped} ms, promote until writable ${promoted - stopDone} ms); ` +
            `${writer.failures.length} typed failures (${
              codes.join(", ")
            }); ${writer.acked.length} acknowledged writes, each found on the new primary; in flight: ${
              (lost as RoostError).constructor.name
            } ${(lost as RoostError).code ?? ""}`,
        );
      }
    });
  });
}
