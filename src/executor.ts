/**
 * Runs statements: the one place where a statement goes to a driver
 * connection, is reported to the `onQuery` hook and, when it fails, has its
 * parameters redacted from the error (or attached, with `debugParameters`).
 * A statement outside a held connection also takes its connection from the
 * target's pool here and gives it back.
 *
 * @module
 */
import type { Driver, DriverConnection, Row } from "./driver.ts";
import { ConnectionError, withParameters } from "./errors.ts";
import type { Pool, PooledConnection } from "./pool.ts";
import type { QueryEvent, QueryHook } from "./query_event.ts";
import { EXECUTE, FETCH_ALL, FETCH_ONE, type QueryKind } from "./queryable.ts";
import { ReleasableStream } from "./releasable_stream.ts";
import type { Target } from "./server.ts";
import type { CompiledQuery } from "./sql.ts";

/** The query method each result kind stands for, by kind (`fetchVal` reports as `fetchOne`). */
export const methodOf: readonly ("execute" | "fetchAll" | "fetchOne" | "fetchRows")[] = [
  "execute",
  "fetchAll",
  "fetchOne",
  "fetchRows",
];

/** Sends a compiled statement to a driver connection, asking for one kind of result. */
export function runStatement(connection: DriverConnection, kind: QueryKind, query: CompiledQuery): Promise<unknown> {
  switch (kind) {
    case EXECUTE:
      return connection.execute(query.text, query.params);
    case FETCH_ALL:
      return connection.fetchAll(query.text, query.params);
    case FETCH_ONE:
      return connection.fetchOne(query.text, query.params);
    default:
      return connection.fetchRows(query.text, query.params);
  }
}

/** Runs, reports and redacts the statements of one database, with its driver's capabilities. */
export class Executor {
  readonly #onQuery: QueryHook | undefined;
  /** Whether errors and events carry query parameters (`debugParameters`). */
  readonly debug: boolean;
  readonly #assertOpen: () => void;
  /** Set once the database closes: statements then take the slow path, which says so. */
  #closed = false;
  /** The driver, once loaded: whether it pipelines (shares connections) and interleaves streams. */
  driver: Driver | undefined;
  /** False when a server of the instance is behind a transaction pooler: no statement joins a busy connection there. */
  shares = true;
  /**
   * The dialect's test for a statement that changes its session's settings
   * (`Dialect.changesSession`), once the driver is loaded and can replace
   * its connections; a connection such a statement ran on is closed when
   * given back.
   */
  changesSession: ((text: string) => boolean) | undefined;
  /** True when the last connection taken at once ran its statement synchronously (`runNow`): the next is taken so. */
  #sync = false;

  /**
   * An executor reporting to `onQuery` (if any), with parameters in errors
   * and events when `debug`; `assertOpen` throws once the database is closing.
   */
  constructor(onQuery: QueryHook | undefined, debug: boolean, assertOpen: () => void) {
    this.#onQuery = onQuery;
    this.debug = debug;
    this.#assertOpen = assertOpen;
  }

  /** True when an `onQuery` hook is told about statements (synchronous paths then step aside). */
  get observed(): boolean {
    return this.#onQuery !== undefined;
  }

  /** When a statement starts, for its reported duration (0 when nobody is told). */
  start(): number {
    return this.#onQuery ? performance.now() : 0;
  }

  /** Stops the fast path: from now on every statement asks whether the database is open. */
  close(): void {
    this.#closed = true;
  }

  /** Tells the hook (if any) about a statement that ran on `target`; a hook that throws is ignored. */
  report(target: Target, method: QueryEvent["method"], query: CompiledQuery, started: number, error?: unknown): void {
    const hook = this.#onQuery;
    if (hook === undefined) return;
    const { role, index, url } = target.server;
    const event: QueryEvent = {
      served: role,
      ...(role === "replica" ? { replica: index } : {}),
      url,
      reason: target.reason,
      method,
      sql: query.text,
      ...(this.debug ? { parameters: query.params } : {}),
      duration: performance.now() - started,
      ...(error === undefined ? {} : { error }),
    };
    try {
      hook(event);
    } catch {
      // Ignored, as documented.
    }
  }

  /** The error a failed statement rejects with: its parameters redacted (or attached), reported to the hook. */
  failed(
    target: Target,
    method: QueryEvent["method"],
    query: CompiledQuery,
    started: number,
    caught: unknown,
  ): unknown {
    const error = withParameters(caught, query.params, this.debug);
    this.report(target, method, query, started, error);
    return error;
  }

