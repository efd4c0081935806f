/**
 * D1's errors as Roost errors. D1 reports a failed statement as an `Error`
 * whose message is `D1_ERROR: <SQLite's message>`, often ending in SQLite's
 * result code (`…: SQLITE_CONSTRAINT`), with no code field: the code is
 * read from the message, and a constraint's kind from SQLite's wording, so
 * the codes match the other SQLite drivers' (`SQLITE_CONSTRAINT_UNIQUE`).
 *
 * @module
 */
import { QueryError, RoostError } from "../../errors.ts";

/** SQLite's wording of each constraint failure, and its extended code. */
const constraints: readonly [RegExp, string][] = [
  [/\bUNIQUE constraint failed\b/, "SQLITE_CONSTRAINT_UNIQUE"],
  [/\bNOT NULL constraint failed\b/, "SQLITE_CONSTRAINT_NOTNULL"],
  [/\bCHECK constraint failed\b/, "SQLITE_CONSTRAINT_CHECK"],
  [/\bFOREIGN KEY constraint failed\b/, "SQLITE_CONSTRAINT_FOREIGNKEY"],
  [/\bPRIMARY KEY constraint failed\b/, "SQLITE_CONSTRAINT_PRIMARYKEY"],
];

/** The Roost code of a D1 message: a constraint's extended code, else the SQLite code it names, else `D1_ERROR`. */
function codeOf(message: string): string {
  for (const [pattern, code] of constraints) if (pattern.test(message)) return code;
  const named = /\b(SQLITE_[A-Z_]+)\b/.exec(message)?.[1];
  if (named !== undefined) return named;
  const prefix = /^(D1_[A-Z_]+):/.exec(message)?.[1];
  return prefix ?? "D1_ERROR";
}

/** Turns an error the D1 binding threw into a {@linkcode QueryError} with a `SQLITE_*` (or `D1_*`) code. */
export function d1Error(error: unknown, text: string): RoostError {
  if (error instanceof RoostError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const tooMany = /too many SQL variables/.test(message);
  return new QueryError(tooMany ? `${message} (split the statement, or bind a list as one JSON value)` : message, {
    cause: error,
    code: tooMany ? "ROOST_TOO_MANY_PARAMETERS" : codeOf(message),
    sql: text,
  });
}
