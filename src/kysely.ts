/**
 * Kysely on Roost: {@linkcode RoostDialect} runs a Kysely instance on a Roost
 * `Database` (or the name it is registered under), so Kysely's queries get
 * Roost's pool, scopes, replica routing and error types.
 *
 * - A single statement runs on a connection routed as Roost routes it: reads
 *   go to a replica when the database has `routing.reads: "replicas"` (or
 *   inside `db.replica()`), writes to the primary.
 * - Kysely's `transaction()` and `startTransaction()` run as Roost
 *   transactions on the primary; `savepoint`, `rollbackToSavepoint` and
 *   `releaseSavepoint` are Roost savepoints. Inside a Roost transaction or
 *   connection scope, Kysely's queries join it and its transactions become
 *   savepoints.
 * - Kysely's `connection()` holds one Roost connection, taken where its first
 *   statement is routed.
 * - `stream()` is Roost's `iterate`: rows come in batches of the chunk size,
 *   and querying inside the loop cannot deadlock.
 *
 * Kysely is an optional peer dependency: only this module imports it.
 *
 * @example
 * ```ts
 * import { Database } from "@roost/db";
 * import { RoostDialect } from "@roost/db/kysely";
 * import { Kysely } from "kysely";
 *
 * interface Tables {
 *   birds: { id: number; name: string };
 * }
 * const db = new Database("sqlite::memory:", { name: "main" });
 * const kysely = new Kysely<Tables>({ dialect: new RoostDialect({ database: "main" }) });
 * await kysely.schema.createTable("birds").addColumn("id", "integer", (c) => c.primaryKey())
 *   .addColumn("name", "text").execute();
 * await kysely.insertInto("birds").values({ id: 1, name: "wren" }).execute();
 * const birds = await kysely.selectFrom("birds").selectAll().execute();
 * await db.close();
 * ```
 *
 * @module
 */
import {
  type CompiledQuery,
  type DatabaseConnection,
  type DatabaseIntrospector,
  type DialectAdapter,
  type Driver,
  type Kysely,
  MysqlAdapter,
  MysqlIntrospector,
  MysqlQueryCompiler,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type QueryCompiler,
  type QueryResult,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
  type TransactionSettings,
} from "kysely";
import type { Connection } from "./connection.ts";
import { Database } from "./database.ts";
import { type HeldConnection, holdConnection, streamBatches } from "./internal.ts";
import type { DialectName, TransactionOptions } from "./dialect.ts";
import { ConfigError, ReadOnlyError, TransactionError } from "./errors.ts";
import type { Queryable } from "./queryable.ts";
import { isReadStatement } from "./router.ts";
import type { Transaction } from "./transaction.ts";

/** How a {@linkcode RoostDialect} finds its database. */
export interface RoostDialectConfig {
  /**
   * The Roost database Kysely runs on, or the name it is registered under
   * (`new Database(url, { name })`). A name is looked up at each connection
   * Kysely takes, so the instance may be created after the dialect, and a
   * closed instance replaced by a new one of the same name is picked up.
   */
  readonly database: Database | string;
  /**
   * The SQL dialect, needed only when `database` is a name that is not
   * registered yet when the Kysely instance is created; otherwise it is
   * read from the database, and a mismatch is a `ConfigError`.
   */
  readonly dialect?: DialectName;
}

/**
 * A Kysely dialect that runs Kysely on a Roost `Database`: Postgres, MySQL
 * or SQLite, whichever the database speaks.
 *
 * `kysely.destroy()` leaves the Roost database open: it may be shared (the
 * registry) and belongs to whoever created it, so close it with
 * `db.close()`.
 *
 * @example Reads on replicas, writes and transactions on the primary
 * ```ts
 * import { Database } from "@roost/db";
 * import { RoostDialect } from "@roost/db/kysely";
 * import { Kysely } from "kysely";
 *
 * interface Tables {
 *   orders: { id: number; total: number };
 * }
 * const db = new Database("postgres://app@primary/app", {
 *   replicas: ["postgres://app@replica/app"],
 *   routing: { reads: "replicas" },
 * });
 * const kysely = new Kysely<Tables>({ dialect: new RoostDialect({ database: db }) });
 * const big = await kysely.selectFrom("orders").selectAll().where("total", ">", 100).execute(); // a replica
 * await kysely.transaction().execute(async (trx) => {
 *   await trx.insertInto("orders").values({ id: 7, total: 120 }).execute(); // the primary
 * });
 * ```
 */
export class RoostDialect {
  readonly #database: Database | string;
  readonly #dialect: DialectName;

