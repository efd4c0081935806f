/**
 * Kysely on Roost (`@roost/db/kysely`) with real Kysely on every target:
 * statements and their counts, transactions, controlled transactions and
 * savepoints, access modes, `connection()`, streaming, Roost scopes around
 * Kysely, errors, the registry, pool hygiene, introspection and
 * forceRollback; then replica routing of Kysely's statements.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type Generated, isAbortedTransactionError, Kysely, sql as ksql } from "kysely";
import { type Migration, Migrator } from "kysely/migration";
import {
  ConfigError,
  type Database,
  type DatabaseOptions,
  QueryError,
  type QueryEvent,
  ReadOnlyError,
  RegistryError,
  sql,
  TransactionError,
} from "../../mod.ts";
import { RoostDialect } from "../../src/kysely.ts";
import { columnType, skipUnless, tempDatabasePath, uniqueName } from "../support/support.ts";
import {
  migratorNeedsSession,
  notTransactionPooled,
  type Target,
  targets,
  transactionPooled,
} from "../support/targets.ts";

/** The table every case uses, as Kysely sees it. */
interface BirdTable {
  id: Generated<number>;
  name: string;
  n: number;
}

/** Any table name maps to a bird table: the names are only known at run time. */
type Tables = Record<string, BirdTable>;

function kyselyOn(database: Database | string): Kysely<Tables> {
  return new Kysely<Tables>({ dialect: new RoostDialect({ database }) });
}

/** A migration creating (and, down, dropping) a one-column table. */
function createTableMigration(table: string): Migration {
  return {
    up: (k) => k.schema.createTable(table).addColumn("id", "integer", (c) => c.primaryKey()).execute(),
    down: (k) => k.schema.dropTable(table).execute(),
  };
}

/** Kysely's Migrator over in-memory `migrations`, recording them in `history` (and its lock table). */
function kyselyMigrator(on: Kysely<Tables>, migrations: Record<string, Migration>, history: string): Migrator {
  return new Migrator({
    db: on,
    provider: { getMigrations: () => Promise.resolve(migrations) },
    migrationTableName: history,
    migrationLockTableName: `${history}_lock`,
  });
}

/** The server's id of the connection a statement runs on (SQLite: none, it is one file). */
function connectionIdQuery(target: Target) {
  if (target.dialect === "postgres") return ksql<{ id: number }>`select pg_backend_pid() as id`;
  if (target.dialect === "mysql") return ksql<{ id: number }>`select connection_id() as id`;
  return undefined;
}

