/**
 * What every contender in the benchmark implements: the same workloads, the
 * same SQL, through one library on one driver. The worker (bench/worker.ts)
 * creates the tables, times the calls and closes each contender.
 *
 * @module
 */

/** The dialects the benchmark runs against. */
export type BenchDialect = "sqlite" | "postgres" | "mysql";

/** The runtimes the benchmark runs on. */
export type BenchRuntime = "node" | "deno" | "bun";

/** Where a contender connects and what it queries. */
export interface BenchSetup {
  /** The dialect measured. */
  dialect: BenchDialect;
  /** The runtime the worker runs on. */
  runtime: BenchRuntime;
  /** A Roost URL: `postgres://…`, `mysql://…` or `sqlite:///absolute/path.db`. */
  url: string;
  /** The SQLite file (SQLite only; the same file `url` names). */
  sqlitePath: string;
  /**
   * The table point and range selects read: `id integer primary key, name varchar(40),
   * email varchar(80), score integer`, rows with id 1..10,000.
   */
  users: string;
  /** The table inserts write: `id` (auto-increment primary key), `n integer, label varchar(40)`. */
  log: string;
  /** The pool size every contender with a pool uses (10). */
  poolSize: number;
  /** A query yielding 1,000,000 rows of `(n, label)`, in this dialect. */
  millionRows: string;
}

/** A row of the `users` table. */
export interface UserRow {
  /** 1..10,000. */
  id: number;
  /** `user <id>`. */
  name: string;
  /** `user<id>@example.com`. */
  email: string;
  /** `(id - 1) % 100`. */
  score: number;
}

/**
 * One library on one driver. Each method runs exactly the statement its doc
 * names (in the dialect's placeholders), and resolves once the server has
 * answered. A method left out means the library has no API for it; `skipped`
 * says why.
 */
export interface Contender {
  /** "raw", "roost", "kysely", "roost-kysely" (Kysely on Roost) or "drizzle". */
  readonly name: string;
  /** The driver under it, as shown in the results ("postgres.js", "mysql2", "node:sqlite", "bun:sqlite"). */
  readonly driver: string;
  /** Why a workload this contender leaves out has no figure. */
  readonly skipped?: Partial<Record<"iterate", string>>;
  /** `select id, name, email, score from users where id = ?`: the row. */
  pointSelect(id: number): Promise<UserRow | undefined>;
  /** `select id, name, email, score from users where id > ? order by id limit 100`: the rows. */
  select100(after: number): Promise<UserRow[]>;
  /** `insert into log (n, label) values (?, ?)`. */
  insertOne(n: number, label: string): Promise<void>;
  /** A transaction of 10 statements: `insert into log (n, label) values (?, ?)` for n .. n+9, label "tx". */
  transaction10(n: number): Promise<void>;
  /** The 1,000 rows into `log (n, label)`, all or nothing, by the library's batch API. */
  insertMany(rows: readonly (readonly [number, string])[]): Promise<void>;
  /** Streams `millionRows` without holding the result; resolves to the number of rows seen. */
  iterate?(): Promise<number>;
  /** Closes its connections. */
  close(): Promise<void>;
}
