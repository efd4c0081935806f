/**
 * The SQLite connection shared by the `node:sqlite` and `bun:sqlite` drivers,
 * which expose the same synchronous statement API: statements prepared once
 * and cached per connection, JavaScript values converted to what SQLite
 * stores, integers returned exactly, errors translated.
 *
 * @module
 */
import type { DriverConnection, ExecuteResult, Row, StreamPlacement } from "../driver.ts";
import { ConfigError, ConnectionError, QueryError } from "../errors.ts";
import type { DatabaseUrl } from "../url.ts";
import { type BindRules, bindValue, exactInteger, setColumn } from "./values.ts";

/** The statement API both runtimes' SQLite modules offer. */
export interface SyncStatement {
  run(...params: unknown[]): { changes: number | bigint; lastInsertRowid: number | bigint };
  all(...params: unknown[]): unknown[];
  get(...params: unknown[]): unknown;
  iterate(...params: unknown[]): Iterator<unknown>;
  finalize?(): void;
}

/** The database API both runtimes' SQLite modules offer. */
export interface SyncDatabase {
  /** Prepares a statement that reads integers as `bigint`. */
  prepare(text: string): SyncStatement;
  /**
   * Prepares a statement that reads integers as numbers and throws a
   * `RangeError` for one a number cannot hold exactly (node:sqlite), so
   * reads need no `bigint` per integer. Left out where the runtime would
   * round instead of throwing.
   */
  prepareNumbers?(text: string): SyncStatement;
  exec(text: string): void;
  close(): void;
}

/** How a runtime opens its SQLite database. */
export interface SyncDatabaseOpener {
  (path: string, options: { readOnly: boolean; create: boolean }): SyncDatabase;
}

const primaryCodes = [
  "OK",
  "ERROR",
  "INTERNAL",
  "PERM",
  "ABORT",
  "BUSY",
  "LOCKED",
  "NOMEM",
  "READONLY",
  "INTERRUPT",
  "IOERR",
  "CORRUPT",
  "NOTFOUND",
  "FULL",
  "CANTOPEN",
  "PROTOCOL",
  "EMPTY",
  "SCHEMA",
  "TOOBIG",
  "CONSTRAINT",
  "MISMATCH",
  "MISUSE",
  "NOLFS",
  "AUTH",
  "FORMAT",
  "RANGE",
  "NOTADB",
];

const constraintCodes: Record<number, string> = {
  275: "CHECK",
  531: "COMMITHOOK",
  787: "FOREIGNKEY",
  1043: "FUNCTION",
  1299: "NOTNULL",
  1555: "PRIMARYKEY",
  1811: "TRIGGER",
  2067: "UNIQUE",
  2323: "VTAB",
  2579: "ROWID",
  3091: "DATATYPE",
};

const busySnapshot = 517;

/**
 * SQLITE_BUSY and its extended codes: another connection holds a lock.
 * SQLITE_BUSY_SNAPSHOT is left out: the transaction's snapshot is stale, and
 * only a new transaction can succeed.
 */
function isBusy(error: unknown): boolean {
  const raw = error as { code?: unknown; errcode?: unknown; errno?: unknown };
  const numeric = typeof raw?.errcode === "number" ? raw.errcode : raw?.errno;
  if (typeof numeric === "number") return (numeric & 0xff) === 5 && numeric !== busySnapshot;
  return typeof raw?.code === "string" && raw.code.startsWith("SQLITE_BUSY") && raw.code !== "SQLITE_BUSY_SNAPSHOT";
}

function sqliteCodeName(code: number): string {
  const extended = constraintCodes[code];
  if (extended) return `SQLITE_CONSTRAINT_${extended}`;
  return `SQLITE_${primaryCodes[code & 0xff] ?? String(code)}`;
}

