/**
 * A session: one pooled connection held by a scope (a `connection()` or
 * `transaction()` callback, or a `begin()` handle) until the scope ends.
 *
 * @module
 */
import type { CallContext, ScopeState } from "./call_context.ts";
import type { QueryEvent } from "./query_event.ts";
import type { ScopeSlot } from "./context.ts";
import type { Dialect } from "./dialect.ts";
import type { DriverConnection, ExecuteResult, Row } from "./driver.ts";
import { ClosedError, ConnectionError, QueryError } from "./errors.ts";
import { type Executor, methodOf, runStatement } from "./executor.ts";
import type { PooledConnection } from "./pool.ts";
import { EXECUTE, type QueryKind } from "./queryable.ts";
import { isReadStatement, replicaWriteError } from "./router.ts";
import type { Target } from "./server.ts";
import type { CompiledQuery } from "./sql.ts";
import type { Transaction } from "./transaction.ts";

/** How a session is set up. */
export interface SessionSetup {
  /** Where its statements run and why, as `onQuery` reports it (reason `"held"` unless routed by a statement). */
  readonly target: Target;
  /** The owning instance's scope slot. */
  readonly scope: ScopeSlot<ScopeState>;
  /** The call context: handed to the scopes the session opens, and where its writes are recorded. */
  readonly context: CallContext;
  /** True when read-your-writes is on, so writes must be recorded. */
  readonly readYourWrites: boolean;
  /** Reports the session's statements to `onQuery` and redacts their errors. */
  readonly executor: Executor;
  /** Hands the connection back. */
  readonly release: (session: Session) => void;
}

const noParams: readonly unknown[] = Object.freeze([]);

/** A held connection and the state of the transactions on it. */
export class Session {
  /** The pool's record of the connection. */
  readonly item: PooledConnection<DriverConnection>;
  /** The dialect's SQL for transactions and its rules about them. */
  readonly dialect: Dialect;
  /** The owning instance's scope slot. */
  readonly scope: ScopeSlot<ScopeState>;
  /** Where its statements run and why. */
  readonly target: Target;
  /** True on a replica: writes throw `ReadOnlyError` before reaching the server. */
  readonly readOnly: boolean;
  /** The call context, for the scopes this session opens. */
  readonly context: CallContext;
  /** The innermost open transaction or savepoint. */
  current: Transaction | undefined;
  /** Set when an error showed the connection is unusable. */
  broken = false;
  /** Set once the connection went back to the pool. */
  ended = false;
  /**
   * On a dialect whose transactions abort at their first failed statement:
   * that statement's error and the transaction level it failed in, until
   * that level is rolled back.
   */
  aborted: { at: Transaction; error: unknown } | undefined;
  readonly #release: (session: Session) => void;
  /** The context whose read-your-writes clock this session's writes restart; undefined when nobody reads it. */
  readonly #writesTo: CallContext | undefined;
  readonly #executor: Executor;
  #wrote = false;

  /** Holds `item` until {@linkcode end}, which hands it to `setup.release`. */
  constructor(item: PooledConnection<DriverConnection>, dialect: Dialect, setup: SessionSetup) {
    this.item = item;
    this.dialect = dialect;
    this.scope = setup.scope;
    this.target = setup.target;
    this.readOnly = setup.target.server.role === "replica";
    this.context = setup.context;
    this.#writesTo = setup.readYourWrites && !this.readOnly ? setup.context : undefined;
    this.#executor = setup.executor;
    this.#release = setup.release;
  }

  /** The scope state of a callback running on this session. */
  state(tx: Transaction | undefined): ScopeState {
    return { session: this, tx, route: undefined, context: this.context };
  }

  /** Throws `ReadOnlyError` on a replica session. */
  assertWritable(what: string): void {
    if (this.readOnly) throw replicaWriteError(what);
  }

