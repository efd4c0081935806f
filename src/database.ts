/**
 * The public facade: a database's lifecycle, its scopes, and where each
 * call goes: outside any scope through the {@linkcode Router} to a
 * server's pool, run by the {@linkcode Executor}; inside a scope on the
 * scope's held session.
 *
 * @module
 */
import { CallContext, type ScopeState } from "./call_context.ts";
import { Connection } from "./connection.ts";
import { asyncContextLookup, ScopeSlot } from "./context.ts";
import { dialectOf, type TransactionOptions } from "./dialect.ts";
import type { Driver, DriverConnection, ExecuteResult, Row } from "./driver.ts";
import { driverLoader } from "./drivers/mod.ts";
import { ClosedError, TransactionError } from "./errors.ts";
import { Executor } from "./executor.ts";
import type { HeldConnection } from "./internal.ts";
import { ForcedRollback } from "./forced_rollback.ts";
import { type DatabaseOptions, resolveOptions } from "./options.ts";
import type { Pool, PoolStats } from "./pool.ts";
import { EXECUTE, Queryable, type QueryKind } from "./queryable.ts";
import { isRegistered, lookup, register, registeredInstances, registeredNames, unregister } from "./registry.ts";
import { replicaWriteError, Router, type ScopeRoute } from "./router.ts";
import type { ReplicaStats } from "./routing_options.ts";
import { Schema } from "./schema.ts";
import { type RoutedScope, type ScopedCalls, ScopeHandle } from "./scope_handle.ts";
import type { Server, Target } from "./server.ts";
import { makeServer, probeServer } from "./server_pools.ts";
import { Session } from "./session.ts";
import type { CompiledQuery } from "./sql.ts";
import {
  checkTransactionOptions,
  endSession,
  executeManyAtomically,
  runTransaction,
  Transaction,
} from "./transaction.ts";
import { type DatabaseUrl, parseDatabaseUrl } from "./url.ts";

export type { RoutedScope } from "./scope_handle.ts";

/** What `db.stats()` returns. */
export interface DatabaseStats {
  /** The primary's pool. */
  primary: PoolStats;
  /** Each replica's pool and health, in the order given. */
  replicas: ReplicaStats[];
}

/** The options of {@linkcode Database.close}. */
export interface CloseOptions {
  /** How long to wait for queries in flight before closing their connections. Default 5 000 ms. */
  timeout?: number;
}

const inspectCustom = Symbol.for("nodejs.util.inspect.custom");
const denoInspect = Symbol.for("Deno.customInspect");

/**
 * A database: its URL picks the dialect, the runtime picks the driver, and a
 * pool opens connections lazily, at the first query.
 *
 * Inside `connection(fn)` and `transaction(fn)`, this instance's `db.*` calls
 * run on the scope's connection; scopes belong to the async call tree that
 * entered them, so concurrent tasks and other instances never share one.
 *
 * @example
 * ```ts
 * import { Database, sql } from "@roost/db";
 *
 * const db = new Database("sqlite::memory:");
 * await db.execute(sql`create table users (id integer primary key, name text not null)`);
 * await db.transaction(async () => {
 *   await db.execute(sql`insert into users (name) values (${"Ada"})`);
 *   await db.execute(sql`insert into users (name) values (${"Alan"})`);
 * });
 * console.log(await db.fetchAll(sql`select * from users order by id`));
 * await db.close();
 * ```
 */