  /**
   * Runs one statement on a connection of `pool` (the target's, or its
   * context's): an idle one is used at once, without waiting on the pool;
   * it goes back when the statement ends, destroyed if it broke.
   */
  run(pool: Pool<DriverConnection>, target: Target, kind: QueryKind, query: CompiledQuery): Promise<unknown> {
    if (this.#onQuery !== undefined || this.#closed) return this.#run(pool, target, kind, query, undefined);
    const item = this.shares && this.driver?.pipelines === true
      ? pool.takeShared(this.#sync)
      : pool.takeReady(this.#sync);
    if (item === undefined) return this.#run(pool, target, kind, query, undefined);
    if (this.changesSession?.(query.text)) item.sessionChanged = true;
    this.#sync = item.connection.runNow !== undefined;
    if (!this.#sync) {
      // No async frame of its own: one promise and one await fewer per statement than #run.
      let running: Promise<unknown>;
      try {
        running = runStatement(item.connection, kind, query);
      } catch (error) {
        running = Promise.reject(error);
      }
      return running.then((result) => {
        pool.release(item);
        return result;
      }, (caught: unknown) => {
        pool.release(item, caught instanceof ConnectionError);
        throw this.failed(target, methodOf[kind], query, 0, caught);
      });
    }
    // A synchronous driver: the statement has run when runNow returns, so the connection goes back at once.
    const result = item.connection.runNow!(kind, query.text, query.params);
    if (result instanceof Promise) return this.#run(pool, target, kind, query, item, result);
    pool.releaseNow(item);
    return Promise.resolve(result);
  }

  /**
   * Runs a statement on `taken` (a connection taken at once) or one acquired
   * from `pool`; `running` is its result when it already started on `taken`
   * (a synchronous run that has to wait, or failed).
   */
  async #run(
    pool: Pool<DriverConnection>,
    target: Target,
    kind: QueryKind,
    query: CompiledQuery,
    taken: PooledConnection<DriverConnection> | undefined,
    running?: Promise<unknown>,
  ): Promise<unknown> {
    const observed = this.#onQuery !== undefined;
    const started = this.start();
    const shares = this.shares && this.driver?.pipelines === true;
    const item = taken ?? await this.#acquire(pool, target, methodOf[kind], query, started, shares);
    if (taken === undefined && this.changesSession?.(query.text)) item.sessionChanged = true;
    let broken = false;
    try {
      const result = await (running ?? runStatement(item.connection, kind, query));
      if (observed) this.report(target, methodOf[kind], query, started);
      return result;
    } catch (caught) {
      broken = caught instanceof ConnectionError;
      throw this.failed(target, methodOf[kind], query, started, caught);
    } finally {
      pool.release(item, broken);
    }
  }

  /** Takes a connection of `pool`; a failure is reported to the hook. */
  #acquire(
    pool: Pool<DriverConnection>,
    target: Target,
    method: QueryEvent["method"],
    query: CompiledQuery,
    started: number,
    shares = false,
  ): Promise<PooledConnection<DriverConnection>> {
    this.#assertOpen();
    const acquiring = pool.acquire(shares);
    if (this.#onQuery === undefined) return acquiring;
    return acquiring.catch((error: unknown) => {
      this.report(target, method, query, started, error);
      throw error;
    });
  }

  /**
   * Streams a statement's rows on a connection of `pool`, held only while
   * it streams. Meanwhile a statement that finds the pool exhausted borrows
   * it (SQLite), or the stream reads the rest of its result and gives it
   * back (Postgres, MySQL): querying inside the loop cannot deadlock.
   */
  async *stream(
    pool: Pool<DriverConnection>,
    target: Target,
    query: CompiledQuery,
    batchSize: number,
    arrays?: boolean,
  ): AsyncIterableIterator<Row[]> {
    const started = this.start();
    const item = await this.#acquire(pool, target, "iterate", query, started);
    if (this.changesSession?.(query.text)) item.sessionChanged = true;
    let released = false;
    const release = (error: unknown) => {
      if (released) return;
      released = true;
      pool.unlend(item);
      pool.release(item, error instanceof ConnectionError);
    };
    const source = item.connection.stream(query.text, query.params, batchSize, "own", arrays);
    let batches: AsyncIterable<Row[]> = source;
    if (this.driver?.interleavedStreams === true) pool.lend(item);
    else {
      const releasable = new ReleasableStream(source, release);
      batches = releasable.batches();
      pool.lend(item, releasable.giveBack);
    }
    try {
      yield* batches;
      this.report(target, "iterate", query, started);
    } catch (caught) {
      const error = this.failed(target, "iterate", query, started, caught);
      release(caught);
      throw error;
    } finally {
      release(undefined);
    }
  }
}
