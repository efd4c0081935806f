/**
 * A session setting changed by a statement (`SET search_path`, `SET @x`,
 * `RESET ALL`) stays with the pooled connection it ran on: Roost closes that
 * connection when it is given back, so no later caller inherits the setting,
 * and the next connection is set up afresh (Roost's `statementTimeout`, a
 * replica's read-only mode). Settings that end with their transaction
 * (`SET LOCAL`) and `SET TRANSACTION` keep the connection. On every Postgres
 * and MySQL target; PGlite's one connection is the database and keeps its
 * settings (asserted as documented).
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Kysely, sql as ksql } from "kysely";
import { type Database, type DatabaseOptions, type Queryable, sql } from "../../mod.ts";
import { RoostDialect } from "../../src/kysely.ts";
import { type Target, targets, transactionPooled } from "../support/targets.ts";

const sessionTargets = targets().filter((target) => target.dialect !== "sqlite");

/** The statements each dialect changes, reads and restores a setting with. */
function settingsOf(target: Target) {
  const postgres = target.dialect === "postgres";
  return {
    backend: postgres ? sql`select pg_backend_pid() as id` : sql`select connection_id() as id`,
    /** Changes a session setting for good. */
    change: postgres ? sql`SET search_path TO roost_elsewhere, public` : sql`SET @roost_mark = 42`,
    /** The setting's value: "changed" while the change holds. */
    read: postgres
      ? sql`select case when current_setting('search_path') like 'roost_elsewhere%' then 'changed' else 'default' end`
      : sql`select case when @roost_mark = 42 then 'changed' else 'default' end`,
    /** Changes the same setting from inside a query: Postgres's set_config(…, false), a MySQL assignment. */
    changeInside: postgres
      ? sql`select set_config('search_path', 'roost_elsewhere, public', ${false}) as v`
      : sql`select @roost_mark := 42 as v`,
    /** A setting that ends with its transaction (Postgres) or is about the next transaction only (MySQL). */
    transactionOnly: postgres
      ? sql`SET LOCAL search_path TO roost_elsewhere, public`
      : sql`SET TRANSACTION ISOLATION LEVEL READ COMMITTED`,
    /** Turns the statement timeout off for the session. */
    noTimeout: postgres ? sql`SET statement_timeout = 0` : sql`SET SESSION max_statement_time = 0`,
    /** The session's statement timeout in ms. */
    timeout: postgres
      ? sql`select extract(epoch from current_setting('statement_timeout')::interval) * 1000`
      : sql`select @@session.max_statement_time * 1000`,
    /** Makes the session's transactions writable. */
    readWrite: postgres
      ? sql`SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE`
      : sql`SET SESSION TRANSACTION READ WRITE`,
    /** 1 when the session's transactions are read-only. */
    readOnly: postgres
      ? sql`select case when current_setting('default_transaction_read_only') = 'on' then 1 else 0 end`
      : sql`select @@session.tx_read_only`,
    /** The change and the read, as Kysely raw queries (the read as a `value` column). */
    kysely: {
      change: postgres ? ksql`SET search_path TO roost_elsewhere, public` : ksql`SET @roost_mark = 42`,
      read: postgres
        ? ksql<
          { value: string }
        >`select case when current_setting('search_path') like 'roost_elsewhere%' then 'changed' else 'default' end as value`
        : ksql<{ value: string }>`select case when @roost_mark = 42 then 'changed' else 'default' end as value`,
    },
  };
}

const backendOf = async (q: Queryable, target: Target) => Number(await q.fetchVal(settingsOf(target).backend));

