/**
 * The Bun.SQL drivers: PostgreSQL and MySQL/MariaDB through the client built
 * into Bun (opt-in with `driver: "bun-sql"`). Each Roost connection is one
 * Bun.SQL client with `max: 1`, so Roost's pool decides when connections
 * open, retire and time out, exactly as with the other drivers.
 *
 * @example Choosing Bun.SQL for Postgres on Bun
 * ```ts
 * import { Database } from "@roost/db";
 * const db = new Database("postgres://app@localhost/app", { driver: "bun-sql" });
 * ```
 *
 * @example Passing the driver object (for bundlers that drop lazy imports)
 * ```ts
 * import { Database } from "@roost/db";
 * import { bunSqlMysql } from "@roost/db/drivers/bun-sql";
 * const db = new Database("mysql://root@localhost/app", { driver: bunSqlMysql });
 * ```
 *
 * @module
 */
import type { DialectName } from "../dialect.ts";
import type { Driver, DriverConnection, ExecuteResult, Row, StreamPlacement } from "../driver.ts";
import { ConfigError, ConnectionError, QueryError, queryError } from "../errors.ts";
import type { DatabaseUrl } from "../url.ts";
import { executeBatched, inBatches, insertInChunks, multiRowInsert } from "./batch.ts";
import { fatalPostgresState, postgresErrorFields, redactMysqlValues, sanitizedCause } from "./cause.ts";
import { cursorBatches, NotACursor } from "./pg_cursor.ts";
import { postgresParam, postgresSessionParameters } from "./pg_values.ts";
import { type NodeTlsOptions, nodeTlsOptions, tlsRequest, withoutFiles } from "./tls.ts";
import { bindValue, exactInteger, mysqlRules, setColumn, tinyintBoolean } from "./values.ts";

/** The rows of a Bun.SQL result, with its counters. */
interface BunSqlResult extends Array<Row> {
  /** Column metadata: the type OID on Postgres, the MySQL type and display length on MySQL. */
  columns?: readonly BunSqlColumn[];
  count: number | null;
  affectedRows: number | null;
  lastInsertRowid: number | bigint | null;
}

interface BunSqlColumn {
  name: string;
  type: number;
  length?: number;
}

/** The part of a Bun.SQL client this driver uses, typed here so other runtimes can type-check it. */
interface BunSqlClient {
  unsafe(text: string, params?: unknown[]): Promise<BunSqlResult>;
  close(options?: { timeout?: number }): Promise<void>;
}

interface BunSqlOptions {
  adapter: "postgres" | "mysql";
  hostname: string;
  port: number;
  username?: string;
  password?: string;
  database?: string;
  max: number;
  idleTimeout: number;
  maxLifetime: number;
  connectionTimeout: number;
  bigint: boolean;
  prepare: boolean;
  tls: string | boolean | NodeTlsOptions;
  connection?: Record<string, string | number>;
  onclose(error: Error | null): void;
}

type BunSqlConstructor = new (options: BunSqlOptions) => BunSqlClient;

function bunSql(): BunSqlConstructor {
  const bun = (globalThis as { Bun?: { SQL?: BunSqlConstructor } }).Bun;
  if (bun?.SQL === undefined) throw new ConfigError("the bun-sql driver runs only on Bun (>= 1.2)");
  return bun.SQL;
}

/** Error codes of Bun.SQL's own (not the server's) that mean the connection is gone. */
const lostConnection =
  /CONNECTION_CLOSED|CONNECTION_TIMEOUT|IDLE_TIMEOUT|LIFETIME_TIMEOUT|ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|ENOTFOUND|EHOSTUNREACH/;

