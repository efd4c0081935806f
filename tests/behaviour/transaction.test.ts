/** Transactions, savepoints, explicit handles and `await using`, on every target. */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  ConfigError,
  Database,
  type DatabaseOptions,
  type IsolationLevel,
  type Queryable,
  QueryError,
  type QueryEvent,
  sql,
  TransactionError,
} from "../../mod.ts";
import { sleep, uniqueTable } from "../support/support.ts";
import { serverDialects, serverPlaces, targets } from "../support/targets.ts";

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

    test("db.primary() inside a transaction or connection scope stays on its connection and sees its writes", async () => {
      await db.transaction(async (tx) => {
        await tx.execute(insert(41));
        const seen = await db.primary(async (p) =>
          Number(await p.fetchVal(sql`select count(*) from ${items} where n = 41`))
        );
        assert.equal(seen, 1);
        await db.primary(async (p) => await p.execute(insert(42))); // joins the transaction
        throw new Error("roll back");
      }).catch(() => {});
      assert.equal(await count(), 0);
      await db.connection(async (conn) => {
        await conn.execute(insert(43));
        assert.equal(Number(await db.primary((p) => p.fetchVal(sql`select count(*) from ${items}`))), 1);
      });
      await db.execute(sql`delete from ${items}`);
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

/** What each dialect reports for an error class, whichever form its driver gives (name, errno or SQLSTATE). */
const codes = {
  readOnly: { postgres: /^25006$/, mysql: /^(ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION|1792|25006)$/ },
  serialization: { postgres: /^40001$/, mysql: /^(ER_LOCK_DEADLOCK|1213|40001)$/ },
  lockNotAvailable: { postgres: /^55P03$/, mysql: /^(ER_LOCK_WAIT_TIMEOUT|1205|HY000)$/ },
};

const levels = ["read uncommitted", "read committed", "repeatable read", "serializable"] as const;

// Two sessions on one database (PGlite has one: tests/behaviour/pglite.test.ts covers its isolation and read-only).
for (const target of targets({ dialects: serverDialects, places: serverPlaces })) {
  const dialect = target.dialect as "postgres" | "mysql";
  const postgres = dialect === "postgres";
  describe(`isolation and read-only on ${target.label}`, () => {
    let db: Database;
    const rows = uniqueTable("iso");
    const backendId = (q: Queryable) =>
      q.fetchVal(postgres ? sql`select pg_backend_pid()` : sql`select connection_id()`);
    const valueIn = async (q: Queryable, n = 1) => Number(await q.fetchVal(sql`select v from ${rows} where n = ${n}`));
    const reset = () => db.execute(sql`update ${rows} set v = 0`);

    before(async () => {
      db = target.open({ pool: { max: 4, acquireTimeout: 5_000 } });
      await db.execute(sql`create table ${rows} (n integer primary key, v integer not null)`);
      await db.execute(sql`insert into ${rows} (n, v) values (1, 0), (2, 0)`);
    });
    after(async () => {
      await db.execute(sql`drop table ${rows}`);
      await db.close();
    });

    /** Does a transaction at `isolation` see an update another connection commits after its first read? */
    async function seesConcurrentCommit(isolation: IsolationLevel): Promise<boolean> {
      await reset();
      const tx = await db.begin({ isolation });
      try {
        assert.equal(await valueIn(tx), 0);
        await db.execute(sql`update ${rows} set v = 1 where n = 1`); // another pooled connection, autocommit
        return (await valueIn(tx)) === 1;
      } finally {
        await tx.rollback();
      }
    }

    /** Does a transaction at `isolation` see another transaction's uncommitted update? */
    async function seesUncommitted(isolation: IsolationLevel): Promise<boolean> {
      await reset();
      const writer = await db.begin();
      try {
        await writer.execute(sql`update ${rows} set v = 2 where n = 1`);
        const reader = await db.begin({ isolation });
        try {
          return (await valueIn(reader)) === 2;
        } finally {
          await reader.rollback();
        }
      } finally {
        await writer.rollback();
      }
    }

    /** Does a plain read at `isolation` lock the row, so another connection's `FOR UPDATE NOWAIT` fails? */
    async function readLocksRow(reader: Database, isolation?: IsolationLevel): Promise<boolean> {
      const tx = await reader.begin(isolation ? { isolation } : {});
      try {
        await valueIn(tx);
        const probe = await db.begin();
        try {
          const outcome = await probe.fetchVal(sql`select v from ${rows} where n = 1 for update nowait`).catch((e) =>
            e
          );
          if (!(outcome instanceof Error)) return false;
          assert.ok(outcome instanceof QueryError, String(outcome));
          assert.match(String(outcome.code), codes.lockNotAvailable[dialect]);
          return true;
        } finally {
          await probe.rollback();
        }
      } finally {
        await tx.rollback();
      }
    }

    /**
     * Write skew: two transactions each read both rows, then each updates a
     * different one. Returns the errors of the two attempts.
     */
    async function writeSkew(isolation: IsolationLevel): Promise<unknown[]> {
      await reset();
      const [a, b] = [await db.begin({ isolation }), await db.begin({ isolation })];
      assert.equal(Number(await a.fetchVal(sql`select sum(v) from ${rows}`)), 0);
      assert.equal(Number(await b.fetchVal(sql`select sum(v) from ${rows}`)), 0);
      // On MariaDB, serializable reads hold shared locks: the two updates deadlock and the server picks a victim.
      const outcomes = await Promise.allSettled([
        a.execute(sql`update ${rows} set v = 1 where n = 1`).then(() => a.commit()),
        b.execute(sql`update ${rows} set v = 1 where n = 2`).then(() => b.commit()),
      ]);
      for (const tx of [a, b]) if (tx.active) await tx.rollback();
      return outcomes.flatMap((o) => o.status === "rejected" ? [o.reason] : []);
    }

    if (postgres) {
      test("each isolation level and read-only is what the server runs the transaction with", async () => {
        for (const isolation of levels) {
          const seen = await db.transaction(
            (tx) =>
              tx.fetchOne(sql`select current_setting('transaction_isolation') as isolation,
              current_setting('transaction_read_only') as read_only`),
            { isolation },
          );
          assert.deepEqual(seen, { isolation, read_only: "off" });
        }
        const readOnly = await db.transaction(
          (tx) => tx.fetchVal(sql`select current_setting('transaction_read_only')`),
          { readOnly: true, isolation: "repeatable read" },
        );
        assert.equal(readOnly, "on");
      });
    }

    test("read committed sees a concurrent commit; repeatable read and serializable keep their snapshot", async () => {
      assert.equal(await seesConcurrentCommit("read committed"), true);
      assert.equal(await seesConcurrentCommit("repeatable read"), false);
      // On MariaDB a serializable read locks the row, so the concurrent update would wait: see the next test.
      if (postgres) assert.equal(await seesConcurrentCommit("serializable"), false);
    });

    test("read uncommitted reads another transaction's uncommitted write (Postgres never does)", async () => {
      assert.equal(await seesUncommitted("read uncommitted"), !postgres);
      assert.equal(await seesUncommitted("read committed"), false);
      assert.equal(await valueIn(db), 0, "the uncommitted write was rolled back");
    });

    test("serializable: MariaDB's plain reads lock rows, repeatable read's do not", async () => {
      await reset();
      assert.equal(await readLocksRow(db, "serializable"), !postgres);
      assert.equal(await readLocksRow(db, "repeatable read"), false);
      assert.equal(await readLocksRow(db), false);
    });

    test("serializable turns write skew into a serialization failure (40001); repeatable read lets it through", async () => {
      const loose = await writeSkew("repeatable read");
      assert.deepEqual(loose, []);
      assert.equal(Number(await db.fetchVal(sql`select sum(v) from ${rows}`)), 2, "both updates committed");

      const strict = await writeSkew("serializable");
      assert.equal(strict.length, 1, `exactly one transaction fails: ${strict.map(String).join("; ")}`);
      assert.ok(strict[0] instanceof QueryError, String(strict[0]));
      assert.match(String(strict[0].code), codes.serialization[dialect]);
      assert.equal(Number(await db.fetchVal(sql`select sum(v) from ${rows}`)), 1, "only one update committed");
      assert.equal(db.stats().primary.busy, 0, "both connections went back to the pool");
      assert.equal(await db.fetchVal(sql`select 1`), 1);
    });

    test("a read-only transaction rejects a write with the server's error; the same connection writes afterwards", async () => {
      await reset();
      const single = target.open({ pool: { max: 1 } });
      try {
        const id = await backendId(single);
        const error = await single.transaction((tx) => tx.execute(sql`update ${rows} set v = 5 where n = 1`), {
          readOnly: true,
        }).catch((e) => e);
        assert.ok(error instanceof QueryError, String(error));
        assert.match(String(error.code), codes.readOnly[dialect]);
        // A failed write in a read-only transaction's savepoint leaves the outer transaction usable.
        const read = await single.transaction(async (tx) => {
          await assert.rejects(
            tx.transaction((sp) => sp.execute(sql`update ${rows} set v = 6 where n = 1`)),
            QueryError,
          );
          return await valueIn(tx);
        }, { readOnly: true });
        assert.equal(read, 0);
        await single.execute(sql`update ${rows} set v = 7 where n = 1`);
        assert.equal(await valueIn(single), 7);
        assert.equal(await backendId(single), id, "the same connection served every step");
      } finally {
        await single.close();
        await reset();
      }
    });

    test("isolation and read-only end with their transaction: the next one on the pooled connection has the defaults", async () => {
      const single = target.open({ pool: { max: 1 } });
      try {
        const id = await backendId(single);
        const sessionLevel = postgres ? undefined : await single.fetchVal(sql`select @@tx_isolation`);
        await single.transaction((tx) => valueIn(tx), { isolation: "serializable", readOnly: true });
        await single.transaction((tx) => valueIn(tx), { isolation: "read uncommitted" });
        if (postgres) {
          const defaults = await single.fetchOne(
            sql`select current_setting('default_transaction_isolation') as isolation, 'off' as read_only`,
          );
          const seen = await single.transaction((tx) =>
            tx.fetchOne(sql`select current_setting('transaction_isolation') as isolation,
              current_setting('transaction_read_only') as read_only`)
          );
          assert.deepEqual(seen, defaults);
        } else {
          // MariaDB shows no per-transaction level; its behaviour does: the session default (repeatable read) reads
          // without locking, keeps its snapshot, and the session variable never changed.
          assert.equal(await single.fetchVal(sql`select @@tx_isolation`), sessionLevel);
          assert.equal(await readLocksRow(single), false);
        }
        await single.transaction((tx) => tx.execute(sql`update ${rows} set v = 3 where n = 1`));
        assert.equal(await valueIn(single), 3, "the next transaction is not read-only");
        assert.equal(await backendId(single), id, "one connection served every transaction");
      } finally {
        await single.close();
        await reset();
      }
    });

    test("an unknown isolation level or a non-boolean readOnly is a ConfigError, and nothing stays busy", async () => {
      const fresh = target.open();
      try {
        for (const isolation of ["chaotic", "READ COMMITTED", "snapshot", ""]) {
          // @ts-expect-error: not an isolation level
          await assert.rejects(fresh.transaction(() => {}, { isolation }), ConfigError);
          // @ts-expect-error: not an isolation level
          await assert.rejects(fresh.begin({ isolation }), ConfigError);
        }
        // @ts-expect-error: not a boolean
        await assert.rejects(fresh.transaction(() => {}, { readOnly: "yes" }), ConfigError);
        assert.equal(fresh.stats().primary.busy, 0);
      } finally {
        await fresh.close();
      }
    });
  });
}

for (const target of targets()) {
  const aborts = target.dialect === "postgres";
  describe(`a failed statement caught inside a transaction on ${target.label}`, () => {
    let db: Database;
    const items = uniqueTable("caught");
    const rows = () =>
      db.fetchAll<{ n: number }>(sql`select n from ${items} order by n`).then((r) => r.map((x) => x.n));
    const insert = (n: number) => sql`insert into ${items} (n) values (${n})`;

    before(async () => {
      db = target.open({ pool: { max: 2 } });
      await db.execute(sql`create table ${items} (n integer primary key)`);
    });
    after(async () => {
      await db.execute(sql`drop table ${items}`);
      await db.close();
    });

    test(
      aborts
        ? "the callback returns, but Postgres aborted the transaction: TransactionError, nothing committed"
        : "the callback returns: the server kept the transaction going, so the other work commits",
      async () => {
        await db.execute(sql`delete from ${items}`);
        const outcome = db.transaction(async (tx) => {
          await tx.execute(insert(1));
          await tx.execute(insert(1)).catch(() => {}); // duplicate key, caught
          return "done";
        });
        if (aborts) {
          const error = await outcome.catch((e) => e);
          assert.ok(error instanceof TransactionError, String(error));
          assert.match(error.message, /rolled back, not committed/);
          assert.ok(error.cause instanceof QueryError);
          assert.deepEqual(await rows(), []);
        } else {
          assert.equal(await outcome, "done");
          assert.deepEqual(await rows(), [1]);
        }
        assert.equal(db.stats().primary.busy, 0);
      },
    );

    test("caught inside a savepoint, the failure rolls back only the savepoint; the outer work commits", async () => {
      await db.execute(sql`delete from ${items}`);
      await db.transaction(async (tx) => {
        await tx.execute(insert(1));
        const inner = tx.transaction(async (sp) => {
          await sp.execute(insert(2));
          await sp.execute(insert(1)).catch(() => {}); // duplicate key, caught
        });
        if (aborts) await assert.rejects(inner, TransactionError);
        else await inner;
        await tx.execute(insert(3));
      });
      assert.deepEqual(await rows(), aborts ? [1, 3] : [1, 2, 3]);
    });

    test("explicit handles: commit after a failed statement says what happened, and the connection is reusable", async () => {
      await db.execute(sql`delete from ${items}`);
      const tx = await db.begin();
      await tx.execute(insert(5));
      await assert.rejects(tx.execute(sql`select * from ${sql.ident("roost_no_such_table")}`), QueryError);
      if (aborts) {
        await assert.rejects(tx.commit(), TransactionError);
        assert.equal(tx.active, false);
        assert.deepEqual(await rows(), []);
      } else {
        await tx.commit();
        assert.deepEqual(await rows(), [5]);
      }
      // A refused parameter never reaches the server, so it aborts nothing.
      await db.transaction(async (t) => {
        await t.execute(insert(6));
        await assert.rejects(t.execute(sql`select ${undefined}`), QueryError);
      });
      assert.ok((await rows()).includes(6));
    });
  });
}

for (const target of targets({ places: ["sqlite file"] })) {
  describe(`statements of a scope and another connection's write lock on ${target.label}`, () => {
    let holder: Database;
    const items = uniqueTable("locked");
    const insert = (n: number) => sql`insert into ${items} (n) values (${n})`;
    const rows = () =>
      holder.fetchAll<{ n: number }>(sql`select n from ${items} order by n`).then((r) => r.map((x) => x.n));
    /** A second instance on the same file: its connections wait for the holder's write lock. */
    const waiter = (busyTimeout?: number, options: DatabaseOptions = {}) =>
      new Database(
        busyTimeout === undefined
          ? target.url
          : `${target.url}${target.url.includes("?") ? "&" : "?"}busy_timeout=${busyTimeout}`,
        { driver: target.driver, pool: { max: 1 }, ...options },
      );

    before(async () => {
      holder = target.open();
      await holder.execute(sql`create table ${items} (n integer primary key)`);
    });
    after(async () => {
      await holder.execute(sql`drop table ${items}`);
      await holder.close();
    });

    test("a statement in a connection scope waits until the lock is released, then runs", async () => {
      await holder.execute(sql`delete from ${items}`);
      const other = waiter();
      try {
        const tx = await holder.begin();
        await tx.execute(insert(1));
        let settled = false;
        const waiting = other.connection((conn) => conn.execute(insert(2))).finally(() => settled = true);
        await sleep(30);
        assert.equal(settled, false, "still waiting: the holder's transaction is open");
        await tx.commit();
        assert.equal((await waiting).rowCount, 1);
        assert.deepEqual(await rows(), [1, 2]);
        assert.equal(other.stats().primary.busy, 0);
      } finally {
        await other.close();
      }
    });

    test("past busy_timeout it fails with a QueryError SQLITE_BUSY, reported to onQuery; the scope goes on", async () => {
      await holder.execute(sql`delete from ${items}`);
      const events: QueryEvent[] = [];
      const other = waiter(50, { onQuery: (event) => events.push(event) });
      try {
        const tx = await holder.begin();
        await tx.execute(insert(3));
        try {
          await other.connection(async (conn) => {
            const error = await conn.execute(insert(4)).catch((e) => e);
            assert.ok(error instanceof QueryError, String(error));
            assert.match(error.code ?? "", /^SQLITE_BUSY/);
            // Reads go on beside the writer (WAL): the scope's connection is still usable.
            assert.equal(Number(await conn.fetchVal(sql`select count(*) from ${items}`)), 0);
          });
        } finally {
          await tx.rollback();
        }
        assert.deepEqual(events.map((e) => [e.method, e.reason, e.error === undefined]), [
          ["execute", "held", false],
          ["fetchOne", "held", true],
        ]);
        assert.deepEqual(await rows(), []);
      } finally {
        await other.close();
      }
    });

    test("a failed statement inside a transaction is a typed error, reported to onQuery; the transaction goes on", async () => {
      await holder.execute(sql`delete from ${items}`);
      const events: QueryEvent[] = [];
      const db = waiter(undefined, { onQuery: (event) => events.push(event) });
      const plain = waiter();
      try {
        for (const instance of [db, plain]) {
          await instance.transaction(async (tx) => {
            await tx.execute(insert(7));
            const error = await tx.execute(insert(7)).catch((e) => e);
            assert.ok(error instanceof QueryError, String(error));
            assert.equal(error.code, "SQLITE_CONSTRAINT_PRIMARYKEY");
            assert.equal(await tx.fetchVal(sql`select count(*) from ${items}`), 1);
            throw new Error("undo");
          }).catch((e) => assert.match(String(e), /undo/));
        }
        assert.deepEqual(events.map((e) => [e.method, e.error instanceof QueryError]), [
          ["execute", false],
          ["execute", true],
          ["fetchOne", false],
        ]);
        assert.deepEqual(await rows(), []);
      } finally {
        await db.close();
        await plain.close();
      }
    });
  });
}
