/**
 * Roost against the raw driver under it, measured in the same run on the same
 * table: 1,000 single-row inserts, a 1,000-row batch (Roost's executeMany
 * against the driver's own fastest batch), fetchAll of 100,000 rows and
 * streaming 1,000,000 rows. Prints times and the Roost/raw ratio.
 *
 *   node bench/vs_raw.ts [--rounds=3]      (also deno run -A, bun)
 *   BENCH_DIALECTS=postgres,mysql node bench/vs_raw.ts
 */
import { Database } from "../mod.ts";

const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env ?? {};
const argv = (globalThis as { process?: { argv?: string[] } }).process?.argv ?? [];
const rounds = Number(argv.find((arg) => arg.startsWith("--rounds="))?.slice(9) ?? 3);
const runtime = "Bun" in globalThis ? "bun" : "Deno" in globalThis ? "deno" : "node";
const postgresUrl = env.ROOST_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const mysqlUrl = env.ROOST_TEST_MYSQL_URL ?? "mysql://root@127.0.0.1:3306/test";
const sqlitePath = `/tmp/roost-bench-raw-${Date.now()}.db`;

type Row = [number, string];
const rows: Row[] = Array.from({ length: 1_000 }, (_, i) => [i, `label ${i}`]);

/** One side of a comparison: the same four workloads through Roost or through the raw driver. */
interface Side {
  insertOneByOne(table: string): Promise<void>;
  insertBatch(table: string): Promise<void>;
  fetchAll(query: string): Promise<number>;
  stream(query: string): Promise<number>;
  run(text: string): Promise<void>;
  close(): Promise<void>;
}

function roostSide(db: Database, placeholders: (i: number) => string): Side {
  return {
    async insertOneByOne(table) {
      const text = `insert into ${table} (n, label) values (${placeholders(1)}, ${placeholders(2)})`;
      for (const row of rows) await db.execute(text, row);
    },
    async insertBatch(table) {
      await db.executeMany(`insert into ${table} (n, label) values (${placeholders(1)}, ${placeholders(2)})`, rows);
    },
    async fetchAll(query) {
      return (await db.fetchAll(query)).length;
    },
    async stream(query) {
      let count = 0;
      for await (const _ of db.iterate(query, [], { batchSize: 1_000 })) count++;
      return count;
    },
    run: (text) => db.execute(text).then(() => {}),
    close: () => db.close(),
  };
}

async function postgresRaw(): Promise<Side> {
  const { default: postgres } = await import("postgres");
  const pg = postgres(postgresUrl, { max: 1, onnotice: () => {} });
  return {
    async insertOneByOne(table) {
      for (const row of rows) {
        await pg.unsafe(`insert into ${table} (n, label) values ($1, $2)`, row, { prepare: true });
      }
    },
    async insertBatch(table) {
      await pg`insert into ${pg(table)} ${pg(rows.map(([n, label]) => ({ n, label })), "n", "label")}`;
    },
    async fetchAll(query) {
      return (await pg.unsafe(query)).length;
    },
    async stream(query) {
      let count = 0;
      for await (const batch of pg.unsafe(query).cursor(1_000)) count += batch.length;
      return count;
    },
    run: (text) => pg.unsafe(text).then(() => {}),
    close: () => pg.end(),
  };
}

async function mysqlRaw(): Promise<Side> {
  const mysql = await import("mysql2/promise");
  const url = new URL(mysqlUrl);
  const connection = await mysql.createConnection({
    host: url.hostname,
    port: Number(url.port || 3306),
    user: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password) || undefined,
    database: url.pathname.slice(1),
    supportBigNumbers: true,
    bigNumberStrings: true,
  });
  return {
    async insertOneByOne(table) {
      for (const row of rows) await connection.execute(`insert into ${table} (n, label) values (?, ?)`, row);
    },
    async insertBatch(table) {
      await connection.query(`insert into ${table} (n, label) values ?`, [rows]);
    },
    async fetchAll(query) {
      const [result] = await connection.query(query);
      return (result as unknown[]).length;
    },
    async stream(query) {
      let count = 0;
      const core =
        (connection as unknown as { connection: { query(sql: string): { stream(): AsyncIterable<unknown> } } })
          .connection;
      for await (const _ of core.query(query).stream()) count++;
      return count;
    },
    run: (text) => connection.query(text).then(() => {}),
    close: () => connection.end(),
  };
}

interface SyncSqlite {
  prepare(text: string): { run(...params: unknown[]): unknown; all(): unknown[]; iterate(): Iterable<unknown> };
  exec(text: string): void;
  close(): void;
}

