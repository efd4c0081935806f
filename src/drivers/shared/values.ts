/**
 * Value rules every driver shares: integers returned exactly, one way to
 * bind JavaScript values (with each dialect's few differences as rules), and
 * the error for a parameter a database cannot store.
 *
 * @module
 */
import { QueryError } from "../../errors.ts";

const minSafe = BigInt(Number.MIN_SAFE_INTEGER);
const maxSafe = BigInt(Number.MAX_SAFE_INTEGER);

/** Sets a row's column; a column named `__proto__` becomes a key of the row, never its prototype. */
export function setColumn(row: Record<string, unknown>, key: string, value: unknown): void {
  if (key === "__proto__") Object.defineProperty(row, key, { value, enumerable: true, writable: true });
  else row[key] = value;
}

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

/** How one dialect binds the values whose form differs between dialects. */
export interface BindRules {
  /** The database's name, for error messages. */
  readonly database: string;
  boolean(value: boolean): unknown;
  bigint(value: bigint): unknown;
  /** Called with valid Dates only. */
  date(value: Date): unknown;
}

/**
 * One parameter as a driver should bind it: strings and numbers as they are;
 * booleans, bigints and Dates by the dialect's `rules`; byte views and
 * ArrayBuffers as a Uint8Array over the same bytes; plain objects and arrays
 * (and objects with `toJSON`) as JSON text. `undefined`, invalid Dates,
 * functions, symbols, Maps and other class instances are refused with a
 * `ROOST_INVALID_PARAMETER` error.
 */
export function bindValue(value: unknown, index: number, rules: BindRules): unknown {
  switch (typeof value) {
    case "string":
    case "number":
      return value;
    case "boolean":
      return rules.boolean(value);
    case "bigint":
      return rules.bigint(value);
    case "undefined":
      throw invalidParameter(index, "is undefined; pass null for SQL NULL");
    case "object":
      if (value === null || value instanceof Uint8Array) return value;
      if (value instanceof Date) {
        if (Number.isNaN(value.getTime())) throw invalidParameter(index, "is an invalid Date");
        return rules.date(value);
      }
      if (value instanceof ArrayBuffer) return new Uint8Array(value);
      if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
      if (isJsonObject(value)) return JSON.stringify(value);
      throw invalidParameter(
        index,
        `is a ${value.constructor?.name ?? "object"}, which ${rules.database} cannot store`,
      );
    default:
      throw invalidParameter(index, `is a ${typeof value}, which ${rules.database} cannot store`);
  }
}
