/**
 * The small interface between Roost's core and a database driver. One file
 * per driver implements it under `src/drivers/`.
 *
 * @module
 */
import type { DialectName } from "./dialect.ts";
import type { DatabaseUrl } from "./url.ts";

/** A result row: column name to value. */
export type Row = Record<string, unknown>;

/**
 * A result's rows as arrays, in column order, with its column names: what
 * `fetchRows` returns. Unlike objects, arrays keep a repeated column name's
 * every value and the order of integer-like names (`select 1 as "2"`).
 */
export interface Rows<T extends readonly unknown[] = unknown[]> {
  /** The result's column names, in order (empty where a driver gives none for an empty result). */
  columns: string[];
  /** The rows, each an array of its columns' values. */
  rows: T[];
}

/** What `execute` and `executeMany` return. */
export interface ExecuteResult {
  /** Rows inserted, updated or deleted. */
  rowCount: number;
  /** The id of the last inserted row, where the dialect reports one. */
  lastInsertId?: number | bigint;
}

/**
 * Where a stream runs: `"own"`, on a connection nothing else uses until it
 * ends; `"shared"`, on a scope's connection that other queries may use
 * between batches; `"shared-transaction"`, the same inside an open
 * transaction. Drivers whose native cursors block their connection use a
 * cursor the server keeps (DECLARE/FETCH) when the connection is shared.
 */
export type StreamPlacement = "own" | "shared" | "shared-transaction";

/**
 * One open connection. The core never calls two methods of a connection at
 * once: a connection serves one scope or one query at a time, and a stream's
 * batches are fetched between other calls only when the driver says
 * {@linkcode Driver.interleavedStreams}.
 *
 * Methods throw `QueryError` for errors the connection survives and
 * `ConnectionError` for errors that leave it unusable (the pool evicts it).
 */
export interface DriverConnection {
  /** Runs a statement; returns counts, not rows. */
  execute(text: string, params: readonly unknown[]): Promise<ExecuteResult>;
  /**
   * True when `executeMany` is atomic by itself (D1 runs a batch in one
   * implicit transaction): the core then sends it without BEGIN/COMMIT
   * around it.
   */
  readonly atomicBatches?: boolean;
  /** Runs one statement for many parameter sets, preparing it once. */
  executeMany(text: string, paramSets: readonly (readonly unknown[])[]): Promise<ExecuteResult>;
  /** Runs a query and returns all its rows. */
  fetchAll(text: string, params: readonly unknown[]): Promise<Row[]>;
  /** Runs a query and returns its first row. */
  fetchOne(text: string, params: readonly unknown[]): Promise<Row | undefined>;
  /** Runs a query and returns its rows as arrays, with the column names; values as `fetchAll` gives them. */
  fetchRows(text: string, params: readonly unknown[]): Promise<Rows>;
  /**
   * Runs one statement synchronously where the driver can (SQLite): returns
   * what `execute` (kind 0), `fetchAll` (1), `fetchOne` (2) or `fetchRows`
   * (3) would resolve to, or a promise of it when the statement has to wait (a lock) or
   * failed; never throws. The executor then gives the connection back at
   * once, and the caller's promise settles a step sooner.
   */
  runNow?(kind: 0 | 1 | 2 | 3, text: string, params: readonly unknown[]): unknown;
  /**
   * Streams a query's rows in batches; `return()` stops it early and frees
   * its resources. With `arrays`, each row is an array of its values in
   * column order (typed `Row` only so the core passes it on unchanged).
   */
  stream(
    text: string,
    params: readonly unknown[],
    batchSize: number,
    placement: StreamPlacement,
    arrays?: boolean,
  ): AsyncIterableIterator<Row[]>;
  /**
   * True once the connection knows it is unusable (its socket failed while
   * idle, or a stream was abandoned mid-result): the pool closes it instead
   * of handing it out again.
   */
  readonly broken?: boolean;
  /**
   * The server's id of this connection's session (a Postgres backend's pid).
   * After cutting the connection off with `destroy`, the core ends the
   * session from another connection, so its statements stop on the server too.
   */
  readonly backendId?: number;
  /**
   * Told by the core once it has set the session's statement timeout. A
   * driver whose native cursor keeps one statement timer running for a whole
   * stream (postgres.js) then streams through DECLARE/FETCH, so the timeout
   * bounds each batch and not the consumer's pace.
   */
  timeoutSet?(): void;
  /**
   * True when the connection notices that the server closed it only when it
   * next runs a statement (deno-postgres reads its socket only then): the
   * pool pings it before every reuse, and pings idle ones in the background
   * while it keeps `min` connections.
   */
  readonly unwatched?: boolean;
  /** Checks that the connection still works (used before reusing a long-idle one). */
  ping?(): Promise<void>;
  /** Closes the connection; never throws. */
  close(): Promise<void>;
  /**
   * Closes the connection at once, cutting off a statement in flight (the
   * pool's forced close, or the end of a context, uses it); never throws.
   * Without it, `close()` is used.
   */
  destroy?(): Promise<void>;
}

/** A database driver: how to open connections for one dialect. */
export interface Driver {
  /** The driver's name, as the `driver` option spells it. */
  readonly name: string;
  /** The dialect it speaks. */
  readonly dialect: DialectName;
  /**
   * True when a connection may run other statements while one of its streams
   * is open (SQLite). The pool then lends a streaming connection to queries
   * that would otherwise wait for it, so a query inside `for await` of
   * `iterate` cannot deadlock even on a pool of one.
   */
  readonly interleavedStreams: boolean;
  /**
   * True when a connection takes further statements while one runs and
   * answers them in order (postgres.js pipelines them; a SQLite connection
   * runs each statement whole, synchronously). Single statements
   * outside any scope then share busy connections instead of waiting for a
   * free one, as the driver's own pool does.
   */
  readonly pipelines?: boolean;
  /**
   * Where the database has no interactive transactions (D1): the error
   * `db.transaction()` and `begin()` throw before a connection is taken, so
   * a fresh one inside a held connection is refused at once instead of
   * waiting for a pool of one.
   */
  readonly noTransactions?: () => Error;
  /**
   * True when the driver's one connection is the database itself (PGlite):
   * it is never replaced, so a session setting changed on it stays (see
   * `Dialect.changesSession`).
   */
  readonly keepsItsSession?: boolean;
  /**
   * Opens a connection. Throws `ConnectionError` when it cannot. When
   * `signal` aborts (the pool is closing), a connect still under way is
   * given up: whatever it opened (a socket to a server that has not
   * answered yet) is closed now, not at `connect_timeout`, and the promise
   * rejects (with any error: the pool reports a `ClosedError`).
   */
  connect(url: DatabaseUrl, signal?: AbortSignal): Promise<DriverConnection>;
}
