/**
 * `db.acquire()` and `{ fresh: true }` where connections belong to contexts
 * (`connectionScope: "context"`, the Workers default), on every target whose
 * pool can hold two connections: a handle taken in a context is that
 * context's, released at its end or reclaimed by it when forgotten, never
 * passed to another; a fresh connection inside a context's transaction sees
 * only committed rows. tests/behaviour/workerd.test.ts repeats them in workerd.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ClosedError, Database, sql } from "../../mod.ts";
import { eventually, uniqueTable } from "../support/support.ts";
import { OwnDatabase, targets } from "../support/targets.ts";

type Reader = { fetchVal<T>(query: ReturnType<typeof sql>): Promise<T | undefined> };

for (const target of targets({ places: ["sqlite file", "postgres", "mysql"] })) {
  describe(`acquire and fresh under connectionScope "context" on ${target.label}`, () => {
    const server = target.dialect !== "sqlite";
    const items = uniqueTable("ctx");
    // A database of the suite's own on a server, so the server's connection count is the suite's.
    const own = server ? new OwnDatabase(target, "roost_cx") : undefined;
    let db: Database;
    const count = (on: Reader, n?: number) =>
      on.fetchVal<number>(sql`select count(*) from ${items}${n === undefined ? sql`` : sql` where n = ${n}`}`)
        .then(Number);
    // A baseline may still count the connection of the statement before it (outside a context, one of its own),
    // closing in the background: a test leaks nothing when the count comes back to it or below, never above.
    const serverConnections = () => own ? own.connections() : Promise.resolve(0);

    before(async () => {
      await own?.create();
      const options = { connectionScope: "context", pool: { max: 3, acquireTimeout: 10_000 } } as const;
      db = own ? new Database(own.url, { driver: target.driver, ...options }) : target.open(options);
      await db.execute(sql`create table ${items} (n integer)`);
    });
    after(async () => {
      await db.execute(sql`drop table ${items}`);
      await db.close();
      await own?.drop();
    });

    test("a handle acquired in a context is released at the end of its block; after the context it is refused", async () => {
      let kept: Awaited<ReturnType<Database["acquire"]>> | undefined;
      await db.context(async () => {
        {
          await using conn = await db.acquire();
          await conn.execute(sql`insert into ${items} values (1)`);
          assert.equal(await count(conn, 1), 1);
        }
        kept = await db.acquire();
        assert.equal(await count(kept, 1), 1);
        await kept.release();
      });
      assert.equal(kept!.released, true);
      await assert.rejects(kept!.fetchVal(sql`select 1`), ClosedError);
      await db.execute(sql`delete from ${items}`);
    });

    test("a handle forgotten in a context is reclaimed when the context ends: its connection closed, its transaction rolled back", async () => {
      const baseline = await serverConnections();
      let forgotten: Awaited<ReturnType<Database["acquire"]>> | undefined;
      await db.context(async () => {
        forgotten = await db.acquire();
        await forgotten.execute(sql`begin`);
        await forgotten.execute(sql`insert into ${items} values (2)`);
      });
      // The context closed the handle's connection: it is not lent to anyone else, and its work is gone.
      await assert.rejects(forgotten!.fetchVal(sql`select 1`), ClosedError);
      assert.equal(forgotten!.released, true);
      await forgotten!.release(); // does nothing
      assert.equal(await db.context((scope) => count(scope, 2)), 0);
      if (server) {
        await eventually("the server connections back to the baseline", serverConnections, (n) => n <= baseline);
      }
    });

    test("a fresh connection inside a context's transaction sees only committed rows", async () => {
      await db.execute(sql`insert into ${items} values (3)`);
      await db.context(async () => {
        await db.transaction(async (tx) => {
          await tx.execute(sql`insert into ${items} values (3)`);
          assert.equal(await count(db, 3), 2, "db.* joins the transaction");
          await db.connection(async (conn) => {
            assert.equal(await count(conn, 3), 1, "the fresh connection does not see the uncommitted row");
            assert.equal(await count(db, 3), 1, "db.* inside the fresh scope runs on it");
          }, { fresh: true });
          const conn = await db.acquire();
          try {
            assert.equal(await count(conn, 3), 1, "an acquired handle is a connection of its own too");
          } finally {
            await conn.release();
          }
        });
      });
      assert.equal(await count(db, 3), 2);
      await db.execute(sql`delete from ${items}`);
    });

    test("10 concurrent contexts each acquire a handle and run a fresh transaction; none sees another's", async () => {
      const baseline = await serverConnections();
      const answers = await Promise.all(Array.from({ length: 10 }, (_, i) =>
        db.context(async () => {
          const id = 100 + i;
          const conn = await db.acquire();
          try {
            await conn.execute(sql`insert into ${items} values (${id})`);
            let inFresh = -1;
            await db.transaction(async () => {
              await db.execute(sql`insert into ${items} values (${id})`);
              if (server) {
                // SQLite has one writer: a fresh read is fine, a fresh write would wait for this transaction.
                await db.transaction(async () => {
                  inFresh = await count(db, id);
                }, { fresh: true });
              } else {
                await db.connection(async () => {
                  inFresh = await count(db, id);
                }, { fresh: true });
              }
            });
            return { id, inFresh, own: await count(conn, id) };
          } finally {
            await conn.release();
          }
        })));
      for (const [i, answer] of answers.entries()) {
        // The fresh scope saw the handle's committed row, not the transaction's uncommitted one.
        assert.deepEqual(answer, { id: 100 + i, inFresh: 1, own: 2 });
      }
      assert.equal(await db.context((scope) => count(scope)), 20);
      if (server) {
        await eventually("the server connections back to the baseline", serverConnections, (n) => n <= baseline);
      }
      await db.execute(sql`delete from ${items}`);
    });
  });
}
