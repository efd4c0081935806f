/**
 * The Drizzle ORM contender: the workloads written with Drizzle's query
 * builder, the way a Drizzle user writes them, on the driver every other
 * contender uses for the dialect.
 *
 * @module
 */
import { eq, gt, sql } from "drizzle-orm";
import { int, mysqlTable, varchar as mysqlVarchar } from "drizzle-orm/mysql-core";
import { integer as pgInteger, pgTable, serial, varchar as pgVarchar } from "drizzle-orm/pg-core";
import { integer as sqliteInteger, sqliteTable, text as sqliteText } from "drizzle-orm/sqlite-core";
import type { SQLInputValue } from "node:sqlite";
import type { BenchSetup, Contender, UserRow } from "./contender.ts";

/**
 * Drizzle on the dialect's driver:
 *
 * - postgres: `drizzle-orm/postgres-js` over a postgres.js client (`max: poolSize`);
 * - mysql: `drizzle-orm/mysql2` over a `mysql2/promise` pool (`connectionLimit: poolSize`);
 * - sqlite on Bun: `drizzle-orm/bun-sqlite` over `bun:sqlite`;
 * - sqlite on Node and Deno: `drizzle-orm/sqlite-proxy` over `node:sqlite` (Drizzle 0.45 has
 *   no `node:sqlite` driver; the proxy is its documented way to plug one in).
 *
 * Drizzle streams rows (`.iterator()`) on mysql2 only; elsewhere `iterate` is left out.
 */
export async function drizzleContender(setup: BenchSetup): Promise<Contender> {
  switch (setup.dialect) {
    case "postgres":
      return await postgresContender(setup);
    case "mysql":
      return await mysqlContender(setup);
    case "sqlite":
      return "Bun" in globalThis ? await bunSqliteContender(setup) : await sqliteProxyContender(setup);
  }
}

// The tables. The worker fills every column of `users`, so the schema declares them
// `notNull()`: that gives the `UserRow` type without a per-row remap no other contender pays.

function pgTables(setup: BenchSetup) {
  const users = pgTable(setup.users, {
    id: pgInteger("id").primaryKey(),
    name: pgVarchar("name", { length: 40 }).notNull(),
    email: pgVarchar("email", { length: 80 }).notNull(),
    score: pgInteger("score").notNull(),
  });
  const log = pgTable(setup.log, {
    id: serial("id").primaryKey(),
    n: pgInteger("n"),
    label: pgVarchar("label", { length: 40 }),
  });
  return { users, log };
}

function mysqlTables(setup: BenchSetup) {
  const users = mysqlTable(setup.users, {
    id: int("id").primaryKey(),
    name: mysqlVarchar("name", { length: 40 }).notNull(),
    email: mysqlVarchar("email", { length: 80 }).notNull(),
    score: int("score").notNull(),
  });
  const log = mysqlTable(setup.log, {
    id: int("id").autoincrement().primaryKey(),
    n: int("n"),
    label: mysqlVarchar("label", { length: 40 }),
  });
  return { users, log };
}

function sqliteTables(setup: BenchSetup) {
  // SQLite has no varchar: Drizzle's `text` with a length is the same column type to SQLite.
  const users = sqliteTable(setup.users, {
    id: sqliteInteger("id").primaryKey(),
    name: sqliteText("name", { length: 40 }).notNull(),
    email: sqliteText("email", { length: 80 }).notNull(),
    score: sqliteInteger("score").notNull(),
  });
  const log = sqliteTable(setup.log, {
    id: sqliteInteger("id").primaryKey({ autoIncrement: true }),
    n: sqliteInteger("n"),
    label: sqliteText("label", { length: 40 }),
  });
  return { users, log };
}

function noIterator(driver: string): Contender["skipped"] {
  return { iterate: `drizzle-orm 0.45 has no row stream on ${driver}` };
}

