/**
 * The SQLite connection shared by the `node:sqlite` and `bun:sqlite` drivers,
 * which expose the same synchronous statement API: statements prepared once
 * and cached per connection, JavaScript values converted to what SQLite
 * stores, integers returned exactly, errors translated.
 *
 * @module
 */
import type { DriverConnection, ExecuteResult, Row, Rows, StreamPlacement } from "../../driver.ts";
import { exactInteger } from "../shared/values.ts";
import { allWith, getWith, runWith } from "./arguments.ts";
import { isBusy, sqliteError } from "./errors.ts";
import { rowOf, sqliteParams, toRow } from "./values.ts";

/** The statement API both runtimes' SQLite modules offer. */
export interface SyncStatement {
  run(...params: unknown[]): { changes: number | bigint; lastInsertRowid: number | bigint };
  all(...params: unknown[]): unknown[];
  get(...params: unknown[]): unknown;
  iterate(...params: unknown[]): Iterator<unknown>;
  finalize?(): void;
}

/**
 * A SELECT's reads returning finished rows (see `SyncDatabase.prepareNumbers`),
 * given the bound values as one array (spread once, into the runtime's call).
 */
export interface RowReader {
  all(values: readonly unknown[]): unknown[];
  get(values: readonly unknown[]): unknown;
  finalize?(): void;
}

/**
 * A statement reading rows as arrays of values in column order, integers as
 * `bigint` (or as numbers where the runtime reads small ones so), given the
 * bound values as one array.
 */
export interface ArrayStatement {
  all(values: readonly unknown[]): unknown[][];
  iterate(values: readonly unknown[]): Iterator<unknown[]>;
  /** The result's column names, in order. */
  columns(): string[];
  finalize?(): void;
}

/** The database API both runtimes' SQLite modules offer. */
export interface SyncDatabase {
  /** Prepares a statement that reads integers as `bigint`. */
  prepare(text: string): SyncStatement;
  /**
   * Prepares a SELECT whose reads (`get`, `all`) return finished rows: plain
   * objects with integers as numbers, needing no conversion, or a
   * `RangeError` with code `ERR_OUT_OF_RANGE` for an integer a number cannot
   * hold exactly (the read then runs again on `prepare`'s statement). Left
   * out where the runtime offers no such reads.
   */
  prepareNumbers?(text: string): RowReader;
  /** Prepares a statement reading rows as arrays (`fetchRows`, `iterateRows`). */
  prepareArrays(text: string): ArrayStatement;
  /**
   * True where `prepareArrays`' statements step their rows one at a time
   * rather than read them whole: `stream` then reads its objects through them
   * too (see `streamStep`).
   */
  readonly streamsArrays?: boolean;
  exec(text: string): void;
  close(): void;
}

/** How a runtime opens its SQLite database. */
export interface SyncDatabaseOpener {
  (path: string, options: { readOnly: boolean; create: boolean }): SyncDatabase;
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
  numbers: RowReader | null | undefined;
  /** The statement reading arrays, set at its first `fetchRows` (absent until then). */
  arrays?: ArrayStatement;
}

/** A node:sqlite integer beyond Number.MAX_SAFE_INTEGER read as a number. */
function isTooLarge(error: unknown): boolean {
  return error instanceof RangeError && (error as { code?: unknown }).code === "ERR_OUT_OF_RANGE";
}

/** How a SELECT is read: from its statement of finished rows, or from its bigint statement (rows to convert). */
interface Read<T> {
  finished(reader: RowReader, values: readonly unknown[]): T;
  raw(statement: SyncStatement, values: readonly unknown[]): T;
}

const readAll: Read<Row[]> = {
  finished: (reader, values) => reader.all(values) as Row[],
  raw(statement, values) {
    const raw = allWith(statement, values);
    const rows = new Array<Row>(raw.length);
    for (let i = 0; i < raw.length; i++) rows[i] = toRow(raw[i]);
    return rows;
  },
};

const readOne: Read<Row | undefined> = {
  finished: (reader, values) => (reader.get(values) ?? undefined) as Row | undefined,
  raw(statement, values) {
    const raw = getWith(statement, values);
    return raw == null ? undefined : toRow(raw);
  },
};

