/** Scopes belong to their instance and to the async call tree that entered them. */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  ClosedError,
  ConnectionError,
  Database,
  type Queryable,
  QueryError,
  RoostError,
  sql,
  TransactionError,
} from "../../mod.ts";
import { signal, skipUnless, sleep, tempDatabasePath, uniqueTable } from "../support/support.ts";
import { notTransactionPooled, targets, transactionPooled } from "../support/targets.ts";

describe("scope isolation (SQLite file, pool of several connections)", () => {
  const url = `sqlite://${tempDatabasePath()}`;
  let db: Database;
  let other: Database;
  const items = uniqueTable("items");
  const count = (on: Database) => on.fetchVal<number>(sql`select count(*) from ${items}`);

  before(async () => {
    db = new Database(url, { pool: { max: 4 } });
    other = new Database(url, { pool: { max: 4 } });
    await db.execute(sql`create table ${items} (n integer)`);
  });
  after(async () => {
    await db.execute(sql`drop table ${items}`);
    await Promise.all([db.close(), other.close()]);
  });

  test("a concurrent sibling task does not join another task's transaction", async () => {
    const inserted = signal();
    const checked = signal();
    let siblingSaw = -1;
    let childSaw = -1;
    const writer = db.transaction(async () => {
      await db.execute(sql`insert into ${items} values (1)`);
      // A task started inside the callback belongs to its call tree: it sees the uncommitted row.
      childSaw = await Promise.resolve().then(() => count(db)) ?? -1;
      inserted.resolve();
      await checked.promise;
    });
    const sibling = (async () => {
      await inserted.promise;
      siblingSaw = await count(db) ?? -1;
      checked.resolve();
    })();
    await Promise.all([writer, sibling]);
    assert.equal(childSaw, 1);
    assert.equal(siblingSaw, 0, "the sibling read on its own connection, outside the transaction");
    assert.equal(await count(db), 1);
    await db.execute(sql`delete from ${items}`);
  });

  test("two instances never share a scope", async () => {
    await db.transaction(async () => {
      await db.execute(sql`insert into ${items} values (1)`);
      assert.equal(await count(db), 1);
      assert.equal(await count(other), 0, "the other instance is not inside db's transaction");
    });
    await other.transaction(async () => {
      assert.equal(await count(db), 1);
    });
    await db.execute(sql`delete from ${items}`);
  });

  test("concurrent transactions each get their own connection and both commit", async () => {
    await Promise.all(
      [1, 2, 3].map((n) =>
        db.transaction(async (tx) => {
          await tx.execute(sql`insert into ${items} values (${n})`);
          assert.equal(await db.fetchVal(sql`select count(*) from ${items} where n = ${n}`), 1);
        })
      ),
    );
    assert.equal(await count(db), 3);
    await db.execute(sql`delete from ${items}`);
  });
});

