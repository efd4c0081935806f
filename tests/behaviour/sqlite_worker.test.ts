/**
 * SQLite in a Worker thread (`worker=true`): the event loop keeps running
 * during a long query, errors and values cross the thread unchanged, a dead
 * thread is a broken connection, and the thread never holds the process open.
 * (The behavioural suite also runs over it: the "sqlite worker" place.)
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { compile, ConfigError, ConnectionError, Database, parseDatabaseUrl, QueryError, sql } from "../../mod.ts";
import { resolveDriverName } from "../../src/drivers/mod.ts";
import { SqliteConnection } from "../../src/drivers/sqlite/connection.ts";
import { SqliteWorkerConnection } from "../../src/drivers/sqlite/worker.ts";
import { runtime, tempDatabasePath } from "../support/support.ts";

/** A query that keeps SQLite busy for a while (a few hundred ms) without touching any table. */
const longQuery = sql`with recursive c(n) as (select 1 union all select n + 1 from c where n < 3000000)
  select count(*) from c`;

/** Runs `query` and counts the ticks a 5 ms interval managed while it was in flight. */
async function ticksDuring(db: Database): Promise<{ ticks: number; value: unknown }> {
  let ticks = 0;
  const interval = setInterval(() => ticks++, 5);
  try {
    const value = await db.fetchVal(longQuery);
    return { ticks, value };
  } finally {
    clearInterval(interval);
  }
}

/** What an error looks like from the outside: class, message, code and SQL. */
function shape(error: unknown): Record<string, unknown> {
  const { name, message, code, sql } = error as QueryError;
  return { name, message, code, sql, roost: error instanceof QueryError || error instanceof ConnectionError };
}

async function failure(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail("expected the call to fail");
}

const fixture = fileURLToPath(new URL("../support/fixtures/sqlite_worker_exit.ts", import.meta.url));
const execPath = (globalThis as unknown as { process: { execPath: string } }).process.execPath;

/** Runs the exit fixture on this runtime; resolves with how it ended and how long it took after printing "done". */
function runFixture(
  mode: "close" | "forget",
  url: string,
): Promise<{ code: number | null; out: string; after: number }> {
  const args = runtime === "deno" ? ["run", "-A", fixture, mode, url] : [fixture, mode, url];
  return new Promise((resolve, reject) => {
    const child = spawn(execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let doneAt = 0;
    child.stdout.on("data", (chunk) => {
      out += chunk;
      if (doneAt === 0 && out.includes("done")) doneAt = Date.now();
    });
    child.stderr.on("data", (chunk) => out += chunk);
    const killer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(killer);
      resolve({ code, out, after: doneAt === 0 ? Infinity : Date.now() - doneAt });
    });
  });
}

