/**
 * The public facade: a database with a pool, query methods, scopes,
 * transactions and the registry of named instances.
 *
 * @module
 */
import { Connection } from "./connection.ts";
import { asyncContextLookup, ScopeSlot } from "./context.ts";
import { type DialectName, dialectOf, type TransactionOptions } from "./dialect.ts";
import type { Driver, DriverConnection, ExecuteResult, Row } from "./driver.ts";
import { driverLoader } from "./drivers/mod.ts";
import { ClosedError, ConnectionError, TransactionError, withParameters } from "./errors.ts";
import { type DatabaseOptions, resolveOptions } from "./options.ts";
import { Pool, type PooledConnection, type PoolHooks, type PoolStats, type ResolvedPoolOptions } from "./pool.ts";
import { EXECUTE, methodOf, Queryable, type QueryKind, runOn } from "./queryable.ts";
import { isRegistered, lookup, register, registeredInstances, registeredNames, unregister } from "./registry.ts";
import { ReleasableStream } from "./releasable_stream.ts";
import {
  isReadStatement,
  Member,
  type QueryEvent,
  type QueryHook,
  type ReplicaStats,
  replicaWriteError,
  reportQuery,
  Router,
  type RouteReason,
  type Target,
} from "./router.ts";
import { Schema } from "./schema.ts";
import { openSession, setupUrl } from "./session_setup.ts";
import { CallContext, type ScopeState, Session } from "./session.ts";
import type { CompiledQuery } from "./sql.ts";
import { runtime } from "./runtime.ts";
import { sessionEnder } from "./terminate.ts";
import {
  checkTransactionOptions,
  endSession,
  executeManyAtomically,
  runTransaction,
  Transaction,
} from "./transaction.ts";
import { type DatabaseUrl, parseDatabaseUrl } from "./url.ts";

/** A connection held on its own by a query builder's driver, and how to give it back. */
export interface HeldConnection {
  /** The handle its statements run on. */
  readonly connection: Connection;
  /**
   * True when it is a replica's because its first statement read and reads
   * go to replicas (not because of a replica scope): writes on it throw
   * `ReadOnlyError`.
   */
  readonly routedRead: boolean;
  /** Rolls back a transaction left open on it and returns it to its pool. */
  release(): Promise<void>;
}

/**
 * Package-internal, for query-builder drivers (`@roost/db/kysely`): holds a
 * connection for a sequence of statements, on the server the instance routes
 * the first one to: `reads` says whether it only reads (the builder knows
 * from its syntax tree); `undefined` stands for a transaction, which goes to
 * the primary. `undefined` comes back when the statements must run through
 * the instance itself: inside a held scope, whose connection they join, or
 * with `forceRollback`.
 */
export let holdConnection: (db: Database, reads: boolean | undefined) => Promise<HeldConnection | undefined>;

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

/**
 * The handle `db.context(fn)`, `db.replica(fn)` and `db.primary(fn)` pass to
 * their callback. Its queries run in the scope (its context's connections
 * and read-your-writes, its route) even where the runtime has no async
 * context; in a replica scope, `execute`, `executeMany`, `transaction` and
 * `begin` throw `ReadOnlyError`.
 */
export interface RoutedScope extends Queryable {
  /** Which server this scope's queries go to: `"auto"` routes as the instance does outside scopes. */
  readonly route: "auto" | "primary" | "replica";
  /** Holds one connection of this scope's route for `fn` (see `Database.connection`). */
  connection<T>(fn: (conn: Connection) => Promise<T> | T): Promise<T>;
  /** Runs `fn` in a transaction on the primary (see `Database.transaction`). */
  transaction<T>(fn: (tx: Transaction) => Promise<T> | T, options?: TransactionOptions): Promise<T>;
  /** Opens a transaction on the primary and returns its handle (see `Database.begin`). */
  begin(options?: TransactionOptions): Promise<Transaction>;
  /** Runs `fn` in a replica scope nested in this one (see `Database.replica`). */
  replica<T>(fn: (replica: RoutedScope) => Promise<T> | T): Promise<T>;
  /** Runs `fn` in a primary scope nested in this one (see `Database.primary`). */
  primary<T>(fn: (primary: RoutedScope) => Promise<T> | T): Promise<T>;
}