/** Turns a runtime's SQLite error into a {@linkcode QueryError} with a `SQLITE_*` code. */
export function sqliteError(error: unknown, text: string): QueryError {
  if (error instanceof QueryError) return error;
  const raw = (error ?? {}) as { code?: unknown; errcode?: unknown; errno?: unknown; message?: unknown };
  const numeric = typeof raw.errcode === "number" ? raw.errcode : typeof raw.errno === "number" ? raw.errno : undefined;
  const code = typeof raw.code === "string" && raw.code.startsWith("SQLITE_")
    ? raw.code
    : numeric !== undefined
    ? sqliteCodeName(numeric)
    : typeof raw.code === "string"
    ? raw.code
    : undefined;
  const message = typeof raw.message === "string" ? raw.message : String(error);
  // The one limit Roost cannot check before SQLite does: its own, which each build sets.
  const tooMany = message.includes("too many SQL variables");
  return new QueryError(tooMany ? `${message} (split the statement, or bind a list as one JSON value)` : message, {
    cause: error,
    code: tooMany ? "ROOST_TOO_MANY_PARAMETERS" : code,
    sql: text,
  });
}

/**
 * Converts one value to what SQLite stores: booleans as 1/0, dates as ISO 8601
 * text, byte views as blobs, plain objects and arrays as JSON text.
 */
function toSqlite(value: unknown, index: number): unknown {
  return bindValue(value, index, sqliteRules);
}

const sqliteRules: BindRules = {
  database: "SQLite",
  boolean: (value) => value ? 1 : 0,
  bigint: (value) => value,
  date: (value) => value.toISOString(),
};

/** Converts parameters for binding; returns the same array when none needs converting. */
export function sqliteParams(params: readonly unknown[]): readonly unknown[] {
  let out: unknown[] | undefined;
  for (let i = 0; i < params.length; i++) {
    const value = params[i];
    const converted = toSqlite(value, i);
    if (converted !== value) {
      out ??= params.slice();
      out[i] = converted;
    }
  }
  return out ?? params;
}

/** A plain-object copy of a row with integers returned exactly (a plain object is converted in place). */
function toRow(raw: unknown): Row {
  const source = raw as Record<string, unknown>;
  const row: Row = Object.getPrototypeOf(source) === Object.prototype ? source : {};
  for (const key in source) {
    const value = source[key];
    setColumn(row, key, typeof value === "bigint" ? exactInteger(value) : value);
  }
  return row;
}

interface CachedStatement {
  statement: SyncStatement;
  /** INSERT/REPLACE: only these report `lastInsertId`. */
  inserts: boolean;
  /**
   * A SELECT's statement reading integers as numbers (see
   * `SyncDatabase.prepareNumbers`), prepared at its first read; null when
   * there is none. Only a SELECT, which changes nothing, may run again on
   * `statement` when an integer is too large for it.
   */
  numbers: SyncStatement | null | undefined;
}

const allRows = (statement: SyncStatement, values: unknown[]) => statement.all(...values);
const firstRow = (statement: SyncStatement, values: unknown[]) => statement.get(...values);

/** A node:sqlite integer beyond Number.MAX_SAFE_INTEGER read as a number. */
function isTooLarge(error: unknown): boolean {
  return error instanceof RangeError && (error as { code?: unknown }).code === "ERR_OUT_OF_RANGE";
}

const statementCacheSize = 256;
const insertPattern = /^\s*(insert|replace)\b/i;
const selectPattern = /^\s*select\b/i;

/** A SQLite connection implementing the driver interface over a synchronous database. */
export class SqliteConnection implements DriverConnection {
  readonly #db: SyncDatabase;
  readonly #statements = new Map<string, CachedStatement>();
  readonly #busyTimeout: number;

  /** Wraps an open database; `busyTimeout` bounds the wait for another connection's write lock. */
  constructor(db: SyncDatabase, busyTimeout: number) {
    this.#db = db;
    this.#busyTimeout = busyTimeout;
  }