  #recordWrite(): void {
    this.#wrote = true;
    this.#writesTo!.mark();
  }

  /** Throws {@linkcode ClosedError} once the session has ended. */
  check(): void {
    if (this.ended) throw new ClosedError("this scope has ended: its connection went back to the pool");
    if (this.item.cutOff) {
      throw new ClosedError("this connection was closed while held: its db.context() or database closed");
    }
  }

  /** True once the connection went back, or its pool closed it while held (a `db.context()` that ended). */
  get over(): boolean {
    return this.ended || this.item.cutOff;
  }

  /** Records what a failed statement says about the connection and its transaction. */
  #failed(error: unknown): void {
    if (error instanceof ConnectionError) this.broken = true;
    const refusedBeforeServer = error instanceof QueryError && error.code === "ROOST_INVALID_PARAMETER";
    if (this.current && this.dialect.errorAbortsTransaction && !refusedBeforeServer && !this.aborted) {
      this.aborted = { at: this.current, error };
    }
  }

  /** The error a failed statement rejects with, once its lesson about the connection is recorded. */
  #fail(method: QueryEvent["method"], query: CompiledQuery, started: number, error: unknown): unknown {
    this.#failed(error);
    return this.#executor.failed(this.target, method, query, started, error);
  }

  /**
   * Runs a statement on the held connection, reported to `onQuery`. On a
   * synchronous driver (SQLite) with no hook to tell, the statement runs
   * before this returns, without an async frame of its own; a statement that
   * has to wait (a lock) or failed settles through the same path as any.
   * Never throws: a closed scope or a write on a replica rejects.
   */
  run(kind: QueryKind, query: CompiledQuery): Promise<unknown> {
    try {
      this.check();
      if (kind === EXECUTE) this.assertWritable("execute");
      if (this.#writesTo && (kind === EXECUTE || !isReadStatement(query.text))) this.#recordWrite();
      if (this.#executor.changesSession?.(query.text)) this.item.sessionChanged = true;
    } catch (error) {
      return Promise.reject(error);
    }
    const connection = this.item.connection;
    if (connection.runNow === undefined || this.#executor.observed) return this.#run(kind, query);
    const result = connection.runNow(kind, query.text, query.params);
    return result instanceof Promise ? this.#run(kind, query, result) : Promise.resolve(result);
  }

  /** Runs a statement (or settles `running`, its synchronous run that has to wait or failed) and reports it. */
  async #run(kind: QueryKind, query: CompiledQuery, running?: Promise<unknown>): Promise<unknown> {
    const started = this.#executor.start();
    try {
      const result = await (running ?? runStatement(this.item.connection, kind, query));
      this.#executor.report(this.target, methodOf[kind], query, started);
      return result;
    } catch (error) {
      throw this.#fail(methodOf[kind], query, started, error);
    }
  }

  /**
   * Runs transaction control (BEGIN, SAVEPOINT, COMMIT…): no parameters, not
   * a write, not reported. Synchronously where the driver can, as `run`.
   */
  control(text: string): Promise<unknown> {
    try {
      this.check();
    } catch (error) {
      return Promise.reject(error);
    }
    // No async frame of its own: a transaction's BEGIN and COMMIT on a synchronous driver settle at once.
    const connection = this.item.connection;
    try {
      if (connection.runNow === undefined) {
        return this.#recorded(runStatement(connection, EXECUTE, { text, params: noParams }));
      }
      const result = connection.runNow(EXECUTE, text, noParams);
      return result instanceof Promise ? this.#recorded(result) : Promise.resolve(result);
    } catch (error) {
      this.#failed(error);
      return Promise.reject(error);
    }
  }

  /** `running`, its failure recorded (`#failed`) before it rejects; the synchronous path makes no closure. */
  #recorded(running: Promise<unknown>): Promise<unknown> {
    return running.catch((error: unknown) => {
      this.#failed(error);
      throw error;
    });
  }

  /** Runs one statement for many parameter sets on the held connection. */
  async runMany(text: string, paramSets: readonly (readonly unknown[])[]): Promise<ExecuteResult> {
    this.check();
    this.assertWritable("executeMany");
    if (this.#writesTo) this.#recordWrite();
    const executor = this.#executor;
    if (executor.changesSession?.(text)) this.item.sessionChanged = true;
    const started = executor.start();
    try {
      const result = await this.item.connection.executeMany(text, paramSets);
      executor.report(
        this.target,
        "executeMany",
        { text, params: executor.debug ? paramSets.flat() : noParams },
        started,
      );
      return result;
    } catch (error) {
      throw this.#fail("executeMany", { text, params: paramSets.flat() }, started, error);
    }
  }

  /** Streams rows on the held connection, a batch at a time. */
  async *stream(query: CompiledQuery, batchSize: number, arrays?: boolean): AsyncIterableIterator<Row[]> {
    this.check();
    if (this.#writesTo && !isReadStatement(query.text)) this.#recordWrite();
    if (this.#executor.changesSession?.(query.text)) this.item.sessionChanged = true;
    const started = this.#executor.start();
    try {
      const placement = this.current ? "shared-transaction" : "shared";
      if (placement === "shared" && this.target.server.transactionPooled) {
        // A cursor held past its statement (WITH HOLD) would stay on a server session the pooler gives to others:
        // the result is read whole, then handed out in batches (docs/poolers.md).
        const { connection } = this.item;
        const rows = arrays
          ? (await connection.fetchRows(query.text, query.params)).rows as unknown as Row[]
          : await connection.fetchAll(query.text, query.params);
        for (let i = 0; i < rows.length; i += batchSize) yield rows.slice(i, i + batchSize);
      } else yield* this.item.connection.stream(query.text, query.params, batchSize, placement, arrays);
      this.#executor.report(this.target, "iterate", query, started);
    } catch (error) {
      throw this.#fail("iterate", query, started, error);
    }
  }

  /** Gives the connection back to the pool (once); a session that wrote restarts its context's clock. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.#wrote) this.#writesTo!.mark();
    this.#release(this);
  }
}