/** An array row with integers returned exactly, converted in place. */
function exactValues(row: unknown[]): unknown[] {
  for (let i = 0; i < row.length; i++) {
    const value = row[i];
    if (typeof value === "bigint") row[i] = exactInteger(value);
  }
  return row;
}

const statementCacheSize = 256;
/**
 * The most rows a stream steps at once, whatever its `batchSize`. The rows of
 * a step are all alive together, and the more survive each of V8's young
 * collections, the larger it grows its young generation: a million rows in
 * steps of 1,000 raised resident memory by about 54 MiB on Node and 78 MiB on
 * Deno, in steps of 128 by about 39 and 52 MiB.
 *
 * Where the runtime steps arrays (`SyncDatabase.streamsArrays`), a stream of
 * objects steps arrays too and builds each row from the column names: each
 * row object node:sqlite builds costs about 72 bytes allocated straight in
 * V8's old generation, garbage that only a full collection frees. On Node
 * 24.21, whose array rows cost none there, a million rows went from about +41
 * to +8 MiB and ran about 45% faster. Deno 2.9.5's iterator allocates about
 * 136 bytes a row there whatever the row's form, so there the rise stays where
 * V8's collections leave it (+47 to +61 MiB, as before); it ran -1% to +26%
 * faster in three sets of runs.
 */