  #prepare(text: string): CachedStatement {
    let cached = this.#statements.get(text);
    if (cached === undefined) {
      const numbers = this.#db.prepareNumbers !== undefined && selectPattern.test(text) ? undefined : null;
      cached = { statement: this.#db.prepare(text), inserts: insertPattern.test(text), numbers };
      if (this.#statements.size >= statementCacheSize) {
        const [oldest, evicted] = this.#statements.entries().next().value!;
        this.#statements.delete(oldest);
        evicted.statement.finalize?.();
        evicted.numbers?.finalize?.();
      }
      this.#statements.set(text, cached);
    }
    return cached;
  }

  #run(text: string, params: readonly unknown[]): ExecuteResult {
    const { statement, inserts } = this.#prepare(text);
    const { changes, lastInsertRowid } = statement.run(...sqliteParams(params));
    const rowCount = Number(changes);
    return inserts && rowCount > 0 ? { rowCount, lastInsertId: exactInteger(lastInsertRowid) } : { rowCount };
  }

  /**
   * SQLite reports SQLITE_BUSY when another connection holds the write lock.
   * Its own busy handler would sleep the thread, and with it the event loop
   * that must run the lock holder's COMMIT, so the wait happens here instead:
   * asynchronously, with backoff, up to `busy_timeout`. A statement that got
   * SQLITE_BUSY made no change, so running it again is safe.
   */
  async #retryWhileBusy<T>(error: unknown, text: string, again: () => T): Promise<T> {
    let waited = 0;
    let delay = 1;
    for (;;) {
      if (!isBusy(error) || waited >= this.#busyTimeout) throw sqliteError(error, text);
      await new Promise((resolve) => setTimeout(resolve, delay));
      waited += delay;
      delay = Math.min(delay * 2, 25);
      try {
        return again();
      } catch (next) {
        error = next;
      }
    }
  }

  /** Runs a statement, waiting out another connection's write lock. */
  execute(text: string, params: readonly unknown[]): Promise<ExecuteResult> {
    try {
      return Promise.resolve(this.#run(text, params));
    } catch (error) {
      return this.#retryWhileBusy(error, text, () => this.#run(text, params));
    }
  }

  #runMany(text: string, paramSets: readonly (readonly unknown[])[]): ExecuteResult {
    const { statement, inserts } = this.#prepare(text);
    let rowCount = 0;
    let lastInsertId: number | bigint | undefined;
    for (const params of paramSets) {
      const result = statement.run(...sqliteParams(params));
      rowCount += Number(result.changes);
      lastInsertId = result.lastInsertRowid;
    }
    const result: ExecuteResult = { rowCount };
    if (inserts && rowCount > 0 && lastInsertId !== undefined) result.lastInsertId = exactInteger(lastInsertId);
    return result;
  }

  /** Runs one cached statement for every parameter set. */
  executeMany(text: string, paramSets: readonly (readonly unknown[])[]): Promise<ExecuteResult> {
    try {
      return Promise.resolve(this.#runMany(text, paramSets));
    } catch (error) {
      // Retrying is safe only when no set ran: executeMany always runs inside a transaction.
      return Promise.reject(sqliteError(error, text));
    }
  }

  /** Runs a cached statement's read, with integers as numbers where it can. */
  #read<T>(text: string, params: readonly unknown[], read: (statement: SyncStatement, params: unknown[]) => T): T {
    const cached = this.#prepare(text);
    const values = sqliteParams(params) as unknown[];
    if (cached.numbers === undefined) cached.numbers = this.#db.prepareNumbers!(text);
    if (cached.numbers !== null) {
      try {
        return read(cached.numbers, values);
      } catch (error) {
        if (!isTooLarge(error)) throw error;
      }
    }
    return read(cached.statement, values);
  }

  #all(text: string, params: readonly unknown[]): Row[] {
    const raw = this.#read(text, params, allRows);
    const rows = new Array<Row>(raw.length);
    for (let i = 0; i < raw.length; i++) rows[i] = toRow(raw[i]);
    return rows;
  }

  /** Returns every row as a plain object. */
  fetchAll(text: string, params: readonly unknown[]): Promise<Row[]> {
    try {
      return Promise.resolve(this.#all(text, params));
    } catch (error) {
      return this.#retryWhileBusy(error, text, () => this.#all(text, params));
    }
  }

  #one(text: string, params: readonly unknown[]): Row | undefined {
    const raw = this.#read(text, params, firstRow);
    return raw == null ? undefined : toRow(raw);
  }

  /** Returns the first row, or undefined. */
  fetchOne(text: string, params: readonly unknown[]): Promise<Row | undefined> {
    try {
      return Promise.resolve(this.#one(text, params));
    } catch (error) {
      return this.#retryWhileBusy(error, text, () => this.#one(text, params));
    }
  }

  /** Steps a statement of its own, `batchSize` rows at a time. */
  async *stream(
    text: string,
    params: readonly unknown[],
    batchSize: number,
    _placement: StreamPlacement,
  ): AsyncIterableIterator<Row[]> {
    // A statement of its own: a cached one could be reset by a query run inside the loop.
    let statement: SyncStatement;
    let rows: Iterator<unknown>;
    try {
      statement = this.#db.prepare(text);
      rows = statement.iterate(...sqliteParams(params));
    } catch (error) {
      throw sqliteError(error, text);
    }
    try {
      for (;;) {
        const batch: Row[] = [];
        try {
          while (batch.length < batchSize) {
            const next = rows.next();
            if (next.done) break;
            batch.push(toRow(next.value));
          }
        } catch (error) {
          throw sqliteError(error, text);
        }
        if (batch.length > 0) yield batch;
        if (batch.length < batchSize) return;
      }
    } finally {
      rows.return?.();
      statement.finalize?.();
    }
  }

  /** Finalises cached statements and closes the database. */
  close(): Promise<void> {
    try {
      for (const { statement, numbers } of this.#statements.values()) {
        statement.finalize?.();
        numbers?.finalize?.();
      }
      this.#statements.clear();
      this.#db.close();
    } catch {
      // Closing is best effort: the handle is gone either way.
    }
    return Promise.resolve();
  }
}

