/**
 * MySQL and MariaDB values as Roost binds and reads them, for every MySQL
 * driver.
 *
 * @module
 */
import { type BindRules, bindValue } from "../shared/values.ts";

/** A MySQL TINYINT(1) value (what BOOLEAN means) as a boolean; any other value it holds stays a number. */
export function tinyintBoolean(value: unknown): unknown {
  return value === 0 || value === 1 ? value === 1 : value;
}

/** MySQL and MariaDB: booleans as 1/0, bigints as their decimal text (all of int64 and beyond), Dates as they are. */
export const mysqlRules: BindRules = {
  database: "MySQL",
  boolean: (value) => value ? 1 : 0,
  bigint: (value) => value.toString(),
  date: (value) => value,
};

/** One parameter as MySQL binds it (see `bindValue` and `mysqlRules`). */
export function mysqlParam(value: unknown, index: number): unknown {
  return bindValue(value, index, mysqlRules);
}
