/**
 * The Kysely contender: the benchmark workloads written with Kysely's query
 * builder, as a Kysely user writes them, on the same driver the other
 * contenders use. The workloads themselves ({@linkcode kyselyWorkloads}) are
 * shared with the Kysely-on-Roost contender (roost_kysely.ts).
 *
 * @module
 */
import process from "node:process";
import {
  type Generated,
  Kysely,
  MysqlDialect,
  sql,
  type SqliteDatabase,
  SqliteDialect,
  type SqliteStatement,
} from "kysely";
import type { BenchSetup, Contender, UserRow } from "./contender.ts";

/** The `log` table as Kysely sees it: `id` is filled by the database. */
interface LogTable {
  id: Generated<number>;
  n: number;
  label: string;
}

/** A row of `millionRows`. */
interface MillionRow {
  n: number;
  label: string;
}

/**
 * The SQLite statement both built-ins offer: parameters spread, not one array.
 * Declared with method syntax so node:sqlite's and bun:sqlite's statements
 * (whose parameters are the value types they bind) fit it; the driver itself
 * rejects a value it cannot bind.
 */
interface SyncStatement {
  all(...parameters: unknown[]): unknown[];
  run(...parameters: unknown[]): { changes: number | bigint; lastInsertRowid: number | bigint };
  iterate(...parameters: unknown[]): IterableIterator<unknown>;
}

/** bun:sqlite's `Database`, the part the adapter uses (its types are Bun's, not visible to `deno check`). */
interface BunSqliteDatabase {
  prepare(sql: string): SyncStatement & { readonly columnNames: string[] };
  close(): void;
}

/** bun:sqlite's module, the part the adapter uses. */
interface BunSqliteModule {
  Database: new (path: string) => BunSqliteDatabase;
}

function isBunSqlite(module: unknown): module is BunSqliteModule {
  return typeof module === "object" && module !== null && "Database" in module &&
    typeof module.Database === "function";
}

/**
 * Wraps a statement as the better-sqlite3 statement Kysely's SqliteDialect
 * expects: parameters as one array, and `reader` (whether it returns rows).
 */
function betterSqliteStatement(statement: SyncStatement, reader: boolean): SqliteStatement {
  return {
    reader,
    all: (parameters) => statement.all(...parameters),
    run: (parameters) => statement.run(...parameters),
    iterate: (parameters) => statement.iterate(...parameters),
  };
}

/**
 * Opens `path` with the runtime's built-in SQLite (bun:sqlite on Bun,
 * node:sqlite on Node and Deno) behind the better-sqlite3 interface.
 *
 * Kysely's SqliteDialect calls `prepare` for every query and keeps nothing,
 * exactly as it does on better-sqlite3 (which has no statement cache either),
 * so this adapter prepares per call too rather than caching statements: the
 * figure is what a Kysely user on these drivers gets.
 */
async function openSqlite(path: string): Promise<{ driver: string; database: SqliteDatabase }> {
  if ("Bun" in globalThis) {
    const module: unknown = process.getBuiltinModule("bun:sqlite");
    if (!isBunSqlite(module)) throw new Error("bun:sqlite is not available");
    const db = new module.Database(path);
    return {
      driver: "bun:sqlite",
      database: {
        prepare(text) {
          const statement = db.prepare(text);
          return betterSqliteStatement(statement, statement.columnNames.length > 0);
        },
        close: () => db.close(),
      },
    };
  }
  const { DatabaseSync } = await import("node:sqlite");
  const db = new DatabaseSync(path);
  return {
    driver: "node:sqlite",
    database: {
      prepare(text) {
        const statement = db.prepare(text);
        return betterSqliteStatement(statement, statement.columns().length > 0);
      },
      close: () => db.close(),
    },
  };
}

