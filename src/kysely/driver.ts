/**
 * Kysely's driver over a Roost database: each Kysely connection takes a
 * Roost connection where its first statement is routed, Kysely's
 * transactions and savepoints are Roost's, and `stream()` is `iterate`.
 * The public entry is src/kysely.ts (`RoostDialect`).
 *
 * @module
 */
import type { CompiledQuery, DatabaseConnection, Driver, QueryResult, TransactionSettings } from "kysely";
import type { Connection } from "../connection.ts";
import { Database } from "../database.ts";
import { type HeldConnection, holdConnection, streamBatches } from "../internal.ts";
import type { DialectName, TransactionOptions } from "../dialect.ts";
import { ConfigError, ReadOnlyError, TransactionError } from "../errors.ts";
import type { Queryable } from "../queryable.ts";
import { isReadStatement } from "../router.ts";
import type { Transaction } from "../transaction.ts";

/** The database itself, or the one registered under the name now; it must speak `dialect`. */
export function resolveDatabase(database: Database | string, dialect: DialectName): Database {
  const resolved = typeof database === "string" ? Database.get(database) : database;
  if (resolved.dialect !== dialect) {
    throw new ConfigError(
      `the database registered as "${database}" speaks ${resolved.dialect}, but this Kysely instance was made for ` +
        dialect,
    );
  }
  return resolved;
}

/** Kysely's driver interface over a Roost database: each Kysely connection is a {@linkcode RoostConnection}. */
export class RoostDriver implements Driver {
  readonly #database: Database | string;
  readonly #dialect: DialectName;

  constructor(database: Database | string, dialect: DialectName) {
    this.#database = database;
    this.#dialect = dialect;
  }

  async init(): Promise<void> {}

