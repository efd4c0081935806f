/**
 * `{ fresh: true }`: a connection or transaction of its own inside a held
 * one, instead of joining it (a savepoint). On every target whose pool can
 * hold two connections: SQLite files and the servers (an in-memory SQLite
 * database and PGlite are one connection each).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ConfigError, Database, PoolTimeoutError, QueryError, ReadOnlyError, sql } from "../../mod.ts";
import { skipUnless, uniqueTable } from "../support/support.ts";
import { targets } from "../support/targets.ts";

/** The server's id of the connection a call runs on, or undefined on SQLite (which has none). */
function sessionId(db: { fetchVal<T>(query: ReturnType<typeof sql>): Promise<T | undefined> }, dialect: string) {
  if (dialect === "postgres") return db.fetchVal<number>(sql`select pg_backend_pid()`).then(Number);
  if (dialect === "mysql") return db.fetchVal<number>(sql`select connection_id()`).then(Number);
  return Promise.resolve(undefined);
}

for (const target of targets({ places: ["sqlite file", "postgres", "mysql"] })) {
  describe(`fresh connections and transactions on ${target.label}`, () => {
    const sqlite = target.dialect === "sqlite";
    const items = uniqueTable("fresh");
    let db: Database;
    const count = (on: { fetchVal<T>(query: ReturnType<typeof sql>): Promise<T | undefined> }) =>
      on.fetchVal<number>(sql`select count(*) from ${items}`).then(Number);

    before(async () => {
      db = target.open({ pool: { max: 3 } });
      await db.execute(sql`create table ${items} (n integer)`);
    });
    after(async () => {
      await db.execute(sql`drop table ${items}`);
      await db.close();
    });

    test("a fresh connection inside a transaction sees only what was committed, and db.* inside it runs on it", async () => {
      await db.execute(sql`insert into ${items} values (1)`);
      await db.transaction(async (tx) => {
        await tx.execute(sql`insert into ${items} values (2)`);
        const outer = await sessionId(db, target.dialect);
        assert.equal(await count(db), 2, "db.* joins the transaction");
        await db.connection(async (conn) => {
          assert.equal(await count(conn), 1, "the fresh connection does not see the uncommitted row");
          assert.equal(await count(db), 1, "db.* inside the fresh scope runs on the fresh connection");
          const inner = await sessionId(db, target.dialect);
          if (!sqlite) assert.notEqual(inner, outer);
          assert.equal(db.stats().primary.busy, 2, "both connections are out of the pool");
        }, { fresh: true });
        assert.equal(await count(db), 2, "back in the transaction");
        assert.equal(await sessionId(db, target.dialect), outer);
      });
      await db.execute(sql`delete from ${items}`);
    });

    test(
      "a fresh transaction inside a transaction commits on its own, whatever the outer one does",
      skipUnless(
        !sqlite,
        "SQLite has one writer: a fresh write waits for the outer transaction's lock, which waits for it",
      ),
      async () => {
        await assert.rejects(
          db.transaction(async () => {
            await db.execute(sql`insert into ${items} values (1)`);
            await db.transaction(async (inner) => {
              assert.equal(await count(inner), 0, "only committed rows");
              await db.execute(sql`insert into ${items} values (2)`);
              assert.equal(await count(db), 1, "db.* runs in the fresh transaction");
            }, { fresh: true });
            throw new Error("the outer transaction fails");
          }),
          /the outer transaction fails/,
        );
        assert.deepEqual(await db.fetchAll(sql`select n from ${items}`), [{ n: 2 }], "the fresh one stayed committed");

        // And a fresh transaction that fails leaves the outer one going.
        await db.transaction(async () => {
          await db.execute(sql`insert into ${items} values (3)`);
          await assert.rejects(
            db.transaction(async () => {
              await db.execute(sql`insert into ${items} values (4)`);
              throw new Error("inner fails");
            }, { fresh: true }),
            /inner fails/,
          );
          assert.equal(await count(db), 2);
        });
        assert.deepEqual((await db.fetchAll<{ n: number }>(sql`select n from ${items} order by n`)).map((r) => r.n), [
          2,
          3,
        ]);
        await db.execute(sql`delete from ${items}`);
      },
    );

    test(
      "on a SQLite file, a fresh write inside a writing transaction fails after busy_timeout instead of hanging",
      skipUnless(sqlite, "the servers lock rows, not the database"),
      async () => {
        const short = new Database(`${target.url}${target.url.includes("?") ? "&" : "?"}busy_timeout=200`, {
          driver: target.driver,
          pool: { max: 2 },
        });
        try {
          await short.transaction(async () => {
            await short.execute(sql`insert into ${items} values (1)`);
            await assert.rejects(
              short.transaction(() => short.execute(sql`insert into ${items} values (2)`), { fresh: true }),
              (error: Error) =>
                error instanceof QueryError && /SQLITE_BUSY|locked/i.test(`${error.code} ${error.message}`),
            );
            assert.equal(await count(short), 1, "the outer transaction goes on");
          });
          assert.equal(await count(db), 1);
        } finally {
          await short.close();
          await db.execute(sql`delete from ${items}`);
        }
      },
    );

    test("a fresh transaction inside a connection scope, and db.begin({ fresh: true })", async () => {
      await db.connection(async () => {
        const outer = await sessionId(db, target.dialect);
        await db.transaction(async () => {
          await db.execute(sql`insert into ${items} values (1)`);
          if (!sqlite) assert.notEqual(await sessionId(db, target.dialect), outer);
        }, { fresh: true });
        assert.equal(await count(db), 1, "committed, so the held connection sees it");
        const tx = await db.begin({ fresh: true });
        try {
          await tx.execute(sql`insert into ${items} values (2)`);
          assert.equal(await count(tx), 2);
          if (!sqlite) assert.notEqual(await sessionId(tx, target.dialect), outer);
        } finally {
          await tx.rollback();
        }
        assert.equal(await count(db), 1);
      });
      await db.execute(sql`delete from ${items}`);
    });

    test("fresh: false and no option join the held connection; a handle's transactions refuse fresh", async () => {
      await db.connection(async (conn) => {
        const outer = await sessionId(conn, target.dialect);
        await db.connection(async () => {
          if (!sqlite) assert.equal(await sessionId(db, target.dialect), outer);
        }, { fresh: false });
        await db.transaction(async (tx) => {
          if (!sqlite) assert.equal(await sessionId(db, target.dialect), outer);
          assert.equal(tx.nested, false);
          await assert.rejects(tx.transaction(async () => {}, { fresh: true }), ConfigError);
          await assert.rejects(tx.begin({ fresh: true }), ConfigError);
        });
        await assert.rejects(conn.transaction(async () => {}, { fresh: true }), ConfigError);
      });
      assert.equal(db.stats().primary.busy, 0);
    });

    test("bad options are a ConfigError before a connection is taken", async () => {
      const bad: unknown[] = [{ fresh: "yes" }, { fresh: 1 }, { colour: "blue" }, null];
      for (const options of bad) {
        await assert.rejects(db.connection(async () => {}, options as { fresh: boolean }), ConfigError);
        await assert.rejects(db.transaction(async () => {}, options as { fresh: boolean }), ConfigError);
      }
      assert.equal(db.stats().primary.busy, 0);
    });

    test("inside a context scope, a fresh connection through the scope's handle sees only committed rows", async () => {
      await db.context(async (scope) => {
        await scope.transaction(async () => {
          await db.execute(sql`insert into ${items} values (1)`);
          await scope.connection(async (conn) => {
            assert.equal(await count(conn), 0);
          }, { fresh: true });
        });
      });
      assert.equal(await count(db), 1);
      await db.execute(sql`delete from ${items}`);
    });

    test("inside db.replica() a fresh connection is a read-only replica's and a fresh transaction is refused", async () => {
      // The same database as its own replica: replica connections are read-only sessions.
      const routed = target.open({ replicas: [target.url], pool: { max: 3 } });
      try {
        await routed.replica(async () => {
          await routed.connection(async (outer) => {
            await routed.connection(async (conn) => {
              assert.equal(await count(conn), 0);
              await assert.rejects(conn.execute(sql`insert into ${items} values (1)`), ReadOnlyError);
            }, { fresh: true });
            await assert.rejects(routed.transaction(async () => {}, { fresh: true }), ReadOnlyError);
            assert.equal(await count(outer), 0);
          });
        });
        assert.equal(routed.stats().replicas[0].busy, 0);
      } finally {
        await routed.close();
      }
      assert.equal(await count(db), 0);
    });

    test("with forceRollback a fresh scope stays on the one rolled-back connection", async () => {
      const forced = target.open({ forceRollback: true, pool: { max: 3 } });
      try {
        await forced.transaction(async () => {
          await forced.execute(sql`insert into ${items} values (1)`);
          await forced.transaction(async () => {
            assert.equal(await count(forced), 1, "it sees the forced transaction's rows: it is a savepoint of it");
            await forced.execute(sql`insert into ${items} values (2)`);
          }, { fresh: true });
          await forced.connection(async () => {
            assert.equal(await count(forced), 2);
          }, { fresh: true });
        });
      } finally {
        await forced.close();
      }
      assert.equal(await count(db), 0, "nothing escaped the rollback");
    });
  });
}

describe("fresh on a pool of one", () => {
  test("a fresh connection inside a held one waits for the pool, then fails typed", async () => {
    const db = new Database("sqlite::memory:", { pool: { acquireTimeout: 200 } });
    try {
      await db.connection(async () => {
        await assert.rejects(db.connection(async () => {}, { fresh: true }), PoolTimeoutError);
      });
    } finally {
      await db.close();
    }
  });
});