export class Database extends Queryable implements AsyncDisposable {
  readonly #url: DatabaseUrl;
  readonly #name: string | undefined;
  readonly #router: Router;
  readonly #primary: Server;
  readonly #executor: Executor;
  readonly #scope = new ScopeSlot<ScopeState>();
  readonly #loadDriver: () => Promise<Driver>;
  /** Writes outside any context are recorded here (read-your-writes). */
  readonly #rootContext = new CallContext();
  /** True when a statement outside scopes goes straight to the primary: no replica, hook, read-your-writes or forceRollback. */
  readonly #plain: boolean;
  /** True when connections belong to call contexts (`connectionScope: "context"`). */
  readonly #contextScoped: boolean;
  /** Makes a context's own pool of a server (`connectionScope: "context"`). */
  readonly #contextPools = new Map<Server, () => Pool<DriverConnection>>();
  /** Contexts running now, whose connections `close()` closes too. */
  readonly #liveContexts = new Set<CallContext>();
  /** With `forceRollback`: the held connection every call outside a scope runs on. */
  readonly #forced: ForcedRollback | undefined;
  /** With `forceRollback`: whether a failed statement aborts the transaction (so each runs in a savepoint). */
  readonly #abortsOnError: boolean;
  #driver: Driver | undefined;
  /** Set once the instance warned about a connection outside any context, or when it chose its connectionScope. */
  #warned: boolean;
  #closing: Promise<void> | undefined;
  #schema: Schema | undefined;