  /** A connection that takes a Roost connection only when its first statement runs. */
  acquireConnection(): Promise<DatabaseConnection> {
    try {
      return Promise.resolve(new RoostConnection(resolveDatabase(this.#database, this.#dialect)));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    return (connection as RoostConnection).begin(settings);
  }

  commitTransaction(connection: DatabaseConnection): Promise<void> {
    return (connection as RoostConnection).commit();
  }

  rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    return (connection as RoostConnection).rollback();
  }

  savepoint(connection: DatabaseConnection, name: string): Promise<void> {
    return (connection as RoostConnection).savepoint(name);
  }

  rollbackToSavepoint(connection: DatabaseConnection, name: string): Promise<void> {
    return (connection as RoostConnection).rollbackToSavepoint(name);
  }

  releaseSavepoint(connection: DatabaseConnection, name: string): Promise<void> {
    return (connection as RoostConnection).releaseSavepoint(name);
  }

  releaseConnection(connection: DatabaseConnection): Promise<void> {
    return (connection as RoostConnection).release();
  }

  /** The database is the user's (and perhaps shared): destroying Kysely leaves it open. */
  async destroy(): Promise<void> {}
}

/** Kysely's transaction settings as Roost's transaction options. */
function transactionOptions(settings: TransactionSettings): TransactionOptions {
  const options: { -readonly [K in keyof TransactionOptions]: TransactionOptions[K] } = {};
  if (settings.isolationLevel !== undefined) {
    if (settings.isolationLevel === "snapshot") {
      throw new ConfigError("isolation level \"snapshot\" is SQL Server's: Roost's dialects do not have it");
    }
    options.isolation = settings.isolationLevel;
  }
  if (settings.accessMode !== undefined) options.readOnly = settings.accessMode === "read only";
  return options;
}

/** A named savepoint Kysely opened, and the Roost savepoint that stands for it. */
interface Savepoint {
  readonly name: string;
  readonly tx: Transaction;
}

/** The mark by which Kysely recognises a commit that rolled back instead (its `AbortedTransactionError`). */
const abortedTransaction = Symbol.for("kysely.AbortedTransactionError");

/** Kysely's statement kinds that change rows, whose counts Kysely reports. */
const rowChanges = new Set(["InsertQueryNode", "UpdateQueryNode", "DeleteQueryNode", "MergeQueryNode"]);

/** The parts of Kysely's syntax tree that say whether a statement returns rows or writes. */
interface StatementNode {
  readonly kind: string;
  readonly returning?: unknown;
  readonly output?: unknown;
  readonly endModifiers?: readonly { readonly modifier?: string }[];
  readonly with?: { readonly expressions: readonly { readonly expression: StatementNode }[] };
}

/** True when a statement hands back rows, so it runs as `fetchAll` rather than `execute`. */
function returnsRows(query: CompiledQuery): boolean {
  const node = query.query as StatementNode;
  if (node.kind === "SelectQueryNode") return true;
  if (rowChanges.has(node.kind)) return node.returning !== undefined || node.output !== undefined;
  if (node.kind !== "RawNode") return false;
  return isReadStatement(query.sql) || /^\s*pragma\b/i.test(query.sql) || /\breturning\b/i.test(query.sql);
}

/** True when a CTE of `node` inserts, updates, deletes or merges. */
function writesInCte(node: StatementNode): boolean {
  return node.with?.expressions.some(({ expression }) =>
    rowChanges.has(expression.kind) || (expression.kind === "SelectQueryNode" && writesInCte(expression))
  ) ?? false;
}

/**
 * True when a statement only reads, so Roost may route it to a replica. The
 * syntax tree decides for Kysely's builders: a select that locks rows (`FOR
 * UPDATE`, `FOR SHARE`) or writes in a CTE is a write. Raw SQL is judged by
 * its first keyword, as Roost judges its own queries.
 */
function onlyReads(query: CompiledQuery): boolean {
  const node = query.query as StatementNode;
  if (node.kind === "RawNode") return isReadStatement(query.sql);
  if (node.kind !== "SelectQueryNode") return false;
  return !node.endModifiers?.some((m) => m.modifier?.startsWith("For")) && !writesInCte(node);
}

/** Runs one Kysely statement on a Roost handle and reports it as Kysely expects. */
async function run<R>(on: Queryable, query: CompiledQuery): Promise<QueryResult<R>> {
  if (returnsRows(query)) {
    const rows = await on.fetchAll<R>(query);
    return rowChanges.has(query.query.kind) ? { rows, numAffectedRows: BigInt(rows.length) } : { rows };
  }
  const { rowCount, lastInsertId } = await on.execute(query);
  return {
    rows: [],
    numAffectedRows: BigInt(rowCount),
    insertId: lastInsertId === undefined ? undefined : BigInt(lastInsertId),
  };
}

/**
 * One Kysely connection. It holds no Roost connection until its first
 * statement (or transaction) runs; from then until Kysely releases it, every
 * statement runs on that one connection. Inside a Roost connection or
 * transaction scope, and with `forceRollback`, it holds nothing and runs
 * through the database, which puts its statements on the scope's connection.
 */
class RoostConnection implements DatabaseConnection {
  readonly #database: Database;
  /** The connection held for this Kysely connection, once taken. */
  #held: HeldConnection | undefined;
  /**
   * Where statements outside a transaction run, once the first one ran: the
   * held connection, or the database itself (in a Roost scope, or with
   * forceRollback).
   */
  #base: Database | Connection | undefined;
  /** The open transaction Kysely began, if any. */
  #tx: Transaction | undefined;
  /** Kysely's open savepoints, innermost last. */
  readonly #savepoints: Savepoint[] = [];
  #released = false;

  constructor(database: Database) {
    this.#database = database;
  }

  /** Where statements run now: the innermost savepoint or transaction, or the held connection. */
  get #current(): Queryable | undefined {
    return this.#savepoints.at(-1)?.tx ?? this.#tx ?? this.#base;
  }

  /**
   * Takes the Roost connection for the first statement: a replica's if it
   * only `reads` and the database routes reads there, else the primary's
   * (`undefined`: for a transaction).
   */
  async #take(reads: boolean | undefined): Promise<Database | Connection> {
    if (this.#released) throw new TransactionError("this Kysely connection was already released");
    const held = await holdConnection(this.#database, reads);
    if (held === undefined) return this.#base = this.#database;
    if (this.#released) {
      await held.release();
      throw new TransactionError("this Kysely connection was already released");
    }
    this.#held = held;
    return this.#base = held.connection;
  }

  async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
    try {
      return await run<R>(this.#current ?? await this.#take(onlyReads(query)), query);
    } catch (error) {
      throw this.#explained(error);
    }
  }

  /**
   * A write refused on a connection taken for a read says why: a Kysely
   * `connection()` is routed by its first statement.
   */
  #explained(error: unknown): unknown {
    if (!(error instanceof ReadOnlyError) || this.#held?.routedRead !== true) return error;
    return new ReadOnlyError(
      "this Kysely connection is a replica's: its first statement was a read, which Roost routed to a replica, and " +
        "a connection stays where its first statement ran. Run the connection() inside db.primary(), or begin it " +
        "with a write",
      { cause: error },
    );
  }

  /**
   * Streams through Roost's `iterate`, `chunkSize` rows a batch. A read that
   * is the connection's first statement streams as `db.iterate` does: routed,
   * holding a connection only while it runs, and lending it to queries
   * inside the loop.
   */
  async *streamQuery<R>(query: CompiledQuery, chunkSize = 100): AsyncIterableIterator<QueryResult<R>> {
    const on = this.#current ?? (onlyReads(query) ? this.#database : await this.#take(false));
    for await (const rows of streamBatches(on, query, chunkSize)) if (rows.length > 0) yield { rows: rows as R[] };
  }

  async begin(settings: TransactionSettings): Promise<void> {
    if (this.#tx !== undefined) throw new TransactionError("this Kysely connection already has an open transaction");
    const options = transactionOptions(settings);
    const on = this.#base ?? await this.#take(undefined);
    try {
      this.#tx = await on.begin(options);
    } catch (error) {
      throw this.#explained(error);
    }
  }

  #root(action: string): Transaction {
    if (this.#tx === undefined) throw new TransactionError(`there is no open transaction to ${action}`);
    return this.#tx;
  }

  /**
   * Commits. A commit that fails leaves the transaction rolled back, and its
   * error is marked as Kysely's aborted-transaction error, so Kysely does not
   * try to roll back again.
   */
  async commit(): Promise<void> {
    const root = this.#root("commit");
    try {
      // SQL's COMMIT ends open savepoints too; Roost's wants them ended first, innermost first.
      for (let i = this.#savepoints.length - 1; i >= 0; i--) await this.#savepoints[i].tx.commit();
      await root.commit();
    } catch (error) {
      if (typeof error === "object" && error !== null) {
        Object.defineProperty(error, abortedTransaction, { value: true });
      }
      throw error;
    } finally {
      this.#savepoints.length = 0;
      if (root.active) await root.rollback().catch(() => {});
      this.#tx = undefined;
    }
  }

  /** Rolls back; without an open transaction (a failed commit already rolled it back) it does nothing. */
  async rollback(): Promise<void> {
    const root = this.#tx;
    this.#savepoints.length = 0;
    this.#tx = undefined;
    if (root?.active) await root.rollback();
  }

  /** Opens a savepoint named `name` in the innermost open level. */
  async savepoint(name: string): Promise<void> {
    const parent = this.#savepoints.at(-1)?.tx ?? this.#root("open a savepoint in");
    this.#savepoints.push({ name, tx: await parent.begin() });
  }

  #find(name: string): number {
    for (let i = this.#savepoints.length - 1; i >= 0; i--) if (this.#savepoints[i].name === name) return i;
    throw new TransactionError(`there is no open savepoint named "${name}"`);
  }

  /** Rolls back to the savepoint, which stays open (as in SQL): Roost's is rolled back and opened again. */
  async rollbackToSavepoint(name: string): Promise<void> {
    const i = this.#find(name);
    const { tx } = this.#savepoints[i];
    this.#savepoints.length = i;
    await tx.rollback();
    await this.savepoint(name);
  }

  /** Releases the savepoint and every one opened after it into the enclosing level. */
  async releaseSavepoint(name: string): Promise<void> {
    const i = this.#find(name);
    while (this.#savepoints.length > i) {
      await this.#savepoints.at(-1)!.tx.commit().finally(() => this.#savepoints.pop());
    }
  }

  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    const tx = this.#tx;
    this.#savepoints.length = 0;
    this.#tx = undefined;
    try {
      if (tx?.active) await tx.rollback();
    } finally {
      await this.#held?.release();
    }
  }
}
