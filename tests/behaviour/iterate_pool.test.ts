/**
 * `iterate` at the top level when the pool is exhausted: querying the same
 * database inside `for await` is answered even on a pool of one, on every
 * target, whether the driver lends the streaming connection (SQLite) or the
 * stream reads the rest of its result and gives its connection back
 * (Postgres, MySQL).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Kysely, sql as ksql } from "kysely";
import { type Database, type DatabaseOptions, PoolTimeoutError, QueryError, sql } from "../../mod.ts";
import { RoostDialect } from "../../src/kysely.ts";
import { runtime, signal, skipUnless } from "../support/support.ts";
import { matches, serverDialects, type Target, targets } from "../support/targets.ts";

const rows = 200;
const batchSize = 10;

/** `rows` numbered rows, from a query every dialect runs without a table. */
const numbers = (count = rows) =>
  sql`with recursive s(n) as (select 1 union all select n + 1 from s where n < ${count}) select n from s`;

/** A query the loop's body runs: its answer proves it ran (and was not another loop's). */
const double = (n: number) => sql`select ${n} * 2 as v`;

/** A replica of the target for read routing, where one can be opened beside it. */
function replicaUrlOf(target: Target): string | undefined {
  if (target.place === "pglite") return undefined;
  if (target.dialect !== "sqlite") return target.url;
  if (target.url.includes(":memory:")) return undefined;
  return `${target.url}${target.url.includes("?") ? "&" : "?"}mode=ro`;
}

/** Checks that every row from 1 to `count` was seen once, in order. */
function assertEveryRowOnce(seen: number[], count = rows): void {
  assert.deepEqual(seen, Array.from({ length: count }, (_, i) => i + 1));
}

