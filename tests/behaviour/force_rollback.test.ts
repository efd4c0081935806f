/** `forceRollback`: one outer transaction per instance, rolled back at close, on every target. */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ConfigError, type Database, QueryError, ReadOnlyError, sql } from "../../mod.ts";
import { column, defineTable } from "../../src/model/mod.ts";
import { uniqueName, uniqueTable } from "../support/support.ts";
import { targets } from "../support/targets.ts";

for (const target of targets()) {
  const memory = target.url.includes(":memory:");

  describe(`forceRollback on ${target.label}`, () => {
    const items = uniqueTable("forced");
    let setup: Database;
    const outside = () => setup.fetchVal<number>(sql`select count(*) from ${items}`).then(Number);
    const inside = (db: Database) => db.fetchVal<number>(sql`select count(*) from ${items}`).then(Number);
    const insert = (n: number) => sql`insert into ${items} (n) values (${n})`;
    const open = async () => {
      const db = target.open({ forceRollback: true });
      // An in-memory database lives in one connection: the table is made inside the transaction there.
      if (memory) await db.execute(sql`create table ${items} (n integer primary key)`);
      return db;
    };

    before(async () => {
      setup = target.open();
      if (!memory) await setup.execute(sql`create table ${items} (n integer primary key)`);
    });
    after(async () => {
      if (!memory) await setup.execute(sql`drop table ${items}`);
      await setup.close();
    });

    test("writes are visible inside, invisible outside, and gone after close()", async () => {
      const db = await open();
      await db.execute(insert(1));
      await db.executeMany(sql`insert into ${items} (n) values (${0})`, [[2], [3]]);
      assert.equal(await inside(db), 3);
      if (!memory) assert.equal(await outside(), 0);
      assert.equal(db.stats().primary.size, 1);
      await db.close();
      if (!memory) assert.equal(await outside(), 0);
    });

    test("transaction() is a savepoint: committed ones stay until close, failed ones roll back alone", async () => {
      const db = await open();
      await db.transaction(async (tx) => {
        await tx.execute(insert(1));
        await db.transaction(async () => {
          await db.execute(insert(2));
          throw new Error("inner fails");
        }).catch(() => {});
      }, { isolation: "serializable" }); // isolation cannot apply to a savepoint: ignored
      await assert.rejects(
        db.transaction(async (tx) => {
          await tx.execute(insert(3));
          throw new Error("outer fails");
        }),
        /outer fails/,
      );
      assert.deepEqual((await db.fetchAll<{ n: number }>(sql`select n from ${items} order by n`)).map((r) => r.n), [1]);
      await db.close();
      if (!memory) assert.equal(await outside(), 0);
    });

    test("concurrent transactions take turns and all commit into the outer one", async () => {
      const db = await open();
      await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          db.transaction(async (tx) => {
            await tx.execute(insert(i + 1));
            await db.fetchVal(sql`select count(*) from ${items}`);
          })),
      );
      assert.equal(await inside(db), 10);
      await db.close();
      if (!memory) assert.equal(await outside(), 0);
    });

    test("a failing statement leaves the outer transaction usable (a savepoint of its own on Postgres)", async () => {
      const db = await open();
      await db.execute(insert(1));
      await assert.rejects(db.execute(insert(1)), QueryError);
      await assert.rejects(db.fetchAll(sql`select * from ${sql.ident(uniqueName("missing"))}`), QueryError);
      await db.execute(insert(2));
      assert.equal(await inside(db), 2);
      await db.close();
      if (!memory) assert.equal(await outside(), 0);
    });

    test("begin() gives a savepoint handle; connection() and iterate() run on the one connection", async () => {
      const db = await open();
      {
        await using tx = await db.begin();
        await tx.execute(insert(1));
        await tx.commit();
      }
      {
        await using tx = await db.begin();
        await tx.execute(insert(2)); // disposed uncommitted: rolled back
      }
      await db.connection(async (conn) => {
        await conn.execute(insert(3));
        await conn.transaction(async (tx) => await tx.execute(insert(4)));
      });
      const seen: number[] = [];
      for await (const row of db.iterate<{ n: number }>(sql`select n from ${items} order by n`)) {
        seen.push(Number(row.n));
        await db.fetchVal(sql`select count(*) from ${items}`); // querying inside the loop does not deadlock
      }
      assert.deepEqual(seen, [1, 3, 4]);
      await db.close();
      if (!memory) assert.equal(await outside(), 0);
    });

    test("replica scopes read the outer transaction and still refuse writes", async () => {
      const db = await open();
      await db.execute(insert(1));
      await db.replica(async (r) => {
        assert.equal(Number(await r.fetchVal(sql`select count(*) from ${items}`)), 1);
        await assert.rejects(r.execute(insert(2)), ReadOnlyError);
        await assert.rejects(db.transaction(async () => {}), ReadOnlyError);
      });
      await db.close();
    });

    test("model helpers and getOrCreate work inside it and leave nothing", async () => {
      const name = uniqueName("forced_users");
      const users = defineTable(name, { id: column.serial().primaryKey(), email: column.text().notNull().unique() });
      if (!memory) await setup.schema.createTables([users]);
      try {
        const db = target.open({ forceRollback: true });
        if (memory) await db.schema.createTables([users]);
        const results = await Promise.all(
          Array.from({ length: 5 }, () => users.getOrCreate(db, { email: "a@example.org" })),
        );
        assert.equal(results.filter(([, created]) => created).length, 1);
        await assert.rejects(users.insert(db, { email: "a@example.org" }), QueryError);
        assert.equal(await users.count(db), 1);
        await db.close();
        if (!memory) assert.equal(await users.count(setup), 0);
      } finally {
        if (!memory) await setup.schema.dropTables([users]);
      }
    });

    test("a closed instance refuses work; the option is checked", async () => {
      const db = await open();
      await db.close();
      await assert.rejects(db.execute(insert(1)), (error: Error) => error.name === "ClosedError");
      assert.throws(() => target.open({ forceRollback: "yes" as unknown as boolean }), ConfigError);
      if (!memory) {
        assert.throws(() => target.open({ forceRollback: true, connectionScope: "context" }), ConfigError);
      }
    });
  });
}
