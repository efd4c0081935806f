/**
 * The public facade: a database's lifecycle, its scopes and the registry
 * of named instances. Each call goes to the `Dispatcher` (dispatcher.ts),
 * which runs it on the scope's held session, or through the `Router` to a
 * server's pool and the `Executor`; a plain statement outside any scope
 * goes straight to the executor.
 *
 * @module
 */
import { CallContext, type ScopeState } from "./call_context.ts";
import { AcquiredConnection } from "./acquired.ts";
import type { Connection } from "./connection.ts";
import { asyncContextLookup } from "./context.ts";
import type { ConnectionOptions, TransactionOptions } from "./dialect.ts";
import type { ExecuteResult, Row } from "./driver.ts";
import { Dispatcher } from "./dispatcher.ts";
import { ClosedError, ConfigError, TransactionError } from "./errors.ts";
import type { Executor } from "./executor.ts";
import type { HeldConnection } from "./internal.ts";
import { type DatabaseOptions, resolveOptions } from "./options.ts";
import type { PoolStats } from "./pool.ts";
import { Queryable, type QueryKind } from "./queryable.ts";
import { isRegistered, lookup, register, registeredInstances, registeredNames, unregister } from "./registry.ts";
import type { ReplicaStats } from "./routing_options.ts";
import { Schema } from "./schema.ts";
import { type RoutedScope, ScopeHandle } from "./scope_handle.ts";
import type { Server } from "./server.ts";
import type { CompiledQuery } from "./sql.ts";
import { checkConnectionOptions, type Transaction } from "./transaction.ts";
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
  /**
   * How long to wait for queries in flight before closing their connections.
   * Default 5 000 ms; `Infinity` waits as long as they take (up to the
   * longest a timer waits, about 24.8 days).
   */
  timeout?: number;
}

/**
 * Why `close` cannot take these options, if it cannot: a timeout that is
 * not a number of milliseconds, 0 or more (a string, NaN or a negative
 * number would otherwise cut every busy connection off at once).
 */
