/** Transactions, savepoints, explicit handles and `await using`, on every target. */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ConfigError, type Database, QueryError, sql, TransactionError } from "../mod.ts";
import { targets, uniqueTable } from "./support.ts";

for (const target of targets()) {
  describe(`transactions on ${target.label}`, () => {
    let db: Database;
    const items = uniqueTable("items");
    const count = () => db.fetchVal<number>(sql`select count(*) from ${items}`);
    const insert = (n: number) => sql`insert into ${items} (n) values (${n})`;

    before(async () => {
      db = target.open();
      await db.execute(sql`create table ${items} (n integer primary key)`);
    });
    after(async () => {
      await db.execute(sql`drop table ${items}`);
      await db.close();
    });

    test("a callback that returns commits and its value is returned", async () => {
      const value = await db.transaction(async (tx) => {
        await tx.execute(insert(1));
        await db.execute(insert(2)); // db.* inside the callback joins the transaction
        return "done";
      });
      assert.equal(value, "done");
      assert.equal(await count(), 2);
      await db.execute(sql`delete from ${items}`);
    });

    test("an exception inside the callback rolls everything back and is rethrown as is", async () => {
      const failure = new Error("boom");
      await assert.rejects(
        db.transaction(async (tx) => {
          await tx.execute(insert(1));
          await db.execute(insert(2));
          throw failure;
        }),
        (error) => error === failure,
      );
      assert.equal(await count(), 0);
    });

    test("a failed nested savepoint rolls back only itself; the outer work commits", async () => {
      await db.transaction(async (tx) => {
        await tx.execute(insert(1));
        await assert.rejects(
          tx.transaction(async (sp) => {
            await sp.execute(insert(2));
            await sp.execute(insert(1)); // duplicate key: the savepoint fails
          }),
          QueryError,
        );
        // db.transaction inside a transaction callback is a savepoint too.
        await assert.rejects(
          db.transaction(async () => {
            await db.execute(insert(3));
            throw new Error("inner");
          }),
          /inner/,
        );
        await db.transaction(async () => {
          await db.execute(insert(4));
        });
        await tx.execute(insert(5));
      });
      assert.deepEqual(
        (await db.fetchAll<{ n: number }>(sql`select n from ${items} order by n`)).map((r) => r.n),
        [1, 4, 5],
      );
      await db.execute(sql`delete from ${items}`);
    });

    test("an await using transaction left uncommitted rolls back; a committed one stays", async () => {
      {
        await using tx = await db.begin();
        await tx.execute(insert(1));
      }
      assert.equal(await count(), 0);
      {
        await using tx = await db.begin();
        await tx.execute(insert(2));
        await tx.commit();
      }
      assert.equal(await count(), 1);
      assert.equal(db.stats().primary.busy, 0, "the connection went back to the pool");
      await db.execute(sql`delete from ${items}`);
    });

    test("explicit handles: savepoints from begin(), and use after the end is a TransactionError", async () => {
      const tx = await db.begin();
      await tx.execute(insert(1));
      const sp = await tx.begin();
      assert.equal(sp.nested, true);
      await sp.execute(insert(2));
      await assert.rejects(tx.commit(), TransactionError, "the open savepoint must end first");
      await sp.rollback();
      await tx.commit();
      assert.equal(tx.active, false);
      await assert.rejects(tx.execute(insert(3)), TransactionError);
      await assert.rejects(tx.commit(), TransactionError);
      assert.equal(await count(), 1);
      const rolled = await db.begin();
      await rolled.execute(insert(9));
      await rolled.rollback();
      assert.equal(await count(), 1);
      await db.execute(sql`delete from ${items}`);
    });

    test("a read-only transaction rejects writes, and the connection is writable afterwards", async () => {
      await assert.rejects(db.transaction((tx) => tx.execute(insert(1)), { readOnly: true }), QueryError);
      assert.equal(
        await db.transaction((tx) => tx.fetchVal(sql`select count(*) from ${items}`), { readOnly: true }),
        0,
      );
      await db.transaction((tx) => tx.execute(insert(1)), { isolation: "serializable" });
      assert.equal(await count(), 1);
      await db.execute(sql`delete from ${items}`);
    });

    test("bad transaction options are a ConfigError; savepoints cannot change isolation", async () => {
      // @ts-expect-error: not an isolation level
      await assert.rejects(db.transaction(() => {}, { isolation: "chaotic" }), ConfigError);
      // @ts-expect-error: not an option
      await assert.rejects(db.transaction(() => {}, { retries: 3 }), ConfigError);
      await db.transaction(async (tx) => {
        await assert.rejects(tx.transaction(() => {}, { readOnly: true }), TransactionError);
      });
      assert.equal(db.stats().primary.busy, 0);
    });

    test("executeMany inside a transaction joins it", async () => {
      await assert.rejects(
        db.transaction(async (tx) => {
          await tx.executeMany(sql`insert into ${items} (n) values (${0})`, [[1], [2], [3]]);
          await db.executeMany(sql`insert into ${items} (n) values (${0})`, [[4]]);
          assert.equal(await tx.fetchVal(sql`select count(*) from ${items}`), 4);
          throw new Error("undo");
        }),
        /undo/,
      );
      assert.equal(await count(), 0);
    });
  });
}
