/**
 * The baseline: each driver used directly, the way its own documentation
 * recommends for speed. postgres.js with prepared statements and its own
 * pool, mysql2's promise pool with prepared statements (`execute`), and
 * SQLite statements prepared once and cached.
 *
 * @module
 */
import type { BenchSetup, Contender, UserRow } from "./contender.ts";

const selectColumns = "select id, name, email, score from";

/** The raw driver of the setup's dialect on this runtime. */
export function rawContender(setup: BenchSetup): Promise<Contender> {
  switch (setup.dialect) {
    case "postgres":
      return rawPostgres(setup);
    case "mysql":
      return rawMysql(setup);
    case "sqlite":
      return rawSqlite(setup);
  }
}

async function rawPostgres(setup: BenchSetup): Promise<Contender> {
  const { default: postgres } = await import("postgres");
  const pg = postgres(setup.url, { max: setup.poolSize, onnotice: () => {} });
  const point = `${selectColumns} ${setup.users} where id = $1`;
  const range = `${selectColumns} ${setup.users} where id > $1 order by id limit 100`;
  const insert = `insert into ${setup.log} (n, label) values ($1, $2)`;
  const prepared = { prepare: true };
  return {
    name: "raw",
    driver: "postgres.js",
    async pointSelect(id) {
      const rows = await pg.unsafe<UserRow[]>(point, [id], prepared);
      return rows[0];
    },
    async select100(after) {
      return await pg.unsafe<UserRow[]>(range, [after], prepared);
    },
    async insertOne(n, label) {
      await pg.unsafe(insert, [n, label], prepared);
    },
    async transaction10(n) {
      await pg.begin(async (tx) => {
        for (let i = 0; i < 10; i++) await tx.unsafe(insert, [n + i, "tx"], prepared);
      });
    },
    async insertMany(rows) {
      const values = rows.map(([n, label]) => ({ n, label }));
      await pg`insert into ${pg(setup.log)} ${pg(values, "n", "label")}`;
    },
    async iterate() {
      let count = 0;
      for await (const batch of pg.unsafe(setup.millionRows).cursor(1_000)) count += batch.length;
      return count;
    },
    close: () => pg.end(),
  };
}

interface StreamingConnection {
  connection: { query(text: string): { stream(): AsyncIterable<unknown> } };
  release(): void;
}

async function rawMysql(setup: BenchSetup): Promise<Contender> {
  const mysql = await import("mysql2/promise");
  const url = new URL(setup.url);
  const pool = mysql.createPool({
    host: url.hostname,
    port: Number(url.port || 3306),
    user: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password) || undefined,
    database: url.pathname.slice(1),
    connectionLimit: setup.poolSize,
  });
  const point = `${selectColumns} ${setup.users} where id = ?`;
  const range = `${selectColumns} ${setup.users} where id > ? order by id limit 100`;
  const insert = `insert into ${setup.log} (n, label) values (?, ?)`;
  return {
    name: "raw",
    driver: "mysql2",
    async pointSelect(id) {
      const [rows] = await pool.execute(point, [id]);
      return (rows as UserRow[])[0];
    },
    async select100(after) {
      const [rows] = await pool.execute(range, [after]);
      return rows as UserRow[];
    },
    async insertOne(n, label) {
      await pool.execute(insert, [n, label]);
    },
    async transaction10(n) {
      const connection = await pool.getConnection();
      try {
        await connection.beginTransaction();
        for (let i = 0; i < 10; i++) await connection.execute(insert, [n + i, "tx"]);
        await connection.commit();
      } catch (error) {
        await connection.rollback();
        throw error;
      } finally {
        connection.release();
      }
    },
    async insertMany(rows) {
      await pool.query(`insert into ${setup.log} (n, label) values ?`, [rows]);
    },
    async iterate() {
      const connection = await pool.getConnection() as unknown as StreamingConnection;
      try {
        let count = 0;
        for await (const _ of connection.connection.query(setup.millionRows).stream()) count++;
        return count;
      } finally {
        connection.release();
      }
    },
    close: () => pool.end(),
  };
}

/** What node:sqlite's and bun:sqlite's synchronous APIs have in common. */
interface SyncSqlite {
  prepare(text: string): SyncStatement;
  exec(text: string): void;
  close(): void;
}

interface SyncStatement {
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
  run(...params: unknown[]): unknown;
  iterate(...params: unknown[]): Iterable<unknown>;
}

async function openSqlite(path: string): Promise<SyncSqlite> {
  if ("Bun" in globalThis) {
    const bun = (globalThis as unknown as { process: { getBuiltinModule(id: string): unknown } }).process
      .getBuiltinModule("bun:sqlite") as { Database: new (path: string) => SyncSqlite };
    return new bun.Database(path);
  }
  const { DatabaseSync } = await import("node:sqlite");
  return new DatabaseSync(path) as unknown as SyncSqlite;
}

async function rawSqlite(setup: BenchSetup): Promise<Contender> {
  const db = await openSqlite(setup.sqlitePath);
  db.exec("pragma journal_mode = wal");
  const point = db.prepare(`${selectColumns} ${setup.users} where id = ?`);
  const range = db.prepare(`${selectColumns} ${setup.users} where id > ? order by id limit 100`);
  const insert = db.prepare(`insert into ${setup.log} (n, label) values (?, ?)`);
  const all = (rows: readonly (readonly [number, string])[]) => {
    db.exec("begin");
    try {
      for (const [n, label] of rows) insert.run(n, label);
      db.exec("commit");
    } catch (error) {
      db.exec("rollback");
      throw error;
    }
  };
  return {
    name: "raw",
    driver: "Bun" in globalThis ? "bun:sqlite" : "node:sqlite",
    pointSelect: (id) => Promise.resolve((point.get(id) ?? undefined) as UserRow | undefined),
    select100: (after) => Promise.resolve(range.all(after) as UserRow[]),
    insertOne(n, label) {
      insert.run(n, label);
      return Promise.resolve();
    },
    transaction10(n) {
      all(Array.from({ length: 10 }, (_, i) => [n + i, "tx"] as const));
      return Promise.resolve();
    },
    insertMany(rows) {
      all(rows);
      return Promise.resolve();
    },
    iterate() {
      let count = 0;
      for (const _ of db.prepare(setup.millionRows).iterate()) count++;
      return Promise.resolve(count);
    },
    close() {
      db.close();
      return Promise.resolve();
    },
  };
}