/**
 * Kysely on the dialect's driver: `PostgresJSDialect` (kysely-postgres-js)
 * over a postgres.js pool, Kysely's `MysqlDialect` over a callback-style
 * mysql2 pool, or Kysely's `SqliteDialect` over node:sqlite (Node, Deno) or
 * bun:sqlite (Bun) through a minimal better-sqlite3 adapter.
 */
export async function kyselyContender(setup: BenchSetup): Promise<Contender> {
  let driver: string;
  let base: Kysely<Record<never, never>>;
  if (setup.dialect === "postgres") {
    const [{ default: postgres }, { PostgresJSDialect }] = await Promise.all([
      import("postgres"),
      import("kysely-postgres-js"),
    ]);
    driver = "postgres.js";
    base = new Kysely({
      dialect: new PostgresJSDialect({ postgres: postgres(setup.url, { max: setup.poolSize, onnotice: () => {} }) }),
    });
  } else if (setup.dialect === "mysql") {
    const { createPool } = await import("mysql2");
    const url = new URL(setup.url);
    driver = "mysql2";
    base = new Kysely({
      dialect: new MysqlDialect({
        pool: createPool({
          host: url.hostname,
          port: url.port ? Number(url.port) : 3306,
          user: decodeURIComponent(url.username),
          password: decodeURIComponent(url.password),
          database: decodeURIComponent(url.pathname.slice(1)),
          connectionLimit: setup.poolSize,
        }),
      }),
    });
  } else {
    const sqlite = await openSqlite(setup.sqlitePath);
    driver = sqlite.driver;
    base = new Kysely({ dialect: new SqliteDialect({ database: sqlite.database }) });
  }

  return kyselyWorkloads(base, setup, { name: "kysely", driver }, () => base.destroy());
}

/** Who runs the Kysely workloads: the contender's name and the driver under it, as the results show them. */
export interface KyselyIdentity {
  /** The contender's name in the results ("kysely", "roost-kysely"). */
  readonly name: string;
  /** The driver under it ("postgres.js", "mysql2", "node:sqlite", "bun:sqlite"). */
  readonly driver: string;
}

/**
 * The benchmark workloads written with Kysely's query builder, as a Kysely
 * user writes them, on any Kysely instance: every Kysely contender runs
 * these, so they differ only in the dialect under Kysely. `close` ends
 * whatever `base` runs on (for a dialect that owns its pool,
 * `base.destroy()`).
 */
export function kyselyWorkloads(
  base: Kysely<Record<never, never>>,
  setup: BenchSetup,
  identity: KyselyIdentity,
  close: () => Promise<void>,
): Contender {
  // The table names are only known at run time, so each table gets its own
  // typed view of the one instance ($extendTables changes types only).
  const users = base.$extendTables<Record<string, UserRow>>();
  const log = base.$extendTables<Record<string, LogTable>>();
  const millionRows = sql<MillionRow>`(${sql.raw(setup.millionRows)})`.as("t");

  return {
    name: identity.name,
    driver: identity.driver,
    pointSelect: (id) =>
      users.selectFrom(setup.users).select(["id", "name", "email", "score"]).where("id", "=", id).executeTakeFirst(),
    select100: (after) =>
      users.selectFrom(setup.users).select(["id", "name", "email", "score"]).where("id", ">", after).orderBy("id")
        .limit(100).execute(),
    async insertOne(n, label) {
      await log.insertInto(setup.log).values({ n, label }).execute();
    },
    async transaction10(n) {
      await log.transaction().execute(async (trx) => {
        for (let i = 0; i < 10; i++) await trx.insertInto(setup.log).values({ n: n + i, label: "tx" }).execute();
      });
    },
    async insertMany(rows) {
      await log.insertInto(setup.log).values(rows.map(([n, label]) => ({ n, label }))).execute();
    },
    async iterate() {
      let count = 0;
      for await (const _ of base.selectFrom(millionRows).selectAll().stream(1_000)) count++;
      return count;
    },
    close,
  };
}