  /**
   * Creates a database; nothing connects until the first query (or
   * `connect()`). Throws {@linkcode ConfigError} for a bad URL or option and
   * `RegistryError` for a taken name.
   */
  constructor(url: string, options: DatabaseOptions = {}) {
    const resolved = resolveOptions(options, parseDatabaseUrl(url));
    const parsed = resolved.url;
    const loadDriver = driverLoader(parsed.dialect, resolved.driver);
    super(parsed.dialect);
    this.#url = parsed;
    this.#name = resolved.name;
    this.#loadDriver = loadDriver;
    this.#contextScoped = resolved.connectionScope === "context";
    // Only an instance that got "context" by default (on Workers) is told what it costs outside a context.
    this.#warned = options.connectionScope !== undefined;
    const label = resolved.name === undefined ? `pool of ${parsed}` : `pool of "${resolved.name}"`;
    const setup = {
      driver: () => this.#driverLoaded(),
      contextScoped: this.#contextScoped,
      servers: 1 + resolved.replicas.length,
      openedOutsideContext: () => this.#warnOutsideContext(),
      replicaConnected: (server: Server) => this.#router.confirm(server),
    };
    const servers = [
      makeServer("primary", -1, parsed, resolved.pool, label, setup),
      ...resolved.replicas.map((replica, i) =>
        makeServer("replica", i, replica.url, replica.pool, `${label} replica ${i}`, setup)
      ),
    ];
    for (const { server, contextPool } of servers) if (contextPool) this.#contextPools.set(server, contextPool);
    const [primary, ...replicas] = servers.map((s) => s.server);
    this.#primary = primary;
    this.#router = new Router(primary, replicas, resolved.routing, {
      timers: !this.#contextScoped,
      probe: probeServer,
    });
    this.#executor = new Executor({
      onQuery: resolved.onQuery,
      debug: resolved.debugParameters,
      assertOpen: () => this.#assertOpen(),
    });
    this.#forced = resolved.forceRollback
      ? new ForcedRollback(() => this.#session(primary.targets.held, undefined), () => this.#assertOpen())
      : undefined;
    this.#abortsOnError = dialectOf(parsed.dialect).errorAbortsTransaction;
    this.#plain = replicas.length === 0 && resolved.onQuery === undefined && resolved.routing.readYourWrites === 0 &&
      !resolved.forceRollback;
    if (resolved.name !== undefined) register(resolved.name, this);
  }

  /**
   * With connections scoped to contexts by default (Workers), says once per
   * instance (through the console) that a connection was opened outside any
   * `db.context()`: each such statement or scope pays a connection of its own.
   */
  #warnOutsideContext(): void {
    if (this.#warned) return;
    this.#warned = true;
    console.warn(
      `Roost: ${this} opened a connection outside db.context(); with connectionScope "context" (the Workers ` +
        "default) each statement there opens one of its own. Wrap each request in db.context((scope) => ...) to " +
        "share up to 6 per context. (Said once.)",
    );
  }

  /** The instance registered under `name`; a missing name is a `RegistryError` listing the registered ones. */
  static get(name: string): Database {
    return lookup(name);
  }

  /** True when an instance is registered under `name`. */
  static has(name: string): boolean {
    return isRegistered(name);
  }

  /** The registered names. */
  static names(): string[] {
    return registeredNames();
  }

  /** Closes every registered instance. */
  static async closeAll(options?: CloseOptions): Promise<void> {
    await Promise.all(registeredInstances().map((db) => db.close(options)));
  }

  /** The registry name, if the instance has one. */
  get name(): string | undefined {
    return this.#name;
  }

  /** The URL with its password redacted. */
  get url(): string {
    return this.#url.toString();
  }

  /**
   * Creates and drops the tables defined with `defineTable` from
   * `@roost/db/model`.
   *
   * @example
   * ```ts
   * import { Database } from "@roost/db";
   * import { column, defineTable } from "@roost/db/model";
   * const users = defineTable("users", { id: column.serial().primaryKey(), name: column.text().notNull() });
   * const db = new Database("sqlite::memory:");
   * await db.schema.createTables([users]);
   * ```
   */
  get schema(): Schema {
    return this.#schema ??= new Schema(this);
  }

  /** True once `close()` has been called. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** Loads the driver once; a driver that cannot load is a `ConfigError` `ROOST_DRIVER_UNAVAILABLE` saying why. */
  async #driverLoaded(): Promise<Driver> {
    if (this.#driver === undefined) {
      const driver = await this.#loadDriver();
      this.#driver ??= driver;
      this.#executor.pipelines = this.#driver.pipelines === true;
      this.#executor.interleavedStreams = this.#driver.interleavedStreams === true;
    }
    return this.#driver;
  }

  /** Opens the primary's first connections now (up to `pool.min`, at least one), proving the URL works. */
  async connect(): Promise<void> {
    this.#assertOpen();
    await this.#primary.pool.warm();
  }

  /**
   * Stops new queries (they reject with {@linkcode ClosedError}), waits for
   * those in flight up to `timeout`, closes every connection and frees the
   * registry name. Calling it again returns the same promise.
   */
  close(options: CloseOptions = {}): Promise<void> {
    if (this.#closing === undefined) {
      if (this.#name !== undefined) unregister(this.#name, this);
      this.#executor.close();
      this.#router.stop();
      const servers = [this.#primary, ...this.#router.replicas];
      this.#closing = (this.#forced?.rollBack() ?? Promise.resolve()).then(() =>
        Promise.all([
          ...servers.map((server) => server.pool.close(options.timeout)),
          ...[...this.#liveContexts].map((context) => context.end(options.timeout)),
        ])
      ).then(() => {});
    }
    return this.#closing;
  }

  /** Closes the database: what `await using` calls. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Pool counters (size, idle, busy, waiting) of the primary and of each replica, with the replicas' health. */
  stats(): DatabaseStats {
    return { primary: this.#primary.pool.stats(), replicas: this.#router.replicaStats() };
  }

  #assertOpen(): void {
    if (this.#closing !== undefined) {
      throw new ClosedError(`database ${this.#name === undefined ? `<${this.#url}>` : `"${this.#name}"`} is closed`);
    }
  }

  #scopeState(): ScopeState | undefined {
    const state = this.#scope.get();
    if (state?.tx !== undefined && !state.tx.active) {
      throw new TransactionError("this call runs in a transaction callback whose transaction has already ended");
    }
    return state;
  }

  #contextOf(state: ScopeState | undefined): CallContext {
    return state?.context ?? this.#rootContext;
  }

  /** The pool a call in `state` takes the server's connections from. */
  #poolOf(server: Server, state: ScopeState | undefined): Pool<DriverConnection> {
    if (!this.#contextScoped || state === undefined || state.context === this.#rootContext) return server.pool;
    const pool = state.context.poolFor(server, this.#contextPools.get(server)!);
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
    return new Session(item, dialectOf(this.dialect), {
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
   * Package-internal (reached through internal.ts): holds a
   * connection for a sequence of statements, on the server the instance
   * routes the first one to: `first` says whether it only reads;
   * `undefined` stands for a transaction, which goes to the primary.
   * `undefined` comes back when the statements must run through the
   * instance itself: inside a held scope, whose connection they join, or
   * with `forceRollback`.
   */
  private async holdConnection(first: boolean | undefined): Promise<HeldConnection | undefined> {
    await asyncContextLookup();
    const state = this.#scopeState();
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

  /**
   * Runs one statement where a call in `state` runs: on the scope's session,
   * on the forced connection, or where the router sends it.
   */
  async #run(kind: QueryKind, query: CompiledQuery, state: ScopeState | undefined): Promise<unknown> {
    if (state?.session) return await state.session.run(kind, query);
    if (kind === EXECUTE && state?.route === "replica") throw replicaWriteError("execute");
    if (this.#forced) return await this.#forced.run(this.#abortsOnError, (held) => this.#run(kind, query, held));
    const router = this.#router;
    if (kind === EXECUTE) {
      try {
        return await this.#executor.run(
          this.#poolOf(this.#primary, state),
          router.writeTarget(state?.route),
          kind,
          query,
        );
      } finally {
        if (router.readYourWrites > 0) this.#contextOf(state).mark();
      }
    }
    const reads = router.reads(query.text);
    return await router.withFailover(router.readTarget(state?.route, reads, this.#contextOf(state)), async (target) => {
      try {
        return await this.#executor.run(this.#poolOf(target.server, state), target, kind, query);
      } finally {
        if (!reads && router.readYourWrites > 0 && target.server === this.#primary) this.#contextOf(state).mark();
      }
    });
  }

  async #runMany(
    text: string,
    paramSets: readonly (readonly unknown[])[],
    state: ScopeState | undefined,
  ): Promise<ExecuteResult> {
    if (state?.session) return await executeManyAtomically(state.session, text, paramSets);
    if (state?.route === "replica") throw replicaWriteError("executeMany");
    if (this.#forced) {
      return await this.#forced.run(this.#abortsOnError, (held) => this.#runMany(text, paramSets, held));
    }
    const session = await this.#session(this.#primary.targets.held, state);
    try {
      return await executeManyAtomically(session, text, paramSets);
    } finally {
      session.end();
    }
  }

  async *#stream(query: CompiledQuery, batchSize: number, state: ScopeState | undefined): AsyncIterableIterator<Row[]> {
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

  async #connection<T>(fn: (conn: Connection) => Promise<T> | T, state: ScopeState | undefined): Promise<T> {
    if (state?.session) return await fn(new Connection(state.session));
    if (this.#forced) return await this.#forced.run(true, (held) => this.#connection(fn, held));
    const session = state?.route === "replica"
      ? await this.#sessionAt(this.#router.replicaTarget("replica-scope"), state)
      : await this.#session(this.#primary.targets.held, state);
    try {
      return await this.#scope.run(session.state(undefined), () => fn(new Connection(session)));
    } finally {
      await endSession(session);
    }
  }

  async #transaction<T>(
    fn: (tx: Transaction) => Promise<T> | T,
    options: TransactionOptions,
    state: ScopeState | undefined,
  ): Promise<T> {
    if (state?.session) {
      const parent = state.tx ?? state.session.current;
      return await runTransaction(state.session, await Transaction.open(state.session, parent, options, false), fn);
    }
    if (state?.route === "replica") throw replicaWriteError("transaction");
    checkTransactionOptions(options); // before a connection is taken for nothing
    // With forceRollback: a savepoint of the forced transaction, where isolation and readOnly do not apply.
    if (this.#forced) return await this.#forced.run(false, (held) => this.#transaction(fn, {}, held));
    const session = await this.#session(this.#primary.targets.held, state);
    return await runTransaction(session, await Transaction.open(session, undefined, options, true), fn);
  }

  async #begin(options: TransactionOptions, state: ScopeState | undefined): Promise<Transaction> {
    if (state?.session) return await Transaction.open(state.session, state.tx ?? state.session.current, options, false);
    if (state?.route === "replica") throw replicaWriteError("begin");
    checkTransactionOptions(options);
    if (this.#forced) return await this.#forced.run(false, (held) => this.#begin({}, held));
    return await Transaction.open(await this.#session(this.#primary.targets.held, state), undefined, options, true);
  }

  async #routed<T>(
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
    return await this.#scope.run(state, () => fn(new ScopeHandle(this.dialect, route, this.#calls, state)));
  }

  /** What the handles of this instance's scopes call back with. */
  readonly #calls: ScopedCalls = {
    run: (kind, query, state) => this.#run(kind, query, state),
    runMany: (text, paramSets, state) => this.#runMany(text, paramSets, state),
    stream: (query, batchSize, state) => this.#stream(query, batchSize, state),
    connection: (fn, state) => this.#connection(fn, state),
    transaction: (fn, options, state) => this.#transaction(fn, options, state),
    begin: (options, state) => this.#begin(options, state),
    routed: (route, fn, state) => this.#routed(route, fn, state),
  };

  /**
   * Runs `fn` with one connection held for its whole duration; inside it,
   * this instance's `db.*` calls use that connection. Nested calls reuse it.
   * Inside `db.replica()` the connection is a replica's, and read-only.
   */
  async connection<T>(fn: (conn: Connection) => Promise<T> | T): Promise<T> {
    await asyncContextLookup();
    return await this.#connection(fn, this.#scopeState());
  }

  /**
   * Runs `fn` in a transaction on the primary: committed when `fn` returns,
   * rolled back (and the error rethrown) when it throws. Inside another
   * transaction it becomes a savepoint, whose failure rolls back only its
   * own work. Inside `db.replica()` it throws `ReadOnlyError`.
   */
  async transaction<T>(fn: (tx: Transaction) => Promise<T> | T, options: TransactionOptions = {}): Promise<T> {
    await asyncContextLookup();
    return await this.#transaction(fn, options, this.#scopeState());
  }

  /**
   * Opens a transaction and returns its handle, which you end with `commit()`
   * or `rollback()`; with `await using`, leaving the block uncommitted rolls
   * back. `db.*` calls do not join it: run its queries through the handle.
   */
  async begin(options: TransactionOptions = {}): Promise<Transaction> {
    await asyncContextLookup();
    return await this.#begin(options, this.#scopeState());
  }

  /**
   * Runs `fn` in a replica scope: its reads (this instance's `db.*` calls
   * and the handle's) go to a healthy replica picked by `routing.picker`,
   * and `execute`, `executeMany`, `transaction` and `begin` throw
   * `ReadOnlyError` before reaching a server. Replica connections
   * are read-only on the server too, so a write hidden in a fetch fails
   * there. Without replicas, or when none is healthy and `routing.fallback`
   * is `"primary"`, reads go to the primary. `db.primary()` inside it
   * restores the primary.
   *
   * @example
   * ```ts
   * import { Database, sql } from "@roost/db";
   * const db = new Database("postgres://app@primary/app", { replicas: ["postgres://app@replica/app"] });
   * const report = await db.replica(async (r) => await r.fetchAll(sql`select count(*) from orders`));
   * ```
   */
  async replica<T>(fn: (replica: RoutedScope) => Promise<T> | T): Promise<T> {
    await asyncContextLookup();
    return await this.#routed("replica", fn, this.#scopeState());
  }

  /**
   * Runs `fn` in a primary scope: everything in it, reads included, goes to
   * the primary, also inside a `db.replica()` scope.
   */
  async primary<T>(fn: (primary: RoutedScope) => Promise<T> | T): Promise<T> {
    await asyncContextLookup();
    return await this.#routed("primary", fn, this.#scopeState());
  }

  /**
   * Runs `fn` in a context of its own, typically one request. For
   * read-your-writes, only writes made inside it (by this instance) keep its
   * reads on the primary, so one client's write does not send every
   * client's reads to the primary; outside any context (or scope), writes
   * count for the whole instance. With `connectionScope: "context"` (the
   * default on Workers) the connections its queries open are its own and
   * are closed before it returns. `fn` gets a handle that runs queries in
   * the context also where the runtime has no async context.
   *
   * @example A Worker serving each request in a context
   * ```ts
   * import { Database, sql } from "@roost/db";
   * import { postgresJs } from "@roost/db/drivers/postgres-js";
   * const db = new Database("postgres://app@db.internal/app", { name: "main", driver: postgresJs });
   * export default {
   *   fetch: (request: Request) =>
   *     db.context(async (scope) => Response.json(await scope.fetchAll(sql`select id, name from users`))),
   * };
   * ```
   */
  async context<T>(fn: (scope: RoutedScope) => Promise<T> | T): Promise<T> {
    this.#assertOpen();
    await asyncContextLookup();
    // Without async context a context cannot see an enclosing one (perhaps another request's): it stands alone.
    const outer = this.#scope.peek()?.context;
    const context = new CallContext(outer === this.#rootContext ? undefined : outer);
    const state: ScopeState = { session: undefined, tx: undefined, route: undefined, context };
    if (this.#contextScoped) this.#liveContexts.add(context);
    try {
      return await this.#scope.run(state, () => fn(new ScopeHandle(this.dialect, "auto", this.#calls, state)));
    } finally {
      this.#liveContexts.delete(context);
      await context.end();
    }
  }

  /** Runs one compiled query where this handle runs queries. */
  protected perform(kind: QueryKind, query: CompiledQuery): Promise<unknown> {
    const lookup = asyncContextLookup();
    if (lookup) return lookup.then(() => this.perform(kind, query));
    const state = this.#scopeState();
    if (this.#plain) {
      if (state === undefined) return this.#executor.run(this.#primary.pool, this.#primary.targets.read, kind, query);
      if (state.session) return state.session.run(kind, query);
    }
    return this.#run(kind, query, state);
  }

  /** Runs one statement for many parameter sets, atomically. */
  protected performMany(text: string, paramSets: readonly (readonly unknown[])[]): Promise<ExecuteResult> {
    const lookup = asyncContextLookup();
    if (lookup) return lookup.then(() => this.performMany(text, paramSets));
    return this.#runMany(text, paramSets, this.#scopeState());
  }

  /** Streams a compiled query's rows. */
  protected stream(query: CompiledQuery, batchSize: number): AsyncIterableIterator<Row[]> {
    const lookup = asyncContextLookup();
    if (lookup) return this.#streamAfter(lookup, query, batchSize);
    return this.#stream(query, batchSize, this.#scopeState());
  }

  /** Streams once async context's lookup has settled. */
  async *#streamAfter(lookup: Promise<void>, query: CompiledQuery, batchSize: number): AsyncIterableIterator<Row[]> {
    await lookup;
    yield* this.stream(query, batchSize);
  }

  /** A description with the password redacted. */
  override toString(): string {
    return `Database(${this.#name === undefined ? "" : `"${this.#name}" `}${this.#url})`;
  }

  /** The redacted description, so `JSON.stringify` never shows the password. */
  toJSON(): { name: string | undefined; url: string; dialect: string; replicas: string[] } {
    return {
      name: this.#name,
      url: this.#url.toString(),
      dialect: this.dialect,
      replicas: this.#router.replicas.map((s) => s.url),
    };
  }

  /** Node, Bun: inspection shows the redacted description. */
  [inspectCustom](): string {
    return this.toString();
  }

  /** Deno: inspection shows the redacted description. */
  [denoInspect](): string {
    return this.toString();
  }
}
