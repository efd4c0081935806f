/**
 * A session: one pooled connection held by a scope (a `connection()` or
 * `transaction()` callback, or a `begin()` handle) until the scope ends.
 *
 * @module
 */
import type { ScopeSlot } from "./context.ts";
import type { Dialect } from "./dialect.ts";
import type { DriverConnection, ExecuteResult, Row } from "./driver.ts";
import { ClosedError, ConnectionError, QueryError, withParameters } from "./errors.ts";
import type { Pool, PooledConnection } from "./pool.ts";
import { EXECUTE, methodOf, type QueryKind, runOn } from "./queryable.ts";
import {
  isReadStatement,
  type Member,
  type QueryEvent,
  type QueryHook,
  replicaWriteError,
  reportQuery,
  type RouteReason,
} from "./router.ts";
import type { CompiledQuery } from "./sql.ts";
import type { Transaction } from "./transaction.ts";

/**
 * A call tree's context (`db.context()`, or the instance's own outside any):
 * when it last wrote, for read-your-writes, and, where connections are
 * scoped to contexts (Workers), the pools holding its own connections.
 */
export class CallContext {
  /** When the context last wrote (ms since the epoch). */
  last = -Infinity;
  /** With `connectionScope: "context"`: this context's pool per server, made on first use. */
  #pools: Map<Member, Pool<DriverConnection>> | undefined;

  /** Records a write now. */
  mark(): void {
    this.last = Date.now();
  }

  /** True when the last write is less than `ms` old. */
  within(ms: number): boolean {
    return Date.now() - this.last < ms;
  }

  /** Set once the context has ended and closed its connections. */
  ended = false;
  /** The enclosing context, whose connections a nested one uses. */
  readonly #outer: CallContext | undefined;

  /** A context; a nested one keeps its own writes but uses the enclosing context's connections. */
  constructor(outer?: CallContext) {
    this.#outer = outer;
  }

  /** This context's pool for `member`, made by `make` on first use; undefined once the context has ended. */
  poolFor(member: Member, make: () => Pool<DriverConnection>): Pool<DriverConnection> | undefined {
    if (this.ended) return undefined;
    if (this.#outer) return this.#outer.poolFor(member, make);
    this.#pools ??= new Map();
    let pool = this.#pools.get(member);
    if (pool === undefined) this.#pools.set(member, pool = make());
    return pool;
  }

  /**
   * Closes this context's connections, waiting until they are closed: held
   * ones at once when the context is over, or after `timeout` ms when the
   * database closes while the context still runs.
   */
  async end(timeout = 0): Promise<void> {
    this.ended = true;
    const pools = this.#pools;
    if (pools !== undefined) await Promise.all([...pools.values()].map((pool) => pool.close(timeout)));
  }
}

export type ForcedRoute = "primary" | "replica";

/** What an instance's async context holds inside a scope. */
export interface ScopeState {
  /** The held connection, in a connection or transaction scope. */
  readonly session: Session | undefined;
  /** The transaction whose callback this is, if any. */
  readonly tx: Transaction | undefined;
  /** The route a `replica()` or `primary()` scope forces. */
  readonly route: ForcedRoute | undefined;
  /** The call context: its writes (read-your-writes) and, when connections are scoped to contexts, its connections. */
  readonly context: CallContext;
}

/** How a session is set up. */
export interface SessionSetup {
  /** The server the connection belongs to. */
  readonly member: Member;
  /** The owning instance's scope slot. */
  readonly scope: ScopeSlot<ScopeState>;
  /** The call context: handed to the scopes the session opens, and where its writes are recorded. */
  readonly context: CallContext;
  /** True when read-your-writes is on, so writes must be recorded. */
  readonly readYourWrites: boolean;
  /** The `onQuery` hook, if any. */
  readonly observe: QueryHook | undefined;
  /** Whether errors and events carry query parameters (`debugParameters`). */
  readonly debug: boolean;
  /** Hands the connection back. */
  readonly release: (session: Session) => void;
  /** Why its queries run where they do, as `onQuery` reports it. Default `"held"`. */
  readonly reason?: RouteReason;
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
  /** The server the connection belongs to. */
  readonly member: Member;
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
  readonly #clock: CallContext | undefined;
  readonly #observe: QueryHook | undefined;
  readonly #debug: boolean;
  /** Why its queries run where they do, as `onQuery` reports it. */
  readonly reason: RouteReason;
  #wrote = false;

