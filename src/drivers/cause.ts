/**
 * The `cause` a Roost error carries for a driver error: a copy that keeps
 * the server's useful fields and drops what could hold query parameters
 * (some drivers attach them and do not let them be deleted).
 *
 * @module
 */

/** Copies an error's name, message, stack and the listed fields; `redact` cleans the message and stack. */
export function sanitizedCause(
  error: unknown,
  fields: readonly string[],
  redact: (text: string) => string = (text) => text,
): unknown {
  if (!(error instanceof Error)) return error;
  const copy = new Error(redact(error.message));
  copy.name = error.name;
  const source = error as unknown as Record<string, unknown>;
  const target = copy as unknown as Record<string, unknown>;
  for (const field of fields) if (source[field] !== undefined) target[field] = source[field];
  // Postgres's context lines quote bound values: `unnamed portal parameter $1 = '…'`, `JSON data, line 1: …`.
  if (typeof target.where === "string") {
    target.where = target.where.split("\n").filter((line) => !/parameter \$\d+ = |^JSON data/.test(line)).join("\n");
  }
  copy.stack = error.stack === undefined ? undefined : redact(error.stack);
  return copy;
}

/** The fields of a Postgres server error worth keeping; not `detail`, where the server quotes values. */
export const postgresErrorFields: readonly string[] = [
  "code",
  "severity",
  "hint",
  "position",
  "where",
  "schema_name",
  "table_name",
  "column_name",
  "data_type_name",
  "constraint_name",
  "routine",
];

/** SQLSTATEs after which a Postgres connection is unusable: class 08 and the admin shutdowns. */
export function fatalPostgresState(code: string): boolean {
  return code.startsWith("08") || code === "57P01" || code === "57P02" || code === "57P03";
}

/** MySQL quotes offending values in some messages (`Duplicate entry '…'`). */
const mysqlQuotedValue = /((?:Duplicate entry|value:|Incorrect \w+ value:)\s*)'(?:[^'\\]|\\.|'')*'/g;

/** A MySQL message with the values it quotes replaced by `'…'`. */
export function redactMysqlValues(text: string): string {
  return text.replace(mysqlQuotedValue, "$1'…'");
}
