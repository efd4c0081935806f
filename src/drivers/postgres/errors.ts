/**
 * What Postgres errors mean, for every Postgres driver: the server's fields
 * a Roost error's cause keeps, and which SQLSTATEs (or driver codes) leave
 * the connection unusable.
 *
 * @module
 */
import { connectionLost } from "../shared/errors.ts";

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
