/**
 * Bun.SQL used directly, the way Bun's documentation recommends for speed:
 * one `new Bun.SQL({...})` client with its own pool of `setup.poolSize`
 * connections, `sql.unsafe(text, params)` with prepared statements (Bun.SQL's
 * default), `sql.begin` for transactions and its `sql(rows)` multi-row insert.
 * Bun only, on Postgres and MySQL/MariaDB. Next to "raw" (postgres.js or
 * mysql2) it shows which raw driver is faster on Bun; next to
 * "roost-bun-sql" what Roost costs on top of Bun.SQL.
 *
 * @module
 */
import type { BenchSetup, Contender, UserRow } from "./contender.ts";

/** The part of a Bun.SQL client this contender uses. */
interface BunSqlClient {
  unsafe<T>(text: string, params?: unknown[]): Promise<T>;
  begin(run: (tx: BunSqlClient) => Promise<unknown>): Promise<unknown>;
  (strings: TemplateStringsArray, ...values: unknown[]): Promise<unknown>;
  (value: unknown, ...columns: string[]): unknown;
  close(options?: { timeout?: number }): Promise<void>;
}

type BunSqlConstructor = new (options: Record<string, unknown>) => BunSqlClient;

/** Bun.SQL on the setup's server, with a pool of `setup.poolSize`. */
export function rawBunSqlContender(setup: BenchSetup): Promise<Contender> {
  const SQL = (globalThis as { Bun?: { SQL?: BunSqlConstructor } }).Bun?.SQL;
  if (SQL === undefined || setup.dialect === "sqlite") {
    return Promise.reject(new Error("raw-bun-sql runs only on Bun, against Postgres or MySQL"));
  }
  const url = new URL(setup.url);
  const sql = new SQL({
    adapter: setup.dialect,
    hostname: url.hostname,
    port: Number(url.port || (setup.dialect === "postgres" ? 5432 : 3306)),
    username: decodeURIComponent(url.username) || undefined,
    password: decodeURIComponent(url.password) || undefined,
    database: url.pathname.slice(1),
    max: setup.poolSize,
    prepare: true,
  });
  const [one, two] = setup.dialect === "postgres" ? ["$1", "$2"] : ["?", "?"];
  const point = `select id, name, email, score from ${setup.users} where id = ${one}`;
  const range = `select id, name, email, score from ${setup.users} where id > ${one} order by id limit 100`;
  const insert = `insert into ${setup.log} (n, label) values (${one}, ${two})`;
  return Promise.resolve({
    name: "raw-bun-sql",
    driver: "Bun.SQL",
    skipped: { iterate: "Bun.SQL has no row stream or cursor API" },
    async pointSelect(id) {
      const rows = await sql.unsafe<UserRow[]>(point, [id]);
      return rows[0];
    },
    select100: (after) => sql.unsafe<UserRow[]>(range, [after]),
    async insertOne(n, label) {
      await sql.unsafe(insert, [n, label]);
    },
    async transaction10(n) {
      await sql.begin(async (tx) => {
        for (let i = 0; i < 10; i++) await tx.unsafe(insert, [n + i, "tx"]);
      });
    },
    async insertMany(rows) {
      const values = rows.map(([n, label]) => ({ n, label }));
      await sql`insert into ${sql(setup.log)} ${sql(values, "n", "label")}`;
    },
    close: () => sql.close({ timeout: 0 }),
  });
}
