/**
 * The handle passed to `db.connection(fn)`: one pooled connection held for
 * the callback's duration.
 *
 * @module
 */
import type { TransactionOptions } from "./dialect.ts";
import type { DriverConnection, ExecuteResult, Row } from "./driver.ts";
import { Queryable, type QueryKind } from "./queryable.ts";
import type { Session } from "./session.ts";
import type { CompiledQuery } from "./sql.ts";
import { executeManyAtomically, runTransaction, Transaction } from "./transaction.ts";

/**
 * One connection held for a `db.connection(fn)` callback. Inside the
 * callback, `db.*` calls of the same instance run on it too; the handle works
 * where no async context exists.
 *
 * @example
 * ```ts
 * import { Database, sql } from "@roost/db";
 * const db = new Database("sqlite::memory:");
 * await db.connection(async (conn) => {
 *   await conn.execute(sql`create temp table scratch (n integer)`);
 *   await db.execute(sql`insert into scratch values (1)`); // same connection
 * });
 * ```
 */
export class Connection extends Queryable {
  readonly #session: Session;

  /** Wraps a held session; created by `db.connection`. */
  constructor(session: Session) {
    super(session.dialect.name);
    this.#session = session;
  }

  /** Runs `fn` in a transaction on this connection (a savepoint if one is open). */
  async transaction<T>(fn: (tx: Transaction) => Promise<T> | T, options: TransactionOptions = {}): Promise<T> {
    return await runTransaction(this.#session, this.#session.current, options, fn);
  }

  /** Opens a transaction on this connection (a savepoint if one is open) and returns its handle. */
  async begin(options: TransactionOptions = {}): Promise<Transaction> {
    return await Transaction.open(this.#session, this.#session.current, options, false);
  }

  /** Package-internal (reached through internal.ts): the driver's connection held here. */
  private driverConnection(): DriverConnection {
    return this.#session.item.connection;
  }

  /** Runs one compiled query where this handle runs queries. */
  protected perform(kind: QueryKind, query: CompiledQuery): Promise<unknown> {
    return this.#session.run(kind, query);
  }

  /** Runs one statement for many parameter sets, atomically. */
  protected performMany(text: string, paramSets: readonly (readonly unknown[])[]): Promise<ExecuteResult> {
    return executeManyAtomically(this.#session, text, paramSets);
  }

  /** Streams a compiled query's rows. */
  protected stream(query: CompiledQuery, batchSize: number, arrays?: boolean): AsyncIterableIterator<Row[]> {
    return this.#session.stream(query, batchSize, arrays);
  }
}
