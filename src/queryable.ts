/**
 * The query methods shared by a {@linkcode Database}, a connection handle and
 * a transaction handle, so a function can take any of them.
 *
 * @module
 */
import { type Dialect, type DialectName, dialectOf } from "./dialect.ts";
import type { ExecuteResult, Row, Rows } from "./driver.ts";
import { ConfigError, QueryError } from "./errors.ts";
import { placeholderCount } from "./placeholders.ts";
import {
  isKeyset,
  type KeysetOptions,
  type KeysetPage,
  type Page,
  type PageOptions,
  readKeysetPage,
  readPage,
} from "./page.ts";
import { compileQuery, parameterCountError, type Query } from "./query.ts";
import type { CompiledQuery } from "./sql.ts";
import type { HeldConnection } from "./internal.ts";

/** Which result a query method wants: counts (`0`), all rows (`1`), the first row (`2`) or rows as arrays (`3`). */
export type QueryKind = 0 | 1 | 2 | 3;
/** `execute`: counts. */
export const EXECUTE: QueryKind = 0;
/** `fetchAll`: every row. */
export const FETCH_ALL: QueryKind = 1;
/** `fetchOne` / `fetchVal`: the first row. */
export const FETCH_ONE: QueryKind = 2;
/** `fetchRows` / `fetchRow`: rows as arrays, with the column names. */
export const FETCH_ROWS: QueryKind = 3;

/** Options of {@linkcode Queryable.iterate}. */
export interface IterateOptions {
  /**
   * Rows fetched per round trip on Postgres (at most 2^31 - 1, the
   * protocol's limit: a larger number reads as that). Default 100. MySQL sends the
   * whole result as one stream and SQLite steps in place: there, rows are
   * read at most 256 (MySQL) or 128 (SQLite) at a time whatever this says,
   * which keeps memory flat.
   */
  batchSize?: number;
}

/** A list of parameter sets for {@linkcode Queryable.executeMany}. */
export type ParameterSets = Iterable<readonly unknown[]>;

/**
 * Hands out a stream of batches row by row. Rows of a batch already read
 * come from memory, without a generator step per row; leaving the loop
 * early ends the batch stream, which gives its connection back.
 */
class RowStream<T> implements AsyncIterableIterator<T> {
  readonly #batches: AsyncIterator<Row[]>;
  #batch: Row[] = [];
  #next = 0;
  /** The read of the next batch, while one runs: calls made meanwhile wait their turn. */
  #reading: Promise<IteratorResult<T>> | undefined;

  constructor(batches: AsyncIterator<Row[]>) {
    this.#batches = batches;
  }

  next(): Promise<IteratorResult<T>> {
    if (this.#reading !== undefined) return this.#reading.then(() => this.next(), () => this.next());
    if (this.#next < this.#batch.length) return Promise.resolve({ value: this.#batch[this.#next++] as T, done: false });
    const reading = this.#read().finally(() => {
      if (this.#reading === reading) this.#reading = undefined;
    });
    this.#reading = reading;
    return reading;
  }

  async #read(): Promise<IteratorResult<T>> {
    for (;;) {
      const result = await this.#batches.next();
      if (result.done) return { value: undefined, done: true };
      if (result.value.length > 0) {
        this.#batch = result.value;
        this.#next = 1;
        return { value: result.value[0] as T, done: false };
      }
    }
  }

  async return(): Promise<IteratorResult<T>> {
    this.#batch = [];
    await this.#batches.return?.();
    return { value: undefined, done: true };
  }