const streamStep = 128;
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
        evicted.arrays?.finalize?.();
      }
      this.#statements.set(text, cached);
    }
    return cached;
  }

  #run(text: string, params: readonly unknown[]): ExecuteResult {
    const { statement, inserts } = this.#prepare(text);
    const { changes, lastInsertRowid } = runWith(statement, sqliteParams(params));
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
    const result = this.runNow(0, text, params);
    return result instanceof Promise ? result : Promise.resolve(result as ExecuteResult);
  }

  #runMany(text: string, paramSets: readonly (readonly unknown[])[]): ExecuteResult {
    const { statement, inserts } = this.#prepare(text);
    let rowCount = 0;
    let lastInsertId: number | bigint | undefined;
    for (const params of paramSets) {
      const result = runWith(statement, sqliteParams(params));
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

  /**
   * Runs a cached SELECT's read: through its statement of finished rows where
   * there is one, again through its bigint statement when an integer was too
   * large for a number (or where there is none).
   */
  #read<T>(text: string, params: readonly unknown[], read: Read<T>): T {
    const cached = this.#prepare(text);
    const values = sqliteParams(params);
    const numbers = cached.numbers === undefined ? cached.numbers = this.#db.prepareNumbers!(text) : cached.numbers;
    if (numbers !== null) {
      try {
        return read.finished(numbers, values);
      } catch (error) {
        if (!isTooLarge(error)) throw error;
      }
    }
    return read.raw(cached.statement, values);
  }

  /** Reads a cached statement's rows as arrays, with its column names. */
  #rows(text: string, params: readonly unknown[]): Rows {
    const cached = this.#prepare(text);
    const statement = cached.arrays ??= this.#db.prepareArrays(text);
    const rows = statement.all(sqliteParams(params));
    for (let i = 0; i < rows.length; i++) exactValues(rows[i]);
    return { columns: statement.columns(), rows };
  }

  /** Runs one statement now: `execute`'s (kind 0), `fetchAll`'s (1), `fetchOne`'s (2) or `fetchRows`'s (3) work. */
  #runKind(kind: 0 | 1 | 2 | 3, text: string, params: readonly unknown[]): unknown {
    if (kind === 0) return this.#run(text, params);
    return kind === 1
      ? this.#read(text, params, readAll)
      : kind === 2
      ? this.#read(text, params, readOne)
      : this.#rows(text, params);
  }

  /**
   * Runs a statement at once (the executor's synchronous path): what
   * `execute` (kind 0), `fetchAll` (1) or `fetchOne` (2) resolves to, or a
   * promise of it when the statement must wait out another connection's
   * write lock or failed.
   */
  runNow(kind: 0 | 1 | 2 | 3, text: string, params: readonly unknown[]): unknown {
    try {
      return this.#runKind(kind, text, params);
    } catch (error) {
      return this.#retryWhileBusy(error, text, () => this.#runKind(kind, text, params));
    }
  }

  /** Returns every row as a plain object. */
  fetchAll(text: string, params: readonly unknown[]): Promise<Row[]> {
    const result = this.runNow(1, text, params);
    return result instanceof Promise ? result : Promise.resolve(result as Row[]);
  }

  /** Returns the first row, or undefined. */
  fetchOne(text: string, params: readonly unknown[]): Promise<Row | undefined> {
    const result = this.runNow(2, text, params);
    return result instanceof Promise ? result : Promise.resolve(result as Row | undefined);
  }

  /** Returns every row as an array, with the column names. */
  fetchRows(text: string, params: readonly unknown[]): Promise<Rows> {
    const result = this.runNow(3, text, params);
    return result instanceof Promise ? result : Promise.resolve(result as Rows);
  }

  /** Steps a statement of its own, `batchSize` rows at a time (as arrays with `arrays`). */
  async *stream(
    text: string,
    params: readonly unknown[],
    batchSize: number,
    _placement: StreamPlacement,
    arrays?: boolean,
  ): AsyncIterableIterator<Row[]> {
    if (arrays || this.#db.streamsArrays === true) return yield* this.#arrayStream(text, params, batchSize, arrays);
    // A statement of its own: a cached one could be reset by a query run inside the loop.
    let statement: SyncStatement;
    let rows: Iterator<unknown>;
    try {
      statement = this.#db.prepare(text);
      rows = statement.iterate(...sqliteParams(params));
    } catch (error) {
      throw sqliteError(error, text);
    }
    // At most `streamStep` rows a step, whatever `batchSize`: fewer rows alive at once (see `streamStep`).
    const step = Math.min(batchSize, streamStep);
    try {
      for (;;) {
        const batch: Row[] = [];
        try {
          while (batch.length < step) {
            const next = rows.next();
            if (next.done) break;
            batch.push(toRow(next.value));
          }
        } catch (error) {
          throw sqliteError(error, text);
        }
        if (batch.length > 0) yield batch;
        if (batch.length < step) return;
      }
    } finally {
      rows.return?.();
      statement.finalize?.();
    }
  }

  /**
   * `stream` on a statement of its own reading arrays: the arrays themselves
   * (`arrays`), or objects built from them and the column names.
   */
  async *#arrayStream(
    text: string,
    params: readonly unknown[],
    batchSize: number,
    arrays?: boolean,
  ): AsyncIterableIterator<Row[]> {
    let statement: ArrayStatement;
    let rows: Iterator<unknown[]>;
    // Objects' column names, read after the first step: SQLite recompiles a statement (a schema change) only there.
    let names: string[] | undefined;
    try {
      statement = this.#db.prepareArrays(text);
      rows = statement.iterate(sqliteParams(params));
    } catch (error) {
      throw sqliteError(error, text);
    }
    const step = Math.min(batchSize, streamStep);
    try {
      for (;;) {
        const batch: unknown[] = [];
        try {
          while (batch.length < step) {
            const next = rows.next();
            if (next.done) break;
            if (arrays) batch.push(exactValues(next.value));
            else batch.push(rowOf(names ??= statement.columns(), exactValues(next.value)));
          }
        } catch (error) {
          throw sqliteError(error, text);
        }
        if (batch.length > 0) yield batch as unknown as Row[];
        if (batch.length < step) return;
      }
    } finally {
      rows.return?.();
      statement.finalize?.();
    }
  }

  /** Finalises cached statements and closes the database. */
  close(): Promise<void> {
    try {
      for (const { statement, numbers, arrays } of this.#statements.values()) {
        statement.finalize?.();
        numbers?.finalize?.();
        arrays?.finalize?.();
      }
      this.#statements.clear();
      this.#db.close();
    } catch {
      // Closing is best effort: the handle is gone either way.
    }
    return Promise.resolve();
  }
}