for (const target of targets()) {
  const memory = target.url.includes(":memory:");
  const returning = target.dialect !== "mysql";

  const sessionKept = skipUnless(
    !transactionPooled(target),
    `tells connections apart by a temporary table: ${notTransactionPooled}`,
  );
  const migrates = skipUnless(!transactionPooled(target), migratorNeedsSession);
  describe(`Kysely on ${target.label}`, () => {
    const table = uniqueName("kysely");
    const name = uniqueName("kysely_db");
    let db: Database;
    let kysely: Kysely<Tables>;
    const names = async (on: Kysely<Tables> = kysely) =>
      (await on.selectFrom(table).select("name").orderBy("id").execute()).map((row) => row.name);
    const count = async () => Number(await db.fetchVal(sql`select count(*) from ${sql.ident(table)}`));

    before(async () => {
      db = target.open({ name, pool: { acquireTimeout: 5_000 } });
      kysely = kyselyOn(name);
      await db.execute(
        `create table ${table} (id ${columnType(target.dialect, "autoId")}, name varchar(64) not null unique, ` +
          "n integer not null)",
      );
    });
    after(async () => {
      await db.execute(`drop table ${table}`);
      await kysely.destroy();
      await db.close();
    });
    const reset = () => db.execute(`delete from ${table}`);

    test("single statements report rows, counts and insert ids as Kysely expects", async () => {
      await reset();
      const inserted = await kysely.insertInto(table).values({ name: "wren", n: 1 }).executeTakeFirstOrThrow();
      assert.equal(inserted.numInsertedOrUpdatedRows, 1n);
      if (target.dialect === "postgres") assert.equal(inserted.insertId, undefined);
      else assert.equal(typeof inserted.insertId, "bigint");
      const many = await kysely.insertInto(table).values([{ name: "tit", n: 2 }, { name: "jay", n: 3 }])
        .executeTakeFirstOrThrow();
      assert.equal(many.numInsertedOrUpdatedRows, 2n);
      const wren = await kysely.selectFrom(table).selectAll().where("name", "=", "wren").executeTakeFirstOrThrow();
      if (target.dialect !== "postgres") assert.equal(BigInt(wren.id), inserted.insertId);
      assert.deepEqual({ name: wren.name, n: wren.n }, { name: "wren", n: 1 });
      const updated = await kysely.updateTable(table).set({ n: 10 }).where("n", ">", 1).executeTakeFirstOrThrow();
      assert.equal(updated.numUpdatedRows, 2n);
      const deleted = await kysely.deleteFrom(table).where("name", "=", "jay").executeTakeFirstOrThrow();
      assert.equal(deleted.numDeletedRows, 1n);
      assert.deepEqual(await names(), ["wren", "tit"]);
      if (returning) {
        const row = await kysely.insertInto(table).values({ name: "owl", n: 4 }).returning(["name", "n"])
          .executeTakeFirstOrThrow();
        assert.deepEqual({ ...row }, { name: "owl", n: 4 });
        const gone = await kysely.deleteFrom(table).where("name", "=", "owl").returning("name").execute();
        assert.deepEqual(gone.map((r) => r.name), ["owl"]);
      }
      assert.equal(
        await kysely.selectFrom(table).selectAll().where("name", "=", "nobody").executeTakeFirst(),
        undefined,
      );
    });

    test("raw sql: reads return rows, writes return counts", async () => {
      await reset();
      await kysely.insertInto(table).values([{ name: "a", n: 1 }, { name: "b", n: 2 }]).execute();
      const read = await ksql<{ name: string }>`select name from ${ksql.table(table)} order by name`.execute(kysely);
      assert.deepEqual(read.rows.map((r) => r.name), ["a", "b"]);
      const write = await ksql`update ${ksql.table(table)} set n = n + 1`.execute(kysely);
      assert.deepEqual(write.rows, []);
      assert.equal(write.numAffectedRows, 2n);
      if (target.dialect === "sqlite") {
        const columns = await ksql<{ name: string }>`pragma table_info(${ksql.raw(table)})`.execute(kysely);
        assert.deepEqual(columns.rows.map((c) => c.name), ["id", "name", "n"]);
      }
    });

    test("transaction() commits when its callback returns and rolls back when it throws", async () => {
      await reset();
      const result = await kysely.transaction().execute(async (trx) => {
        await trx.insertInto(table).values({ name: "kept", n: 1 }).execute();
        return await trx.selectFrom(table).select("name").executeTakeFirstOrThrow();
      });
      assert.equal(result.name, "kept");
      await assert.rejects(
        kysely.transaction().execute(async (trx) => {
          await trx.insertInto(table).values({ name: "lost", n: 2 }).execute();
          throw new Error("changed my mind");
        }),
        /changed my mind/,
      );
      assert.deepEqual(await names(), ["kept"]);
      assert.equal(db.stats().primary.busy, 0, "every connection went back to the pool");
    });

    test("controlled transactions: savepoints roll back alone, stay open after rollbackToSavepoint, end on release", async () => {
      await reset();
      const trx = await kysely.startTransaction().execute();
      await trx.insertInto(table).values({ name: "outer", n: 1 }).execute();
      const a = await trx.savepoint("a").execute();
      await a.insertInto(table).values({ name: "in-a", n: 2 }).execute();
      const b = await a.savepoint("b").execute();
      await b.insertInto(table).values({ name: "in-b", n: 3 }).execute();
      const backToA = await b.rollbackToSavepoint("a").execute();
      assert.deepEqual(await names(backToA), ["outer"]);
      await backToA.insertInto(table).values({ name: "after-a", n: 4 }).execute();
      const again = await backToA.rollbackToSavepoint("a").execute(); // "a" is still open, as in SQL
      await again.insertInto(table).values({ name: "kept-in-a", n: 5 }).execute();
      const released = await again.releaseSavepoint("a").execute();
      await assert.rejects(released.rollbackToSavepoint("a" as never).execute(), TransactionError);
      await released.savepoint("c").execute();
      await released.insertInto(table).values({ name: "in-c", n: 6 }).execute();
      await released.commit().execute(); // commits the open savepoint "c" with it
      assert.deepEqual(await names(), ["outer", "kept-in-a", "in-c"]);

      const doomed = await kysely.startTransaction().execute();
      await doomed.insertInto(table).values({ name: "doomed", n: 7 }).execute();
      await doomed.savepoint("x").execute();
      await doomed.rollback().execute();
      assert.equal(await count(), 3);
      assert.equal(db.stats().primary.busy, 0);
    });

    test("a failed statement in a transaction: carried on past in a savepoint, and an aborted commit is reported", async () => {
      await reset();
      await kysely.insertInto(table).values({ name: "taken", n: 0 }).execute();
      const trx = await kysely.startTransaction().execute();
      await trx.insertInto(table).values({ name: "first", n: 1 }).execute();
      const sp = await trx.savepoint("try").execute();
      await assert.rejects(sp.insertInto(table).values({ name: "taken", n: 2 }).execute(), QueryError);
      const rolledBack = await sp.rollbackToSavepoint("try").execute();
      await rolledBack.insertInto(table).values({ name: "second", n: 3 }).execute();
      await rolledBack.commit().execute();
      assert.deepEqual(await names(), ["taken", "first", "second"]);
      if (target.dialect === "postgres") {
        // Postgres aborts a transaction at its first error: the commit rolls back, and Kysely is told so.
        const failure = await kysely.transaction().execute(async (trx) => {
          await trx.insertInto(table).values({ name: "third", n: 4 }).execute();
          await trx.insertInto(table).values({ name: "taken", n: 5 }).execute().catch(() => {});
        }).then(() => undefined, (error: unknown) => error);
        assert.ok(failure instanceof TransactionError, `a TransactionError, got ${failure}`);
        assert.ok(isAbortedTransactionError(failure), "Kysely recognises the aborted commit");
        assert.match(failure.message, /rolled back, not committed/);
        assert.deepEqual(await names(), ["taken", "first", "second"]);
      }
      assert.equal(db.stats().primary.busy, 0);
    });

    test("access mode and isolation level reach the server", async () => {
      await reset();
      await assert.rejects(
        kysely.transaction().setAccessMode("read only").execute((trx) =>
          trx.insertInto(table).values({ name: "ro", n: 1 }).execute()
        ),
        QueryError,
      );
      const seen = await kysely.transaction().setIsolationLevel("serializable").execute(async (trx) => {
        await trx.insertInto(table).values({ name: "serial", n: 1 }).execute();
        return target.dialect === "postgres"
          ? (await ksql<{ level: string }>`select current_setting('transaction_isolation') as level`.execute(trx))
            .rows[0].level
          : "serializable";
      });
      assert.equal(seen, "serializable");
      await assert.rejects(
        kysely.transaction().setIsolationLevel("snapshot").execute(() => Promise.resolve()),
        ConfigError,
      );
      assert.deepEqual(await names(), ["serial"]);
    });

    test("connection() keeps one connection for all its statements", sessionKept, async () => {
      const idQuery = connectionIdQuery(target);
      const temp = uniqueName("kysely_temp");
      await kysely.connection().execute(async (conn) => {
        await ksql`create temporary table ${ksql.table(temp)} (n integer)`.execute(conn);
        await ksql`insert into ${ksql.table(temp)} (n) values (1), (2)`.execute(conn);
        const ids = new Set<number>();
        for (let i = 0; i < 3; i++) {
          if (idQuery) ids.add(Number((await idQuery.execute(conn)).rows[0].id));
          const rows = await ksql<{ n: number }>`select n from ${ksql.table(temp)} order by n`.execute(conn);
          assert.deepEqual(rows.rows.map((r) => Number(r.n)), [1, 2]);
        }
        // A transaction inside it runs on the same connection and sees the temporary table.
        await conn.transaction().execute(async (trx) => {
          await ksql`insert into ${ksql.table(temp)} (n) values (3)`.execute(trx);
          if (idQuery) ids.add(Number((await idQuery.execute(trx)).rows[0].id));
        });
        const after = await ksql<{ c: number }>`select count(*) as c from ${ksql.table(temp)}`.execute(conn);
        assert.equal(Number(after.rows[0].c), 3);
        if (idQuery) assert.equal(ids.size, 1, "one server connection throughout");
        await ksql`drop table ${ksql.table(temp)}`.execute(conn);
      });
      assert.equal(db.stats().primary.busy, 0);
    });

    test("stream() yields every row in order in chunks, the loop can query, and leaving early frees the connection", async () => {
      await reset();
      const rows = Array.from({ length: 250 }, (_, i) => ({ name: `bird-${String(i).padStart(3, "0")}`, n: i }));
      await kysely.insertInto(table).values(rows).execute();
      let seen = 0;
      let inLoop = 0;
      for await (const row of kysely.selectFrom(table).select(["name", "n"]).orderBy("n").stream(100)) {
        assert.equal(row.n, seen);
        seen++;
        if (seen % 100 === 0) {
          // Kysely and Roost queries inside the loop, also on an in-memory database's single connection.
          inLoop += Number(
            (await kysely.selectFrom(table).select((e) => e.fn.countAll().as("c")).executeTakeFirst())?.c,
          );
          inLoop += Number(await db.fetchVal(sql`select count(*) from ${sql.ident(table)}`));
        }
      }
      assert.equal(seen, 250);
      assert.equal(inLoop, 4 * 250);
      let taken = 0;
      for await (const _ of kysely.selectFrom(table).selectAll().stream(10)) if (++taken === 15) break;
      assert.equal(taken, 15);
      assert.equal(db.stats().primary.busy, 0, "leaving the loop gave the connection back");
      // Inside a transaction the stream reads the transaction's own writes.
      const inTx = await kysely.transaction().execute(async (trx) => {
        await trx.deleteFrom(table).where("n", ">=", 10).execute();
        let n = 0;
        for await (const _ of trx.selectFrom(table).selectAll().stream(4)) n++;
        throw Object.assign(new Error("undo"), { n });
      }).catch((error: { n: number }) => error.n);
      assert.equal(inTx, 10);
      assert.equal(await count(), 250);
    });

    test("inside a Roost transaction Kysely joins it, and Kysely's transaction becomes a savepoint", async () => {
      await reset();
      await assert.rejects(
        db.transaction(async () => {
          await kysely.insertInto(table).values({ name: "joined", n: 1 }).execute();
          await db.execute(sql`insert into ${sql.ident(table)} (name, n) values (${"roost"}, ${2})`);
          await assert.rejects(
            kysely.transaction().execute(async (trx) => {
              await trx.insertInto(table).values({ name: "savepoint", n: 3 }).execute();
              throw new Error("inner");
            }),
            /inner/,
          );
          assert.deepEqual(await names(), ["joined", "roost"], "the savepoint rolled back alone");
          throw new Error("outer");
        }),
        /outer/,
      );
      assert.equal(await count(), 0, "Kysely's writes rolled back with the Roost transaction");
      await db.transaction(async () => {
        await kysely.insertInto(table).values({ name: "committed", n: 1 }).execute();
      });
      assert.deepEqual(await names(), ["committed"]);
    });

    test("inside a Roost connection scope Kysely uses its connection", sessionKept, async () => {
      const temp = uniqueName("kysely_scope");
      await db.connection(async () => {
        await db.execute(`create temporary table ${temp} (n integer)`);
        await db.execute(`insert into ${temp} (n) values (7)`);
        const row = await kysely.selectFrom(temp).select("n").executeTakeFirstOrThrow();
        assert.equal(Number(row.n), 7);
        await db.execute(`drop table ${temp}`);
      });
    });

    test("errors are Roost's typed errors, and the pool survives them", async () => {
      await reset();
      await kysely.insertInto(table).values({ name: "unique", n: 1 }).execute();
      const error = await kysely.insertInto(table).values({ name: "unique", n: 2 }).execute().then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(error instanceof QueryError, `a QueryError, got ${error}`);
      assert.ok(error.code, "with the server's code");
      await assert.rejects(kysely.selectFrom(`${table}_missing`).selectAll().execute(), QueryError);
      assert.equal(await count(), 1);
      assert.equal(db.stats().primary.busy, 0);
    });

    test("many concurrent statements and transactions leave every connection idle", async () => {
      await reset();
      await Promise.all(
        Array.from(
          { length: 30 },
          (_, i) =>
            i % 3 === 0
              ? kysely.transaction().execute((trx) => trx.insertInto(table).values({ name: `c${i}`, n: i }).execute())
              : i % 3 === 1
              ? kysely.insertInto(table).values({ name: `c${i}`, n: i }).execute()
              : kysely.selectFrom(table).selectAll().execute(),
        ),
      );
      assert.equal(await count(), 20);
      assert.equal(db.stats().primary.busy, 0);
      assert.equal(db.stats().primary.waiting, 0);
    });

    test("introspection sees the table", async () => {
      const tables = await kysely.introspection.getTables();
      const found = tables.find((t) => t.name === table);
      assert.ok(found, "the table is listed");
      assert.deepEqual(found.columns.map((c) => c.name).sort(), ["id", "n", "name"]);
    });

    // The name says what runs: an in-memory database cannot be opened twice, so it has no lookup by name.
    test(
      `the registry: ${
        memory
          ? "a name or dialect that does not fit is refused"
          : "a name is looked up at each connection, and a replaced instance is picked up"
      }`,
      async () => {
        assert.throws(() => new RoostDialect({ database: uniqueName("nobody") }), ConfigError);
        assert.throws(() => new RoostDialect({ database: db, dialect: "nonsense" as "sqlite" }), ConfigError);
        const other = target.dialect === "postgres" ? "mysql" : "postgres";
        assert.throws(() => new RoostDialect({ database: db, dialect: other }), ConfigError);
        if (memory) return; // an in-memory database cannot be opened twice
        const late = uniqueName("late");
        const lazy = new Kysely<Tables>({ dialect: new RoostDialect({ database: late, dialect: target.dialect }) });
        await assert.rejects(lazy.selectFrom(table).selectAll().execute(), RegistryError);
        for (let round = 0; round < 2; round++) {
          const instance = target.open({ name: late });
          await lazy.insertInto(table).values({ name: `late-${round}-${Date.now()}`, n: round }).execute();
          assert.ok((await lazy.selectFrom(table).selectAll().execute()).length > 0);
          await instance.close();
        }
        await lazy.destroy();
      },
    );

    test("Kysely's Migrator runs on Roost: migrates up and down once, also when two race", migrates, async () => {
      const migrated = uniqueName("kysely_migrated");
      const history = uniqueName("kysely_migrations");
      const migrations: Record<string, Migration> = {
        "0001_create": createTableMigration(migrated),
        "0002_seed": {
          up: async (k) => {
            await ksql`insert into ${ksql.table(migrated)} (id) values (1), (2)`.execute(k);
          },
          down: async (k) => {
            await ksql`delete from ${ksql.table(migrated)}`.execute(k);
          },
        },
      };
      const migrator = (on: Kysely<Tables>) => kyselyMigrator(on, migrations, history);
      try {
        const results = await Promise.all([migrator(kysely).migrateToLatest(), migrator(kysely).migrateToLatest()]);
        for (const { error } of results) assert.equal(error, undefined);
        const applied = results.flatMap((r) => r.results ?? []).filter((r) => r.status === "Success");
        assert.deepEqual(applied.map((r) => r.migrationName).sort(), ["0001_create", "0002_seed"]);
        assert.equal(Number(await db.fetchVal(`select count(*) from ${migrated}`)), 2);
        const down = await migrator(kysely).migrateDown();
        assert.equal(down.error, undefined);
        assert.equal(Number(await db.fetchVal(`select count(*) from ${migrated}`)), 0);
        assert.equal(db.stats().primary.busy, 0);
      } finally {
        for (const t of [migrated, history, `${history}_lock`]) await db.execute(`drop table if exists ${t}`);
      }
    });

    test("kysely.destroy() leaves the Roost database open", async () => {
      const own = kyselyOn(db);
      await own.selectFrom(table).selectAll().execute();
      await own.destroy();
      assert.equal(db.closed, false);
      assert.ok(Number(await db.fetchVal(sql`select count(*) from ${sql.ident(table)}`)) >= 0);
    });

    if (!memory) {
      test("with forceRollback, Kysely's statements and transactions vanish at close", async () => {
        await reset();
        const forced = target.open({ forceRollback: true });
        const k = kyselyOn(forced);
        await k.insertInto(table).values({ name: "forced", n: 1 }).execute();
        await k.transaction().execute((trx) => trx.insertInto(table).values({ name: "forced-tx", n: 2 }).execute());
        assert.deepEqual(await names(k), ["forced", "forced-tx"]);
        await forced.close();
        assert.equal(await count(), 0);
      });
    }
  });
}

