/**
 * Where each call of a database runs, and running it there: on the held
 * session of the scope it was made in, on the `forceRollback` connection,
 * or on the target the router picks, through the executor.
 *
 * @module
 */
import type { CallContext, ScopeState } from "./call_context.ts";
import { Connection } from "./connection.ts";
import type { ScopeSlot } from "./context.ts";
import { type DialectName, dialectOf, type TransactionOptions } from "./dialect.ts";
import type { DriverConnection, ExecuteResult, Row } from "./driver.ts";
import { ClosedError } from "./errors.ts";
import type { Executor } from "./executor.ts";
import { ForcedRollback } from "./forced_rollback.ts";
import type { HeldConnection } from "./internal.ts";
import type { Pool } from "./pool.ts";
import { EXECUTE, type QueryKind } from "./queryable.ts";
import { replicaWriteError, type Router, type ScopeRoute } from "./router.ts";
import { type RoutedScope, type ScopedCalls, ScopeHandle } from "./scope_handle.ts";
import type { Server, Target } from "./server.ts";
import { Session } from "./session.ts";
import type { CompiledQuery } from "./sql.ts";
import {
  checkTransactionOptions,
  endSession,
  executeManyAtomically,
  runTransaction,
  Transaction,
} from "./transaction.ts";

/** What a dispatcher is given by its database. */
export interface DispatcherSetup {
  /** The database's dialect. */
  readonly dialect: DialectName;
  /** The database's scope slot: which scope each async call tree is in. */
  readonly scope: ScopeSlot<ScopeState>;
  /** The context of calls outside any `db.context()`. */
  readonly rootContext: CallContext;
  /** True when connections belong to call contexts (`connectionScope: "context"`). */
  readonly contextScoped: boolean;
  /** The servers and the routing rules. */
  readonly router: Router;
  /** Runs statements outside held sessions, and reports and redacts all of them. */
  readonly executor: Executor;
  /** The `forceRollback` option. */
  readonly forceRollback: boolean;
  /** Throws `ClosedError` once the database is closing. */
  readonly assertOpen: () => void;
}

/** Runs each call of one database where it belongs. */
export class Dispatcher implements ScopedCalls {
  readonly #dialect: DialectName;
  readonly #scope: ScopeSlot<ScopeState>;
  readonly #rootContext: CallContext;
  readonly #contextScoped: boolean;
  readonly #router: Router;
  readonly #primary: Server;
  readonly #executor: Executor;
  readonly #assertOpen: () => void;
  /** With `forceRollback`: whether a failed statement aborts the transaction (so each runs in a savepoint). */
  readonly #abortsOnError: boolean;
  /** With `forceRollback`: the held connection every call outside a scope runs on. */
  readonly #forced: ForcedRollback | undefined;
  /** The primary as the target of a scope's own connection. */
  readonly #primaryHeld: Target;

  /** A dispatcher for the database that gives it `setup`. */
  constructor(setup: DispatcherSetup) {
    this.#dialect = setup.dialect;
    this.#scope = setup.scope;
    this.#rootContext = setup.rootContext;
    this.#contextScoped = setup.contextScoped;
    this.#router = setup.router;
    this.#primary = setup.router.primary;
    this.#primaryHeld = this.#primary.targets.held;
    this.#executor = setup.executor;
    this.#assertOpen = setup.assertOpen;
    this.#abortsOnError = dialectOf(setup.dialect).errorAbortsTransaction;
    this.#forced = setup.forceRollback
      ? new ForcedRollback(() => this.#session(this.#primaryHeld, undefined), setup.assertOpen)
      : undefined;
  }

  /** With `forceRollback`: rolls back and hands back its connection once the running call ended. */
  rollBackForced(): Promise<void> {
    return this.#forced?.rollBack() ?? Promise.resolve();
  }

  #contextOf(state: ScopeState | undefined): CallContext {
    return state?.context ?? this.#rootContext;
  }