  /** Holds `item` until {@linkcode end}, which hands it to `setup.release`. */
  constructor(item: PooledConnection<DriverConnection>, rules: Dialect, setup: SessionSetup) {
    this.item = item;
    this.rules = rules;
    this.scope = setup.scope;
    this.member = setup.member;
    this.readOnly = setup.member.served === "replica";
    this.context = setup.context;
    this.#clock = setup.readYourWrites && !this.readOnly ? setup.context : undefined;
    this.#observe = setup.observe;
    this.#debug = setup.debug;
    this.#release = setup.release;
    this.reason = setup.reason ?? "held";
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
    this.#clock!.mark();
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

  #report(
    method: QueryEvent["method"],
    sql: string,
    params: readonly unknown[],
    started: number,
    error?: unknown,
  ): void {
    reportQuery(
      this.#observe!,
      this.member,
      this.reason,
      method,
      sql,
      started,
      error,
      this.#debug ? params : undefined,
    );
  }

  /** The error a failed query rejects with: reported to the hook, its parameters redacted or attached. */
  #fail(
    method: QueryEvent["method"],
    sql: string,
    params: readonly unknown[],
    started: number,
    error: unknown,
  ): unknown {
    this.#failed(error);
    error = withParameters(error, params, this.#debug);
    if (this.#observe) this.#report(method, sql, params, started, error);
    return error;
  }

  /** Runs a query on the held connection. */
  async perform(kind: QueryKind, query: CompiledQuery): Promise<unknown> {
    this.check();
    if (kind === EXECUTE) this.assertWritable("execute");
    if (this.#clock && (kind === EXECUTE || !isReadStatement(query.text))) this.#recordWrite();
    const started = this.#observe ? performance.now() : 0;
    try {
      const result = await runOn(this.item.connection, kind, query);
      if (this.#observe) this.#report(methodOf(kind), query.text, query.params, started);
      return result;
    } catch (error) {
      throw this.#fail(methodOf(kind), query.text, query.params, started, error);
    }
  }

  /** Runs a statement without parameters (transaction control): not a write, not reported. */
  async exec(text: string): Promise<unknown> {
    this.check();
    try {
      return await runOn(this.item.connection, EXECUTE, { text, params: noParams });
    } catch (error) {
      this.#failed(error);
      throw error;
    }
  }

  /** Runs one statement for many parameter sets on the held connection. */
  async performMany(text: string, paramSets: readonly (readonly unknown[])[]): Promise<ExecuteResult> {
    this.check();
    this.assertWritable("executeMany");
    if (this.#clock) this.#recordWrite();
    const started = this.#observe ? performance.now() : 0;
    try {
      const result = await this.item.connection.executeMany(text, paramSets);
      if (this.#observe) this.#report("executeMany", text, this.#debug ? paramSets.flat() : noParams, started);
      return result;
    } catch (error) {
      throw this.#fail("executeMany", text, paramSets.flat(), started, error);
    }
  }

  /** Streams rows on the held connection, a batch at a time. */
  async *stream(query: CompiledQuery, batchSize: number): AsyncIterableIterator<Row[]> {
    this.check();
    if (this.#clock && !isReadStatement(query.text)) this.#recordWrite();
    const started = this.#observe ? performance.now() : 0;
    try {
      const placement = this.current ? "shared-transaction" : "shared";
      yield* this.item.connection.stream(query.text, query.params, batchSize, placement);
      if (this.#observe) this.#report("iterate", query.text, query.params, started);
    } catch (error) {
      throw this.#fail("iterate", query.text, query.params, started, error);
    }
  }

  /** Gives the connection back to the pool (once); a session that wrote restarts its context's clock. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.#wrote) this.#clock!.mark();
    this.#release(this);
  }
}
