/**
 * What docs/poolers.md promises behind a real PgBouncer (tests/support/pgbouncer.ts): in transaction mode, named
 * prepared statements off, no statements pipelined outside a transaction, the migrator and a statement timeout
 * refused, streams in a scope read whole, a replica's session setting not sent; transactions and savepoints as
 * without a pooler. The rest of the suite runs through the same targets (tests/support/targets.ts).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ConfigError, Database, parseDatabaseUrl, QueryError, ReadOnlyError, sql } from "../../mod.ts";
import { Kysely } from "kysely";
import { Migrator as KyselyMigrator } from "kysely/migration";
import { RoostDialect } from "../../src/kysely.ts";
import { MigrationError, Migrator } from "../../src/migrate/mod.ts";
import { skipUnless, uniqueName, uniqueTable } from "../support/support.ts";
import { sessionParametersUnset, targets } from "../support/targets.ts";

describe("pooler URL options", () => {
  test("pooler takes transaction or session, prepare true or false; anything else is a ConfigError", () => {
    const base = "postgres://app@127.0.0.1:6432/app";
    assert.equal(parseDatabaseUrl(`${base}?pooler=transaction`).options.pooler, "transaction");
    assert.equal(parseDatabaseUrl(`${base}?pooler=session&prepare=false`).options.prepare, false);
    for (const bad of ["pooler=statement", "prepare=maybe"]) {
      assert.throws(() => parseDatabaseUrl(`${base}?${bad}`), ConfigError);
    }
  });

  test("a statement timeout behind pooler=transaction is refused when the Database is made; session mode keeps it", () => {
    const url = "postgres://app@127.0.0.1:6432/app?pooler=transaction";
    const refused = (error: unknown) => error instanceof ConfigError && error.code === "ROOST_POOLER_SESSION_STATE";
    assert.throws(() => new Database(url, { statementTimeout: 1_000 }), refused);
    assert.throws(() => new Database(`${url}&statement_timeout=1000`), refused);
    assert.throws(
      () => new Database("postgres://app@127.0.0.1:5432/app", { replicas: [url], statementTimeout: 1_000 }),
      refused,
    );
    const session = new Database("postgres://app@127.0.0.1:6432/app?pooler=session", { statementTimeout: 1_000 });
    return session.close();
  });
});

for (const target of targets({ places: ["pgbouncer transaction"] })) {
  describe(`PgBouncer transaction mode on ${target.label}`, () => {
    let db: Database;
    const table = uniqueTable("pgb");
    const backend = sql`select pg_backend_pid() as pid`;

    before(async () => {
      db = target.open({ pool: { max: 4 } });
      await db.execute(sql`create table ${table} (id integer primary key, n integer)`);
    });
    after(async () => {
      await db.execute(sql`drop table if exists ${table}`);
      await db.close();
    });

    test("a parameterised statement repeated on one connection over several server sessions never needs a prepared statement", async () => {
      const query = sql`select ${1}::int + ${2}::int as sum`;
      const others = target.open();
      const seen = await db.connection(async (conn) => {
        const pids = [Number(await conn.fetchVal(backend))];
        assert.equal(Number(await conn.fetchVal(query)), 3);
        for (let i = 0; i < 3; i++) {
          // Another client's transaction takes the server session this connection used last (PgBouncer hands out
          // the most recently used one), so the next statement runs on another.
          const other = await others.begin();
          try {
            await other.fetchVal(backend);
            pids.push(Number(await conn.fetchVal(backend)));
            assert.equal(Number(await conn.fetchVal(sql`select ${i}::int + ${2}::int as sum`)), i + 2);
          } finally {
            await other.rollback();
          }
        }
        return new Set(pids);
      }).finally(() => others.close());
      assert.ok(seen.size > 1, `one client connection ran on several server sessions (${[...seen].join(", ")})`);
      // Many at once from four instances sharing the pooler's server sessions, two statement texts taking turns
      // (with prepare=true, bun-sql met `prepared statement "P62" already exists` here; postgres.js retries its own).
      const instances = Array.from({ length: 4 }, () => target.open({ pool: { max: 2 } }));
      try {
        const results = await Promise.all(
          instances.flatMap((instance, d) =>
            Array.from({ length: 50 }, (_, i) =>
              instance.fetchVal(
                i % 2 ? sql`select ${i}::int + ${d}::int as a` : sql`select ${i}::text || ${d}::text as b`,
              )
                .then(String))
          ),
        );
        assert.deepEqual(
          results,
          instances.flatMap((_, d) => Array.from({ length: 50 }, (_, i) => i % 2 ? String(i + d) : `${i}${d}`)),
        );
      } finally {
        await Promise.all(instances.map((instance) => instance.close()));
      }
    });

    test(
      "the session parameters Roost starts with hold on every server session, whatever another client SET there",
      skipUnless(sessionParametersUnset(target) === undefined, sessionParametersUnset(target) ?? ""),
      async () => {
        const others = target.open({ pool: { max: 1 } });
        const state = sql`select pg_backend_pid() as pid, current_setting('TimeZone') as zone,
          current_setting('DateStyle') as style`;
        let tainted = 0;
        try {
          for (let i = 0; i < 3; i++) {
            // A session SET outside a transaction lands on the server session PgBouncer hands out next (its most
            // recently used one).
            const pid = await others.connection(async (conn) => {
              await conn.execute(sql`set timezone to 'America/New_York'`);
              await conn.execute(sql`set datestyle to 'German, DMY'`);
              return Number(await conn.fetchVal(backend));
            });
            const row = await db.fetchOne<{ pid: number; zone: string; style: string }>(state);
            if (Number(row?.pid) === pid) tainted++;
            assert.deepEqual([row?.zone, row?.style], ["UTC", "ISO, MDY"]);
          }
        } finally {
          await others.close();
        }
        assert.ok(tainted > 0, "no statement ran on a server session another client had SET");
      },
    );

    test("executeMany outside a transaction runs every set, one after another", async () => {
      await db.executeMany(sql`insert into ${table} (id, n) values (${0}, ${0})`, [[1, 10], [2, 20], [3, 30]]);
      const updated = await db.executeMany(sql`update ${table} set n = n + ${0} where id = ${0}`, [
        [1, 1],
        [1, 2],
        [2, 3],
      ]);
      assert.equal(updated.rowCount, 3);
      assert.deepEqual(
        (await db.fetchAll(sql`select id, n from ${table} order by id`)).map((row) => [row.id, row.n]),
        [[1, 11], [2, 21], [3, 32]],
      );
      await db.execute(sql`delete from ${table}`);
    });

    test("a transaction keeps one server session; savepoints roll back only themselves; SET LOCAL holds inside it", async () => {
      await db.transaction(async (tx) => {
        const pid = Number(await tx.fetchVal(backend));
        await tx.execute(sql`set local application_name = 'roost_local'`);
        await tx.execute(sql`insert into ${table} (id, n) values (${1}, ${1})`);
        await assert.rejects(
          tx.transaction(async (sp) => {
            await sp.execute(sql`insert into ${table} (id, n) values (${2}, ${2})`);
            await sp.execute(sql`insert into ${table} (id, n) values (${1}, ${1})`); // duplicate key
          }),
          (error) => error instanceof QueryError && error.code === "23505",
        );
        await tx.transaction(async (sp) => {
          await sp.execute(sql`insert into ${table} (id, n) values (${3}, ${3})`);
        });
        assert.equal(await tx.fetchVal(sql`select current_setting('application_name')`), "roost_local");
        assert.equal(Number(await tx.fetchVal(backend)), pid, "the whole transaction ran on one server session");
      });
      assert.deepEqual((await db.fetchAll(sql`select id from ${table} order by id`)).map((row) => row.id), [1, 3]);
      await db.execute(sql`delete from ${table}`);
    });

    test("iterate streams on its own and in a transaction, and reads whole in a connection scope; queries inside the loop work", async () => {
      const hundred = sql`select n from generate_series(1, 100) n`;
      const upTo = (count: number) => Array.from({ length: count }, (_, i) => i + 1);
      const read = async () => {
        const seen: number[] = [];
        for await (const { n } of db.iterate<{ n: number }>(hundred, undefined, { batchSize: 7 })) {
          seen.push(Number(n));
          if (seen.length % 25 === 0) assert.equal(Number(await db.fetchVal(sql`select ${n}::int as n`)), n);
        }
        return seen;
      };
      assert.deepEqual(await read(), upTo(100));
      // In a scope outside a transaction there is no WITH HOLD cursor to outlive its statement: the rows came whole.
      assert.deepEqual(await db.connection(read), upTo(100));
      // Inside a transaction the cursor is the transaction's, on its server session.
      await db.transaction(async (tx) => {
        let open = 0;
        for await (const _ of tx.iterate(hundred, undefined, { batchSize: 10 })) {
          open = Math.max(open, Number(await tx.fetchVal(sql`select count(*) from pg_cursors where name <> ''`)));
        }
        assert.equal(open, 1, "a server-side cursor streamed the rows");
      });
    });

    test("the migrator refuses before anything runs, with ROOST_MIGRATION_POOLED", async () => {
      const history = uniqueName("pgb_history");
      const migrator = new Migrator(db, {
        table: history,
        migrations: [{ revision: "1", name: "one", up: `create table ${history}_t (id integer)` }],
      });
      for (const run of [() => migrator.upgrade(), () => migrator.downgrade("base"), () => migrator.stamp()]) {
        await assert.rejects(run(), (error) => {
          assert.ok(error instanceof MigrationError && error.code === "ROOST_MIGRATION_POOLED", String(error));
          assert.match(error.message, /server's own URL/);
          return true;
        });
      }
      // Kysely's Migrator on Roost takes a session lock too (pg_advisory_lock): refused the same way.
      const kysely = new Kysely<Record<string, never>>({ dialect: new RoostDialect({ database: db }) });
      const kyselyRun = await new KyselyMigrator({
        db: kysely,
        provider: { getMigrations: () => Promise.resolve({}) },
        migrationTableName: history,
        migrationLockTableName: `${history}_lock`,
      }).migrateToLatest();
      assert.ok(
        kyselyRun.error instanceof MigrationError && kyselyRun.error.code === "ROOST_MIGRATION_POOLED",
        String(kyselyRun.error),
      );
      await kysely.destroy();
      await db.execute(sql`drop table if exists ${sql.ident(history)}, ${sql.ident(`${history}_lock`)}`);
      const tables = await db.fetchVal(
        sql`select count(*) from information_schema.tables where table_name in (${history}, ${`${history}_t`})`,
      );
      assert.equal(Number(tables), 0, "nothing was created");
    });

    test("a replica's session is not made read-only on the server; Roost still refuses writes in a replica scope", async () => {
      const routed = target.open({ replicas: [target.url] });
      try {
        await routed.replica(async (r) => {
          assert.equal(await r.fetchVal(sql`select current_setting('transaction_read_only')`), "off");
          await assert.rejects(r.execute(sql`delete from ${table}`), ReadOnlyError);
        });
      } finally {
        await routed.close();
      }
      // No server session was left read-only for the pooler's other clients.
      assert.equal(await db.fetchVal(sql`select current_setting('transaction_read_only')`), "off");
    });
  });
}

for (const target of targets({ places: ["pgbouncer session"] })) {
  describe(`PgBouncer session mode on ${target.label}`, () => {
    test("session state holds: a statement timeout, a temporary table, the migrator's lock", async () => {
      const db = target.open({ statementTimeout: 30_000, pool: { max: 2 } });
      const history = uniqueName("pgbs_history");
      try {
        await db.connection(async (conn) => {
          assert.equal(await conn.fetchVal(sql`select current_setting('statement_timeout')`), "30s");
          const temp = uniqueTable("pgbs_temp");
          await conn.execute(sql`create temporary table ${temp} (n integer)`);
          await db.execute(sql`insert into ${temp} values (1)`);
          assert.equal(Number(await conn.fetchVal(sql`select count(*) from ${temp}`)), 1);
        });
        const migrator = new Migrator(db, {
          table: history,
          migrations: [{
            revision: "1",
            name: "one",
            up: `create table ${history}_t (id integer)`,
            down: `drop table ${history}_t`,
          }],
        });
        assert.deepEqual(await migrator.upgrade(), ["1"]);
        assert.deepEqual(await migrator.downgrade("base"), ["1"]);
      } finally {
        await db.execute(sql`drop table if exists ${sql.ident(history)}`);
        await db.close();
      }
    });
  });
}
