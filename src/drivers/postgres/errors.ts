/**
 * What Postgres errors mean, for every Postgres driver: the server's fields
 * a Roost error's cause keeps, and which SQLSTATEs (or driver codes) leave
 * the connection unusable.
 *
 * @module
 */
import { connectionLost, sanitizedCause } from "../shared/errors.ts";

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

/**
 * The camelCase names drivers built on the wire protocol give a server
 * error's fields (deno-postgres, PGlite), and the names Roost's causes use
 * (postgres.js's). Not `detail` (the server quotes values there), nor
 * `internalQuery`, `query` or parameters.
 */
const camelCaseFields: Record<string, string> = {
  code: "code",
  severity: "severity",
  hint: "hint",
  position: "position",
  where: "where",
  schema: "schema_name",
  table: "table_name",
  column: "column_name",
  dataType: "data_type_name",
  constraint: "constraint_name",
  routine: "routine",
};

/**
 * A server error whose fields have camelCase names, as Roost's `cause`: a
 * new error named `name` with the message, stack and the fields above under
 * postgres.js's names, never the query or its parameters.
 */
export function camelCaseServerCause(error: Error, fields: Record<string, unknown>, name: string): Error {
  const flat = new Error(error.message);
  flat.name = name;
  flat.stack = error.stack;
  for (const [from, to] of Object.entries(camelCaseFields)) {
    if (fields[from] !== undefined) (flat as unknown as Record<string, unknown>)[to] = fields[from];
  }
  return sanitizedCause(flat, postgresErrorFields) as Error;
}

/** SQLSTATEs after which a Postgres connection is unusable: class 08 and the admin shutdowns. */
export function fatalPostgresState(code: string): boolean {
  return code.startsWith("08") || code === "57P01" || code === "57P02" || code === "57P03";
}

/**
 * A Postgres error's Roost code and whether the connection is gone, from the
 * server's SQLSTATE (when the error came from the server) and the driver's
 * own code (when it did not).
 */
export function postgresFailure(
  state: string | undefined,
  own: string | undefined,
): { code: string | undefined; fatal: boolean } {
  return { code: state ?? own, fatal: (state !== undefined && fatalPostgresState(state)) || connectionLost(own) };
}
