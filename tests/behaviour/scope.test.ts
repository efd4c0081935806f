/** Scopes belong to their instance and to the async call tree that entered them. */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ClosedError, Database, sql, TransactionError } from "../../mod.ts";
import { signal, skipUnless, tempDatabasePath, uniqueTable } from "../support/support.ts";
import { targets } from "../support/targets.ts";

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

    test("db.* inside connection(fn) runs on the held connection", async () => {
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
    });

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

    test(
      "iterate inside a scope or under statementTimeout: rows in order across batches, and leaving early closes the server's cursor",
      skipUnless(target.dialect === "postgres", "server-side cursors are how Postgres streams there"),
      async () => {
        const hundred = sql`select n from generate_series(1, 100) n`;
        const cursors = async () => Number(await db.fetchVal(sql`select count(*) from pg_cursors`));
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
        // A statement timeout makes a stream on a connection of its own read by FETCH too.
        const timed = target.open({ statementTimeout: 60_000, pool: { max: 1 } });
        try {
          assert.deepEqual(await read(100, timed), upTo(100));
          assert.deepEqual(await read(30, timed), upTo(30));
          assert.equal(Number(await timed.fetchVal(sql`select count(*) from pg_cursors`)), 0);
        } finally {
          await timed.close();
        }
      },
    );

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
