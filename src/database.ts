/**
 * The public facade: a database with a pool, query methods, scopes,
 * transactions and the registry of named instances.
 *
 * @module
 */
import { Connection } from "./connection.ts";
import { ScopeSlot } from "./context.ts";
import { dialectOf, type TransactionOptions } from "./dialect.ts";
import type { Driver, DriverConnection, ExecuteResult, Row } from "./driver.ts";
import { driverLoader } from "./drivers/mod.ts";
import { ClosedError, ConfigError, ConnectionError, TransactionError } from "./errors.ts";
import { type DatabaseOptions, resolveOptions } from "./options.ts";
import { Pool, type PoolStats } from "./pool.ts";
import { Queryable, type QueryKind, runOn } from "./queryable.ts";
import { isRegistered, lookup, register, registeredInstances, registeredNames, unregister } from "./registry.ts";
import { type ScopeState, Session } from "./session.ts";
import type { CompiledQuery } from "./sql.ts";
import { checkTransactionOptions, executeManyAtomically, runTransaction, Transaction } from "./transaction.ts";
import { type DatabaseUrl, parseDatabaseUrl } from "./url.ts";

/** What `db.stats()` returns. */
export interface DatabaseStats {
  /** The primary's pool. */
  primary: PoolStats;
  /** Each replica's pool, in the order given. */
  replicas: PoolStats[];
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
  readonly #pool: Pool<DriverConnection>;
  readonly #scope = new ScopeSlot<ScopeState>();
  readonly #loadDriver: () => Promise<Driver>;
  #driver: Driver | undefined;
  #closing: Promise<void> | undefined;