/** MySQL server error numbers under the names mysql2 gives them, so `QueryError.code` matches across drivers. */
const mysqlErrorNames: Record<number, string> = {
  1040: "ER_CON_COUNT_ERROR",
  1045: "ER_ACCESS_DENIED_ERROR",
  1048: "ER_BAD_NULL_ERROR",
  1049: "ER_BAD_DB_ERROR",
  1050: "ER_TABLE_EXISTS_ERROR",
  1053: "ER_SERVER_SHUTDOWN",
  1054: "ER_BAD_FIELD_ERROR",
  1062: "ER_DUP_ENTRY",
  1064: "ER_PARSE_ERROR",
  1146: "ER_NO_SUCH_TABLE",
  1205: "ER_LOCK_WAIT_TIMEOUT",
  1213: "ER_LOCK_DEADLOCK",
  1264: "ER_WARN_DATA_OUT_OF_RANGE",
  1317: "ER_QUERY_INTERRUPTED",
  1365: "ER_DIVISION_BY_ZERO",
  1406: "ER_DATA_TOO_LONG",
  1451: "ER_ROW_IS_REFERENCED_2",
  1452: "ER_NO_REFERENCED_ROW_2",
  1792: "ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION",
  1927: "ER_CONNECTION_KILLED",
  1969: "ER_STATEMENT_TIMEOUT",
  3024: "ER_QUERY_TIMEOUT",
};

/** MySQL server errors after which the connection is gone. */
const fatalMysqlErrors = new Set([1040, 1053, 1927, 2006, 2013]);

interface BunSqlError {
  code?: unknown;
  errno?: unknown;
  sqlState?: unknown;
  message?: unknown;
}

/** How one dialect speaks through Bun.SQL: its errors and its values. */
interface Flavour {
  dialect: DialectName;
  /** The Roost error code and whether the connection is gone. */
  classify(error: BunSqlError): { code: string | undefined; fatal: boolean };
  fields: readonly string[];
  redact(text: string): string;
  /** One parameter as Bun.SQL binds it right. */
  param(value: unknown, index: number): unknown;
  /** The columns whose values Bun.SQL reads differently from Roost's rules. */
  plan(columns: readonly BunSqlColumn[]): ColumnPlan | undefined;
}

/** Columns to convert, by kind. */
interface ColumnPlan {
  /** Dates (Bun.SQL reads a Date at UTC midnight): their `YYYY-MM-DD` text. */
  dates: string[];
  /** Arrays of dates: each element's text. */
  dateArrays: string[];
  /** Timestamps: `infinity` and `-infinity` as text (Bun.SQL reads them as numbers). */
  timestamps: string[];
  /** MySQL TINYINT(1), which is what BOOLEAN means: 0 and 1 as false and true. */
  booleans: string[];
}

function planOf(columns: readonly BunSqlColumn[], kind: (column: BunSqlColumn) => keyof ColumnPlan | undefined) {
  const plan: ColumnPlan = { dates: [], dateArrays: [], timestamps: [], booleans: [] };
  let any = false;
  for (const column of columns) {
    const which = kind(column);
    if (which !== undefined) {
      plan[which].push(column.name);
      any = true;
    }
  }
  return any ? plan : undefined;
}

/** Postgres's infinite dates and timestamps as the text the other drivers return. */
function infinityText(value: unknown): unknown {
  return value === Infinity ? "infinity" : value === -Infinity ? "-infinity" : value;
}

/** A Date Bun.SQL made of a `date` as its `YYYY-MM-DD` text (anything else as it is). */
function dateText(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(dateText);
  if (value instanceof Date && !Number.isNaN(value.getTime())) return value.toISOString().slice(0, 10);
  return infinityText(value);
}

const pgDate = 1082;
const pgDateArray = 1182;
const pgTimestamps = new Set([1114, 1184]);
const mysqlTiny = 1;
const mysqlDate = 10;

function bunCode(error: BunSqlError): string | undefined {
  return typeof error.code === "string" ? error.code : undefined;
}

function plainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