for (const target of sessionTargets) {
  describe(`session settings on ${target.label}`, () => {
    const settings = settingsOf(target);
    const open = (options: DatabaseOptions = {}): Database =>
      target.open({ ...options, pool: { max: 1, ...options.pool } });
    // Not registered behind PgBouncer in transaction mode, where a SET lands on a server session the pooler gives to
    // others whatever Roost does (docs/poolers.md), nor on PGlite (its own test, last).
    const replaceable = target.place !== "pglite" && !transactionPooled(target);
    // Behind PgBouncer in session mode the backend's pid is the server session's, which the pooler hands on (reset).
    const ownBackends = target.place !== "pgbouncer session";
    const replaceableTest = (name: string, fn: () => Promise<void>) => {
      if (replaceable) test(name, fn);
    };

    replaceableTest(
      "a SET in a connection() scope does not reach the next caller: the connection is closed at the scope's end",
      async () => {
        const db = open();
        try {
          const first = await db.connection(async (conn) => {
            await conn.execute(settings.change);
            assert.equal(await conn.fetchVal(settings.read), "changed", "the setting holds inside the scope");
            assert.equal(await db.fetchVal(settings.read), "changed", "db.* inside the scope runs on it too");
            return await backendOf(conn, target);
          });
          assert.equal(await db.fetchVal(settings.read), "default");
          if (ownBackends) assert.notEqual(await backendOf(db, target), first, "a new connection");
          assert.equal(db.stats().primary.size, 1);
        } finally {
          await db.close();
        }
      },
    );

    replaceableTest("a SET outside any scope goes with the connection it ran on", async () => {
      const db = open();
      try {
        const first = await backendOf(db, target);
        await db.execute(settings.change);
        assert.equal(await db.fetchVal(settings.read), "default");
        if (ownBackends) assert.notEqual(await backendOf(db, target), first);
        // Through an acquired handle too.
        const handle = await db.acquire();
        const held = await backendOf(handle, target);
        await handle.execute(settings.change);
        await handle.release();
        assert.equal(await db.fetchVal(settings.read), "default");
        if (ownBackends) assert.notEqual(await backendOf(db, target), held);
      } finally {
        await db.close();
      }
    });

    replaceableTest(
      "SET LOCAL in a transaction, SET TRANSACTION and other statements keep the connection",
      async () => {
        const db = open();
        try {
          const first = await backendOf(db, target);
          await db.connection(async (conn) => {
            // Postgres's SET LOCAL inside the transaction; MySQL's SET TRANSACTION before the one it is about.
            if (target.dialect === "mysql") await conn.execute(settings.transactionOnly);
            await conn.transaction(async (tx) => {
              if (target.dialect === "postgres") await tx.execute(settings.transactionOnly);
              await tx.fetchVal(sql`select 1`);
            });
          });
          await db.connection(async (conn) => {
            await conn.fetchVal(sql`select 1`);
            await conn.transaction((tx) => tx.fetchVal(sql`select 2`));
          });
          // Keywords that only look alike (a column named set_x, a comment) change nothing.
          await db.fetchVal(sql`/* SET search_path */ select 1 as settings`);
          assert.equal(await backendOf(db, target), first, "the same connection throughout");
          assert.equal(await db.fetchVal(settings.read), "default");
        } finally {
          await db.close();
        }
      },
    );

    replaceableTest(
      "a setting changed inside a query (set_config(…, false), @x := …) goes with its connection; set_config(…, true) in a transaction keeps it",
      async () => {
        const db = open();
        try {
          const first = await backendOf(db, target);
          await db.connection(async (conn) => {
            await conn.fetchVal(settings.changeInside);
            assert.equal(await conn.fetchVal(settings.read), "changed", "the setting holds inside the scope");
          });
          assert.equal(await db.fetchVal(settings.read), "default");
          const second = await backendOf(db, target);
          if (ownBackends) assert.notEqual(second, first, "a new connection");
          if (target.dialect === "postgres") {
            await db.transaction(async (tx) => {
              await tx.fetchVal(sql`select set_config('search_path', 'roost_elsewhere, public', true)`);
              assert.equal(await tx.fetchVal(settings.read), "changed");
            });
            assert.equal(await db.fetchVal(settings.read), "default");
            assert.equal(
              await backendOf(db, target),
              second,
              "the same connection: the setting ended with its transaction",
            );
          }
        } finally {
          await db.close();
        }
      },
    );

    replaceableTest("a SET through executeMany or iterate goes with its connection too", async () => {
      const db = open();
      try {
        const drain = async (q: Queryable) => {
          for await (const _ of q.iterate(settings.change)) {
            // A SET returns no rows.
          }
        };
        const first = await backendOf(db, target);
        await db.executeMany(settings.change, [[]]);
        assert.equal(await db.fetchVal(settings.read), "default", "after executeMany outside a scope");
        const second = await backendOf(db, target);
        if (ownBackends) assert.notEqual(second, first);
        await drain(db);
        assert.equal(await db.fetchVal(settings.read), "default", "after iterate outside a scope");
        if (ownBackends) assert.notEqual(await backendOf(db, target), second);
        await db.connection(async (conn) => {
          await conn.executeMany(settings.change, [[]]);
          assert.equal(await conn.fetchVal(settings.read), "changed");
        });
        assert.equal(await db.fetchVal(settings.read), "default", "after executeMany in a scope");
        await db.connection(async (conn) => {
          await drain(conn);
          assert.equal(await conn.fetchVal(settings.read), "changed");
        });
        assert.equal(await db.fetchVal(settings.read), "default", "after iterate in a scope");
      } finally {
        await db.close();
      }
    });

    replaceableTest(
      'connectionScope "context" (the Workers default): a SET in a db.context() reaches neither its next statement nor another context',
      async () => {
        const db = open({ connectionScope: "context" });
        try {
          await db.context(async () => {
            await db.connection(async (conn) => {
              await conn.execute(settings.change);
              assert.equal(await conn.fetchVal(settings.read), "changed");
            });
            assert.equal(await db.fetchVal(settings.read), "default", "the context's next statement");
            await db.execute(settings.change);
            assert.equal(await db.fetchVal(settings.read), "default", "after a SET outside a scope in the context");
          });
          await db.context(async () => {
            assert.equal(await db.fetchVal(settings.read), "default", "another context");
          });
        } finally {
          await db.close();
        }
      },
    );

    replaceableTest("a SET through Kysely on RoostDialect does not reach the next caller", async () => {
      const db = open();
      const kysely = new Kysely<Record<string, never>>({ dialect: new RoostDialect({ database: db }) });
      try {
        const first = await backendOf(db, target);
        await settings.kysely.change.execute(kysely);
        assert.equal(await db.fetchVal(settings.read), "default", "after a SET outside Kysely's connection()");
        if (ownBackends) assert.notEqual(await backendOf(db, target), first);
        await kysely.connection().execute(async (conn) => {
          await settings.kysely.change.execute(conn);
          const { rows } = await settings.kysely.read.execute(conn);
          assert.equal(rows[0]?.value, "changed", "the setting holds on Kysely's connection");
        });
        assert.equal(await db.fetchVal(settings.read), "default", "after Kysely's connection()");
        await kysely.transaction().execute(async (trx) => {
          await settings.kysely.change.execute(trx);
        });
        assert.equal(await db.fetchVal(settings.read), "default", "after Kysely's transaction");
      } finally {
        await kysely.destroy();
        await db.close();
      }
    });

    replaceableTest(
      "statementTimeout × a SET that turned it off: the next connection has Roost's timeout again",
      async () => {
        const db = open({ statementTimeout: 4_000 });
        try {
          assert.equal(Number(await db.fetchVal(settings.timeout)), 4_000);
          await db.connection(async (conn) => {
            await conn.execute(settings.noTimeout);
            assert.equal(Number(await conn.fetchVal(settings.timeout)), 0);
          });
          assert.equal(Number(await db.fetchVal(settings.timeout)), 4_000);
        } finally {
          await db.close();
        }
      },
    );

    replaceableTest(
      "a replica connection made writable in a scope is read-only again for the next caller",
      async () => {
        const db = open({ replicas: [target.url] });
        try {
          await db.replica(() =>
            db.connection(async (conn) => {
              assert.equal(Number(await conn.fetchVal(settings.readOnly)), 1, "a replica's session is read-only");
              // Through a fetch: Roost refuses execute() on a replica before it reaches the server.
              await conn.fetchAll(settings.readWrite);
              assert.equal(Number(await conn.fetchVal(settings.readOnly)), 0);
            })
          );
          assert.equal(Number(await db.replica((r) => r.fetchVal(settings.readOnly))), 1);
        } finally {
          await db.close();
        }
      },
    );

    if (target.place === "pglite") {
      test("PGlite keeps a SET on its one connection (documented)", async () => {
        const db = open();
        try {
          await db.connection((conn) => conn.execute(settings.change));
          assert.equal(await db.fetchVal(settings.read), "changed");
          await db.execute(sql`RESET search_path`);
          assert.equal(await db.fetchVal(settings.read), "default");
        } finally {
          await db.close();
        }
      });
    }
  });
}