  /**
   * Creates a database; nothing connects until the first query (or
   * `connect()`). Throws {@linkcode ConfigError} for a bad URL or option and
   * `RegistryError` for a taken name.
   */
  constructor(url: string, options: DatabaseOptions = {}) {
    const parsed = parseDatabaseUrl(url);
    const resolved = resolveOptions(options, parsed);
    const loadDriver = driverLoader(parsed.dialect, resolved.driver);
    super(parsed.dialect);
    this.#url = parsed;
    this.#name = resolved.name;
    this.#loadDriver = loadDriver;
    const label = resolved.name === undefined ? `pool of ${parsed}` : `pool of "${resolved.name}"`;
    this.#pool = new Pool<DriverConnection>(
      {
        open: async () => (this.#driver ?? await this.#driverLoaded()).connect(this.#url),
        close: (connection) => connection.close(),
        broken: (connection) => connection.broken === true,
        ping: (connection) => connection.ping?.(),
      },
      resolved.pool,
      label,
    );
    if (resolved.name !== undefined) register(resolved.name, this);
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

  /** True once `close()` has been called. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  async #driverLoaded(): Promise<Driver> {
    try {
      this.#driver = await this.#loadDriver();
    } catch (error) {
      if (error instanceof ConfigError) throw error;
      throw new ConfigError(
        `the ${this.dialect} driver could not be loaded on this runtime (node:sqlite needs Node.js >= 22.13)`,
        { cause: error },
      );
    }
    return this.#driver;
  }

  /** Opens the pool's first connections now (up to `pool.min`, at least one), proving the URL works. */
  async connect(): Promise<void> {
    this.#assertOpen();
    await this.#pool.warm();
  }

  /**
   * Stops new queries (they reject with {@linkcode ClosedError}), waits for
   * those in flight up to `timeout`, closes every connection and frees the
   * registry name. Calling it again returns the same promise.
   */
  close(options: CloseOptions = {}): Promise<void> {
    if (this.#closing === undefined) {
      if (this.#name !== undefined) unregister(this.#name, this);
      this.#closing = this.#pool.close(options.timeout);
    }
    return this.#closing;
  }

  /** Closes the database: what `await using` calls. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Pool counters: size, idle, busy and waiting, per pool. */
  stats(): DatabaseStats {
    return { primary: this.#pool.stats(), replicas: [] };
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

  async #session(): Promise<Session> {
    this.#assertOpen();
    const item = await this.#pool.acquire();
    return new Session(
      item,
      dialectOf(this.dialect),
      this.#scope,
      (session) => this.#pool.release(session.item, session.broken),
    );
  }

  /**
   * Runs `fn` with one connection held for its whole duration; inside it,
   * this instance's `db.*` calls use that connection. Nested calls reuse it.
   */
  async connection<T>(fn: (conn: Connection) => Promise<T> | T): Promise<T> {
    const state = this.#scopeState();
    if (state) return await fn(new Connection(state.session));
    const session = await this.#session();
    try {
      return await this.#scope.run({ session, tx: undefined }, () => fn(new Connection(session)));
    } finally {
      // A transaction the callback began and never ended must not leak into the pool.
      await Transaction.rollbackOpen(session);
      session.end();
    }
  }

  /**
   * Runs `fn` in a transaction: committed when `fn` returns, rolled back (and
   * the error rethrown) when it throws. Inside another transaction it becomes
   * a savepoint, whose failure rolls back only its own work.
   */
  async transaction<T>(fn: (tx: Transaction) => Promise<T> | T, options: TransactionOptions = {}): Promise<T> {
    const state = this.#scopeState();
    if (state) {
      const parent = state.tx ?? state.session.current;
      return await runTransaction(state.session, await Transaction.open(state.session, parent, options, false), fn);
    }
    checkTransactionOptions(options); // before a connection is taken for nothing
    const session = await this.#session();
    return await runTransaction(session, await Transaction.open(session, undefined, options, true), fn);
  }

  /**
   * Opens a transaction and returns its handle, which you end with `commit()`
   * or `rollback()`; with `await using`, leaving the block uncommitted rolls
   * back. `db.*` calls do not join it: run its queries through the handle.
   */
  async begin(options: TransactionOptions = {}): Promise<Transaction> {
    const state = this.#scopeState();
    if (state) return await Transaction.open(state.session, state.tx ?? state.session.current, options, false);
    checkTransactionOptions(options);
    return await Transaction.open(await this.#session(), undefined, options, true);
  }

  /** Runs one compiled query where this handle runs queries. */
  protected async perform(kind: QueryKind, query: CompiledQuery): Promise<unknown> {
    const state = this.#scopeState();
    if (state) return await state.session.perform(kind, query);
    this.#assertOpen();
    const item = await this.#pool.acquire();
    let broken = false;
    try {
      return await runOn(item.connection, kind, query);
    } catch (error) {
      broken = error instanceof ConnectionError;
      throw error;
    } finally {
      this.#pool.release(item, broken);
    }
  }

  /** Runs one statement for many parameter sets, atomically. */
  protected async performMany(text: string, paramSets: readonly (readonly unknown[])[]): Promise<ExecuteResult> {
    const state = this.#scopeState();
    if (state) return await executeManyAtomically(state.session, text, paramSets);
    const session = await this.#session();
    try {
      return await executeManyAtomically(session, text, paramSets);
    } finally {
      session.end();
    }
  }

  /** Streams a compiled query's rows. */
  protected async *stream(query: CompiledQuery, batchSize: number): AsyncIterableIterator<Row> {
    const state = this.#scopeState();
    if (state) {
      yield* state.session.stream(query, batchSize);
      return;
    }
    this.#assertOpen();
    const item = await this.#pool.acquire();
    // While this connection streams, a query that finds the pool exhausted may
    // borrow it, so querying inside the loop cannot deadlock.
    const lend = this.#driver?.interleavedStreams === true;
    if (lend) this.#pool.lend(item);
    let broken = false;
    try {
      for await (const batch of item.connection.stream(query.text, query.params, batchSize, "own")) yield* batch;
    } catch (error) {
      broken = error instanceof ConnectionError;
      throw error;
    } finally {
      if (lend) this.#pool.unlend(item);
      this.#pool.release(item, broken);
    }
  }

  /** A description with the password redacted. */
  override toString(): string {
    return `Database(${this.#name === undefined ? "" : `"${this.#name}" `}${this.#url})`;
  }

  /** The redacted description, so `JSON.stringify` never shows the password. */
  toJSON(): { name: string | undefined; url: string; dialect: string } {
    return { name: this.#name, url: this.#url.toString(), dialect: this.dialect };
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