/** Opens a SQLite connection and applies the URL's settings. */
export async function openSqlite(open: SyncDatabaseOpener, url: DatabaseUrl): Promise<SqliteConnection> {
  if (url.options.worker === true) {
    // Drivers that support the option go through connectSqlite, which strips it in the thread.
    throw new ConfigError("this SQLite driver cannot run its connection in a worker thread (worker=true)");
  }
  const mode = (url.options.mode as string | undefined) ?? "rwc";
  const path = url.database;
  let db: SyncDatabase;
  try {
    db = open(path, { readOnly: mode === "ro", create: mode === "rwc" });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new ConnectionError(`could not open SQLite database "${path}": ${reason}`, {
      cause: error,
      code: sqliteError(error, "").code,
    });
  }
  const connection = new SqliteConnection(db, Number(url.options.busy_timeout ?? 5_000));
  const settings = [
    // Waiting for locks is done asynchronously by SqliteConnection, never by blocking the thread.
    "PRAGMA busy_timeout = 0",
    `PRAGMA foreign_keys = ${url.options.foreign_keys === false ? "OFF" : "ON"}`,
  ];
  if (!url.inMemory && mode !== "ro") {
    settings.push(`PRAGMA journal_mode = ${String(url.options.journal_mode ?? "wal").toUpperCase()}`);
  }
  try {
    for (const text of settings) await connection.execute(text, []);
  } catch (error) {
    await connection.close();
    const reason = error instanceof Error ? error.message : String(error);
    throw new ConnectionError(`could not set up SQLite database "${path}": ${reason}`, { cause: error });
  }
  return connection;
}

/**
 * Opens a SQLite connection for `driver`: in a Worker thread when the URL
 * says `worker=true` (the worker module is loaded only then), else here.
 */
export async function connectSqlite(
  driver: "node-sqlite" | "bun-sqlite",
  open: SyncDatabaseOpener,
  url: DatabaseUrl,
): Promise<DriverConnection> {
  if (url.options.worker !== true) return await openSqlite(open, url);
  const { openSqliteWorker } = await import("./sqlite_worker.ts");
  return await openSqliteWorker(driver, url);
}
