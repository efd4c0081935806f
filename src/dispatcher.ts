/**
 * Where each call of a database runs, and running it there: on the held
 * session of the scope it was made in, on the `forceRollback` connection,
 * or on the target the router picks, through the executor.
 *
 * @module
 */
import { CallContext, type ScopeState } from "./call_context.ts";
import { Connection } from "./connection.ts";
import { ScopeSlot } from "./context.ts";
import { type Dialect, dialectOf, type TransactionOptions } from "./dialect.ts";
import type { Driver, DriverConnection, ExecuteResult, Row } from "./driver.ts";
import { ClosedError } from "./errors.ts";
import { driverLoader } from "./drivers/option.ts";
import { Executor } from "./executor.ts";
import type { HeldConnection } from "./internal.ts";
import type { ResolvedOptions } from "./options.ts";
import { transactionPooled } from "./pooler.ts";
import type { Pool, ResolvedPoolOptions } from "./pool.ts";
import { EXECUTE, type QueryKind } from "./queryable.ts";
import { replicaWriteError, Router, type ScopeRoute } from "./router.ts";
import { type RoutedScope, type ScopedCalls, ScopeHandle } from "./scope_handle.ts";
import type { Server, Target } from "./server.ts";
import { makeServer, probeServer } from "./server_pools.ts";
import type { DatabaseUrl } from "./url.ts";
import { Session } from "./session.ts";
import { rememberedJudgement } from "./session_statements.ts";
import type { CompiledQuery } from "./sql.ts";
import {
  checkTransactionOptions,
  endSession,
  executeManyAtomically,
  runTransaction,
  Transaction,
} from "./transaction.ts";

/** Runs each call of one database where it belongs. */
export class Dispatcher implements ScopedCalls {
  /** The servers, their health and the routing rules. */
  readonly router: Router;
  /** Runs statements outside held sessions, and reports and redacts all of them. */
  readonly executor: Executor;
  /** Which scope each async call tree of the database is in. */
  readonly scope: ScopeSlot<ScopeState> = new ScopeSlot();
  /** The context of calls outside any `db.context()`: their writes count for read-your-writes here. */
  readonly rootContext: CallContext = new CallContext();
  /** True when connections belong to call contexts (`connectionScope: "context"`). */
  readonly contextScoped: boolean;
  /** The dialect's rules: its name, and whether a failed statement aborts the transaction (see `#runForced`). */
  readonly #dialect: Dialect;
  readonly #primary: Server;
  readonly #assertOpen: () => void;
  /** The `forceRollback` option: every call outside a held connection runs on one held connection, in turn. */
  readonly #forced: boolean;
  /** With `forceRollback`: the held connection and the outer transaction, once the first call opened them. */
  #forcedHeld: Promise<{ readonly session: Session; readonly tx: Transaction }> | undefined;
  /** The driver object the options passed (a name loads on first use): what it can do is known before then. */
  readonly #givenDriver: Driver | undefined;
  /** With `forceRollback`: the running top-level call; settles when it ends, and the next one waits for it. */
  #forcedRunning: Promise<void> = Promise.resolve();

  /**
   * Wires a database's servers: a pool per server, opening connections
   * through the driver the options name (loaded on first use), the router
   * between them, and the executor. `label` names the pools in errors;
   * `assertOpen` throws once the database is closing; `openedOutsideContext`
   * is told when, with connections scoped to contexts, one opens outside any.
   */
  constructor(options: ResolvedOptions, label: string, assertOpen: () => void, openedOutsideContext: () => void) {
    const { url } = options;
    const loadDriver = driverLoader(url.dialect, options.driver, url.scheme);
    this.#givenDriver = typeof options.driver === "object" ? options.driver : undefined;
    const executor = this.executor = new Executor(options.onQuery, options.debugParameters, assertOpen);
    this.contextScoped = options.connectionScope === "context";
    // PgBouncer before 1.21 cannot follow statements pipelined outside a transaction (src/pooler.ts).
    executor.shares = ![url, ...options.replicas.map((replica) => replica.url)].some(transactionPooled);
    const dialect = dialectOf(url.dialect);
    const driver = async () => {
      if (executor.driver === undefined) {
        const loaded = executor.driver = await loadDriver();
        // A connection that is the database itself (PGlite) cannot be replaced: its session settings stay.
        const judge = dialect.changesSession;
        executor.changesSession = loaded.keepsItsSession === true || judge === undefined
          ? undefined
          : rememberedJudgement(judge);
      }
      return executor.driver;
    };
    const servers = 1 + options.replicas.length;
    const confirm = (server: Server) => this.router.confirm(server);
    const server = (
      role: "primary" | "replica",
      index: number,
      url: DatabaseUrl,
      pool: ResolvedPoolOptions,
      label: string,
    ) => makeServer(role, index, url, pool, label, driver, this.contextScoped, servers, openedOutsideContext, confirm);
    const primary = server("primary", -1, url, options.pool, label);
    const replicas = options.replicas.map((replica, i) =>
      server("replica", i, replica.url, replica.pool, `${label} replica ${i}`)
    );
    this.router = new Router(primary, replicas, options.routing, !this.contextScoped, probeServer, url.dialect);
    this.#dialect = dialect;
    this.#primary = primary;
    this.#assertOpen = assertOpen;
    this.#forced = options.forceRollback;
  }