const postgresFlavour: Flavour = {
  dialect: "postgres",
  classify(error) {
    // Server errors carry their SQLSTATE in `errno`; `code` is Bun's own.
    const state = typeof error.errno === "string" ? error.errno : undefined;
    const code = state ?? bunCode(error);
    return { code, fatal: (state !== undefined && fatalPostgresState(state)) || lostConnection.test(code ?? "") };
  },
  fields: [...postgresErrorFields, "errno"],
  plan: (columns) =>
    planOf(
      columns,
      ({ type }) =>
        type === pgDate
          ? "dates"
          : type === pgDateArray
          ? "dateArrays"
          : pgTimestamps.has(type)
          ? "timestamps"
          : undefined,
    ),
  redact: (text) => text,
  param(value, index) {
    // Bun.SQL encodes plain objects as JSON itself (JSON text it would encode
    // again, as a JSON string) and arrays as Postgres arrays.
    if (typeof value === "object" && value !== null && plainObject(value)) return value;
    return postgresParam(value, index, (array) => array);
  },
};

const mysqlFlavour: Flavour = {
  dialect: "mysql",
  classify(error) {
    const errno = typeof error.errno === "number" ? error.errno : undefined;
    const state = typeof error.sqlState === "string" ? error.sqlState : undefined;
    const code = errno === undefined ? bunCode(error) : mysqlErrorNames[errno] ?? state ?? String(errno);
    return {
      code,
      fatal: (errno !== undefined && fatalMysqlErrors.has(errno)) || lostConnection.test(bunCode(error) ?? ""),
    };
  },
  fields: ["errno", "sqlState"],
  plan: (columns) =>
    planOf(
      columns,
      ({ type, length }) => type === mysqlDate ? "dates" : type === mysqlTiny && length === 1 ? "booleans" : undefined,
    ),
  redact: redactMysqlValues,
  param: (value, index) => bindValue(value, index, mysqlRules),
};

function translate(flavour: Flavour, error: unknown, text: string): Error {
  if (error instanceof QueryError || error instanceof ConnectionError || error instanceof ConfigError) return error;
  const raw = (typeof error === "object" && error !== null ? error : {}) as BunSqlError;
  const message = flavour.redact(typeof raw.message === "string" ? raw.message : String(error));
  const cause = sanitizedCause(error, flavour.fields, flavour.redact);
  const { code, fatal } = flavour.classify(raw);
  if (fatal) return new ConnectionError(`${flavour.dialect} connection lost: ${message}`, { cause, code });
  return queryError(message, { cause, code, sql: text });
}

/**
 * A value as Roost returns it: integers exact (number when safe), byte
 * buffers as plain Uint8Array, typed numeric arrays as arrays.
 */
function plainValue(value: unknown): unknown {
  if (typeof value === "bigint") return exactInteger(value);
  if (typeof value !== "object" || value === null || value instanceof Date) return value;
  if (value instanceof Uint8Array) {
    return value.constructor === Uint8Array ? value : new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  }
  if (Array.isArray(value)) return value.map(plainValue);
  if (ArrayBuffer.isView(value)) return Array.from(value as unknown as ArrayLike<number | bigint>, plainValue);
  return value;
}

/** Copies a Bun.SQL row (null prototype, Buffers, bigints) into a plain object of Roost values. */
function plainRow(row: Row, plan: ColumnPlan | undefined): Row {
  const out: Row = {};
  for (const key in row) setColumn(out, key, plainValue(row[key]));
  if (plan !== undefined) {
    for (const name of plan.dates) out[name] = dateText(out[name]);
    for (const name of plan.dateArrays) out[name] = dateText(out[name]);
    for (const name of plan.timestamps) out[name] = infinityText(out[name]);
    for (const name of plan.booleans) out[name] = tinyintBoolean(out[name]);
  }
  return out;
}

const plans = new WeakMap<readonly BunSqlColumn[], ColumnPlan | undefined>();

class BunSqlConnection implements DriverConnection {
  readonly #sql: BunSqlClient;
  readonly #flavour: Flavour;
  #lost: Error | undefined;
  /** The server's id of the session (Postgres backend pid, MySQL connection id), read when it opens. */
  backendId?: number;

  constructor(sql: BunSqlClient, flavour: Flavour) {
    this.#sql = sql;
    this.#flavour = flavour;
  }

