/**
 * SQLite values as Roost binds and reads them, for every SQLite driver.
 *
 * @module
 */
import type { Row } from "../../driver.ts";
import { type BindRules, bindValue, exactInteger, setColumn } from "../shared/values.ts";

/**
 * Converts one value to what SQLite stores: booleans as 1/0, dates as ISO 8601
 * text, byte views as blobs, plain objects and arrays as JSON text.
 */
function toSqlite(value: unknown, index: number): unknown {
  return bindValue(value, index, sqliteRules);
}

const sqliteRules: BindRules = {
  database: "SQLite",
  boolean: (value) => value ? 1 : 0,
  bigint: (value) => value,
  date: (value) => value.toISOString(),
};

/** Converts parameters for binding; returns the same array when none needs converting. */
export function sqliteParams(params: readonly unknown[]): readonly unknown[] {
  let out: unknown[] | undefined;
  for (let i = 0; i < params.length; i++) {
    const value = params[i];
    // Numbers and strings bind as they are: no call for them (about 300 instructions a value on Bun).
    if (typeof value === "number" || typeof value === "string") continue;
    const converted = toSqlite(value, i);
    if (converted !== value) {
      out ??= params.slice();
      out[i] = converted;
    }
  }
  return out ?? params;
}

/** A plain-object copy of a row with integers returned exactly (a plain object is converted in place). */
export function toRow(raw: unknown): Row {
  const source = raw as Record<string, unknown>;
  const row: Row = Object.getPrototypeOf(source) === Object.prototype ? source : {};
  for (const key in source) {
    const value = source[key];
    setColumn(row, key, typeof value === "bigint" ? exactInteger(value) : value);
  }
  return row;
}

/** A row of numbers-mode statement copied into a plain object (undefined stays undefined). */
export function plainRow(raw: unknown): Row | undefined {
  if (raw == null) return undefined;
  const source = raw as Record<string, unknown>;
  const row: Row = {};
  for (const key in source) setColumn(row, key, source[key]);
  return row;
}

/** A row built from its column names and values, in column order (a repeated name keeps its last value). */
export function rowOf(names: readonly string[], values: readonly unknown[]): Row {
  const row: Row = {};
  for (let i = 0; i < names.length; i++) setColumn(row, names[i], values[i]);
  return row;
}
