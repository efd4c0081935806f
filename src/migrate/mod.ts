/**
 * Schema migrations for Roost: SQL files (`-- migrate:up` / `-- migrate:down`
 * sections), TypeScript or JavaScript modules, or a list in memory, applied
 * in revision order and recorded in a history table, on every dialect and
 * runtime. Concurrent migrators take turns, so every instance of a program
 * can migrate at start-up. The `roost` command line tool (`@roost/db/cli`)
 * drives the same {@linkcode Migrator}.
 *
 * This module loads without `node:*` modules; only a `directory` source
 * reaches the file system, when it is read.
 *
 * @example
 * ```ts
 * import { Database } from "@roost/db";
 * import { Migrator } from "@roost/db/migrate";
 *
 * const db = new Database("postgres://app@localhost/app");
 * const migrator = new Migrator(db, { directory: "migrations" });
 * await migrator.upgrade();                    // every pending migration
 * console.log(await migrator.currentRevision()); // the newest applied revision
 * await db.close();
 * ```
 *
 * @module
 */
export { Migrator } from "./migrator.ts";
export type {
  MigrationEvent,
  MigrationProblem,
  MigrationStatus,
  MigratorOptions,
  StampResult,
  SyncResult,
} from "./options.ts";
export { MigrationError } from "./errors.ts";
export type { MigrationErrorCode, MigrationErrorOptions } from "./errors.ts";
export type { HistoryEntry } from "./history.ts";
export { compareRevisions, parseMigrationFileName, parseSqlMigration } from "./source.ts";
export type { LoadedMigration, Migration, MigrationStep } from "./source.ts";
export { splitStatements } from "./split.ts";
