/**
 * The handle a `db.context()`, `db.replica()` or `db.primary()` callback
 * gets: its calls carry the scope they were made in back to the database,
 * so they run there even where the runtime has no async context.
 *
 * @module
 */
import type { ScopeState } from "./call_context.ts";
import type { Connection } from "./connection.ts";
import type { ConnectionOptions, DialectName, TransactionOptions } from "./dialect.ts";
import type { ExecuteResult, Row } from "./driver.ts";
import { Queryable, type QueryKind } from "./queryable.ts";
import type { HeldConnection } from "./internal.ts";
import type { ScopeRoute } from "./router.ts";
import type { CompiledQuery } from "./sql.ts";
import { checkConnectionOptions, type Transaction } from "./transaction.ts";

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
  connection<T>(fn: (conn: Connection) => Promise<T> | T, options?: ConnectionOptions): Promise<T>;
  /** Runs `fn` in a transaction on the primary (see `Database.transaction`). */
  transaction<T>(fn: (tx: Transaction) => Promise<T> | T, options?: TransactionOptions): Promise<T>;
  /** Opens a transaction on the primary and returns its handle (see `Database.begin`). */
  begin(options?: TransactionOptions): Promise<Transaction>;
  /** Runs `fn` in a replica scope nested in this one (see `Database.replica`). */
  replica<T>(fn: (replica: RoutedScope) => Promise<T> | T): Promise<T>;
  /** Runs `fn` in a primary scope nested in this one (see `Database.primary`). */
  primary<T>(fn: (primary: RoutedScope) => Promise<T> | T): Promise<T>;
}

/** What a scope's handle calls back into its database with: each call, and the scope state it was made in. */
export interface ScopedCalls {
  run(kind: QueryKind, query: CompiledQuery, state: ScopeState): Promise<unknown>;
  runMany(text: string, paramSets: readonly (readonly unknown[])[], state: ScopeState): Promise<ExecuteResult>;
  stream(query: CompiledQuery, batchSize: number, state: ScopeState, arrays?: boolean): AsyncIterableIterator<Row[]>;
  connection<T>(fn: (conn: Connection) => Promise<T> | T, state: ScopeState, fresh?: boolean): Promise<T>;
  transaction<T>(fn: (tx: Transaction) => Promise<T> | T, options: TransactionOptions, state: ScopeState): Promise<T>;
  begin(options: TransactionOptions, state: ScopeState): Promise<Transaction>;
  routed<T>(route: ScopeRoute, fn: (scope: RoutedScope) => Promise<T> | T, state: ScopeState): Promise<T>;
  hold(first: boolean | undefined, state: ScopeState): Promise<HeldConnection | undefined>;
}

/** The handle of a context, replica or primary scope: every call carries the scope's state. */
export class ScopeHandle extends Queryable implements RoutedScope {
  readonly route: "auto" | "primary" | "replica";
  readonly #calls: ScopedCalls;
  readonly #state: ScopeState;

  /** A handle whose calls go to `calls` with `state`. */
  constructor(dialect: DialectName, route: "auto" | ScopeRoute, calls: ScopedCalls, state: ScopeState) {
    super(dialect);
    this.route = route;
    this.#calls = calls;
    this.#state = state;
  }

  connection<T>(fn: (conn: Connection) => Promise<T> | T, options: ConnectionOptions = {}): Promise<T> {
    return this.#calls.connection(fn, this.#state, checkConnectionOptions(options));
  }

  transaction<T>(fn: (tx: Transaction) => Promise<T> | T, options: TransactionOptions = {}): Promise<T> {
    return this.#calls.transaction(fn, options, this.#state);
  }

  begin(options: TransactionOptions = {}): Promise<Transaction> {
    return this.#calls.begin(options, this.#state);
  }

  replica<T>(fn: (replica: RoutedScope) => Promise<T> | T): Promise<T> {
    return this.#calls.routed("replica", fn, this.#state);
  }

  primary<T>(fn: (primary: RoutedScope) => Promise<T> | T): Promise<T> {
    return this.#calls.routed("primary", fn, this.#state);
  }

  protected perform(kind: QueryKind, query: CompiledQuery): Promise<unknown> {
    return this.#calls.run(kind, query, this.#state);
  }

  /**
   * Package-internal (read by `Queryable.paginate`): holds a connection for
   * a sequence of reads on the server the scope routes a read to.
   */
  private holdConnection(first: boolean): Promise<HeldConnection | undefined> {
    return this.#calls.hold(first, this.#state);
  }

  protected performMany(text: string, paramSets: readonly (readonly unknown[])[]): Promise<ExecuteResult> {
    return this.#calls.runMany(text, paramSets, this.#state);
  }

  protected stream(query: CompiledQuery, batchSize: number, arrays?: boolean): AsyncIterableIterator<Row[]> {
    return this.#calls.stream(query, batchSize, this.#state, arrays);
  }
}