/** The target's database opened as a read-only replica of itself (see tests/behaviour/routing.test.ts). */
function replicaUrlOf(target: Target): string | undefined {
  if (target.place === "pglite") return undefined; // in this process, with no replicas
  if (target.dialect !== "sqlite") return target.url;
  if (target.url.includes(":memory:")) return undefined;
  return `${target.url}${target.url.includes("?") ? "&" : "?"}mode=ro`;
}

/** A replica that cannot be reached: a closed port, or a SQLite file that does not exist. */
function unreachableUrlOf(target: Target): string {
  if (target.dialect === "postgres") return "postgres://postgres@127.0.0.1:1/test";
  if (target.dialect === "mysql") return "mysql://root@127.0.0.1:1/test";
  return `sqlite://${tempDatabasePath()}?mode=ro${target.url.includes("worker=true") ? "&worker=true" : ""}`;
}

for (const target of targets()) {
  const replicaUrl = replicaUrlOf(target);
  if (replicaUrl === undefined) continue;

  const migrates = skipUnless(!transactionPooled(target), migratorNeedsSession);
  describe(`Kysely replica routing on ${target.label}`, () => {
    const table = uniqueName("kysely_routing");
    let setup: Database;
    const opened: Database[] = [];

    function open(options: DatabaseOptions = {}) {
      const events: QueryEvent[] = [];
      const db = target.open({
        replicas: [replicaUrl!],
        routing: { reads: "replicas" },
        onQuery: (event) => events.push(event),
        pool: { acquireTimeout: 5_000 },
        ...options,
      });
      opened.push(db);
      const where = () => events.splice(0).map((e) => `${e.served}:${e.reason}`);
      return { db, kysely: kyselyOn(db), where };
    }

    before(async () => {
      setup = target.open();
      await setup.execute(
        `create table ${table} (id ${columnType(target.dialect, "autoId")}, name varchar(64), n integer)`,
      );
      await setup.execute(`insert into ${table} (name, n) values ('seed', 0)`);
    });
    after(async () => {
      await Promise.all(opened.map((db) => db.close()));
      await setup.execute(`drop table ${table}`);
      await setup.close();
    });

    test("reads go to the replica; writes, transactions and primary scopes to the primary", async () => {
      const { db, kysely, where } = open();
      assert.equal((await kysely.selectFrom(table).selectAll().execute()).length, 1);
      assert.deepEqual(where(), ["replica:read"]);
      await kysely.insertInto(table).values({ name: "w", n: 1 }).execute();
      await kysely.updateTable(table).set({ n: 2 }).where("name", "=", "w").execute();
      assert.deepEqual(where(), ["primary:write", "primary:write"]);
      await kysely.transaction().execute(async (trx) => {
        await trx.selectFrom(table).selectAll().execute();
        await trx.deleteFrom(table).where("name", "=", "w").execute();
      });
      assert.deepEqual(where(), ["primary:held", "primary:held"]);
      let streamed = 0;
      for await (const _ of kysely.selectFrom(table).selectAll().stream(5)) streamed++;
      assert.equal(streamed, 1);
      assert.deepEqual(where(), ["replica:read"]);
      await db.primary(() => kysely.selectFrom(table).selectAll().execute());
      assert.deepEqual(where(), ["primary:primary-scope"]);
      await db.replica(() => kysely.selectFrom(table).selectAll().execute());
      assert.deepEqual(where(), ["replica:replica-scope"]);
    });

    if (target.dialect !== "sqlite") {
      test("a select that locks rows, or writes in a CTE, goes to the primary", async () => {
        const { kysely, where } = open();
        await kysely.selectFrom(table).selectAll().forUpdate().execute();
        assert.deepEqual(where(), ["primary:write"]);
        if (target.dialect === "postgres") {
          const rows = await kysely.with(
            "added",
            (k) => k.insertInto(table).values({ name: "cte", n: 9 }).returning("n"),
          )
            .selectFrom("added").selectAll().execute();
          assert.deepEqual(rows.map((r) => r.n), [9]);
          assert.deepEqual(where(), ["primary:write"]);
          await kysely.deleteFrom(table).where("name", "=", "cte").execute();
        }
      });
    }

    test("writes in a replica scope are ReadOnlyError; a connection() begun with a read is on the replica", async () => {
      const { db, kysely, where } = open();
      await db.replica(async () => {
        await assert.rejects(kysely.insertInto(table).values({ name: "no", n: 1 }).execute(), ReadOnlyError);
        await assert.rejects(kysely.transaction().execute(() => Promise.resolve()), ReadOnlyError);
      });
      await kysely.connection().execute(async (conn) => {
        await conn.selectFrom(table).selectAll().execute();
        await assert.rejects(
          conn.insertInto(table).values({ name: "no", n: 1 }).execute(),
          (error: unknown) =>
            error instanceof ReadOnlyError && /run the connection\(\) inside db\.primary\(\)/i.test(error.message),
        );
      });
      where();
      await db.primary(() =>
        kysely.connection().execute(async (conn) => {
          await conn.selectFrom(table).selectAll().execute();
          await conn.insertInto(table).values({ name: "yes", n: 1 }).execute();
          await conn.deleteFrom(table).where("name", "=", "yes").execute();
        })
      );
      assert.deepEqual(where(), ["primary:primary-scope", "primary:primary-scope", "primary:primary-scope"]);
      assert.equal(db.stats().primary.busy + db.stats().replicas[0].busy, 0);
    });

    test("Kysely's Migrator takes its lock and migrates on the primary", migrates, async () => {
      const { db, kysely } = open();
      const migrated = uniqueName("kysely_routed_migrated");
      const history = uniqueName("kysely_routed_migrations");
      const migrator = kyselyMigrator(kysely, { "0001": createTableMigration(migrated) }, history);
      try {
        const { error, results } = await migrator.migrateToLatest();
        assert.equal(error, undefined);
        assert.deepEqual(results?.map((r) => r.status), ["Success"]);
        assert.equal((await migrator.migrateDown()).error, undefined);
      } finally {
        for (const t of [migrated, history, `${history}_lock`]) await db.execute(`drop table if exists ${t}`);
      }
    });

    test("read-your-writes keeps a Kysely read after a Kysely write on the primary", async () => {
      const { kysely, where } = open({ routing: { reads: "replicas", readYourWrites: 60_000 } });
      await kysely.selectFrom(table).selectAll().execute();
      await kysely.insertInto(table).values({ name: "ryw", n: 1 }).execute();
      const rows = await kysely.selectFrom(table).selectAll().where("name", "=", "ryw").execute();
      assert.equal(rows.length, 1);
      assert.deepEqual(where(), ["replica:read", "primary:write", "primary:read-your-writes"]);
      await kysely.deleteFrom(table).where("name", "=", "ryw").execute();
    });

    test("a replica that cannot be reached is skipped: Kysely's reads fall back to the primary", async () => {
      const { db, kysely, where } = open({ replicas: [unreachableUrlOf(target)] });
      assert.equal((await kysely.selectFrom(table).selectAll().execute()).length, 1);
      assert.deepEqual(where(), ["primary:fallback"]);
      assert.equal(db.stats().replicas[0].healthy, false);
    });
  });
}
