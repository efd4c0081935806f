/**
 * What a {@linkcode Migrator} is given and what it reports: its options,
 * progress events, status and the problems `check()` finds.
 *
 * @module
 */
import type { Migration } from "./source.ts";

/** What {@linkcode MigratorOptions.onProgress} is told, once when a migration starts and once when it is done. */
export interface MigrationEvent {
  /** Applying or reverting. */
  action: "upgrade" | "downgrade";
  /** The migration's revision. */
  revision: string;
  /** The migration's name. */
  name: string;
  /** `"start"` before its first statement, `"done"` once it (and its history record) is committed. */
  phase: "start" | "done";
  /** How long it took, in milliseconds (`"done"` only). */
  ms?: number;
}

/** Where the database stands against the migrations. */
export type MigrationStatus = "up-to-date" | "no-info" | "upgrade-available";

/** What {@linkcode Migrator.sync} did. */
export type SyncResult = "created" | "upgraded" | "already-up-to-date";

/** What {@linkcode Migrator.stamp} changed in the history, each list oldest revision first. */
export interface StampResult {
  /** Revisions recorded as applied that were not (none of their statements ran). */
  stamped: string[];
  /** Applied revisions whose record now carries the source's checksum and name (they were edited since). */
  restamped: string[];
  /** Revisions no longer recorded: newer than the target, or not in the source (none of their statements ran). */
  unstamped: string[];
}

/** An applied migration that no longer matches the source (see {@linkcode Migrator.check}). */
export interface MigrationProblem {
  /** The applied revision. */
  revision: string;
  /** Its name in the history. */
  name: string;
  /** `"edited"`: its source changed since it was applied; `"unknown"`: the source no longer has it. */
  kind: "edited" | "unknown";
}

/** The options of a {@linkcode Migrator}: exactly one of `directory` and `migrations`. */
export interface MigratorOptions {
  /**
   * A directory of `<revision>_<name>.sql` files and `<revision>_<name>.ts`
   * (`.mts`, `.js`, `.mjs`) modules; a relative path is resolved against the
   * working directory. Needs a file system (not on Workers: pass
   * `migrations` there).
   */
  directory?: string | URL;
  /** The migrations, in memory (any order: they are sorted by revision). */
  migrations?: readonly Migration[];
  /** The history table's name, quoted as one identifier. Default `"roost_migrations"`. */
  table?: string;
  /**
   * How long to wait for another migrator to finish, in ms, before failing
   * with `ROOST_MIGRATION_LOCKED`. Default 60 000. On SQLite each wait for
   * the write lock lasts at least the URL's `busy_timeout`.
   */
  lockTimeout?: number;
  /** Told when each migration starts and is done; an exception it throws stops the run like a failing migration. */
  onProgress?: (event: MigrationEvent) => void;
}
