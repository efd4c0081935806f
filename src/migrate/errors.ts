/**
 * The error every migration failure is reported with.
 *
 * @module
 */
import { RoostError } from "../errors.ts";

/**
 * What went wrong, as a machine-readable code:
 *
 * - `ROOST_MIGRATION_INVALID`: a migration source is malformed (a file name
 *   without a revision, a `.sql` file without `-- migrate:up`, a module
 *   without an `up` function).
 * - `ROOST_MIGRATION_DUPLICATE`: two migrations share a revision.
 * - `ROOST_MIGRATION_EDITED`: an applied migration's source changed since it ran.
 * - `ROOST_MIGRATION_OUT_OF_ORDER`: a pending migration is older than the newest applied one.
 * - `ROOST_MIGRATION_EMPTY`: a pending migration's up step is SQL without a
 *   statement (such as a file `roost new` created and nobody filled in).
 * - `ROOST_MIGRATION_UNKNOWN_TARGET`: the target revision is neither in the source nor applied.
 * - `ROOST_MIGRATION_MISSING`: a migration to revert is applied but no longer in the source.
 * - `ROOST_MIGRATION_IRREVERSIBLE`: a migration to revert has no down step.
 * - `ROOST_MIGRATION_FAILED`: a migration's statement (or function) failed; `cause` is the error.
 * - `ROOST_MIGRATION_LOCKED`: another migrator held the lock for longer than `lockTimeout`.
 * - `ROOST_MIGRATION_POOLED`: a Postgres database behind a transaction pooler (`pooler=transaction`), where
 *   the migrator's session lock cannot be held: open the migrator's `Database` on the server's own URL.
 * - `ROOST_MIGRATION_ALREADY_APPLIED`: `createTables()` found migrations applied (it is for a database without
 *   any: upgrade instead).
 */
export type MigrationErrorCode =
  | "ROOST_MIGRATION_INVALID"
  | "ROOST_MIGRATION_DUPLICATE"
  | "ROOST_MIGRATION_EDITED"
  | "ROOST_MIGRATION_OUT_OF_ORDER"
  | "ROOST_MIGRATION_EMPTY"
  | "ROOST_MIGRATION_UNKNOWN_TARGET"
  | "ROOST_MIGRATION_MISSING"
  | "ROOST_MIGRATION_IRREVERSIBLE"
  | "ROOST_MIGRATION_FAILED"
  | "ROOST_MIGRATION_LOCKED"
  | "ROOST_MIGRATION_POOLED"
  | "ROOST_MIGRATION_ALREADY_APPLIED";

/** The options of a {@linkcode MigrationError}. */
export interface MigrationErrorOptions {
  /** What went wrong. */
  code: MigrationErrorCode;
  /** The underlying error: the driver's `QueryError` for a failed statement. */
  cause?: unknown;
  /** The migration the error is about, when it is about one. */
  revision?: string;
  /** The migrations the error is about, when it is about several (edited, out of order, empty, irreversible). */
  revisions?: readonly string[];
  /** The 1-based index of the failed statement among the migration's statements. */
  statement?: number;
  /** The file the error is about, when the migration came from a directory. */
  file?: string;
}

/**
 * A migration could not be loaded, checked, applied or reverted. `code` says
 * why; `revision`, `revisions`, `statement` and `file` say where.
 *
 * @example
 * ```ts
 * import { Database } from "@roost/db";
 * import { MigrationError, Migrator } from "@roost/db/migrate";
 *
 * const db = new Database("sqlite::memory:");
 * try {
 *   await new Migrator(db, { directory: "migrations" }).upgrade();
 * } catch (error) {
 *   if (error instanceof MigrationError && error.code === "ROOST_MIGRATION_FAILED") {
 *     console.error(`${error.revision} failed at statement ${error.statement}: ${error.message}`);
 *   }
 * }
 * ```
 */
export class MigrationError extends RoostError {
  /** What went wrong. */
  declare readonly code: MigrationErrorCode;
  /** The migration the error is about, when it is about one. */
  readonly revision?: string;
  /** The migrations the error is about, when it is about several. */
  readonly revisions?: readonly string[];
  /** The 1-based index of the failed statement, for `ROOST_MIGRATION_FAILED` on a SQL step. */
  readonly statement?: number;
  /** The source file, when the migration came from a directory. */
  readonly file?: string;

  /** Creates a migration error. */
  constructor(message: string, options: MigrationErrorOptions) {
    super(message, { code: options.code, cause: options.cause });
    if (options.revision !== undefined) this.revision = options.revision;
    if (options.revisions !== undefined) this.revisions = options.revisions;
    if (options.statement !== undefined) this.statement = options.statement;
    if (options.file !== undefined) this.file = options.file;
  }
}
