/**
 * The package's internal doors, for `@roost/db/kysely`: what a query-builder
 * driver needs of the core that is no part of the public API. Each is a
 * member TypeScript keeps from users (`private`, `protected`), reached here,
 * in this one module, by name.
 *
 * @module
 */
import type { Connection } from "./connection.ts";
import type { Database } from "./database.ts";
import { dialectOf } from "./dialect.ts";
import type { DriverConnection, Row } from "./driver.ts";
import { compileQuery, type Query } from "./query.ts";
import type { Queryable } from "./queryable.ts";
import type { CompiledQuery } from "./sql.ts";

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

/** The members of `Database`, `Queryable` and `Connection` this module opens to the package. */
interface Internals {
  driverConnection(): DriverConnection;
  holdConnection(reads: boolean | undefined): Promise<HeldConnection | undefined>;
  transactionRefusal(): Error | undefined;
  stream(query: CompiledQuery, batchSize: number): AsyncIterableIterator<Row[]>;
}

/**
 * Holds a connection for a sequence of statements, on the server `db`
 * routes the first one to: `reads` says whether it only reads (the builder
 * knows from its syntax tree); `undefined` stands for a transaction, which
 * goes to the primary. `undefined` comes back when the statements must run
 * through the instance itself: inside a held scope, whose connection they
 * join, or with `forceRollback`.
 */
export function holdConnection(db: Database, reads: boolean | undefined): Promise<HeldConnection | undefined> {
  return (db as unknown as Internals).holdConnection(reads);
}

/**
 * The error `db` refuses transactions with where its driver has none (D1),
 * or undefined: for code that needs them (the migrator) to refuse first.
 */
export function transactionRefusal(db: Database): Error | undefined {
  return (db as unknown as Internals).transactionRefusal();
}

/**
 * Streams a query's rows on a handle in the batches the driver fetches them
 * in, as `iterate` does but without handing them out one by one.
 */
export function streamBatches(on: Queryable, query: Query, batchSize: number): AsyncIterableIterator<Row[]> {
  return (on as unknown as Internals).stream(compileQuery(query, undefined, dialectOf(on.dialect)), batchSize);
}

/**
 * The driver's connection a `db.connection()` handle holds, for a driver's
 * own helpers on it (D1's session bookmarks).
 */
export function driverConnectionOf(conn: Connection): DriverConnection {
  return (conn as unknown as Internals).driverConnection();
}