async function postgresContender(setup: BenchSetup): Promise<Contender> {
  const { default: postgres } = await import("postgres");
  const { drizzle } = await import("drizzle-orm/postgres-js");
  const client = postgres(setup.url, { max: setup.poolSize, onnotice: () => {} });
  const db = drizzle({ client });
  const { users, log } = pgTables(setup);
  const columns = { id: users.id, name: users.name, email: users.email, score: users.score };
  return {
    name: "drizzle",
    driver: "postgres.js",
    // No `.iterator()` in pg-core, and the postgres-js session exposes no cursor.
    skipped: noIterator("postgres.js"),
    async pointSelect(id: number): Promise<UserRow | undefined> {
      const rows = await db.select(columns).from(users).where(eq(users.id, id));
      return rows[0];
    },
    async select100(after: number): Promise<UserRow[]> {
      return await db.select(columns).from(users).where(gt(users.id, after)).orderBy(users.id).limit(100);
    },
    async insertOne(n: number, label: string): Promise<void> {
      await db.insert(log).values({ n, label });
    },
    async transaction10(n: number): Promise<void> {
      await db.transaction(async (tx) => {
        for (let i = 0; i < 10; i++) await tx.insert(log).values({ n: n + i, label: "tx" });
      });
    },
    async insertMany(rows: readonly (readonly [number, string])[]): Promise<void> {
      await db.insert(log).values(rows.map(([n, label]) => ({ n, label })));
    },
    async close(): Promise<void> {
      await client.end();
    },
  };
}

async function mysqlContender(setup: BenchSetup): Promise<Contender> {
  const mysql = await import("mysql2/promise");
  const { drizzle } = await import("drizzle-orm/mysql2");
  const url = new URL(setup.url);
  const pool = mysql.createPool({
    host: url.hostname,
    port: url.port === "" ? 3306 : Number(url.port),
    user: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password),
    database: decodeURIComponent(url.pathname.slice(1)),
    connectionLimit: setup.poolSize,
  });
  const db = drizzle({ client: pool });
  const { users, log } = mysqlTables(setup);
  const columns = { id: users.id, name: users.name, email: users.email, score: users.score };
  const million = sql.raw(setup.millionRows);
  return {
    name: "drizzle",
    driver: "mysql2",
    async pointSelect(id: number): Promise<UserRow | undefined> {
      const rows = await db.select(columns).from(users).where(eq(users.id, id));
      return rows[0];
    },
    async select100(after: number): Promise<UserRow[]> {
      return await db.select(columns).from(users).where(gt(users.id, after)).orderBy(users.id).limit(100);
    },
    async insertOne(n: number, label: string): Promise<void> {
      await db.insert(log).values({ n, label });
    },
    async transaction10(n: number): Promise<void> {
      await db.transaction(async (tx) => {
        for (let i = 0; i < 10; i++) await tx.insert(log).values({ n: n + i, label: "tx" });
      });
    },
    async insertMany(rows: readonly (readonly [number, string])[]): Promise<void> {
      await db.insert(log).values(rows.map(([n, label]) => ({ n, label })));
    },
    async iterate(): Promise<number> {
      // `.iterator()` exists only on query builders, not on `db.execute`, so the raw
      // query goes in as a derived table: `select n, label from (<millionRows>) as million`.
      // Drizzle takes a pool connection, streams it through mysql2's `query().stream()`,
      // and hands it back with `conn.end()` (mysql2 warns about that once per call). Rows
      // arrive one at a time, but Drizzle awaits each with `Promise.race` against the
      // stream's never-settling "end"/"error" promises, which keeps every row reachable
      // until the stream ends (about 0.5 kB a row here): the peak memory figure shows it.
      const rows = db.select({ n: sql<number>`n`, label: sql<string>`label` })
        .from(sql`(${million}) as million`)
        .iterator();
      let count = 0;
      for await (const _row of rows) count++;
      return count;
    },
    async close(): Promise<void> {
      await pool.end();
    },
  };
}

/** The part of `bun:sqlite` used here, typed so Node and Deno can type-check this file. */
interface BunSqliteModule {
  Database: new (path: string) => { close(): void };
}

function isBunSqlite(module: unknown): module is BunSqliteModule {
  return typeof module === "object" && module !== null && "Database" in module && typeof module.Database === "function";
}

/** The client `drizzle-orm/bun-sqlite` takes: `bun:sqlite`'s own `Database` type (unresolved, so loose, off Bun). */
type BunSqliteClient = Extract<
  Parameters<typeof import("drizzle-orm/bun-sqlite").drizzle>[0],
  { client: unknown }
>["client"];

