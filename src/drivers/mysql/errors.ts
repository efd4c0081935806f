/**
 * What MySQL and MariaDB errors mean, for every MySQL driver: Roost's codes
 * for the server's error numbers (mysql2's names), the errors after which
 * the connection is gone, and the values messages quote, which a Roost
 * error never carries.
 *
 * @module
 */

/** MySQL server error numbers under the names mysql2 gives them, so `QueryError.code` matches across drivers. */
export const mysqlErrorNames: Record<number, string> = {
  1040: "ER_CON_COUNT_ERROR",
  1045: "ER_ACCESS_DENIED_ERROR",
  1048: "ER_BAD_NULL_ERROR",
  1049: "ER_BAD_DB_ERROR",
  1050: "ER_TABLE_EXISTS_ERROR",
  1053: "ER_SERVER_SHUTDOWN",
  1054: "ER_BAD_FIELD_ERROR",
  1062: "ER_DUP_ENTRY",
  1064: "ER_PARSE_ERROR",
  1146: "ER_NO_SUCH_TABLE",
  1205: "ER_LOCK_WAIT_TIMEOUT",
  1213: "ER_LOCK_DEADLOCK",
  1264: "ER_WARN_DATA_OUT_OF_RANGE",
  1290: "ER_OPTION_PREVENTS_STATEMENT",
  1317: "ER_QUERY_INTERRUPTED",
  1365: "ER_DIVISION_BY_ZERO",
  1406: "ER_DATA_TOO_LONG",
  1451: "ER_ROW_IS_REFERENCED_2",
  1452: "ER_NO_REFERENCED_ROW_2",
  1792: "ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION",
  1927: "ER_CONNECTION_KILLED",
  1969: "ER_STATEMENT_TIMEOUT",
  3024: "ER_QUERY_TIMEOUT",
};

/** MySQL errors after which the connection is gone, by number (the client's 2006 and 2013 too) and by mysql2's name. */
export const fatalMysqlErrors: ReadonlySet<number | string> = new Set([
  1040,
  1053,
  1927,
  2006,
  2013,
  "ER_SERVER_SHUTDOWN",
  "ER_CONNECTION_KILLED",
  "ER_CON_COUNT_ERROR",
  "ER_NET_READ_INTERRUPTED",
  "PROTOCOL_CONNECTION_LOST",
  "PROTOCOL_SEQUENCE_TIMEOUT",
]);

/** The error fields a MySQL error's cause keeps. */
export const mysqlErrorFields: readonly string[] = ["code", "errno", "sqlState", "fatal"];

/** MySQL quotes offending values in some messages (`Duplicate entry '…'`). */
const mysqlQuotedValue = /((?:Duplicate entry|value:|Incorrect \w+ value:)\s*)'(?:[^'\\]|\\.|'')*'/g;

/** A MySQL message with the values it quotes replaced by `'…'`. */
export function redactMysqlValues(text: string): string {
  return text.replace(mysqlQuotedValue, "$1'…'");
}
