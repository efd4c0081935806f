/**
 * Everything the package's main entry exports, shared by the two entries
 * that offer it: `mod.ts` (with the driver registry) and `edge.ts` (the
 * Worker entry, without it).
 *
 * @module
 */
export { Database } from "./database.ts";
export type { CloseOptions, DatabaseStats, RoutedScope } from "./database.ts";
export type { DatabaseOptions, ReplicaOption } from "./options.ts";
export type { QueryEvent, QueryHook, RouteReason } from "./query_event.ts";
export type { ReplicaCandidate, ReplicaPicker, ReplicaStats, RoutingOptions } from "./routing_options.ts";
export { AcquiredConnection } from "./acquired.ts";
export { Connection } from "./connection.ts";
export { Transaction } from "./transaction.ts";
export { Queryable } from "./queryable.ts";
export type { IterateOptions, ParameterSets, QueryKind } from "./queryable.ts";
export { KeysetPage, Page } from "./page.ts";
export { Schema } from "./schema.ts";
export type { SchemaRunner, TableDefinition } from "./schema.ts";
export type { KeysetOptions, PageOptions } from "./page.ts";
export { compile, Sql, sql } from "./sql.ts";
export type { CompiledQuery, SqlTag } from "./sql.ts";
export type { DrizzleQuery, KyselyCompiledQuery, Query } from "./query.ts";
export type { ConnectionOptions, DialectName, IsolationLevel, TransactionOptions } from "./dialect.ts";
export type { Driver, DriverConnection, ExecuteResult, Row, Rows, StreamPlacement } from "./driver.ts";
export type { DriverName } from "./drivers/mod.ts";
export type { PoolOptions, PoolStats } from "./pool.ts";
export { DatabaseUrl, parseDatabaseUrl } from "./url.ts";
export type { DatabaseUrlParts, HostAddress, TargetSessionAttrs, UrlOptionValue } from "./url.ts";
export { asyncContextAvailable } from "./context.ts";
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
} from "./errors.ts";
export type { QueryErrorOptions, RoostErrorOptions } from "./errors.ts";
