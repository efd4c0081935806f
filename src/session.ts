/**
 * A session: one pooled connection held by a scope (a `connection()` or
 * `transaction()` callback, or a `begin()` handle) until the scope ends.
 *
 * @module
 */
import type { ScopeSlot } from "./context.ts";
import type { Dialect } from "./dialect.ts";
import type { DriverConnection, ExecuteResult, Row } from "./driver.ts";
import { ClosedError, ConnectionError, QueryError } from "./errors.ts";
import type { PooledConnection } from "./pool.ts";
import { EXECUTE, type QueryKind, runOn } from "./queryable.ts";
import type { CompiledQuery } from "./sql.ts";
import type { Transaction } from "./transaction.ts";

/** What an instance's async context holds inside a scope. */
export interface ScopeState {
  /** The held connection. */
  readonly session: Session;
  /** The transaction whose callback this is, if any. */
  readonly tx: Transaction | undefined;
}

const noParams: readonly unknown[] = Object.freeze([]);

/** A held connection and the state of the transactions on it. */
export class Session {
  /** The pool's record of the connection. */
  readonly item: PooledConnection<DriverConnection>;
  /** The dialect's rules. */
  readonly rules: Dialect;
  /** The owning instance's scope slot. */
  readonly scope: ScopeSlot<ScopeState>;
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

  /** Holds `item` until {@linkcode end}, which hands it to `release`. */
  constructor(
    item: PooledConnection<DriverConnection>,
    rules: Dialect,
    scope: ScopeSlot<ScopeState>,
    release: (session: Session) => void,
  ) {
    this.item = item;
    this.rules = rules;
    this.scope = scope;
    this.#release = release;
  }

  /** Throws {@linkcode ClosedError} once the session has ended. */
  check(): void {
    if (this.ended) throw new ClosedError("this scope has ended: its connection went back to the pool");
  }

  #failed(error: unknown): void {
    if (error instanceof ConnectionError) this.broken = true;
    const refusedBeforeServer = error instanceof QueryError && error.code === "ROOST_INVALID_PARAMETER";
    if (this.current && this.rules.errorAbortsTransaction && !refusedBeforeServer && !this.aborted) {
      this.aborted = { at: this.current, error };
    }
  }

  /** Runs a query on the held connection. */
  async perform(kind: QueryKind, query: CompiledQuery): Promise<unknown> {
    this.check();
    try {
      return await runOn(this.item.connection, kind, query);
    } catch (error) {
      this.#failed(error);
      throw error;
    }
  }

  /** Runs a statement without parameters (transaction control). */
  exec(text: string): Promise<unknown> {
    return this.perform(EXECUTE, { text, params: noParams });
  }

  /** Runs one statement for many parameter sets on the held connection. */
  async performMany(text: string, paramSets: readonly (readonly unknown[])[]): Promise<ExecuteResult> {
    this.check();
    try {
      return await this.item.connection.executeMany(text, paramSets);
    } catch (error) {
      this.#failed(error);
      throw error;
    }
  }

  /** Streams rows on the held connection. */
  async *stream(query: CompiledQuery, batchSize: number): AsyncIterableIterator<Row> {
    this.check();
    try {
      const placement = this.current ? "shared-transaction" : "shared";
      for await (const batch of this.item.connection.stream(query.text, query.params, batchSize, placement)) {
        yield* batch;
      }
    } catch (error) {
      this.#failed(error);
      throw error;
    }
  }

  /** Gives the connection back to the pool (once). */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.#release(this);
  }
}