async function sqliteRaw(): Promise<Side> {
  let db: SyncSqlite;
  if (runtime === "bun") {
    const bun = (globalThis as unknown as { process: { getBuiltinModule(id: string): unknown } }).process
      .getBuiltinModule("bun:sqlite") as { Database: new (path: string) => SyncSqlite };
    db = new bun.Database(sqlitePath);
  } else {
    const { DatabaseSync } = await import("node:sqlite");
    db = new DatabaseSync(sqlitePath) as unknown as SyncSqlite;
  }
  return {
    insertOneByOne(table) {
      const statement = db.prepare(`insert into ${table} (n, label) values (?, ?)`);
      for (const row of rows) statement.run(...row);
      return Promise.resolve();
    },
    insertBatch(table) {
      const statement = db.prepare(`insert into ${table} (n, label) values (?, ?)`);
      db.exec("begin");
      for (const row of rows) statement.run(...row);
      db.exec("commit");
      return Promise.resolve();
    },
    fetchAll(query) {
      return Promise.resolve(db.prepare(query).all().length);
    },
    stream(query) {
      let count = 0;
      for (const _ of db.prepare(query).iterate()) count++;
      return Promise.resolve(count);
    },
    run(text) {
      db.exec(text);
      return Promise.resolve();
    },
    close() {
      db.close();
      return Promise.resolve();
    },
  };
}

const dialects = {
  sqlite: {
    url: `sqlite://${sqlitePath}`,
    raw: sqliteRaw,
    rawName: runtime === "bun" ? "bun:sqlite" : "node:sqlite",
    placeholders: () => "?",
    series: (n: number) =>
      `with recursive c(n) as (select 1 union all select n + 1 from c where n < ${n}) select n, 'row ' || n as label from c`,
  },
  postgres: {
    url: postgresUrl,
    raw: postgresRaw,
    rawName: "postgres.js",
    placeholders: (i: number) => `$${i}`,
    series: (n: number) => `select n, 'row ' || n as label from generate_series(1, ${n}) n`,
  },
  mysql: {
    url: mysqlUrl,
    raw: mysqlRaw,
    rawName: "mysql2",
    placeholders: () => "?",
    series: (n: number) => `select seq as n, concat('row ', seq) as label from seq_1_to_${n}`,
  },
};

async function time(work: () => Promise<unknown>): Promise<number> {
  let best = Infinity;
  for (let round = 0; round < rounds; round++) {
    const started = performance.now();
    await work();
    best = Math.min(best, performance.now() - started);
  }
  return best;
}

const format = (ms: number) => ms < 10 ? `${ms.toFixed(2)} ms` : `${ms.toFixed(1)} ms`;

console.log(`| runtime | dialect | workload | raw driver | Roost | Roost / raw |`);
console.log(`| ------- | ------- | -------- | ---------- | ----- | ----------- |`);
for (const name of (env.BENCH_DIALECTS?.split(",") ?? Object.keys(dialects)) as (keyof typeof dialects)[]) {
  const dialect = dialects[name];
  // On Bun, Roost's Postgres default is Bun.SQL; the raw side here is postgres.js, so Roost runs on postgres.js too.
  const db = new Database(dialect.url, runtime === "bun" && name === "postgres" ? { driver: "postgres-js" } : {});
  let raw: Side;
  try {
    await db.connect();
    raw = await dialect.raw();
  } catch (error) {
    console.log(`| ${runtime} | ${name} | skipped: ${(error as Error).message} | | | |`);
    await db.close();
    continue;
  }
  const roost = roostSide(db, dialect.placeholders);
  const table = `bench_raw_${runtime}_${Date.now().toString(36)}`;
  await raw.run(`create table ${table} (n integer, label varchar(40))`);
  const workloads: [string, (side: Side) => Promise<unknown>][] = [
    ["1,000 single-row inserts", (side) => side.insertOneByOne(table).then(() => raw.run(`delete from ${table}`))],
    ["1,000-row batch insert", (side) => side.insertBatch(table).then(() => raw.run(`delete from ${table}`))],
    ["fetchAll 100,000 rows", (side) => side.fetchAll(dialect.series(100_000))],
    ["stream 1,000,000 rows", (side) => side.stream(dialect.series(1_000_000))],
  ];
  for (const [label, work] of workloads) {
    const rawMs = await time(() => work(raw));
    const roostMs = await time(() => work(roost));
    console.log(
      `| ${runtime} | ${name} | ${label} | ${dialect.rawName} ${format(rawMs)} | ${format(roostMs)} | ${
        (roostMs / rawMs).toFixed(2)
      } |`,
    );
  }
  await raw.run(`drop table ${table}`);
  await raw.close();
  await roost.close();
}
