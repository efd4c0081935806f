/**
 * One migration's steps: whether a step does anything, how an empty one is
 * named in an error, and running one statement by statement with errors
 * that say which migration and statement failed.
 *
 * @module
 */
import type { Queryable } from "../queryable.ts";
import { messageOf } from "../errors.ts";
import { MigrationError } from "./errors.ts";
import type { LoadedMigration, MigrationStep } from "./source.ts";
import { splitStatements } from "./split.ts";

/**
 * True when a step does nothing: absent, or SQL without a statement (blank or
 * only comments, as in the file `roost new` creates). A function never is.
 */
export function isEmptyStep(step: MigrationStep | undefined, dialect: Queryable["dialect"]): boolean {
  if (step === undefined) return true;
  return typeof step === "string" && splitStatements(step, dialect).length === 0;
}

/** Names a migration and where its empty `up` or `down` step lives, for an error message. */
export function lacking(migration: LoadedMigration, step: "up" | "down"): string {
  const label = `${migration.revision}_${migration.name}`;
  const file = migration.file;
  if (file === undefined) return `${label} (its ${step} step has no statement)`;
  if (file.endsWith(".sql")) return `${label} (${file} has no SQL after "-- migrate:${step}")`;
  return `${label} (${file} ${migration[step] === undefined ? "exports no" : "has an empty"} ${step} step)`;
}

/** Runs one step of a migration: its SQL statement by statement, or its function. */
export async function runStep(
  db: Queryable,
  step: MigrationStep,
  migration: LoadedMigration,
  action: "upgrade" | "downgrade",
): Promise<void> {
  const label = `${migration.revision}_${migration.name}`;
  const partly = db.dialect === "mysql"
    ? "; MySQL commits DDL as it runs, so what ran before the failure stays applied: undo it before trying again"
    : "; the migration was rolled back";
  if (typeof step === "function") {
    try {
      await step(db);
    } catch (error) {
      throw new MigrationError(`${action} of migration ${label} failed: ${messageOf(error)}${partly}`, {
        code: "ROOST_MIGRATION_FAILED",
        cause: error,
        revision: migration.revision,
        file: migration.file,
      });
    }
    return;
  }
  const statements = splitStatements(step, db.dialect);
  for (let i = 0; i < statements.length; i++) {
    try {
      await db.execute(statements[i]);
    } catch (error) {
      throw new MigrationError(
        `${action} of migration ${label} failed at statement ${i + 1} of ${statements.length}: ${
          messageOf(error)
        }${partly}`,
        {
          code: "ROOST_MIGRATION_FAILED",
          cause: error,
          revision: migration.revision,
          statement: i + 1,
          file: migration.file,
        },
      );
    }
  }
}