  /** A dialect for `config.database`; a bad config is a `ConfigError`. */
  constructor(config: RoostDialectConfig) {
    if (typeof config !== "object" || config === null) {
      throw new ConfigError("RoostDialect takes { database }: a Database or the name it is registered under");
    }
    const { database, dialect } = config;
    if (!(database instanceof Database) && typeof database !== "string") {
      throw new ConfigError("RoostDialect's database is a Database or the name it is registered under");
    }
    if (dialect !== undefined && dialect !== "postgres" && dialect !== "mysql" && dialect !== "sqlite") {
      throw new ConfigError(
        `RoostDialect's dialect is "postgres", "mysql" or "sqlite", not ${JSON.stringify(dialect)}`,
      );
    }
    const known = database instanceof Database
      ? database.dialect
      : Database.has(database)
      ? Database.get(database).dialect
      : undefined;
    if (known !== undefined && dialect !== undefined && known !== dialect) {
      throw new ConfigError(`RoostDialect was told the dialect is ${dialect}, but the database speaks ${known}`);
    }
    const resolved = known ?? dialect;
    if (resolved === undefined) {
      throw new ConfigError(
        `no database is registered as "${database}" yet: create it first, or pass RoostDialect's dialect option`,
      );
    }
    this.#database = database;
    this.#dialect = resolved;
  }

  /**
   * Kysely calls it: the driver Kysely runs its queries through.
   *
   * @ignore
   */
  createDriver(): Driver {
    return new RoostDriver(this.#database, this.#dialect);
  }

  /**
   * Kysely calls it: the query compiler of the database's dialect.
   *
   * @ignore
   */
  createQueryCompiler(): QueryCompiler {
    return kyselyParts[this.#dialect].compiler();
  }

  /**
   * Kysely calls it: the adapter of the database's dialect (on SQLite, see
   * {@linkcode PooledSqliteAdapter}; on the servers, see
   * {@linkcode lockingOnPrimary}).
   *
   * @ignore
   */
  createAdapter(): DialectAdapter {
    return kyselyParts[this.#dialect].adapter(() => resolveDatabase(this.#database, this.#dialect));
  }

  /**
   * Kysely calls it: the schema introspector of the database's dialect (`kysely.introspection`).
   *
   * @ignore
   */
  createIntrospector(db: Kysely<unknown>): DatabaseIntrospector {
    return kyselyParts[this.#dialect].introspector(db);
  }
}

/** Kysely's own parts for one SQL dialect. */
interface KyselyParts {
  compiler(): QueryCompiler;
  adapter(database: () => Database): DialectAdapter;
  introspector(db: Kysely<unknown>): DatabaseIntrospector;
}

const kyselyParts: Readonly<Record<DialectName, KyselyParts>> = {
  postgres: {
    compiler: () => new PostgresQueryCompiler(),
    adapter: (database) => lockingOnPrimary(new PostgresAdapter(), database),
    introspector: (db) => new PostgresIntrospector(db),
  },
  mysql: {
    compiler: () => new MysqlQueryCompiler(),
    adapter: (database) => lockingOnPrimary(new MysqlAdapter(), database),
    introspector: (db) => new MysqlIntrospector(db),
  },
  sqlite: {
    compiler: () => new SqliteQueryCompiler(),
    adapter: () => new PooledSqliteAdapter(),
    introspector: (db) => new SqliteIntrospector(db),
  },
};

/**
 * Makes a server adapter take Kysely's migration lock on the primary.
 * Kysely's `Migrator` holds one connection, and its first statement, the
 * lock (`pg_advisory_lock`, `GET_LOCK`), is a select: without this, under
 * `routing.reads: "replicas"` the connection would be a replica's, and the
 * migration would fail there.
 */
function lockingOnPrimary<A extends PostgresAdapter | MysqlAdapter>(adapter: A, database: () => Database): A {
  const acquire = adapter.acquireMigrationLock.bind(adapter);
  adapter.acquireMigrationLock = (...args) => database().primary(() => acquire(...args));
  return adapter;
}

/**
 * Kysely's SQLite adapter, for a pool of connections rather than one. It
 * tells Kysely that several connections may be open: Roost's pool decides
 * who waits, so a query inside a `stream()` loop is not locked out. And
 * since Kysely takes no migration lock on SQLite, counting on a single
 * connection, it declares DDL transactional: Kysely's `Migrator` then runs
 * in one transaction, which Roost begins IMMEDIATE, so SQLite serialises
 * migrators between connections and processes and none applies a migration
 * twice.
 */
class PooledSqliteAdapter extends SqliteAdapter {
  override get supportsMultipleConnections(): boolean {
    return true;
  }

  override get supportsTransactionalDdl(): boolean {
    return true;
  }
}

/** The database itself, or the one registered under the name now; it must speak `dialect`. */
function resolveDatabase(database: Database | string, dialect: DialectName): Database {
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
class RoostDriver implements Driver {
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