/** A Worker's limit on simultaneous outgoing connections per request. */
const socketsPerRequest = 6;

const inspectCustom = Symbol.for("nodejs.util.inspect.custom");
const denoInspect = Symbol.for("Deno.customInspect");

/** With `forceRollback`: the held connection and the transaction every call runs in. */
interface ForcedRoot {
  readonly session: Session;
  readonly tx: Transaction;
}

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
  readonly #primary: Member;
  readonly #scope = new ScopeSlot<ScopeState>();
  readonly #loadDriver: () => Promise<Driver>;
  /** Writes outside any context are recorded here (read-your-writes). */
  readonly #rootContext = new CallContext();
  readonly #readYourWrites: number;
  /** True when reads outside scopes may go to replicas. */
  readonly #routeReads: boolean;
  readonly #onQuery: QueryHook | undefined;
  /** Whether errors and events carry query parameters (`debugParameters`). */
  readonly #debug: boolean;
  /** True when no replica, hook or read-your-writes needs a routing decision. */
  readonly #direct: boolean;
  /** True when connections belong to call contexts (`connectionScope: "context"`). */
  readonly #scoped: boolean;
  /** Makes a context's own pool for a server (`connectionScope: "context"`). */
  readonly #contextPools = new Map<Member, () => Pool<DriverConnection>>();
  /** Contexts running now, whose connections `close()` closes too. */
  readonly #liveContexts = new Set<CallContext>();
  #driver: Driver | undefined;
  /** Set once the instance warned about a connection outside any context, or when it chose its connectionScope. */
  #warned: boolean;
  #closing: Promise<void> | undefined;
  #schema: Schema | undefined;
  /** With `forceRollback`: the held connection and the outer transaction, once the first query opened them. */
  #forced: Promise<ForcedRoot> | undefined;
  readonly #forceRollback: boolean;
  readonly #abortsOnError: boolean;
  /** With `forceRollback`: settles when the running top-level operation ends; the next waits for it. */
  #turn: Promise<void> = Promise.resolve();

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
    this.#scoped = resolved.connectionScope === "context";
    // Only an instance that got "context" by default (on Workers) is told what it costs outside a context.
    this.#warned = options.connectionScope !== undefined;
    const label = resolved.name === undefined ? `pool of ${parsed}` : `pool of "${resolved.name}"`;
    const servers = 1 + resolved.replicas.length;
    this.#primary = this.#member("primary", -1, parsed, resolved.pool, label, servers);
    const replicas = resolved.replicas.map((replica, i) =>
      this.#member("replica", i, replica.url, replica.pool, `${label} replica ${i}`, servers)
    );
    this.#router = new Router(this.#primary, replicas, resolved.routing, !this.#scoped);
    this.#readYourWrites = resolved.routing.readYourWrites;
    this.#routeReads = resolved.routing.reads === "replicas" && replicas.length > 0;
    this.#onQuery = resolved.onQuery;
    this.#debug = resolved.debugParameters;
    this.#forceRollback = resolved.forceRollback;
    this.#abortsOnError = dialectOf(parsed.dialect).errorAbortsTransaction;
    this.#direct = replicas.length === 0 && resolved.onQuery === undefined && this.#readYourWrites === 0 &&
      !this.#forceRollback;
    if (resolved.name !== undefined) register(resolved.name, this);
  }

  static {
    holdConnection = async (db, reads) => {
      await asyncContextLookup();
      return await db.#hold(reads, db.#scopeState());
    };
  }

  async #hold(first: boolean | undefined, state: ScopeState | undefined): Promise<HeldConnection | undefined> {
    if (state?.session !== undefined || this.#forceRollback) return undefined;
    this.#assertOpen();
    const reads = first === true;
    const target = reads || state?.route ? this.#readTarget(state, reads) : this.#primary.via.write;
    // A connection taken for a transaction reports as any held one; for a statement, why it went there.
    const session = await this.#sessionAt(target, state, first !== undefined);
    const routedRead = session.readOnly && session.reason === "read";
    return { connection: new Connection(session), routedRead, release: () => endSession(session) };
  }

  /**
   * A server and its pool. With connections scoped to contexts, the
   * instance's own pool never reuses a connection and never makes a caller
   * wait for another's (on Workers that other may be a different request),
   * and each context gets a pool of its own, sharing the per-request socket
   * limit with the context's pools for the other servers.
   */
  #member(
    served: "primary" | "replica",
    index: number,
    url: DatabaseUrl,
    options: ResolvedPoolOptions,
    label: string,
    servers: number,
  ): Member {
    const dialect = dialectOf(url.dialect);
    const driver = () => this.#driverLoaded();
    const endSession = dialect.terminateSessions && runtime !== "workerd"
      ? sessionEnder(
        async () => (await driver()).connect(setupUrl(url, { connect_timeout: 1 })),
        dialect.terminateSessions,
      )
      : undefined;
    const hooks: PoolHooks<DriverConnection> = {
      open: async () => {
        const connection = await openSession(await driver(), url, dialect, served === "replica");
        if (served === "replica") this.#router.confirm(member);
        return connection;
      },
      close: (connection) => connection.close(),
      destroy: (connection) => {
        const id = connection.backendId;
        const cut = connection.destroy?.() ?? connection.close();
        // Its socket is cut now; the session ends on the server right after, which a closing pool waits for
        // (boundedly), so once close() resolves nothing of Roost's holds the process or runs on the server.
        return id === undefined || endSession === undefined ? cut : Promise.all([cut, endSession(id)]).then(() => {});
      },
      broken: (connection) => connection.broken === true,
      ping: (connection) => connection.ping?.(),
      unwatched: (connection) => connection.unwatched === true,
    };
    // Outside any context each connection serves one statement or scope: the first one opened is said once.
    const root = { ...hooks, open: () => (this.#warnOutsideContext(), hooks.open()) };
    const pool = this.#scoped
      ? new Pool(root, { ...options, max: Infinity }, label, false)
      : new Pool(hooks, options, label);
    const member = new Member(served, index, url.toString(), pool);
    if (this.#scoped) {
      const max = Math.max(1, Math.min(options.max, Math.floor(socketsPerRequest / servers)));
      this.#contextPools.set(member, () => new Pool(hooks, { ...options, min: 0, max }, `${label} (context)`));
    }
    return member;
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
    return this.#driver ??= await this.#loadDriver();
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
      const forced = this.#forced;
      this.#closing = (forced === undefined ? Promise.resolve() : this.#rollBackForced(forced)).then(() =>
        Promise.all([
          this.#router.close(options.timeout),
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

  /** With `forceRollback`: the held connection and its outer transaction, opened by the first call. */
  #forcedRoot(): Promise<ForcedRoot> {
    this.#assertOpen();
    if (this.#forced === undefined) {
      const opening = (async () => {
        const session = await this.#session(this.#primary, undefined);
        try {
          return { session, tx: await Transaction.open(session, undefined, {}, false) };
        } catch (error) {
          session.end();
          throw error;
        }
      })();
      this.#forced = opening;
      // A failed open (the server is down) is retried by the next call.
      opening.catch(() => this.#forced === opening && (this.#forced = undefined));
    }
    return this.#forced;
  }

  /**
   * With `forceRollback`: runs `fn` on the held connection when the running
   * top-level operation has ended; with `savepoint`, in a savepoint of its
   * own that its failure rolls back (so a failed statement cannot abort the
   * outer transaction on Postgres).
   */
  async #forcedRun<T>(fn: (session: Session, tx: Transaction) => Promise<T>, savepoint: boolean): Promise<T> {
    const root = await this.#forcedRoot();
    const previous = this.#turn;
    let done!: () => void;
    this.#turn = new Promise((resolve) => done = resolve);
    await previous;
    try {
      this.#assertOpen();
      const { session } = root;
      const parent = session.current ?? root.tx;
      if (!savepoint) return await session.scope.run(session.state(parent), () => fn(session, parent));
      return await runTransaction(session, await Transaction.open(session, parent, {}, false), (tx) => fn(session, tx));
    } finally {
      done();
    }
  }

  /** Rolls back and hands back the `forceRollback` connection, once the running operation has ended. */
  async #rollBackForced(forced: Promise<ForcedRoot>): Promise<void> {
    const root = await forced.catch(() => undefined);
    if (root === undefined) return;
    await this.#turn;
    try {
      if (root.tx.active) await root.tx.rollback();
    } catch {
      root.session.broken = true;
    } finally {
      root.session.end();
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
  #poolOf(member: Member, state: ScopeState | undefined): Pool<DriverConnection> {
    if (!this.#scoped || state === undefined || state.context === this.#rootContext) return member.pool;
    const pool = state.context.poolFor(member, this.#contextPools.get(member)!);
    if (pool === undefined) {
      throw new ClosedError("this db.context() has ended and closed its connections: query inside it, or outside any");
    }
    return pool;
  }

  async #session(member: Member, state: ScopeState | undefined, reason?: RouteReason): Promise<Session> {
    this.#assertOpen();
    const pool = this.#poolOf(member, state);
    const item = await pool.acquire();
    const context = this.#contextOf(state);
    return new Session(item, dialectOf(this.dialect), {
      member,
      scope: this.#scope,
      context,
      readYourWrites: this.#readYourWrites > 0,
      observe: this.#onQuery,
      debug: this.#debug,
      reason,
      release: (session) => {
        // A replica whose connection broke under a held scope leaves the rotation too.
        if (session.broken) this.#router.markDown(member, "its connection was lost during a connection scope");
        pool.release(session.item, session.broken);
      },
    });
  }

  /**
   * A session on `target`; a replica that cannot connect leaves the rotation
   * and another healthy one (or the fallback) is tried. With `reports`, its
   * queries report the route's reason to `onQuery`; otherwise `"held"`.
   */
  async #sessionAt(target: Target, state: ScopeState | undefined, reports = false): Promise<Session> {
    for (;;) {
      try {
        return await this.#session(target.member, state, reports ? target.reason : undefined);
      } catch (error) {
        if (!this.#retryable(target, error)) throw error;
        target = this.#replicaTarget(target.reason === "read" ? "read" : "replica-scope");
      }
    }
  }

  /** A healthy replica, or the fallback when none is. */
  #replicaTarget(reason: "read" | "replica-scope"): Target {
    const member = this.#router.replicas.length === 0 ? undefined : this.#router.pick();
    if (member !== undefined) return member.via[reason];
    if (this.#router.replicas.length > 0 && this.#router.options.fallback === "error") {
      throw this.#router.noReplicaError();
    }
    return this.#primary.via.fallback;
  }

  /** Where a fetch outside any held connection goes, and why; `reads` says whether its statement reads. */
  #readTarget(state: ScopeState | undefined, reads: boolean): Target {
    const route = state?.route;
    if (route === "primary") return this.#primary.via["primary-scope"];
    if (route !== "replica" && !(this.#routeReads && reads)) {
      return this.#primary.via[this.#routeReads ? "write" : "read"];
    }
    if (this.#readYourWrites > 0 && this.#contextOf(state).within(this.#readYourWrites)) {
      return this.#primary.via["read-your-writes"];
    }
    return this.#replicaTarget(route === "replica" ? "replica-scope" : "read");
  }

  /** True when a failed replica should leave the rotation and the read go elsewhere. */
  #retryable(target: Target, error: unknown): boolean {
    if (target.member.served !== "replica" || !(error instanceof ConnectionError) || this.closed) return false;
    this.#router.markDown(target.member, error);
    return true;
  }

  #report(
    target: Target,
    method: QueryEvent["method"],
    query: CompiledQuery,
    started: number,
    error?: unknown,
  ): void {
    const params = this.#debug ? query.params : undefined;
    reportQuery(this.#onQuery!, target.member, target.reason, method, query.text, started, error, params);
  }

  /** Takes a connection of the target's pool; with a hook, a failure is reported. */
  #acquire(
    target: Target,
    pool: Pool<DriverConnection>,
    method: QueryEvent["method"],
    query: CompiledQuery,
    started: number,
    shares = false,
  ): Promise<PooledConnection<DriverConnection>> {
    this.#assertOpen();
    const acquiring = pool.acquire(shares);
    if (!this.#onQuery) return acquiring;
    return acquiring.catch((error: unknown) => {
      this.#report(target, method, query, started, error);
      throw error;
    });
  }

  /** Runs one query on a server's pool; an idle connection is used at once, without waiting on the pool. */
  #runOn(target: Target, kind: QueryKind, query: CompiledQuery, state: ScopeState | undefined): Promise<unknown> {
    if (this.#onQuery === undefined && this.#closing === undefined) {
      const pool = this.#poolOf(target.member, state);
      const item = this.#driver?.pipelines === true ? pool.takeShared() : pool.takeReady();
      if (item !== undefined) return this.#runHeld(pool, item, kind, query);
    }
    return this.#runAcquired(target, kind, query, state);
  }

  async #runHeld(
    pool: Pool<DriverConnection>,
    item: PooledConnection<DriverConnection>,
    kind: QueryKind,
    query: CompiledQuery,
  ): Promise<unknown> {
    let broken = false;
    try {
      return await runOn(item.connection, kind, query);
    } catch (error) {
      broken = error instanceof ConnectionError;
      throw withParameters(error, query.params, this.#debug);
    } finally {
      pool.release(item, broken);
    }
  }

  /** Runs one query on a connection the pool hands out (perhaps after a wait), reporting it to the hook. */
  async #runAcquired(
    target: Target,
    kind: QueryKind,
    query: CompiledQuery,
    state: ScopeState | undefined,
  ): Promise<unknown> {
    const pool = this.#poolOf(target.member, state);
    const started = this.#onQuery ? performance.now() : 0;
    const shares = this.#driver?.pipelines === true;
    const item = await this.#acquire(target, pool, methodOf(kind), query, started, shares);
    let broken = false;
    try {
      const result = await runOn(item.connection, kind, query);
      if (this.#onQuery) this.#report(target, methodOf(kind), query, started);
      return result;
    } catch (caught) {
      broken = caught instanceof ConnectionError;
      const error = withParameters(caught, query.params, this.#debug);
      if (this.#onQuery) this.#report(target, methodOf(kind), query, started, error);
      throw error;
    } finally {
      pool.release(item, broken);
    }
  }

  async #perform(kind: QueryKind, query: CompiledQuery, state: ScopeState | undefined): Promise<unknown> {
    if (state?.session) return await state.session.perform(kind, query);
    if (this.#forceRollback) {
      if (kind === EXECUTE && state?.route === "replica") throw replicaWriteError("execute");
      return await this.#forcedRun((session) => session.perform(kind, query), this.#abortsOnError);
    }
    if (kind === EXECUTE) {
      if (state?.route === "replica") throw replicaWriteError("execute");
      const target = this.#primary.via[state?.route === "primary" ? "primary-scope" : "write"];
      try {
        return await this.#runOn(target, kind, query, state);
      } finally {
        if (this.#readYourWrites > 0) this.#contextOf(state).mark();
      }
    }
    const reads = this.#routeReads || this.#readYourWrites > 0 ? isReadStatement(query.text) : true;
    for (let target = this.#readTarget(state, reads);;) {
      try {
        return await this.#runOn(target, kind, query, state);
      } catch (error) {
        if (!this.#retryable(target, error)) throw error;
        target = this.#replicaTarget(target.reason === "read" ? "read" : "replica-scope");
      } finally {
        if (!reads && this.#readYourWrites > 0 && target.member === this.#primary) this.#contextOf(state).mark();
      }
    }
  }

  async #performMany(
    text: string,
    paramSets: readonly (readonly unknown[])[],
    state: ScopeState | undefined,
  ): Promise<ExecuteResult> {
    if (state?.session) return await executeManyAtomically(state.session, text, paramSets);
    if (state?.route === "replica") throw replicaWriteError("executeMany");
    if (this.#forceRollback) {
      return await this.#forcedRun((session) => executeManyAtomically(session, text, paramSets), this.#abortsOnError);
    }
    const session = await this.#session(this.#primary, state);
    try {
      return await executeManyAtomically(session, text, paramSets);
    } finally {
      session.end();
    }
  }

  async *#stream(query: CompiledQuery, batchSize: number, state: ScopeState | undefined): AsyncIterableIterator<Row[]> {
    if (state?.session) {
      yield* state.session.stream(query, batchSize);
      return;
    }
    if (this.#forceRollback) {
      // Not in a turn: the loop's body may query at the top level.
      yield* (await this.#forcedRoot()).session.stream(query, batchSize);
      return;
    }
    const reads = this.#routeReads || this.#readYourWrites > 0 ? isReadStatement(query.text) : true;
    for (let target = this.#readTarget(state, reads);;) {
      let started = false;
      try {
        for await (const batch of this.#streamOn(target, query, batchSize, state)) {
          started = true;
          yield batch;
        }
        return;
      } catch (error) {
        // Rows already handed out cannot be taken back: only a stream that yielded nothing moves elsewhere.
        if (started || !this.#retryable(target, error)) throw error;
        target = this.#replicaTarget(target.reason === "read" ? "read" : "replica-scope");
      } finally {
        if (!reads && this.#readYourWrites > 0 && target.member === this.#primary) this.#contextOf(state).mark();
      }
    }
  }

  async *#streamOn(
    target: Target,
    query: CompiledQuery,
    batchSize: number,
    state: ScopeState | undefined,
  ): AsyncIterableIterator<Row[]> {
    const pool = this.#poolOf(target.member, state);
    const started = this.#onQuery ? performance.now() : 0;
    const item = await this.#acquire(target, pool, "iterate", query, started);
    let released = false;
    const release = (error: unknown) => {
      if (released) return;
      released = true;
      pool.unlend(item);
      pool.release(item, error instanceof ConnectionError);
    };
    const source = item.connection.stream(query.text, query.params, batchSize, "own");
    // While this connection streams, a query that finds the pool exhausted
    // borrows it (SQLite), or the stream reads the rest of its result and
    // gives it back (Postgres, MySQL): querying inside the loop cannot deadlock.
    let batches: AsyncIterable<Row[]> = source;
    if (this.#driver?.interleavedStreams === true) pool.lend(item);
    else {
      const releasable = new ReleasableStream(source, release);
      batches = releasable.batches();
      pool.lend(item, releasable.giveBack);
    }
    try {
      yield* batches;
      if (this.#onQuery) this.#report(target, "iterate", query, started);
    } catch (caught) {
      const error = withParameters(caught, query.params, this.#debug);
      if (this.#onQuery) this.#report(target, "iterate", query, started, error);
      release(caught);
      throw error;
    } finally {
      release(undefined);
    }
  }

  async #connection<T>(fn: (conn: Connection) => Promise<T> | T, state: ScopeState | undefined): Promise<T> {
    if (state?.session) return await fn(new Connection(state.session));
    if (this.#forceRollback) return await this.#forcedRun(async (session) => await fn(new Connection(session)), true);
    const session = state?.route === "replica"
      ? await this.#sessionAt(this.#replicaTarget("replica-scope"), state)
      : await this.#session(this.#primary, state);
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
    if (this.#forceRollback) return await this.#forcedRun(async (_session, tx) => await fn(tx), true);
    const session = await this.#session(this.#primary, state);
    return await runTransaction(session, await Transaction.open(session, undefined, options, true), fn);
  }

  async #begin(options: TransactionOptions, state: ScopeState | undefined): Promise<Transaction> {
    if (state?.session) return await Transaction.open(state.session, state.tx ?? state.session.current, options, false);
    if (state?.route === "replica") throw replicaWriteError("begin");
    checkTransactionOptions(options);
    if (this.#forceRollback) {
      return await this.#forcedRun((session, parent) => Transaction.open(session, parent, {}, false), false);
    }
    return await Transaction.open(await this.#session(this.#primary, state), undefined, options, true);
  }

  async #routed<T>(
    route: "primary" | "replica",
    fn: (scope: RoutedScope) => Promise<T> | T,
    outer: ScopeState | undefined,
  ): Promise<T> {
    this.#assertOpen();
    // A primary scope inside a connection or transaction on the primary stays on it: it would not see its writes.
    const held = route === "primary" && outer?.session !== undefined && !outer.session.readOnly;
    const state: ScopeState = held
      ? { ...outer, route }
      : { session: undefined, tx: undefined, route, context: this.#contextOf(outer) };
    return await this.#scope.run(state, () => fn(new Routed(this.dialect, route, this.#port, state)));
  }

  readonly #port: RoutePort = {
    perform: (kind, query, state) => this.#perform(kind, query, state),
    performMany: (text, paramSets, state) => this.#performMany(text, paramSets, state),
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
    if (this.#scoped) this.#liveContexts.add(context);
    try {
      return await this.#scope.run(state, () => fn(new Routed(this.dialect, "auto", this.#port, state)));
    } finally {
      this.#liveContexts.delete(context);
      await context.end();
    }
  }

  /** Runs one compiled query where this handle runs queries. */
  protected perform(kind: QueryKind, query: CompiledQuery): Promise<unknown> {
    const lookup = asyncContextLookup();
    if (lookup) return lookup.then(() => this.perform(kind, query));
    if (this.#direct) {
      const state = this.#scopeState();
      if (state?.session) return state.session.perform(kind, query);
      if (state === undefined) return this.#runOn(this.#primary.via.read, kind, query, undefined);
    }
    return this.#perform(kind, query, this.#scopeState());
  }

  /** Runs one statement for many parameter sets, atomically. */
  protected performMany(text: string, paramSets: readonly (readonly unknown[])[]): Promise<ExecuteResult> {
    const lookup = asyncContextLookup();
    if (lookup) return lookup.then(() => this.performMany(text, paramSets));
    return this.#performMany(text, paramSets, this.#scopeState());
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
      replicas: this.#router.replicas.map((m) => m.url),
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

/** What a {@linkcode Routed} handle calls back into its database with. */
interface RoutePort {
  perform(kind: QueryKind, query: CompiledQuery, state: ScopeState): Promise<unknown>;
  performMany(text: string, paramSets: readonly (readonly unknown[])[], state: ScopeState): Promise<ExecuteResult>;
  stream(query: CompiledQuery, batchSize: number, state: ScopeState): AsyncIterableIterator<Row[]>;
  connection<T>(fn: (conn: Connection) => Promise<T> | T, state: ScopeState): Promise<T>;
  transaction<T>(fn: (tx: Transaction) => Promise<T> | T, options: TransactionOptions, state: ScopeState): Promise<T>;
  begin(options: TransactionOptions, state: ScopeState): Promise<Transaction>;
  routed<T>(
    route: "primary" | "replica",
    fn: (scope: RoutedScope) => Promise<T> | T,
    state: ScopeState,
  ): Promise<T>;
}

/** The handle of a replica or primary scope: every call carries the scope's route. */
class Routed extends Queryable implements RoutedScope {
  readonly route: "auto" | "primary" | "replica";
  readonly #port: RoutePort;
  readonly #state: ScopeState;

  constructor(dialect: DialectName, route: "auto" | "primary" | "replica", port: RoutePort, state: ScopeState) {
    super(dialect);
    this.route = route;
    this.#port = port;
    this.#state = state;
  }

  connection<T>(fn: (conn: Connection) => Promise<T> | T): Promise<T> {
    return this.#port.connection(fn, this.#state);
  }

  transaction<T>(fn: (tx: Transaction) => Promise<T> | T, options: TransactionOptions = {}): Promise<T> {
    return this.#port.transaction(fn, options, this.#state);
  }

  begin(options: TransactionOptions = {}): Promise<Transaction> {
    return this.#port.begin(options, this.#state);
  }

  replica<T>(fn: (replica: RoutedScope) => Promise<T> | T): Promise<T> {
    return this.#port.routed("replica", fn, this.#state);
  }

  primary<T>(fn: (primary: RoutedScope) => Promise<T> | T): Promise<T> {
    return this.#port.routed("primary", fn, this.#state);
  }

  protected perform(kind: QueryKind, query: CompiledQuery): Promise<unknown> {
    return this.#port.perform(kind, query, this.#state);
  }

  protected performMany(text: string, paramSets: readonly (readonly unknown[])[]): Promise<ExecuteResult> {
    return this.#port.performMany(text, paramSets, this.#state);
  }

  protected stream(query: CompiledQuery, batchSize: number): AsyncIterableIterator<Row[]> {
    return this.#port.stream(query, batchSize, this.#state);
  }
}
