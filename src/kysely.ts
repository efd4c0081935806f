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
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
} from "kysely";
import { Database } from "./database.ts";
import type { DialectName } from "./dialect.ts";
import { ConfigError } from "./errors.ts";
import { resolveDatabase, RoostDriver } from "./kysely/driver.ts";
import { refusePooled } from "./migrate/lock.ts";

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
 * migration would fail there. Behind `pooler=transaction` it is refused
 * (`ROOST_MIGRATION_POOLED`), as Roost's own migrator is.
 */
function lockingOnPrimary<A extends PostgresAdapter | MysqlAdapter>(adapter: A, database: () => Database): A {
  const acquire = adapter.acquireMigrationLock.bind(adapter);
  adapter.acquireMigrationLock = (...args) => {
    // Kysely's lock is a session's too (Postgres: pg_advisory_lock), which a transaction pooler does not keep.
    refusePooled(database().url);
    return database().primary(() => acquire(...args));
  };
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