describe("SQLite in a worker thread", () => {
  test("a long query leaves the event loop free; without the worker it blocks it", async () => {
    await using inWorker = new Database("sqlite::memory:?worker=true");
    await using inProcess = new Database("sqlite::memory:");
    await inWorker.connect();
    await inProcess.connect();

    const worker = await ticksDuring(inWorker);
    const direct = await ticksDuring(inProcess);
    assert.equal(worker.value, 3_000_000);
    assert.equal(direct.value, 3_000_000);
    assert.ok(worker.ticks >= 10, `timers ran ${worker.ticks} times during the query in the worker`);
    assert.ok(direct.ticks <= 1, `timers ran ${direct.ticks} times during the query on the event loop's thread`);
  });

  test("errors keep their class, message, code and SQL", async () => {
    const path = tempDatabasePath();
    await using inWorker = new Database(`sqlite://${path}?worker=true`);
    await using inProcess = new Database(`sqlite://${path}`);
    await inWorker.execute(sql`create table uniq (v text unique)`);
    await inWorker.execute(sql`insert into uniq values (${"a"})`);

    const calls: [string, (db: Database) => Promise<unknown>][] = [
      ["unique violation", (db) => db.execute(sql`insert into uniq values (${"a"})`)],
      ["syntax error", (db) => db.fetchAll(sql`selec 1`)],
      ["missing table", (db) => db.fetchOne(sql`select * from no_such_table`)],
      ["undefined parameter", (db) => db.execute(sql`insert into uniq values (${undefined})`)],
      ["executeMany", (db) => db.executeMany(sql`insert into uniq values (${""})`, [["b"], ["a"]])],
      ["stream", (db) => db.iterate(sql`select * from no_such_table`).next()],
    ];
    for (const [what, call] of calls) {
      const fromWorker = await failure(call(inWorker));
      const fromProcess = await failure(call(inProcess));
      assert.ok(fromWorker instanceof QueryError, `${what}: ${String(fromWorker)}`);
      assert.deepEqual(shape(fromWorker), shape(fromProcess), what);
    }
    const unique = await failure(inWorker.execute(sql`insert into uniq values (${"a"})`)) as QueryError;
    assert.equal(unique.code, "SQLITE_CONSTRAINT_UNIQUE");
    assert.equal(unique.sql, "insert into uniq values (?)");
    assert.ok(unique.cause instanceof Error, "the driver's error travels as the cause");

    const missing = `sqlite://${tempDatabasePath()}?mode=rw`;
    const openInWorker = await failure(new Database(`${missing}&worker=true`).connect());
    const openInProcess = await failure(new Database(missing).connect());
    assert.ok(openInWorker instanceof ConnectionError);
    assert.deepEqual(shape(openInWorker), shape(openInProcess));
  });

  test("values come back exactly as they do without the worker", async () => {
    await using inWorker = new Database("sqlite::memory:?worker=true");
    await using inProcess = new Database("sqlite::memory:");
    const values = [
      null,
      0,
      -1.5,
      Number.MAX_SAFE_INTEGER,
      2n ** 62n,
      -(2n ** 63n),
      "text ✓",
      "",
      new Uint8Array([0, 1, 254, 255]),
      new Uint8Array(0),
      new Date("2024-02-29T12:34:56.789Z"),
      true,
      { a: [1, "x"] },
    ];
    for (const db of [inWorker, inProcess]) await db.execute(sql`create table v (i integer, x)`);
    const rows = values.map((value, i) => [i, value]);
    for (const db of [inWorker, inProcess]) await db.executeMany(sql`insert into v values (${0}, ${0})`, rows);
    const query = sql`select i, x, typeof(x) as t from v order by i`;
    const fromWorker = await inWorker.fetchAll(query);
    assert.deepEqual(fromWorker, await inProcess.fetchAll(query));
    assert.deepEqual(fromWorker[4], { i: 4, x: 2n ** 62n, t: "integer" });
    assert.deepEqual(fromWorker[8], { i: 8, x: new Uint8Array([0, 1, 254, 255]), t: "blob" });
    assert.deepEqual(fromWorker[10], { i: 10, x: "2024-02-29T12:34:56.789Z", t: "text" });
    const one = sql`select x from v where x = ${2n ** 62n}`;
    assert.deepEqual(await inWorker.fetchOne(one), await inProcess.fetchOne(one));
    const streamed = [];
    for await (const row of inWorker.iterate(query, undefined, { batchSize: 3 })) streamed.push(row);
    assert.deepEqual(streamed, fromWorker);
  });

  test("a stream left early frees its statement; other statements run between its batches", async () => {
    await using db = new Database(`sqlite://${tempDatabasePath()}?worker=true`, { pool: { max: 1 } });
    await db.execute(sql`create table s (n integer)`);
    await db.executeMany(sql`insert into s values (${0})`, Array.from({ length: 10 }, (_, i) => [i]));
    const seen: number[] = [];
    for await (const row of db.iterate<{ n: number }>(sql`select n from s order by n`, undefined, { batchSize: 2 })) {
      seen.push(row.n, (await db.fetchVal<number>(sql`select count(*) from s`))!);
      if (seen.length === 6) break;
    }
    assert.deepEqual(seen, [0, 10, 1, 10, 2, 10]);
    // The abandoned statement was finalised: nothing holds a read lock that would block this write.
    await db.execute(sql`drop table s`);
    assert.deepEqual(db.stats().primary, { size: 1, idle: 1, busy: 0, waiting: 0 });
  });

  test("a thread that dies makes its connection broken, and its calls fail with ConnectionError", async () => {
    const driver = await resolveDriverName("sqlite", undefined)();
    const connection = await driver.connect(parseDatabaseUrl("sqlite::memory:?worker=true"));
    assert.ok(connection instanceof SqliteWorkerConnection);
    assert.equal(connection.broken, false);
    await connection.ping!();
    const running = assert.rejects(connection.fetchAll(compile(longQuery, "sqlite").text, []), ConnectionError);
    await connection.terminate();
    await running;
    assert.equal(connection.broken, true);
    await assert.rejects(connection.fetchOne("select 1", []), ConnectionError);
    await assert.rejects(connection.ping!(), ConnectionError);
    await connection.close();

    const inProcess = await driver.connect(parseDatabaseUrl("sqlite::memory:?worker=false"));
    assert.ok(inProcess instanceof SqliteConnection, "worker=false keeps the connection on this thread");
    await inProcess.close();
  });

  test("closing the database ends the thread, and an idle one never holds the process open", async () => {
    for (const mode of ["close", "forget"] as const) {
      const { code, out, after } = await runFixture(mode, `sqlite://${tempDatabasePath()}?worker=true`);
      assert.equal(code, 0, `${mode}: ${out}`);
      assert.match(out, /done/);
      // A thread that held the process open would keep it alive until the fixture's 20 s kill.
      assert.ok(after < 10_000, `${mode}: the process exited ${after} ms after its last query`);
    }
  });

  test("worker takes true or false; anything else is a ConfigError", () => {
    assert.equal(parseDatabaseUrl("sqlite:app.db?worker=true").options.worker, true);
    assert.equal(parseDatabaseUrl("sqlite::memory:?worker=0").options.worker, false);
    for (const bad of ["yes", "", "2"]) {
      assert.throws(() => new Database(`sqlite:app.db?worker=${bad}`), (error) => {
        assert.ok(error instanceof ConfigError);
        assert.match(error.message, /"worker" must be true or false/);
        return true;
      });
    }
    assert.throws(() => new Database("postgres://u@localhost/db?worker=true"), ConfigError);
  });
});