for (const target of targets()) {
  describe(`iterate with an exhausted pool on ${target.label}`, () => {
    const open = (options: DatabaseOptions = {}): Database =>
      target.open({ ...options, pool: { max: 1, acquireTimeout: 10_000, ...options.pool } });

    test("a query inside the loop is answered on a pool of one", async () => {
      const db = open();
      try {
        const seen: number[] = [];
        for await (const { n } of db.iterate<{ n: number }>(numbers(), undefined, { batchSize })) {
          seen.push(Number(n));
          assert.equal(Number(await db.fetchVal(double(Number(n)))), Number(n) * 2);
        }
        assertEveryRowOnce(seen);
        assert.equal(db.stats().primary.busy, 0);
      } finally {
        await db.close();
      }
    });

    test("db.transaction and db.connection inside the loop run on a pool of one", async () => {
      const db = open();
      try {
        const seen: number[] = [];
        let answered = 0;
        for await (const { n } of db.iterate<{ n: number }>(numbers(), undefined, { batchSize })) {
          const value = Number(n);
          seen.push(value);
          const scoped = value % 2 === 0
            ? await db.transaction((tx) => tx.fetchVal(double(value)))
            : await db.connection((conn) => conn.fetchVal(double(value)));
          assert.equal(Number(scoped), value * 2);
          answered++;
        }
        assertEveryRowOnce(seen);
        assert.equal(answered, rows);
      } finally {
        await db.close();
      }
    });

    test("a second iterate inside the loop streams on a pool of one", async () => {
      const db = open();
      try {
        const seen: number[] = [];
        let inner = 0;
        for await (const { n } of db.iterate<{ n: number }>(numbers(), undefined, { batchSize })) {
          seen.push(Number(n));
          if (Number(n) % 50 !== 1) continue;
          const got: number[] = [];
          for await (const row of db.iterate<{ n: number }>(numbers(5), undefined, { batchSize: 2 })) {
            got.push(Number(row.n));
          }
          assert.deepEqual(got, [1, 2, 3, 4, 5]);
          inner++;
        }
        assertEveryRowOnce(seen);
        assert.equal(inner, rows / 50);
        assert.equal(db.stats().primary.busy, 0);
      } finally {
        await db.close();
      }
    });

    test("ten loops at once on a pool of ten, each querying inside, see every row and get every answer", async () => {
      const db = open({ pool: { max: 10 } });
      try {
        const loop = async (offset: number) => {
          const seen: number[] = [];
          for await (const { n } of db.iterate<{ n: number }>(numbers(), undefined, { batchSize })) {
            seen.push(Number(n));
            assert.equal(Number(await db.fetchVal(double(Number(n) + offset))), (Number(n) + offset) * 2);
          }
          return seen;
        };
        const results = await Promise.all(Array.from({ length: 10 }, (_, i) => loop(i * 1_000)));
        for (const seen of results) assertEveryRowOnce(seen);
        assert.equal(db.stats().primary.busy, 0);
      } finally {
        await db.close();
      }
    });

    test("leaving the loop early after a query inside it frees the connection", async () => {
      const db = open();
      try {
        const seen: number[] = [];
        for await (const { n } of db.iterate<{ n: number }>(numbers(), undefined, { batchSize })) {
          seen.push(Number(n));
          assert.equal(Number(await db.fetchVal(double(Number(n)))), Number(n) * 2);
          if (seen.length === 25) break;
        }
        assertEveryRowOnce(seen, 25);
        assert.equal(db.stats().primary.busy, 0);
        assert.equal(Number(await db.fetchVal(double(21))), 42);
      } finally {
        await db.close();
      }
    });

    test("an error in the loop's body after a query inside it ends the stream and frees the connection", async () => {
      const db = open();
      try {
        let seen = 0;
        await assert.rejects(
          (async () => {
            for await (const { n } of db.iterate<{ n: number }>(numbers(), undefined, { batchSize })) {
              seen++;
              await db.fetchVal(double(Number(n)));
              if (seen === 15) throw new Error("body fails");
            }
          })(),
          /body fails/,
        );
        assert.equal(seen, 15);
        assert.equal(db.stats().primary.busy, 0);
        assert.equal(Number(await db.fetchVal(double(21))), 42);
      } finally {
        await db.close();
      }
    });

    test("a Kysely stream() over RoostDialect, with Roost and Kysely queries inside, on a pool of one", async () => {
      const db = open();
      const kysely = new Kysely<Record<string, { n: number }>>({ dialect: new RoostDialect({ database: db }) });
      try {
        const seen: number[] = [];
        const recursive =
          `with recursive s(n) as (select 1 union all select n + 1 from s where n < ${rows}) select n from s`;
        const from = ksql<{ n: number }>`(${ksql.raw(recursive)})`.as("s");
        for await (const { n } of kysely.selectFrom(from).select("n").stream(batchSize)) {
          seen.push(Number(n));
          assert.equal(Number(await db.fetchVal(double(Number(n)))), Number(n) * 2);
          const one = await kysely.selectNoFrom(ksql<number>`${Number(n)} + 1`.as("v")).executeTakeFirstOrThrow();
          assert.equal(Number(one.v), Number(n) + 1);
        }
        assertEveryRowOnce(seen);
      } finally {
        // kysely.destroy() leaves the Roost database open (it belongs to whoever opened it).
        await kysely.destroy();
        await db.close();
      }
    });

    test(
      "a server error part-way through a stream that gave its connection back comes after the rows before it",
      skipUnless(
        matches(target, { dialects: serverDialects }),
        "a SQLite stream lends its connection: nothing is read ahead",
      ),
      async () => {
        const db = open();
        // Row 150 fails on the server: a division by zero (Postgres), a subquery with two rows (MySQL).
        const failing = target.dialect === "postgres"
          ? sql`select n, 1 / (n - 150) as v from (${numbers()}) s`
          : sql`select n, (select 1 from (select 1 union all select 2) t where s.n = 150) as v from (${numbers()}) s`;
        try {
          const seen: number[] = [];
          await assert.rejects(
            (async () => {
              for await (const { n } of db.iterate<{ n: number }>(failing, undefined, { batchSize })) {
                seen.push(Number(n));
                assert.equal(Number(await db.fetchVal(double(Number(n)))), Number(n) * 2);
              }
            })(),
            QueryError,
          );
          // Read ahead at the first row, the rows before the failing batch are still handed out, once each, in order
          // (Bun.SQL reads a MySQL result whole before the first row, so there the failure comes first).
          if (target.driver === "bun-sql" && target.dialect === "mysql") assert.equal(seen.length, 0);
          else assert.ok(seen.length >= 100 && seen.length < 150, `saw ${seen.length} rows`);
          assertEveryRowOnce(seen, seen.length);
          assert.equal(db.stats().primary.busy, 0);
          assert.equal(Number(await db.fetchVal(double(21))), 42);
        } finally {
          await db.close();
        }
      },
    );

    // The server dialects' counterpart is the test above.
    if (target.dialect === "sqlite") {
      test("a SQLite error part-way through a stream is a QueryError after the rows before it (Deno's node:sqlite: ends there, the known gap)", async () => {
        const db = open();
        // Row 150 fails in SQLite itself: abs() of the smallest 64-bit integer is an integer overflow.
        const failing =
          sql`select n, abs(case when n = 150 then -9223372036854775807 - 1 else n end) as v from (${numbers()}) s`;
        try {
          const seen: number[] = [];
          const outcome = await (async () => {
            for await (const { n } of db.iterate<{ n: number }>(failing, undefined, { batchSize })) {
              seen.push(Number(n));
              assert.equal(Number(await db.fetchVal(double(Number(n)))), Number(n) * 2);
            }
          })().then(() => "complete", (error: unknown) => error);
          // Rows are read a batch at a time: those of the failing batch before row 150 may not be handed out.
          assert.ok(seen.length >= 100 && seen.length < 150, `saw ${seen.length} rows`);
          assertEveryRowOnce(seen, seen.length);
          if (runtime === "deno" && target.driver === "node-sqlite") {
            // The known gap (RELIABILITY.md): Deno's node:sqlite ends iterate() as if the result were complete. This
            // assertion fails once Deno raises the error, and the gap can go.
            assert.equal(outcome, "complete");
          } else {
            assert.ok(
              outcome instanceof QueryError && /integer overflow/.test(outcome.message),
              `expected a QueryError, got ${outcome}`,
            );
          }
          assert.equal(db.stats().primary.busy, 0);
          assert.equal(Number(await db.fetchVal(double(21))), 42);
        } finally {
          await db.close();
        }
      });
    }

    const replicaUrl = replicaUrlOf(target);
    test(
      'reads: "replicas": a read inside the loop is answered on a replica pool of one',
      skipUnless(
        replicaUrl !== undefined,
        target.place === "pglite"
          ? "a PGlite database lives in this process and has no replicas"
          : "an in-memory SQLite database cannot have a replica",
      ),
      async () => {
        const db = open({ replicas: [replicaUrl!], routing: { reads: "replicas" } });
        try {
          const seen: number[] = [];
          for await (const { n } of db.iterate<{ n: number }>(numbers(), undefined, { batchSize })) {
            seen.push(Number(n));
            assert.equal(Number(await db.fetchVal(double(Number(n)))), Number(n) * 2);
          }
          assertEveryRowOnce(seen);
          assert.equal(db.stats().replicas[0]!.busy, 0);
          assert.equal(db.stats().primary.size, 0); // nothing fell back to the primary
        } finally {
          await db.close();
        }
      },
    );

    test("a caller waiting while a scope inside the loop holds the only connection still times out", async () => {
      const db = open({ pool: { acquireTimeout: 500 } });
      try {
        const gate = signal();
        // Started outside the loop, so it queries at the top level, not in the loop body's scope.
        const late = gate.promise.then(() => db.fetchVal(sql`select 1`)).then(() => undefined, (error) => error);
        let outcome: unknown;
        const seen: number[] = [];
        for await (const { n } of db.iterate<{ n: number }>(numbers(), undefined, { batchSize })) {
          seen.push(Number(n));
          if (seen.length !== 5) continue;
          await db.transaction(async (tx) => {
            gate.resolve();
            // The pool's timers never keep a process alive; this test's wait must (Deno ends a test whose loop empties).
            const alive = setInterval(() => {}, 1_000);
            outcome = await late.finally(() => clearInterval(alive));
            assert.equal(Number(await tx.fetchVal(double(3))), 6);
          });
        }
        assert.ok(outcome instanceof PoolTimeoutError, `expected a PoolTimeoutError, got ${outcome}`);
        assertEveryRowOnce(seen);
      } finally {
        await db.close();
      }
    });

    test("close() inside the loop after a query inside it: the loop still sees every row", async () => {
      const db = open();
      const seen: number[] = [];
      let closing: Promise<void> | undefined;
      for await (const { n } of db.iterate<{ n: number }>(numbers(), undefined, { batchSize })) {
        seen.push(Number(n));
        if (seen.length === 1) {
          assert.equal(Number(await db.fetchVal(double(Number(n)))), 2);
          closing = db.close();
        }
      }
      await closing;
      assertEveryRowOnce(seen);
      assert.equal(db.stats().primary.size, 0);
    });
  });
}
