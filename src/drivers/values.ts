/**
 * Value rules every driver shares: integers returned exactly, and the error
 * for a parameter a database cannot store.
 *
 * @module
 */
import { QueryError } from "../errors.ts";

const minSafe = BigInt(Number.MIN_SAFE_INTEGER);
const maxSafe = BigInt(Number.MAX_SAFE_INTEGER);

/** An integer as a number when that is exact, else as a bigint. */
export function exactInteger(value: number | bigint): number | bigint {
  return typeof value === "bigint" && value >= minSafe && value <= maxSafe ? Number(value) : value;
}

/** An integer sent as text (Postgres int8, MySQL BIGINT): a number when exact, a bigint only when it must be. */
export function integerFromText(text: string): number | bigint {
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : BigInt(text);
}

/** The error for a parameter Roost refuses before the database sees it. */
export function invalidParameter(index: number, why: string): QueryError {
  return new QueryError(`parameter ${index + 1} ${why}`, { code: "ROOST_INVALID_PARAMETER" });
}

/** Plain objects and arrays (and objects with `toJSON`) are stored as JSON. */
export function isJsonObject(value: object): boolean {
  if (Array.isArray(value)) return true;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null || typeof (value as { toJSON?: unknown }).toJSON === "function";
}

/** A MySQL TINYINT(1) value (what BOOLEAN means) as a boolean; any other value it holds stays a number. */
export function tinyintBoolean(value: unknown): unknown {
  return value === 0 || value === 1 ? value === 1 : value;
}