  // forceRollback (for tests): one wrapper, #runForced, re-enters each call on the held connection.

  /** With `forceRollback`: the held connection and its outer transaction, opened by the first call (a failed open is retried by the next). */
  #forcedOpened(): Promise<{ readonly session: Session; readonly tx: Transaction }> {
    this.#assertOpen();
    if (this.#forcedHeld === undefined) {
      const opening = this.#session(this.#primary.targets.held, undefined).then(async (session) => {
        try {
          return { session, tx: await Transaction.open(session, undefined, {}, false) };
        } catch (error) {
          session.end();
          throw error;
        }
      });
      this.#forcedHeld = opening;
      opening.catch(() => this.#forcedHeld === opening && (this.#forcedHeld = undefined));
    }
    return this.#forcedHeld;
  }

  /**
   * With `forceRollback`: runs `call` on the held connection once the
   * running top-level call has ended, with the scope state it runs in; with
   * `isolate`, in a savepoint of its own that its failure rolls back (so a
   * failed statement cannot abort the outer transaction on Postgres).
   */
  async #runForced<T>(isolate: boolean, call: (state: ScopeState) => Promise<T>): Promise<T> {
    const held = await this.#forcedOpened();
    const previous = this.#forcedRunning;
    let done!: () => void;
    this.#forcedRunning = new Promise((resolve) => done = resolve);
    await previous;
    try {
      this.#assertOpen();
      const { session } = held;
      const parent = session.current ?? held.tx;
      if (!isolate) return await call(session.state(parent));
      return await runTransaction(session, parent, {}, (tx) => call(session.state(tx)));
    } finally {
      done();
    }
  }

  /** With `forceRollback`: rolls back and hands back the held connection, once the running call has ended. */
  async rollBackForced(): Promise<void> {
    const held = await this.#forcedHeld?.catch(() => undefined);
    if (held === undefined) return;
    await this.#forcedRunning;
    try {
      if (held.tx.active) await held.tx.rollback();
    } catch {
      held.session.broken = true;
    } finally {
      held.session.end();
    }
  }

  /** A write (or a fetch that writes) on the primary restarts its context's read-your-writes clock. */
  #markWrite(reads: boolean, target: Target, context: CallContext): void {
    if (!reads && this.router.readYourWrites > 0 && target.server === this.#primary) context.mark();
  }

  #contextOf(state: ScopeState | undefined): CallContext {
    return state?.context ?? this.rootContext;
  }

  /** The pool a call in `state` takes the server's connections from. */
  #poolOf(server: Server, state: ScopeState | undefined): Pool<DriverConnection> {
    if (!this.contextScoped || state === undefined || state.context === this.rootContext) return server.pool;
    const pool = state.context.poolFor(server, server.contextPool!);
    if (pool === undefined) {
      throw new ClosedError("this db.context() has ended and closed its connections: query inside it, or outside any");
    }
    return pool;
  }

  /**
   * Holds a connection of `target` for a scope. Its statements report the
   * target's reason to `onQuery` (`"held"` for a scope's own connection).
   */
  async #session(target: Target, state: ScopeState | undefined): Promise<Session> {
    this.#assertOpen();
    const pool = this.#poolOf(target.server, state);
    const item = await pool.acquire();
    return new Session(item, this.#dialect, {
      target,
      scope: this.scope,
      context: this.#contextOf(state),
      readYourWrites: this.router.readYourWrites > 0,
      executor: this.executor,
      release: (session) => {
        // A replica whose connection broke under a held scope leaves the rotation too.
        if (session.broken) this.router.markDown(target.server, "its connection was lost during a connection scope");
        pool.release(session.item, session.broken);
      },
    });
  }

  /**
   * A session on `target`, or on the next replica (or the fallback) when a
   * replica cannot connect. With `reports`, its statements report the
   * route's reason to `onQuery`; otherwise `"held"`.
   */
  #sessionAt(target: Target, state: ScopeState | undefined, reports = false): Promise<Session> {
    return this.router.withFailover(target, (next) => this.#session(reports ? next : next.server.targets.held, state));
  }

  /**
   * Runs one statement where a call in `state` runs: on the scope's session,
   * on the forced connection, or where the router sends it.
   */
  async run(kind: QueryKind, query: CompiledQuery, state: ScopeState | undefined): Promise<unknown> {
    if (state?.session) return await state.session.run(kind, query);
    if (kind === EXECUTE && state?.route === "replica") throw replicaWriteError("execute");
    if (this.#forced) {
      return await this.#runForced(this.#dialect.errorAbortsTransaction, (held) => this.run(kind, query, held));
    }
    const router = this.router;
    const reads = kind !== EXECUTE && router.reads(query.text);
    const context = this.#contextOf(state);
    const first = kind === EXECUTE ? router.writeTarget(state?.route) : router.readTarget(state?.route, reads, context);
    return await router.withFailover(first, async (target) => {
      try {
        return await this.executor.run(this.#poolOf(target.server, state), target, kind, query);
      } finally {
        this.#markWrite(reads, target, context);
      }
    });
  }

  async runMany(
    text: string,
    paramSets: readonly (readonly unknown[])[],
    state: ScopeState | undefined,
  ): Promise<ExecuteResult> {
    if (state?.session) return await executeManyAtomically(state.session, text, paramSets);
    if (state?.route === "replica") throw replicaWriteError("executeMany");
    if (this.#forced) {
      return await this.#runForced(this.#dialect.errorAbortsTransaction, (held) => this.runMany(text, paramSets, held));
    }
    const session = await this.#session(this.#primary.targets.held, state);
    try {
      return await executeManyAtomically(session, text, paramSets);
    } finally {
      session.end();
    }
  }

  async *stream(
    query: CompiledQuery,
    batchSize: number,
    state: ScopeState | undefined,
    arrays?: boolean,
  ): AsyncIterableIterator<Row[]> {
    // With forceRollback, not in a turn: the loop's body may query at the top level.
    if (this.#forced && !state?.session) state = (await this.#forcedOpened()).session.state(undefined);
    if (state?.session) {
      yield* state.session.stream(query, batchSize, arrays);
      return;
    }
    const router = this.router;
    const reads = router.reads(query.text);
    for (let target = router.readTarget(state?.route, reads, this.#contextOf(state));;) {
      let started = false;
      try {
        for await (
          const batch of this.executor.stream(this.#poolOf(target.server, state), target, query, batchSize, arrays)
        ) {
          started = true;
          yield batch;
        }
        return;
      } catch (error) {
        // Rows already handed out cannot be taken back: only a stream that yielded nothing moves elsewhere.
        if (started) throw error;
        target = router.nextAfter(target, error);
      } finally {
        this.#markWrite(reads, target, this.#contextOf(state));
      }
    }
  }

  async connection<T>(
    fn: (conn: Connection) => Promise<T> | T,
    state: ScopeState | undefined,
    fresh = false,
  ): Promise<T> {
    if (fresh && !this.#forced) state = apart(state);
    if (state?.session) return await fn(new Connection(state.session));
    if (this.#forced) return await this.#runForced(true, (held) => this.connection(fn, held));
    const session = await this.#heldSession(state);
    try {
      return await this.scope.run(session.state(undefined), () => fn(new Connection(session)));
    } finally {
      await endSession(session);
    }
  }

  /** A session for a connection scope or handle: a replica's inside a replica scope, else the primary's. */
  #heldSession(state: ScopeState | undefined): Promise<Session> {
    return state?.route === "replica"
      ? this.#sessionAt(this.router.replicaTarget("replica-scope"), state)
      : this.#session(this.#primary.targets.held, state);
  }

  /**
   * A session of its own for `db.acquire()`, whatever the scope holds, and
   * whether the handle owns it: with `forceRollback`, the forced one, which
   * the handle shares.
   */
  async acquire(state: ScopeState | undefined): Promise<[Session, boolean]> {
    if (this.#forced) return [await this.#runForced(false, (held) => Promise.resolve(held.session!)), false];
    return [await this.#heldSession(apart(state)), true];
  }

  async transaction<T>(
    fn: (tx: Transaction) => Promise<T> | T,
    options: TransactionOptions,
    state: ScopeState | undefined,
  ): Promise<T> {
    if (options?.fresh === true) [options, state] = this.#fresh(options, state);
    if (state?.session) {
      const parent = state.tx ?? state.session.current;
      return await runTransaction(state.session, parent, options, fn);
    }
    if (state?.route === "replica") throw replicaWriteError("transaction");
    checkTransactionOptions(options); // before a connection is taken for nothing
    // With forceRollback: a savepoint of the forced transaction, where isolation and readOnly do not apply.
    if (this.#forced) return await this.#runForced(false, (held) => this.transaction(fn, {}, held));
    this.#refuseTransactions();
    const session = await this.#session(this.#primary.targets.held, state);
    return await runTransaction(session, undefined, options, fn, true);
  }

  async begin(options: TransactionOptions, state: ScopeState | undefined): Promise<Transaction> {
    if (options?.fresh === true) [options, state] = this.#fresh(options, state);
    if (state?.session) return await Transaction.open(state.session, state.tx ?? state.session.current, options, false);
    if (state?.route === "replica") throw replicaWriteError("begin");
    checkTransactionOptions(options);
    if (this.#forced) return await this.#runForced(false, (held) => this.begin({}, held));
    this.#refuseTransactions();
    return await Transaction.open(await this.#session(this.#primary.targets.held, state), undefined, options, true);
  }

  /** Throws the driver's error where its database has no transactions. */
  #refuseTransactions(): void {
    const refusal = this.transactionRefusal();
    if (refusal) throw refusal;
  }

  /** The error `transaction()` throws before taking a connection where the driver has none (D1); else undefined. */
  transactionRefusal(): Error | undefined {
    return (this.executor.driver ?? this.#givenDriver)?.noTransactions?.();
  }

  /**
   * A transaction asking for a connection of its own: its call leaves the
   * held connection; with `forceRollback` it stays on the forced one, as
   * every call does, and the option is dropped.
   */
  #fresh(options: TransactionOptions, state: ScopeState | undefined): [TransactionOptions, ScopeState | undefined] {
    if (!this.#forced) return [options, apart(state)];
    const { fresh: _, ...rest } = options;
    return [rest, state];
  }

  async routed<T>(
    route: ScopeRoute,
    fn: (scope: RoutedScope) => Promise<T> | T,
    outer: ScopeState | undefined,
  ): Promise<T> {
    this.#assertOpen();
    // A primary scope inside a connection or transaction on the primary stays on it: it would not see its writes.
    const held = route === "primary" && outer?.session !== undefined && !outer.session.readOnly;
    const state: ScopeState = held
      ? { ...outer, route }
      : { session: undefined, tx: undefined, route, context: this.#contextOf(outer) };
    return await this.scope.run(state, () => fn(new ScopeHandle(this.#dialect.name, route, this, state)));
  }

  /**
   * For query-builder drivers (see internal.ts): holds a
   * connection for a sequence of statements, on the server the instance
   * routes the first one to: `first` says whether it only reads;
   * `undefined` stands for a transaction, which goes to the primary.
   * `undefined` comes back when the statements must run through the
   * instance itself: inside a held scope, whose connection they join, or
   * with `forceRollback`.
   */
  async hold(first: boolean | undefined, state: ScopeState | undefined): Promise<HeldConnection | undefined> {
    if (state?.session !== undefined || this.#forced) return undefined;
    this.#assertOpen();
    const reads = first === true;
    const target = reads || state?.route
      ? this.router.readTarget(state?.route, reads, this.#contextOf(state))
      : this.#primary.targets.write;
    // A connection taken for a transaction reports as any held one; for a statement, why it went there.
    const session = await this.#sessionAt(target, state, first !== undefined);
    const routedRead = session.readOnly && session.target.reason === "read";
    return { connection: new Connection(session), routedRead, release: () => endSession(session) };
  }
}

/**
 * The scope of a call that asks for a connection of its own: the same
 * context and route, without the held connection or transaction.
 */
function apart(state: ScopeState | undefined): ScopeState | undefined {
  if (state?.session === undefined) return state;
  // A replica's held connection keeps its fresh scopes on the replicas.
  const route = state.route ?? (state.session.readOnly ? "replica" : undefined);
  return { session: undefined, tx: undefined, route, context: state.context };
}