  async throw(error?: unknown): Promise<IteratorResult<T>> {
    this.#batch = [];
    if (this.#batches.throw === undefined) throw error;
    await this.#batches.throw(error);
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}

// deno-lint-ignore require-yield
async function* failing(error: unknown): AsyncIterableIterator<never> {
  throw error;
}

function firstValue(row: Row | undefined): unknown {
  if (row !== undefined) { for (const key in row) return row[key]; }
  return undefined;
}

/** What a routed handle (a `Database`, a scope's handle) has, privately: a connection held where a read would go. */
interface HoldsReads {
  holdConnection?(first: boolean): Promise<HeldConnection | undefined>;
}

/**
 * Anything that runs queries: a {@linkcode Database}, a `Connection` handle
 * or a `Transaction` handle. Accept `Queryable` in your own functions to let
 * callers pass whichever they hold.
 *
 * @example
 * ```ts
 * import { type Queryable, sql } from "@roost/db";
 * async function countUsers(db: Queryable): Promise<number | undefined> {
 *   return await db.fetchVal<number>(sql`select count(*) from users`);
 * }
 * ```
 */
export abstract class Queryable {
  /** The SQL dialect this handle speaks. */
  readonly dialect: DialectName;
  readonly #dialectRules: Dialect;

  /** Sets the dialect; subclasses only. */
  protected constructor(dialect: DialectName) {
    this.#dialectRules = dialectOf(dialect);
    this.dialect = dialect;
  }

  /** Runs one compiled query where this handle runs queries. */
  protected abstract perform(kind: QueryKind, query: CompiledQuery): Promise<unknown>;
  /** Runs one statement for many parameter sets, atomically. */
  protected abstract performMany(text: string, paramSets: readonly (readonly unknown[])[]): Promise<ExecuteResult>;
  /** Streams a compiled query's rows, a batch at a time. */
  protected abstract stream(query: CompiledQuery, batchSize: number, arrays?: boolean): AsyncIterableIterator<Row[]>;

  /**
   * Compiles and runs one query. No extra async frame: a query's cost is the
   * driver's; a bad query or a closed handle rejects rather than throws.
   */
  #compileAndRun(kind: QueryKind, query: Query, params: readonly unknown[] | undefined): Promise<unknown> {
    try {
      return this.perform(kind, compileQuery(query, params, this.#dialectRules));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Runs a statement and returns how many rows it changed and, for an INSERT
   * where the dialect reports it, the last inserted id.
   *
   * @example
   * ```ts
   * import { Database, sql } from "@roost/db";
   * const db = new Database("sqlite::memory:");
   * await db.execute(sql`create table users (id integer primary key, name text)`);
   * const { rowCount, lastInsertId } = await db.execute(sql`insert into users (name) values (${"Ada"})`);
   * ```
   */
  execute(query: Query, params?: readonly unknown[]): Promise<ExecuteResult> {
    return this.#compileAndRun(EXECUTE, query, params) as Promise<ExecuteResult>;
  }

  /**
   * Runs one statement for many parameter sets: prepared once, run in one
   * transaction when none is open (all rows or none), never a round trip per
   * row where the driver can batch. In an `sql` template the values only mark
   * the parameter positions; each set supplies the real values.
   *
   * @example
   * ```ts
   * import { Database, sql } from "@roost/db";
   * const db = new Database("sqlite::memory:");
   * await db.execute(sql`create table users (name text, age integer)`);
   * await db.executeMany(sql`insert into users (name, age) values (${0}, ${1})`, [["Ada", 36], ["Alan", 41]]);
   * ```
   */
  async executeMany(query: Query, paramSets: ParameterSets): Promise<ExecuteResult> {
    // A string's placeholders say how many values each set needs; a template's values only mark positions.
    const compiled = typeof query === "string" ? undefined : compileQuery(query, undefined, this.#dialectRules);
    const text = compiled?.text ?? query as string;
    const expected = compiled?.params.length ?? placeholderCount(text, this.dialect);
    const sets = Array.isArray(paramSets) ? paramSets as readonly (readonly unknown[])[] : Array.from(paramSets ?? []);
    for (let i = 0; i < sets.length; i++) {
      const set = sets[i];
      if (!Array.isArray(set)) {
        throw new QueryError(`parameter set ${i + 1} is not an array`, { code: "ROOST_INVALID_PARAMETER" });
      }
      if (set.length !== expected) throw parameterCountError(text, expected, set.length, i + 1);
    }
    if (sets.length === 0) return { rowCount: 0 };
    return await this.performMany(text, sets);
  }

  /**
   * Runs a query and returns all its rows as plain objects.
   *
   * @example
   * ```ts
   * import { Database, sql } from "@roost/db";
   * const db = new Database("sqlite::memory:");
   * const rows = await db.fetchAll<{ n: number }>(sql`select 1 as n union all select 2`);
   * ```
   */
  fetchAll<T = Row>(query: Query, params?: readonly unknown[]): Promise<T[]> {
    return this.#compileAndRun(FETCH_ALL, query, params) as Promise<T[]>;
  }

  /**
   * Runs a query and returns its first row, or `undefined` when it has none.
   *
   * @example
   * ```ts
   * import { Database, sql } from "@roost/db";
   * const db = new Database("sqlite::memory:");
   * const row = await db.fetchOne<{ n: number }>(sql`select ${42} as n`);
   * ```
   */
  fetchOne<T = Row>(query: Query, params?: readonly unknown[]): Promise<T | undefined> {
    return this.#compileAndRun(FETCH_ONE, query, params) as Promise<T | undefined>;
  }

  /**
   * Runs a query and returns the first column of its first row, or
   * `undefined` when it has no row.
   *
   * @example
   * ```ts
   * import { Database, sql } from "@roost/db";
   * const db = new Database("sqlite::memory:");
   * const answer = await db.fetchVal<number>(sql`select ${42}`);
   * ```
   */
  async fetchVal<T = unknown>(query: Query, params?: readonly unknown[]): Promise<T | undefined> {
    return firstValue(await this.#compileAndRun(FETCH_ONE, query, params) as Row) as T | undefined;
  }

  /**
   * Reads one page of a query's rows. With `page` and `pageSize` it returns a
   * numbered {@linkcode Page} with the result's totals (one round trip on
   * Postgres and SQLite; on MySQL a second one counts, unless the page shows
   * where the result ends). With `orderBy` it returns a {@linkcode KeysetPage}
   * of the rows after the cursor `after`: no count, and as fast on page 10,000
   * as on page 1. `page` or `pageSize` below 1 is a `ConfigError`.
   *
   * @example
   * ```ts
   * import { Database, sql } from "@roost/db";
   * const db = new Database("sqlite::memory:");
   * const page = await db.paginate<{ n: number }>(sql`select 1 as n union all select 2 order by n`, {
   *   page: 1,
   *   pageSize: 1,
   * });
   * console.log(page.items, page.totalPages, page.hasNext); // [{ n: 1 }] 2 true
   * const first = await db.paginate(sql`select 1 as id union all select 2`, { pageSize: 1, orderBy: "id" });
   * const second = await db.paginate(sql`select 1 as id union all select 2`, {
   *   pageSize: 1,
   *   orderBy: "id",
   *   after: first.nextCursor,
   * });
   * ```
   */
  paginate<T = Row>(query: Query, options: PageOptions): Promise<Page<T>>;
  /** Reads the keyset page after `options.after`, ordered by `options.orderBy`. */
  paginate<T = Row>(query: Query, options: KeysetOptions): Promise<KeysetPage<T>>;
  async paginate<T = Row>(query: Query, options: PageOptions | KeysetOptions): Promise<Page<T> | KeysetPage<T>> {
    const keyset = isKeyset(options);
    const compiled = compileQuery(query, options.params, this.#dialectRules);
    if (keyset) {
      const read = (paged: CompiledQuery) => this.perform(FETCH_ALL, paged) as Promise<Row[]>;
      return await readKeysetPage<T>(read, compiled, options, this.#dialectRules);
    }
    // MySQL may count in a second query: both run on one connection held where the read goes (a routed handle holds
    // one; a held connection's handle is one), or a replica taken in turn could give a total that disagrees.
    const held = this.dialect === "mysql" ? await (this as unknown as HoldsReads).holdConnection?.(true) : undefined;
    if (held === undefined) {
      const read = (paged: CompiledQuery) => this.perform(FETCH_ALL, paged) as Promise<Row[]>;
      return await readPage<T>(read, compiled, options, this.#dialectRules);
    }
    try {
      const read = (paged: CompiledQuery) => held.connection.fetchAll(paged.text, paged.params);
      return await readPage<T>(read, compiled, options, this.#dialectRules);
    } finally {
      await held.release();
    }
  }

  /**
   * Streams a query's rows: they are fetched in batches as the loop asks for
   * them, never all loaded first. Leaving the loop early frees the
   * connection. Querying the same database inside the loop is safe.
   *
   * @example
   * ```ts
   * import { Database, sql } from "@roost/db";
   * const db = new Database("sqlite::memory:");
   * for await (const row of db.iterate<{ n: number }>(sql`select 1 as n`)) {
   *   console.log(row.n);
   * }
   * ```
   */
  iterate<T = Row>(query: Query, params?: readonly unknown[], options: IterateOptions = {}): AsyncIterableIterator<T> {
    try {
      const batchSize = options.batchSize ?? 100;
      if (!Number.isInteger(batchSize) || batchSize < 1) throw new ConfigError("batchSize must be a positive integer");
      return new RowStream<T>(this.stream(compileQuery(query, params, this.#dialectRules), batchSize));
    } catch (error) {
      return failing(error);
    }
  }

  /**
   * Runs a query and returns its rows as arrays of values in column order,
   * with the column names: `{ columns, rows }`. Values are those `fetchAll`
   * returns; unlike objects, arrays keep every value of a repeated column
   * name and the order of integer-like names.
   *
   * @example
   * ```ts
   * import { Database, sql } from "@roost/db";
   * const db = new Database("sqlite::memory:");
   * const { columns, rows } = await db.fetchRows<[number, string]>(sql`select 1 as id, 'Ada' as name`);
   * console.log(columns, rows); // ["id", "name"] [[1, "Ada"]]
   * ```
   */
  fetchRows<T extends readonly unknown[] = unknown[]>(query: Query, params?: readonly unknown[]): Promise<Rows<T>> {
    return this.#compileAndRun(FETCH_ROWS, query, params) as Promise<Rows<T>>;
  }

  /**
   * Runs a query and returns its first row as an array of values in column
   * order, or `undefined` when it has none (`fetchOne`'s array form).
   *
   * @example
   * ```ts
   * import { Database, sql } from "@roost/db";
   * const db = new Database("sqlite::memory:");
   * const row = await db.fetchRow<[number, number]>(sql`select 1 as a, 2 as a`); // [1, 2]
   * ```
   */
  async fetchRow<T extends readonly unknown[] = unknown[]>(
    query: Query,
    params?: readonly unknown[],
  ): Promise<T | undefined> {
    return (await this.#compileAndRun(FETCH_ROWS, query, params) as Rows<T>).rows[0];
  }

  /**
   * Streams a query's rows as arrays of values in column order
   * (`iterate`'s array form): fetched in batches as the loop asks, the same
   * connection rules as `iterate`.
   *
   * @example
   * ```ts
   * import { Database, sql } from "@roost/db";
   * const db = new Database("sqlite::memory:");
   * for await (const [n] of db.iterateRows<[number]>(sql`select 1 as n`)) console.log(n);
   * ```
   */
  iterateRows<T extends readonly unknown[] = unknown[]>(
    query: Query,
    params?: readonly unknown[],
    options: IterateOptions = {},
  ): AsyncIterableIterator<T> {
    try {
      const batchSize = options.batchSize ?? 100;
      if (!Number.isInteger(batchSize) || batchSize < 1) throw new ConfigError("batchSize must be a positive integer");
      return new RowStream<T>(this.stream(compileQuery(query, params, this.#dialectRules), batchSize, true));
    } catch (error) {
      return failing(error);
    }
  }
}