function closeOptionsRefused(options: unknown): ConfigError | undefined {
  if (typeof options !== "object" || options === null) return new ConfigError("close takes an options object");
  const { timeout } = options as CloseOptions;
  if (timeout === undefined || (typeof timeout === "number" && timeout >= 0)) return undefined;
  return new ConfigError("close's timeout must be a number of milliseconds, 0 or more (Infinity: as long as it takes)");
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
  #forgottenWarned = false;
  readonly #name: string | undefined;
  /** Where each call runs: the scope's session, the forceRollback connection, or the router's target. */
  readonly #dispatcher: Dispatcher;
  /** The dispatcher's executor and primary, for the plain statement that goes straight to them. */
  readonly #executor: Executor;
  readonly #primary: Server;
  /** True when a statement outside scopes goes straight to the primary: no replica, hook, read-your-writes or forceRollback. */
  readonly #plain: boolean;
  /** Contexts running now, whose connections `close()` closes too. */
  readonly #liveContexts = new Set<CallContext>();
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
    super(parsed.dialect);
    this.#url = parsed;
    this.#name = resolved.name;
    // Only an instance that got "context" by default (on Workers) is told what it costs outside a context.
    this.#warned = options.connectionScope !== undefined;
    const label = resolved.name === undefined ? `pool of ${parsed}` : `pool of "${resolved.name}"`;
    const dispatcher = new Dispatcher(resolved, label, () => this.#assertOpen(), () => this.#warnOutsideContext());
    this.#dispatcher = dispatcher;
    this.#executor = dispatcher.executor;
    this.#primary = dispatcher.router.primary;
    this.#plain = resolved.replicas.length === 0 && resolved.onQuery === undefined &&
      resolved.routing.readYourWrites === 0 &&
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
    // Where the driver has no transactions (D1), the statements run one by one on one connection.
    return this.#schema ??= new Schema({
      dialect: this.dialect,
      transaction: (fn) => this.transactionRefusal() ? this.connection(fn) : this.transaction(fn),
    });
  }

  /** True once `close()` has been called. */
  get closed(): boolean {
    return this.#closing !== undefined;
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
    const refused = closeOptionsRefused(options);
    if (refused !== undefined) return Promise.reject(refused);
    if (this.#closing === undefined) {
      if (this.#name !== undefined) unregister(this.#name, this);
      this.#executor.close();
      this.#dispatcher.router.stop();
      const servers = [this.#primary, ...this.#dispatcher.router.replicas];
      this.#closing = this.#dispatcher.rollBackForced().then(() =>
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
    return { primary: this.#primary.pool.stats(), replicas: this.#dispatcher.router.replicaStats() };
  }

  #assertOpen(): void {
    if (this.#closing !== undefined) {
      throw new ClosedError(`database ${this.#name === undefined ? `<${this.#url}>` : `"${this.#name}"`} is closed`);
    }
  }

  #scopeState(): ScopeState | undefined {
    const state = this.#dispatcher.scope.get();
    if (state?.tx !== undefined && !state.tx.active) {
      throw new TransactionError("this call runs in a transaction callback whose transaction has already ended");
    }
    return state;
  }

  /**
   * Package-internal (reached through internal.ts): the error transactions
   * are refused with where the driver has none (D1), else undefined.
   */
  private transactionRefusal(): Error | undefined {
    return this.#dispatcher.transactionRefusal();
  }

  /**
   * Package-internal (reached through internal.ts, and by `paginate`'s
   * page and count on MySQL): holds a connection for a sequence of
   * statements (see `Dispatcher.hold`).
   */
  private async holdConnection(first: boolean | undefined): Promise<HeldConnection | undefined> {
    const lookup = asyncContextLookup();
    if (lookup) await lookup;
    return await this.#dispatcher.hold(first, this.#scopeState());
  }

  /**
   * Runs `fn` with one connection held for its whole duration; inside it,
   * this instance's `db.*` calls use that connection. Nested calls reuse it.
   * Inside `db.replica()` the connection is a replica's, and read-only.
   * With `{ fresh: true }` it holds a connection of its own even inside a
   * held one (which a pool of one cannot give: it waits `acquireTimeout`).
   */
  async connection<T>(fn: (conn: Connection) => Promise<T> | T, options: ConnectionOptions = {}): Promise<T> {
    const fresh = checkConnectionOptions(options);
    const lookup = asyncContextLookup();
    if (lookup) await lookup;
    return await this.#dispatcher.connection(fn, this.#scopeState(), fresh);
  }

  /**
   * Takes a connection of its own from the pool and returns its handle,
   * held until `release()` or the end of an `await using` block: for work
   * that cannot stay inside one callback. Inside `db.replica()` it is a
   * replica's. `db.*` calls do not join it. A handle garbage-collected
   * without release gives its connection back (rolling back what it left
   * open) and is reported once through the console.
   */
  async acquire(): Promise<AcquiredConnection> {
    const lookup = asyncContextLookup();
    if (lookup) await lookup;
    const [session, owned] = await this.#dispatcher.acquire(this.#scopeState());
    return new AcquiredConnection(session, owned, () => this.#warnForgotten());
  }

  /** Says once per instance (through the console) that a handle of `acquire()` was collected unreleased. */
  #warnForgotten(): void {
    if (this.#forgottenWarned) return;
    this.#forgottenWarned = true;
    console.warn(
      `Roost: ${this}: a connection from db.acquire() was garbage-collected without release(); it went back ` +
        "to the pool, rolling back what it left open. Release each with release() or `await using`. (Said once.)",
    );
  }

  /**
   * Runs `fn` in a transaction on the primary: committed when `fn` returns,
   * rolled back (and the error rethrown) when it throws. Inside another
   * transaction it becomes a savepoint, whose failure rolls back only its
   * own work; with `{ fresh: true }` it runs on a connection of its own
   * instead (see `TransactionOptions.fresh`). Inside `db.replica()` it
   * throws `ReadOnlyError`.
   */
  transaction<T>(fn: (tx: Transaction) => Promise<T> | T, options: TransactionOptions = {}): Promise<T> {
    // No async frame of its own (one promise and two turns fewer per transaction); it still never throws.
    const lookup = asyncContextLookup();
    if (lookup) return lookup.then(() => this.transaction(fn, options));
    try {
      return this.#dispatcher.transaction(fn, options, this.#scopeState());
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Opens a transaction and returns its handle, which you end with `commit()`
   * or `rollback()`; with `await using`, leaving the block uncommitted rolls
   * back. `db.*` calls do not join it: run its queries through the handle.
   */
  async begin(options: TransactionOptions = {}): Promise<Transaction> {
    const lookup = asyncContextLookup();
    if (lookup) await lookup;
    return await this.#dispatcher.begin(options, this.#scopeState());
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
    const lookup = asyncContextLookup();
    if (lookup) await lookup;
    return await this.#dispatcher.routed("replica", fn, this.#scopeState());
  }

  /**
   * Runs `fn` in a primary scope: everything in it, reads included, goes to
   * the primary, also inside a `db.replica()` scope.
   */
  async primary<T>(fn: (primary: RoutedScope) => Promise<T> | T): Promise<T> {
    const lookup = asyncContextLookup();
    if (lookup) await lookup;
    return await this.#dispatcher.routed("primary", fn, this.#scopeState());
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
    const lookup = asyncContextLookup();
    if (lookup) await lookup;
    // Without async context a context cannot see an enclosing one (perhaps another request's): it stands alone.
    const outer = this.#dispatcher.scope.peek()?.context;
    const context = new CallContext(outer === this.#dispatcher.rootContext ? undefined : outer);
    const state: ScopeState = { session: undefined, tx: undefined, route: undefined, context };
    if (this.#dispatcher.contextScoped) this.#liveContexts.add(context);
    try {
      return await this.#dispatcher.scope.run(
        state,
        () => fn(new ScopeHandle(this.dialect, "auto", this.#dispatcher, state)),
      );
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
    return this.#dispatcher.run(kind, query, state);
  }

  /** Runs one statement for many parameter sets, atomically. */
  protected performMany(text: string, paramSets: readonly (readonly unknown[])[]): Promise<ExecuteResult> {
    const lookup = asyncContextLookup();
    if (lookup) return lookup.then(() => this.performMany(text, paramSets));
    return this.#dispatcher.runMany(text, paramSets, this.#scopeState());
  }

  /** Streams a compiled query's rows. */
  protected stream(query: CompiledQuery, batchSize: number, arrays?: boolean): AsyncIterableIterator<Row[]> {
    const lookup = asyncContextLookup();
    if (lookup) return this.#streamAfter(lookup, query, batchSize, arrays);
    return this.#dispatcher.stream(query, batchSize, this.#scopeState(), arrays);
  }

  /** Streams once async context's lookup has settled. */
  async *#streamAfter(
    lookup: Promise<void>,
    query: CompiledQuery,
    batchSize: number,
    arrays?: boolean,
  ): AsyncIterableIterator<Row[]> {
    await lookup;
    yield* this.stream(query, batchSize, arrays);
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
      replicas: this.#dispatcher.router.replicas.map((s) => s.url),
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