  /** The pool a call in `state` takes the server's connections from. */
  #poolOf(server: Server, state: ScopeState | undefined): Pool<DriverConnection> {
    if (!this.#contextScoped || state === undefined || state.context === this.#rootContext) return server.pool;
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
    return new Session(item, dialectOf(this.#dialect), {
      target,
      scope: this.#scope,
      context: this.#contextOf(state),
      readYourWrites: this.#router.readYourWrites > 0,
      executor: this.#executor,
      release: (session) => {
        // A replica whose connection broke under a held scope leaves the rotation too.
        if (session.broken) this.#router.markDown(target.server, "its connection was lost during a connection scope");
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
    return this.#router.withFailover(target, (next) => this.#session(reports ? next : next.server.targets.held, state));
  }

  /**
   * Runs one statement where a call in `state` runs: on the scope's session,
   * on the forced connection, or where the router sends it.
   */
  async run(kind: QueryKind, query: CompiledQuery, state: ScopeState | undefined): Promise<unknown> {
    if (state?.session) return await state.session.run(kind, query);
    if (kind === EXECUTE && state?.route === "replica") throw replicaWriteError("execute");
    if (this.#forced) return await this.#forced.run(this.#abortsOnError, (held) => this.run(kind, query, held));
    const router = this.#router;
    const reads = kind !== EXECUTE && router.reads(query.text);
    const context = this.#contextOf(state);
    const first = kind === EXECUTE ? router.writeTarget(state?.route) : router.readTarget(state?.route, reads, context);
    return await router.withFailover(first, async (target) => {
      try {
        return await this.#executor.run(this.#poolOf(target.server, state), target, kind, query);
      } finally {
        // A write (or a fetch that writes) restarts its context's read-your-writes clock.
        if (!reads && router.readYourWrites > 0 && target.server === this.#primary) context.mark();
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
      return await this.#forced.run(this.#abortsOnError, (held) => this.runMany(text, paramSets, held));
    }
    const session = await this.#session(this.#primaryHeld, state);
    try {
      return await executeManyAtomically(session, text, paramSets);
    } finally {
      session.end();
    }
  }

  async *stream(query: CompiledQuery, batchSize: number, state: ScopeState | undefined): AsyncIterableIterator<Row[]> {
    // With forceRollback, not in a turn: the loop's body may query at the top level.
    if (this.#forced && !state?.session) state = await this.#forced.state();
    if (state?.session) {
      yield* state.session.stream(query, batchSize);
      return;
    }
    const router = this.#router;
    const reads = router.reads(query.text);
    for (let target = router.readTarget(state?.route, reads, this.#contextOf(state));;) {
      let started = false;
      try {
        for await (const batch of this.#executor.stream(this.#poolOf(target.server, state), target, query, batchSize)) {
          started = true;
          yield batch;
        }
        return;
      } catch (error) {
        // Rows already handed out cannot be taken back: only a stream that yielded nothing moves elsewhere.
        if (started) throw error;
        target = router.nextAfter(target, error);
      } finally {
        if (!reads && router.readYourWrites > 0 && target.server === this.#primary) this.#contextOf(state).mark();
      }
    }
  }

  async connection<T>(fn: (conn: Connection) => Promise<T> | T, state: ScopeState | undefined): Promise<T> {
    if (state?.session) return await fn(new Connection(state.session));
    if (this.#forced) return await this.#forced.run(true, (held) => this.connection(fn, held));
    const session = state?.route === "replica"
      ? await this.#sessionAt(this.#router.replicaTarget("replica-scope"), state)
      : await this.#session(this.#primaryHeld, state);
    try {
      return await this.#scope.run(session.state(undefined), () => fn(new Connection(session)));
    } finally {
      await endSession(session);
    }
  }

  async transaction<T>(
    fn: (tx: Transaction) => Promise<T> | T,
    options: TransactionOptions,
    state: ScopeState | undefined,
  ): Promise<T> {
    if (state?.session) {
      const parent = state.tx ?? state.session.current;
      return await runTransaction(state.session, parent, options, fn);
    }
    if (state?.route === "replica") throw replicaWriteError("transaction");
    checkTransactionOptions(options); // before a connection is taken for nothing
    // With forceRollback: a savepoint of the forced transaction, where isolation and readOnly do not apply.
    if (this.#forced) return await this.#forced.run(false, (held) => this.transaction(fn, {}, held));
    const session = await this.#session(this.#primaryHeld, state);
    return await runTransaction(session, undefined, options, fn, true);
  }

  async begin(options: TransactionOptions, state: ScopeState | undefined): Promise<Transaction> {
    if (state?.session) return await Transaction.open(state.session, state.tx ?? state.session.current, options, false);
    if (state?.route === "replica") throw replicaWriteError("begin");
    checkTransactionOptions(options);
    if (this.#forced) return await this.#forced.run(false, (held) => this.begin({}, held));
    return await Transaction.open(await this.#session(this.#primaryHeld, state), undefined, options, true);
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
    return await this.#scope.run(state, () => fn(new ScopeHandle(this.#dialect, route, this, state)));
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
      ? this.#router.readTarget(state?.route, reads, this.#contextOf(state))
      : this.#primary.targets.write;
    // A connection taken for a transaction reports as any held one; for a statement, why it went there.
    const session = await this.#sessionAt(target, state, first !== undefined);
    const routedRead = session.readOnly && session.target.reason === "read";
    return { connection: new Connection(session), routedRead, release: () => endSession(session) };
  }
}