async function bunSqliteContender(setup: BenchSetup): Promise<Contender> {
  // Loaded through getBuiltinModule: other runtimes' tools cannot resolve a `bun:` import.
  const { process } = globalThis as unknown as { process: { getBuiltinModule(id: string): unknown } };
  const module = process.getBuiltinModule("bun:sqlite");
  if (!isBunSqlite(module)) throw new Error("bun:sqlite is not available");
  const { Database } = module;
  // Imported lazily too: `drizzle-orm/bun-sqlite` itself imports `bun:sqlite`.
  const { drizzle } = await import("drizzle-orm/bun-sqlite");
  const client = new Database(setup.sqlitePath);
  const db = drizzle({ client: client as BunSqliteClient });
  const { users, log } = sqliteTables(setup);
  const columns = { id: users.id, name: users.name, email: users.email, score: users.score };
  // `bun:sqlite` is synchronous, and so is Drizzle's API on it: `.get()`, `.all()`, `.run()`.
  // `Promise.try` turns a thrown error into a rejection, as the async drivers report it.
  return {
    name: "drizzle",
    driver: "bun:sqlite",
    // No `.iterator()` in sqlite-core.
    skipped: noIterator("bun:sqlite"),
    pointSelect(id: number): Promise<UserRow | undefined> {
      return Promise.try(() => db.select(columns).from(users).where(eq(users.id, id)).get());
    },
    select100(after: number): Promise<UserRow[]> {
      return Promise.try(() =>
        db.select(columns).from(users).where(gt(users.id, after)).orderBy(users.id).limit(100).all()
      );
    },
    insertOne(n: number, label: string): Promise<void> {
      return Promise.try(() => {
        db.insert(log).values({ n, label }).run();
      });
    },
    transaction10(n: number): Promise<void> {
      // The callback must be synchronous: Drizzle runs it inside bun:sqlite's
      // `db.transaction()`, which commits as soon as the callback returns, so an async
      // callback's awaited inserts would land after the commit (outside the transaction).
      return Promise.try(() => {
        db.transaction((tx) => {
          for (let i = 0; i < 10; i++) tx.insert(log).values({ n: n + i, label: "tx" }).run();
        });
      });
    },
    insertMany(rows: readonly (readonly [number, string])[]): Promise<void> {
      return Promise.try(() => {
        db.insert(log).values(rows.map(([n, label]) => ({ n, label }))).run();
      });
    },
    close(): Promise<void> {
      return Promise.try(() => client.close());
    },
  };
}

async function sqliteProxyContender(setup: BenchSetup): Promise<Contender> {
  const { DatabaseSync } = await import("node:sqlite");
  const { drizzle } = await import("drizzle-orm/sqlite-proxy");
  const client = new DatabaseSync(setup.sqlitePath);
  // The callback as Drizzle's sqlite-proxy docs write it: prepare the statement on each call
  // (no statement cache), and answer with arrays of values: `rows` is every row for "all" and
  // "values", the one row for "get" (absent when there is none), nothing for "run".
  // Drizzle hands over the values the query builder bound (`params: any[]` in its types).
  const answer = (query: string, params: SQLInputValue[], method: "run" | "all" | "values" | "get") => {
    const statement = client.prepare(query);
    if (method === "run") {
      statement.run(...params);
      return { rows: [] };
    }
    statement.setReturnArrays(true);
    if (method === "get") {
      // node:sqlite's types ignore setReturnArrays(true): the row is an array of values.
      const row = statement.get(...params) as unknown as unknown[] | undefined;
      // Drizzle reads a missing row as `rows: undefined` (its `SqliteRemoteResult.rows` is
      // optional), though its callback type says `rows: any[]`.
      return { rows: row as unknown[] };
    }
    return { rows: statement.all(...params) };
  };
  // Drizzle awaits the callback inside its own async functions, so a throw becomes a rejection.
  const db = drizzle((query, params, method) => Promise.resolve(answer(query, params, method)));
  const { users, log } = sqliteTables(setup);
  const columns = { id: users.id, name: users.name, email: users.email, score: users.score };
  return {
    name: "drizzle",
    driver: "node:sqlite",
    // No `.iterator()` in sqlite-core, and the proxy callback answers with the whole result.
    skipped: noIterator("node:sqlite"),
    async pointSelect(id: number): Promise<UserRow | undefined> {
      return await db.select(columns).from(users).where(eq(users.id, id)).get();
    },
    async select100(after: number): Promise<UserRow[]> {
      return await db.select(columns).from(users).where(gt(users.id, after)).orderBy(users.id).limit(100);
    },
    async insertOne(n: number, label: string): Promise<void> {
      await db.insert(log).values({ n, label });
    },
    async transaction10(n: number): Promise<void> {
      // The proxy's `transaction()` sends `begin`, then `commit` (or `rollback`) through
      // the callback as "run" statements, on the one node:sqlite connection.
      await db.transaction(async (tx) => {
        for (let i = 0; i < 10; i++) await tx.insert(log).values({ n: n + i, label: "tx" });
      });
    },
    async insertMany(rows: readonly (readonly [number, string])[]): Promise<void> {
      await db.insert(log).values(rows.map(([n, label]) => ({ n, label })));
    },
    close(): Promise<void> {
      return Promise.try(() => client.close());
    },
  };
}