for (const target of targets()) {
  describe(`connection scopes on ${target.label}`, () => {
    let db: Database;
    before(() => {
      db = target.open();
    });
    after(() => db.close());

    test(
      "db.* inside connection(fn) runs on the held connection",
      skipUnless(!transactionPooled(target), `tells connections apart by a temporary table: ${notTransactionPooled}`),
      async () => {
        const scratch = uniqueTable("scratch");
        await db.connection(async (conn) => {
          // A temporary table exists only on the connection that created it.
          await conn.execute(sql`create temporary table ${scratch} (n integer)`);
          await db.execute(sql`insert into ${scratch} values (1)`);
          await db.connection(async () => {
            assert.equal(await db.fetchVal(sql`select count(*) from ${scratch}`), 1);
          });
          await conn.transaction(async () => {
            await db.execute(sql`insert into ${scratch} values (2)`);
          });
          assert.equal(await conn.fetchVal(sql`select count(*) from ${scratch}`), 2);
          await conn.execute(sql`drop table ${scratch}`);
        });
        assert.equal(db.stats().primary.busy, 0);
      },
    );

    test("iterate inside a scope, with queries on the same connection inside the loop", async () => {
      const three = sql`select 1 as n union all select 2 union all select 3`;
      const inTransaction = await db.transaction(async () => {
        const seen: number[] = [];
        for await (const row of db.iterate<{ n: number }>(three, undefined, { batchSize: 2 })) {
          seen.push(Number(await db.fetchVal(sql`select ${row.n} + 10`)));
        }
        return seen;
      });
      assert.deepEqual(inTransaction, [11, 12, 13]);
      const inConnection = await db.connection(async (conn) => {
        const seen: number[] = [];
        for await (const row of conn.iterate<{ n: number }>(three, undefined, { batchSize: 2 })) {
          seen.push(Number(await db.fetchVal(sql`select ${row.n} + 20`)));
        }
        return seen;
      });
      assert.deepEqual(inConnection, [21, 22, 23]);
      assert.equal(db.stats().primary.busy, 0);
    });

    test("iterate of a write with RETURNING, outside a scope, in connection() and in transaction(): every row once, the transaction goes on", async () => {
      // On Postgres such a statement cannot be a server cursor: declaring it one inside the caller's transaction
      // was a syntax error that aborted the transaction.
      const jobs = uniqueTable("jobs");
      await db.execute(sql`create table ${jobs} (id integer primary key, done integer not null)`);
      try {
        const ids = async (on: Queryable, statement: ReturnType<typeof sql>) => {
          const seen: number[] = [];
          for await (const row of on.iterate<{ id: number }>(statement, undefined, { batchSize: 2 })) {
            seen.push(Number(row.id));
            // A query inside the loop, on the same connection in a scope.
            assert.equal(Number(await db.fetchVal(sql`select ${row.id} + 0`)), Number(row.id));
          }
          return seen.sort((a, b) => a - b);
        };
        const insert = (from: number) =>
          sql`insert into ${jobs} (id, done) values (${from}, 0), (${from + 1}, 0), (${from + 2}, 0) returning id`;
        assert.deepEqual(await ids(db, insert(1)), [1, 2, 3]);
        assert.deepEqual(await db.connection((conn) => ids(conn, insert(4))), [4, 5, 6]);
        const inTransaction = await db.transaction(async (tx) => {
          const deleted = await ids(tx, sql`delete from ${jobs} where id <= ${3} returning id`);
          // The transaction goes on after the stream.
          await tx.execute(sql`insert into ${jobs} (id, done) values (${7}, 1)`);
          return deleted;
        });
        assert.deepEqual(inTransaction, [1, 2, 3]);
        assert.deepEqual(
          (await db.fetchAll<{ id: number }>(sql`select id from ${jobs} order by id`)).map((r) => Number(r.id)),
          [4, 5, 6, 7],
        );
        if (target.dialect === "postgres") {
          // A data-modifying WITH, SHOW, and (in a connection scope, a cursor WITH HOLD) SELECT … FOR UPDATE.
          const moved = sql`with gone as (delete from ${jobs} where id = ${4} returning id) select id from gone`;
          assert.deepEqual(await db.transaction((tx) => ids(tx, moved)), [4]);
          const shown = await db.transaction(async (tx) => {
            const rows: unknown[] = [];
            for await (const row of tx.iterate(sql`show server_version`)) rows.push(row);
            return rows.length;
          });
          assert.equal(shown, 1);
          assert.deepEqual(
            await db.connection((conn) => ids(conn, sql`select id from ${jobs} where id >= ${5} for update`)),
            [5, 6, 7],
          );
        }
        assert.equal(db.stats().primary.busy, 0);
      } finally {
        await db.execute(sql`drop table ${jobs}`);
      }
    });

    test(
      "iterate inside a scope or under statementTimeout: rows in order across batches, and leaving early closes the server's cursor",
      skipUnless(target.dialect === "postgres", "server-side cursors are how Postgres streams there"),
      async () => {
        const hundred = sql`select n from generate_series(1, 100) n`;
        // Named cursors only: PGlite also lists the unnamed portal of the counting statement itself.
        const cursors = async () => Number(await db.fetchVal(sql`select count(*) from pg_cursors where name <> ''`));
        const read = async (limit: number, on: Database = db) => {
          const seen: number[] = [];
          for await (const { n } of on.iterate<{ n: number }>(hundred, undefined, { batchSize: 7 })) {
            seen.push(Number(n));
            if (seen.length === limit) break;
          }
          return seen;
        };
        const upTo = (count: number) => Array.from({ length: count }, (_, i) => i + 1);
        for (const scope of [db.connection.bind(db), db.transaction.bind(db)]) {
          const [whole, early, left] = await scope(async () => [await read(100), await read(30), await cursors()]);
          assert.deepEqual(whole, upTo(100));
          assert.deepEqual(early, upTo(30));
          assert.equal(left, 0);
        }
        // A statement timeout makes a stream on a connection of its own read by FETCH too (behind a transaction
        // pooler a statement timeout is refused: tests/behaviour/pgbouncer.test.ts).
        if (transactionPooled(target)) return;
        const timed = target.open({ statementTimeout: 60_000, pool: { max: 1 } });
        try {
          assert.deepEqual(await read(100, timed), upTo(100));
          assert.deepEqual(await read(30, timed), upTo(30));
          assert.equal(Number(await timed.fetchVal(sql`select count(*) from pg_cursors where name <> ''`)), 0);
        } finally {
          await timed.close();
        }
      },
    );

    describe("iterate in a scope on MySQL, which streams until the loop body runs a statement", () => {
      const mysqlOnly = skipUnless(target.dialect === "mysql", "MySQL streams one result at a time per connection");
      /** 1 … 10,000 in order, without a table or a sequence engine (MySQL caps recursive CTEs at 1,000 rows). */
      const digits = "(select 0 d union all select 1 union all select 2 union all select 3 union all select 4 " +
        "union all select 5 union all select 6 union all select 7 union all select 8 union all select 9)";
      const tenThousandText =
        `select a.d + 10 * b.d + 100 * c.d + 1000 * e.d + 1 as n from ${digits} a cross join ${digits} b ` +
        `cross join ${digits} c cross join ${digits} e order by n`;
      const tenThousand = sql.unsafe(tenThousandText);
      const upTo = (count: number) => Array.from({ length: count }, (_, i) => i + 1);
      const read = async (query = tenThousand, options: { limit?: number; body?: (n: number) => unknown } = {}) => {
        const seen: number[] = [];
        for await (const { n } of db.iterate<{ n: number }>(query, undefined, { batchSize: 100 })) {
          seen.push(Number(n));
          await options.body?.(Number(n));
          if (seen.length === options.limit) break;
        }
        return seen;
      };

      test(
        "statements and a second iterate inside the loop: every row arrives, in order, and they run",
        mysqlOnly,
        async () => {
          const table = uniqueTable("mystream_inside");
          await db.execute(sql`create table ${table} (n integer)`);
          try {
            for (const scope of [db.connection.bind(db), db.transaction.bind(db)]) {
              const [seen, inner] = await scope(async () => {
                let inner: number[] = [];
                const seen = await read(tenThousand, {
                  body: async (n) => {
                    if (n === 1 || n === 150 || n === 5_000) await db.execute(sql`insert into ${table} values (${n})`);
                    if (n === 2) inner = await read(tenThousand, { limit: 300 });
                  },
                });
                return [seen, inner];
              });
              assert.deepEqual(seen, upTo(10_000));
              assert.deepEqual(inner, upTo(300));
              assert.deepEqual(
                (await db.fetchAll<{ n: number }>(sql`select n from ${table} order by n`)).map((row) => Number(row.n)),
                [1, 150, 5_000],
              );
              await db.execute(sql`delete from ${table}`);
            }
          } finally {
            await db.execute(sql`drop table ${table}`);
          }
          assert.equal(db.stats().primary.busy, 0);
        },
      );

      test(
        "outside a scope, leaving a stream whose result had all arrived keeps its connection",
        mysqlOnly,
        async () => {
          // Ten rows arrive with the first batch; only a result still on its way costs the connection.
          const alone = target.open({ pool: { max: 1 } });
          try {
            const id = async () => Number(await alone.fetchVal(sql`select connection_id()`));
            const before = await id();
            const seen: number[] = [];
            for await (
              const { n } of alone.iterate<{ n: number }>(sql`select 1 as n union all select 2 union all select 3`)
            ) {
              seen.push(Number(n));
              break;
            }
            assert.deepEqual(seen, [1]);
            assert.equal(await id(), before, "the same connection, not a new one");
          } finally {
            await alone.close();
          }
        },
      );

      test("leaving the loop early keeps the scope's connection and its transaction", mysqlOnly, async () => {
        const table = uniqueTable("mystream_break");
        await db.execute(sql`create table ${table} (n integer)`);
        try {
          const [before, early, after, afterStatement] = await db.transaction(async () => {
            const id = async () => Number(await db.fetchVal(sql`select connection_id()`));
            const before = await id();
            await db.execute(sql`insert into ${table} values (1)`);
            const early = await read(tenThousand, { limit: 10 });
            const after = await id();
            // Leaving early after a statement inside the loop (the rest was read into memory already).
            const afterStatement = await read(tenThousand, {
              limit: 20,
              body: (n) => n === 5 ? db.execute(sql`insert into ${table} values (2)`) : undefined,
            });
            await db.execute(sql`insert into ${table} values (3)`);
            return [before, early, after, afterStatement];
          });
          assert.deepEqual(early, upTo(10));
          assert.deepEqual(afterStatement, upTo(20));
          assert.equal(after, before, "the same connection, not a new one");
          assert.equal(Number(await db.fetchVal(sql`select count(*) from ${table}`)), 3, "the transaction committed");
        } finally {
          await db.execute(sql`drop table ${table}`);
        }
      });

      test(
        "a server error part-way is a QueryError after the rows before it, and the transaction goes on",
        mysqlOnly,
        async () => {
          // Row 150 fails on the server: a subquery with two rows.
          const failing = sql.unsafe(
            `select n, (select 1 from (select 1 union all select 2) t where s.n = 150) as v from (${tenThousandText}) s`,
          );
          const table = uniqueTable("mystream_error");
          await db.execute(sql`create table ${table} (n integer)`);
          try {
            const outcomes = await db.transaction(async () => {
              const outcomes: number[] = [];
              for (const body of [undefined, (n: number) => n === 3 ? db.fetchVal(sql`select 1`) : undefined]) {
                let seen = 0;
                const error = await read(failing, { body: (n) => (assert.equal(n, ++seen), body?.(n)) }).then(
                  () => undefined,
                  (e) => e,
                );
                assert.ok(error instanceof QueryError, `expected a QueryError, got ${error}`);
                outcomes.push(seen);
              }
              await db.execute(sql`insert into ${table} values (1)`);
              return outcomes;
            });
            // Every row before the failing one arrives, in order (Bun.SQL reads a MySQL result whole: none does).
            const before = target.driver === "mysql2" ? 149 : 0;
            assert.deepEqual(outcomes, [before, before]);
            assert.equal(Number(await db.fetchVal(sql`select count(*) from ${table}`)), 1);
          } finally {
            await db.execute(sql`drop table ${table}`);
          }
          assert.equal(db.stats().primary.busy, 0);
        },
      );

      test(
        "a row mysql2 refuses to read fails the stream and discards the connection, never feeding the rest to a statement",
        skipUnless(target.driver === "mysql2", "mysql2 refuses columns named like Object.prototype's internals"),
        async () => {
          const refused = sql.unsafe(`select n as __proto__ from (${tenThousandText}) s`);
          const [streamed, after] = await db.connection(async () => {
            const streamed = await read(refused).then(() => undefined, (error) => error);
            const after = await db.fetchVal(sql`select 1`).then(() => undefined, (error) => error);
            return [streamed, after];
          });
          assert.ok(streamed instanceof RoostError, `expected a Roost error, got ${streamed}`);
          assert.ok(after instanceof ConnectionError, `expected a ConnectionError, got ${after}`);
          assert.equal(Number(await db.fetchVal(sql`select 2`)), 2);
          assert.equal(db.stats().primary.busy, 0);
        },
      );

      test(
        "under statementTimeout a scope's stream reads its result whole: rows in order, leaving early is fine",
        mysqlOnly,
        async () => {
          const timed = target.open({ statementTimeout: 60_000, pool: { max: 1 } });
          try {
            const [whole, early] = await timed.transaction(async (tx) => {
              const seen: number[] = [];
              for await (const { n } of tx.iterate<{ n: number }>(tenThousand, undefined, { batchSize: 100 })) {
                seen.push(Number(n));
                if (n === 2) await tx.fetchVal(sql`select 1`);
              }
              const early: number[] = [];
              for await (const { n } of tx.iterate<{ n: number }>(tenThousand, undefined, { batchSize: 100 })) {
                if (early.push(Number(n)) === 10) break;
              }
              return [seen, early];
            });
            assert.deepEqual(whole, upTo(10_000));
            assert.deepEqual(early, upTo(10));
          } finally {
            await timed.close();
          }
        },
      );

      test(
        "closing the database while a scope's stream is suspended ends the stream with an error",
        skipUnless(target.driver === "mysql2", "Bun.SQL reads a MySQL result whole: nothing is left to end"),
        async () => {
          const closing = target.open({ pool: { max: 1 } });
          let done: Promise<void> | undefined;
          const seen: number[] = [];
          const outcome = await closing.transaction(async (tx) => {
            for await (const { n } of tx.iterate<{ n: number }>(tenThousand, undefined, { batchSize: 100 })) {
              seen.push(Number(n));
              if (n === 1) {
                done = closing.close({ timeout: 50 });
                await sleep(200);
              }
            }
          }).then(() => undefined, (error) => error);
          await done;
          assert.ok(outcome instanceof Error, `expected an error, got ${outcome}`);
          assert.ok(seen.length < 10_000, `saw ${seen.length} rows`);
        },
      );
    });

    test("a handle used after its scope ends is a ClosedError", async () => {
      const leaked = await db.connection((conn) => conn);
      await assert.rejects(leaked.fetchVal(sql`select 1`), ClosedError);
    });

    test("work leaked past a transaction's end is refused, never run outside it", async () => {
      // The late call runs once the transaction has ended: an event, not a delay that a slow commit could outlast
      // (the rejection would then come before anything awaited it).
      let late: Promise<unknown> | undefined;
      let ended!: () => void;
      const transactionEnded = new Promise<void>((resolve) => ended = resolve);
      await db.transaction(() => {
        late = (async () => {
          await transactionEnded;
          return await db.fetchVal(sql`select 1`);
        })();
      });
      ended();
      await assert.rejects(late!, TransactionError);
    });

    test("a transaction begun in a connection scope and never ended is rolled back", async () => {
      const items = uniqueTable("items");
      await db.execute(sql`create table ${items} (n integer)`);
      await db.connection(async (conn) => {
        const tx = await conn.begin();
        await tx.execute(sql`insert into ${items} values (1)`);
      });
      assert.equal(await db.fetchVal(sql`select count(*) from ${items}`), 0);
      await db.execute(sql`drop table ${items}`);
    });
  });
}
