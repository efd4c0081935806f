/**
 * Roost: an async database toolkit for Deno, Bun, Node.js and the edge, with
 * pooled connections, scoped transactions and named shared instances.
 *
 * @example
 * ```ts
 * import { Database, sql } from "@roost/db";
 *
 * const db = new Database("sqlite::memory:");
 * await db.execute(sql`create table users (id integer primary key, name text not null)`);
 * await db.execute(sql`insert into users (name) values (${"Ada"})`);
 * const users = await db.fetchAll<{ id: number; name: string }>(sql`select * from users`);
 * await db.close();
 * ```
 *
 * @module
 */
export { Database } from "./src/database.ts";
export type { CloseOptions, DatabaseStats, RoutedScope } from "./src/database.ts";
export type { DatabaseOptions, ReplicaOption } from "./src/options.ts";
export type { QueryEvent, QueryHook, RouteReason } from "./src/query_event.ts";
export type { ReplicaCandidate, ReplicaPicker, ReplicaStats, RoutingOptions } from "./src/routing_options.ts";
export { Connection } from "./src/connection.ts";
export { Transaction } from "./src/transaction.ts";
export { Queryable } from "./src/queryable.ts";
export type { IterateOptions, ParameterSets, QueryKind } from "./src/queryable.ts";
export { KeysetPage, Page } from "./src/page.ts";
export { Schema } from "./src/schema.ts";
export type { SchemaRunner, TableDefinition } from "./src/schema.ts";
export type { KeysetOptions, PageOptions } from "./src/page.ts";
export { compile, Sql, sql } from "./src/sql.ts";
export type { CompiledQuery, SqlTag } from "./src/sql.ts";
export type { DrizzleQuery, KyselyCompiledQuery, Query } from "./src/query.ts";
export type { DialectName, IsolationLevel, TransactionOptions } from "./src/dialect.ts";
export type { Driver, DriverConnection, ExecuteResult, Row, StreamPlacement } from "./src/driver.ts";
export type { DriverName } from "./src/drivers/mod.ts";
export type { PoolOptions, PoolStats } from "./src/pool.ts";
export { DatabaseUrl, parseDatabaseUrl } from "./src/url.ts";
export type { DatabaseUrlParts, UrlOptionValue } from "./src/url.ts";
export { asyncContextAvailable } from "./src/context.ts";
export {
  ClosedError,
  CommitUnknownError,
  ConfigError,
  ConnectionError,
  NoResultError,
  PoolTimeoutError,
  QueryCanceledError,
  QueryError,
  ReadOnlyError,
  RegistryError,
  RoostError,
  TooManyResultsError,
  TransactionError,
} from "./src/errors.ts";
export type { QueryErrorOptions, RoostErrorOptions } from "./src/errors.ts";