  /**
   * Called when the socket closes. Bun.SQL would reconnect silently, losing
   * session state and any open transaction: Roost treats the connection as
   * broken instead, and the pool replaces it.
   */
  lose(error: Error): void {
    if (this.#lost) return;
    this.#lost = error;
    // Statements still queued (a pipelined executeMany) must not run on a new
    // connection, outside their transaction: closing the client rejects them.
    this.#sql.close({ timeout: 0 }).catch(() => {});
  }

  get broken(): boolean {
    return this.#lost !== undefined;
  }

  #params(params: readonly unknown[]): unknown[] {
    return params.map(this.#flavour.param);
  }

  async #run(text: string, params: readonly unknown[]): Promise<BunSqlResult> {
    if (this.#lost) throw translate(this.#flavour, this.#lost, text);
    const values = this.#params(params);
    try {
      return await this.#sql.unsafe(text, values);
    } catch (error) {
      throw translate(this.#flavour, this.#lost ?? error, text);
    }
  }

  #outcome(result: BunSqlResult): ExecuteResult {
    const outcome: ExecuteResult = {
      rowCount: (this.#flavour.dialect === "mysql" ? result.affectedRows : result.count) ?? 0,
    };
    if (this.#flavour.dialect === "mysql" && result.lastInsertRowid) {
      outcome.lastInsertId = exactInteger(result.lastInsertRowid);
    }
    return outcome;
  }

  /** The conversions a result needs, worked out once per prepared statement (Bun.SQL reuses its columns array). */
  #plan(result: BunSqlResult): ColumnPlan | undefined {
    const columns = result.columns;
    if (columns === undefined) return undefined;
    if (!plans.has(columns)) plans.set(columns, this.#flavour.plan(columns));
    return plans.get(columns);
  }

  #rows(result: BunSqlResult): Row[] {
    const plan = this.#plan(result);
    return Array.from(result, (row) => plainRow(row, plan));
  }

  async execute(text: string, params: readonly unknown[]): Promise<ExecuteResult> {
    return this.#outcome(await this.#run(text, params));
  }

  /** A single-row insert becomes multi-row inserts; anything else is pipelined on Postgres, run per set on MySQL. */
  async executeMany(text: string, paramSets: readonly (readonly unknown[])[]): Promise<ExecuteResult> {
    if (this.#flavour.dialect === "mysql") {
      return executeBatched(text, paramSets, (chunkText, params) => this.execute(chunkText, params));
    }
    const insert = multiRowInsert(text, paramSets[0]?.length ?? 0, true);
    if (insert) return await insertInChunks(insert, paramSets, (chunkText, params) => this.execute(chunkText, params));
    const settled = await Promise.allSettled(paramSets.map((params) => this.#run(text, params)));
    let rowCount = 0;
    for (const outcome of settled) {
      if (outcome.status === "rejected") throw outcome.reason;
      rowCount += outcome.value.count ?? 0;
    }
    return { rowCount };
  }

  async fetchAll(text: string, params: readonly unknown[]): Promise<Row[]> {
    return this.#rows(await this.#run(text, params));
  }

  async fetchOne(text: string, params: readonly unknown[]): Promise<Row | undefined> {
    const result = await this.#run(text, params);
    return result.length > 0 ? plainRow(result[0], this.#plan(result)) : undefined;
  }

  async *stream(
    text: string,
    params: readonly unknown[],
    batchSize: number,
    placement: StreamPlacement,
  ): AsyncIterableIterator<Row[]> {
    if (this.#flavour.dialect === "mysql") {
      // Bun.SQL has no row stream for MySQL: the rows are read first, then
      // handed out in batches.
      yield* inBatches(await this.fetchAll(text, params), batchSize);
      return;
    }
    // Bun.SQL has no cursor API: the server keeps one. On a connection of its
    // own the cursor lives in a transaction of its own, so rows stream
    // without Postgres materialising the result first.
    const mode = placement === "own" ? "own-transaction" : placement === "shared" ? "hold" : "in-transaction";
    const run = async (statement: string, values: readonly unknown[] = []) =>
      this.#rows(await this.#run(statement, values));
    try {
      yield* cursorBatches(run, text, params, batchSize, mode);
      return;
    } catch (error) {
      if (!(error instanceof NotACursor)) throw translate(this.#flavour, error, text);
    }
    // On a connection of its own, a statement that cannot be a cursor (a write with RETURNING) is read whole.
    yield* inBatches(await this.fetchAll(text, params), batchSize);
  }

  async ping(): Promise<void> {
    await this.#run("SELECT 1", []);
  }

  async close(): Promise<void> {
    await this.#sql.close({ timeout: 0 }).catch(() => {});
  }
}

/**
 * The URL's TLS settings as Bun.SQL's `tls` option: libpq's mode names, or
 * `node:tls`-style options where certificates are given (an object with
 * CAs makes Bun verify; verify-ca then skips the host-name check).
 */
function tlsOption(url: DatabaseUrl): string | boolean | NodeTlsOptions {
  const request = tlsRequest(url);
  if (request.mode === "disable") return false;
  if (withoutFiles(request)) return request.mode;
  return nodeTlsOptions(request, url.host);
}

function connector(flavour: Flavour): Driver["connect"] {
  return async (url) => {
    const SQL = bunSql();
    const { connect_timeout } = url.options;
    const connection = flavour.dialect === "postgres" ? postgresSessionParameters(url) : {};
    // The socket may close before the connection object exists (a failed connect): then there is nothing to mark.
    const opened: { connection?: BunSqlConnection } = {};
    const sql = new SQL({
      adapter: flavour.dialect === "postgres" ? "postgres" : "mysql",
      hostname: url.host,
      port: url.port,
      username: url.user || undefined,
      password: url.password() || undefined,
      database: url.database || undefined,
      max: 1,
      // Roost's pool decides when connections idle out or retire.
      idleTimeout: 0,
      maxLifetime: 0,
      connectionTimeout: connect_timeout === undefined ? 30 : Number(connect_timeout),
      bigint: true,
      prepare: true,
      tls: tlsOption(url),
      ...(Object.keys(connection).length > 0 ? { connection } : {}),
      onclose: (error) => opened.connection?.lose(error ?? new Error("connection closed")),
    });
    const wrapped = opened.connection = new BunSqlConnection(sql, flavour);
    try {
      // The first round trip also learns the session's id, so a cut-off session can be ended on the server.
      const id = flavour.dialect === "postgres" ? "pg_backend_pid()" : "CONNECTION_ID()";
      wrapped.backendId = Number((await wrapped.fetchOne(`SELECT ${id} AS id`, []))?.id);
    } catch (error) {
      await sql.close({ timeout: 0 }).catch(() => {});
      const reason = error instanceof Error ? error.message : String(error);
      throw new ConnectionError(`could not connect to ${flavour.dialect} at ${url.host}:${url.port}: ${reason}`, {
        cause: error instanceof Error ? error.cause ?? error : error,
        code: error instanceof QueryError || error instanceof ConnectionError ? error.code : undefined,
      });
    }
    if (flavour.dialect === "mysql") {
      try {
        // Dates bind and read as UTC, so the session is UTC too (as with mysql2).
        await wrapped.execute("SET time_zone = '+00:00'", []);
      } catch (error) {
        await wrapped.close();
        throw error;
      }
    }
    return wrapped;
  };
}

/** Bun.SQL speaking PostgreSQL. */
export const bunSqlPostgres: Driver = {
  name: "bun-sql",
  dialect: "postgres",
  interleavedStreams: false,
  connect: connector(postgresFlavour),
};

/** Bun.SQL speaking MySQL and MariaDB. */
export const bunSqlMysql: Driver = {
  name: "bun-sql",
  dialect: "mysql",
  interleavedStreams: false,
  connect: connector(mysqlFlavour),
};
