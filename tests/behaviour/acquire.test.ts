/**
 * `db.acquire()`: a connection handle that outlives any callback, released
 * by `release()` or `await using`, counted in the pool, following replica
 * scopes, and closed (with a warning) when it is garbage-collected
 * unreleased, on every target.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { AcquiredConnection, ClosedError, Database, ReadOnlyError, sql } from "../../mod.ts";
import { eventually, skipUnless, uniqueTable } from "../support/support.ts";
import { notTransactionPooled, targets, transactionPooled } from "../support/targets.ts";

/** Runs a full garbage collection, where the runtime lets a test ask for one. */
async function collectGarbage(): Promise<boolean> {
  const bun = (globalThis as { Bun?: { gc(force: boolean): void } }).Bun;
  if (bun !== undefined) {
    bun.gc(true);
    return true;
  }
  const v8 = await import("node:v8");
  const vm = await import("node:vm");
  v8.setFlagsFromString("--expose-gc");
  const gc = vm.runInNewContext("gc") as (() => void) | undefined;
  if (typeof gc !== "function") return false;
  gc();
  return true;
}

for (const target of targets()) {
  describe(`acquire on ${target.label}`, () => {
    const items = uniqueTable("acq");
    const shared = !target.url.endsWith(":memory:");
    let db: Database;
    const count = (on: { fetchVal<T>(query: ReturnType<typeof sql>): Promise<T | undefined> }) =>
      on.fetchVal<number>(sql`select count(*) from ${items}`).then(Number);

    before(async () => {
      db = target.open({ pool: { max: shared ? 3 : 1, acquireTimeout: 10_000 } });
      await db.execute(sql`create table ${items} (n integer)`);
    });
    after(async () => {
      await db.execute(sql`drop table ${items}`);
      await db.close();
    });

    test("a handle holds one pooled connection until release(); then its queries are refused", async () => {
      const conn = await db.acquire();
      assert.ok(conn instanceof AcquiredConnection);
      assert.equal(db.stats().primary.busy, 1);
      await conn.execute(sql`insert into ${items} values (1)`);
      assert.equal(await count(conn), 1);
      assert.equal(conn.released, false);
      await conn.release();
      assert.equal(conn.released, true);
      assert.equal(db.stats().primary.busy, 0);
      await assert.rejects(conn.fetchAll(sql`select 1`), ClosedError);
      await conn.release(); // a second release does nothing
      await db.execute(sql`delete from ${items}`);
    });

    test("await using releases at the end of the block, also when it throws", async () => {
      {
        await using conn = await db.acquire();
        await conn.execute(sql`insert into ${items} values (1)`);
        assert.equal(db.stats().primary.busy, 1);
      }
      assert.equal(db.stats().primary.busy, 0);
      await assert.rejects(
        (async () => {
          await using conn = await db.acquire();
          await conn.fetchAll(sql`select 1`);
          throw new Error("the block fails");
        })(),
        /the block fails/,
      );
      assert.equal(db.stats().primary.busy, 0);
      assert.equal(await count(db), 1);
      await db.execute(sql`delete from ${items}`);
    });

    test("transactions on the handle; release rolls back one left open", async () => {
      const conn = await db.acquire();
      await conn.transaction(async (tx) => {
        await tx.execute(sql`insert into ${items} values (1)`);
        await tx.transaction(async (sp) => {
          await sp.execute(sql`insert into ${items} values (2)`);
        });
      });
      const tx = await conn.begin();
      await tx.execute(sql`insert into ${items} values (3)`);
      await conn.release();
      assert.equal(tx.active, false, "the open transaction ended with the release");
      assert.deepEqual((await db.fetchAll<{ n: number }>(sql`select n from ${items} order by n`)).map((r) => r.n), [
        1,
        2,
      ]);
      await db.execute(sql`delete from ${items}`);
    });

    test(
      "db.* calls do not join a held handle, and a handle taken inside a scope is a connection of its own",
      transactionPooled(target)
        ? skipUnless(false, `tells connections apart by a temporary table: ${notTransactionPooled}`)
        : skipUnless(shared, "an in-memory database is one connection: a second one waits for the first"),
      async () => {
        const conn = await db.acquire();
        try {
          await conn.execute(sql`create temporary table scratch (n integer)`);
          await assert.rejects(db.fetchAll(sql`select * from scratch`), "db.* runs on another connection");
          await db.transaction(async () => {
            await db.execute(sql`insert into ${items} values (1)`);
            const inner = await db.acquire();
            try {
              assert.equal(await count(inner), 0, "the handle does not see the uncommitted row");
              assert.equal(db.stats().primary.busy, 3);
            } finally {
              await inner.release();
            }
          });
        } finally {
          await conn.release();
        }
        assert.equal(db.stats().primary.busy, 0);
        await db.execute(sql`delete from ${items}`);
      },
    );

    test(
      "inside db.replica() the handle is a replica's, read-only",
      skipUnless(shared, "an in-memory database cannot be its own replica"),
      async () => {
        const routed = target.open({ replicas: [target.url] });
        try {
          const conn = await routed.replica(() => routed.acquire());
          try {
            assert.equal(routed.stats().replicas[0].busy, 1);
            assert.equal(await count(conn), 0);
            await assert.rejects(conn.execute(sql`insert into ${items} values (1)`), ReadOnlyError);
          } finally {
            await conn.release();
          }
          assert.equal(routed.stats().replicas[0].busy, 0);
        } finally {
          await routed.close();
        }
      },
    );

    test(
      "with forceRollback the handle runs on the one rolled-back connection",
      skipUnless(shared, "a second instance of an in-memory database is another database"),
      async () => {
        const forced = target.open({ forceRollback: true });
        try {
          const conn = await forced.acquire();
          await conn.execute(sql`insert into ${items} values (1)`);
          assert.equal(await count(forced), 1, "the same connection as db.*");
          await conn.release();
        } finally {
          await forced.close();
        }
        assert.equal(await count(db), 0, "nothing escaped the rollback");
      },
    );

    test(
      "a handle garbage-collected without release goes back to the pool, rolled back, and the database says so once",
      async () => {
        const warnings: string[] = [];
        const warn = console.warn;
        console.warn = (...args: unknown[]) => warnings.push(args.join(" "));
        try {
          // One handle left inside a transaction that wrote, one after a read (SQLite has one writer at a time).
          // The handles are held until the busy count is read: a collection the runtime runs on its own in between
          // would otherwise free one early.
          let held: object[] | undefined = [];
          const forget = async (write: boolean) => {
            const conn = await db.acquire();
            held?.push(conn);
            if (!write) return void await conn.fetchAll(sql`select 1 as one`);
            const tx = await conn.begin();
            await tx.execute(sql`insert into ${items} values (1)`);
          };
          await forget(true);
          if (shared) await forget(false); // an in-memory database's pool of one would wait for the first
          assert.equal(db.stats().primary.busy, shared ? 2 : 1);
          held = undefined;
          await eventually(
            "the forgotten handles' connections back in the pool",
            async () => {
              assert.ok(await collectGarbage(), "this runtime lets the test collect garbage");
              await new Promise((resolve) => setTimeout(resolve, 10));
              return db.stats().primary.busy;
            },
            (busy) => busy === 0,
            30_000,
          );
          const ours = warnings.filter((line) => line.includes(String(db)));
          assert.equal(ours.length, 1, warnings.join("\n"));
          assert.match(ours[0], /a connection from db\.acquire\(\) was garbage-collected without release\(\)/);
          assert.ok(!/password|secret/.test(ours[0]));
          assert.equal(await count(db), 0, "the transactions the handles left open were rolled back");
          // The pool goes on: new handles are served.
          const conn = await db.acquire();
          await conn.release();
        } finally {
          console.warn = warn;
          await db.execute(sql`delete from ${items}`);
        }
      },
    );
  });
}

describe("acquire and close", () => {
  test("a database closed with a handle out waits for it, up to close's timeout", async () => {
    const db = new Database("sqlite::memory:");
    const conn = await db.acquire();
    const closing = db.close();
    await conn.fetchAll(sql`select 1`);
    await conn.release();
    await closing;
    await assert.rejects(db.acquire(), ClosedError);
  });
});
