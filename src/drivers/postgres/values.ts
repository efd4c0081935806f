/**
 * Postgres values in their text format, as Roost reads and writes them:
 * arrays (with `NULL` elements as `null`, which postgres.js gets wrong),
 * timestamps read independently of the process's time zone, and the rules
 * for binding JavaScript values. No driver is imported here.
 *
 * @module
 */
import { type BindRules, bindValue, integerFromText, invalidParameter } from "../shared/values.ts";

/** Converts one element's text (never `NULL`) into its value. */
export type ElementParser = (text: string) => unknown;
/** Converts one element's value into its text. */
export type ElementSerializer = (value: never) => unknown;

/**
 * Parses an array in Postgres's output format, e.g. `{1,NULL,"a,b"}` or
 * `{{1,2},{3,4}}` (nested arrays for more dimensions). Unquoted `NULL` is
 * `null`; a quoted `"NULL"` is the string. Bounds decoration such as
 * `[0:1]={…}` is skipped.
 */
export function parseArray(text: string, parseElement: ElementParser | undefined, delimiter = ","): unknown[] {
  let i = text.charCodeAt(0) === 91 /* [ */ ? text.indexOf("=") + 1 : 0;
  const stack: unknown[][] = [];
  let result: unknown[] = [];
  const push = (value: unknown) => stack[stack.length - 1]?.push(value);
  for (; i < text.length; i++) {
    const char = text[i];
    if (char === "{") {
      const inner: unknown[] = [];
      push(inner);
      stack.push(inner);
    } else if (char === "}") {
      result = stack.pop() ?? result;
    } else if (char === '"') {
      let value = "";
      let start = ++i;
      for (; text[i] !== '"'; i++) {
        if (text[i] === "\\") {
          value += text.slice(start, i);
          start = ++i; // the escaped character is kept as it is
        }
      }
      value += text.slice(start, i);
      push(parseElement ? parseElement(value) : value);
    } else if (char !== delimiter) {
      let end = i;
      while (end < text.length && text[end] !== delimiter && text[end] !== "}") end++;
      const raw = text.slice(i, end);
      push(raw.length === 4 && raw.toUpperCase() === "NULL" ? null : parseElement ? parseElement(raw) : raw);
      i = end - 1;
    }
  }
  return result;
}

/**
 * Serializes a JavaScript array into Postgres's array input format, every
 * element quoted (so commas, quotes, braces, backslashes, spaces and the word
 * `NULL` in strings survive) and `null` as `NULL`. A string is passed through
 * unchanged, as an array literal written by hand.
 */
export function serializeArray(
  value: unknown,
  serializeElement: ElementSerializer | undefined,
  delimiter = ",",
): unknown {
  if (!Array.isArray(value)) return value;
  const items = value.map((item): string => {
    if (item === null) return "NULL"; // undefined elements were refused by postgresParam
    if (Array.isArray(item)) return String(serializeArray(item, serializeElement, delimiter));
    const text = String(serializeElement ? serializeElement(item as never) : item);
    return `"${text.replace(/[\\"]/g, "\\$&")}"`;
  });
  return `{${items.join(delimiter)}}`;
}

const timestampText =
  /^(\d{4,})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d+))?(?:([+-])(\d\d)(?::(\d\d))?(?::(\d\d))?)?( BC)?$/;

/**
 * Parses a `timestamp` or `timestamptz` in Postgres's ISO output. A value
 * with an offset (timestamptz) is that exact instant; one without
 * (timestamp) is read as UTC wall-clock time, whatever the process's time
 * zone. Microseconds are truncated to milliseconds. `infinity` and
 * `-infinity`, which a Date cannot hold, come back as those strings.
 */
export function parseTimestamp(text: string): Date | string {
  const part = timestampText.exec(text);
  if (part === null) return text;
  const [, year, month, day, hour, minute, second, fraction, sign, offsetHours, offsetMinutes, offsetSeconds, bc] =
    part;
  const date = new Date(0);
  date.setUTCFullYear(bc ? 1 - Number(year) : Number(year), Number(month) - 1, Number(day));
  date.setUTCHours(
    Number(hour),
    Number(minute),
    Number(second),
    fraction ? Number(fraction.slice(0, 3).padEnd(3, "0")) : 0,
  );
  if (sign !== undefined) {
    const offset = (Number(offsetHours) * 3600 + Number(offsetMinutes ?? 0) * 60 + Number(offsetSeconds ?? 0)) * 1000;
    date.setTime(date.getTime() + (sign === "+" ? -offset : offset));
  }
  return date;
}

/** A date/time parameter's text: a Date as its ISO 8601 instant, a string as written. */
export function serializeDateTime(value: Date | string): string {
  return value instanceof Date ? value.toISOString() : String(value);
}

/**
 * A json/jsonb parameter's text: a string is taken as JSON text already
 * (as MySQL and SQLite take it), anything else is serialised.
 */
export function serializeJson(value: unknown): string {
  return typeof value === "string" ? value : JSON.stringify(value);
}

const minInt8 = -(2n ** 63n);
const maxInt8 = 2n ** 63n - 1n;

/**
 * One parameter the Roost way, before the driver binds it:
 * - a Date becomes its ISO 8601 text, typed by the server from where it is
 *   used, so a `timestamp` column stores the UTC wall clock, a `timestamptz`
 *   the instant and a `date` the UTC date, whatever the session's time zone;
 * - an array is handed to `serverTyped`, so the server picks its type: a
 *   Postgres array (`= any($1)`, `int8[]`, `text[]` columns) or JSON (json
 *   and jsonb columns);
 * - a plain object becomes JSON text;
 * - a byte view becomes a Uint8Array (bytea), a bigint outside int8's range
 *   its decimal text (for numeric);
 * - `undefined`, functions, symbols, Maps and other class instances are refused.
 */
export function postgresParam(value: unknown, index: number, serverTyped: (array: unknown[]) => unknown): unknown {
  return Array.isArray(value) ? serverTyped(checkedElements(value, index)) : bindValue(value, index, postgresRules);
}

const postgresRules: BindRules = {
  database: "Postgres",
  boolean: (value) => value,
  bigint: (value) => value < minInt8 || value > maxInt8 ? value.toString() : value,
  date: (value) => value.toISOString(),
};

/** Refuses an array holding what no array element can be, at any depth; returns it unchanged. */
function checkedElements(array: unknown[], index: number): unknown[] {
  for (const item of array) {
    if (item === undefined) throw invalidParameter(index, "holds an undefined element; pass null for SQL NULL");
    if (typeof item === "function" || typeof item === "symbol") {
      throw invalidParameter(index, `holds a ${typeof item}, which Postgres cannot store`);
    }
    if (Array.isArray(item)) checkedElements(item, index);
  }
  return array;
}

/** A bytea value's text, `\\x` and the bytes in hex. */
export function byteaText(bytes: Uint8Array): string {
  let text = "\\x";
  for (const byte of bytes) text += byte.toString(16).padStart(2, "0");
  return text;
}

/** A bytea value from its text (`\\x` and the bytes in hex). */
export function byteaFromText(text: string): Uint8Array {
  const bytes = new Uint8Array((text.length - 2) / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(text.slice(2 + 2 * i, 4 + 2 * i), 16);
  return bytes;
}

/**
 * The type OID each parameter is sent as, where its JavaScript value (after
 * `postgresParam`) says it, as postgres.js types them: a boolean as bool, a
 * bigint as int8, bytes as bytea; 0 leaves the type to the server, which
 * reads it from where the parameter is used. Undefined when every one is 0.
 */
export function parameterOids(params: readonly unknown[]): number[] | undefined {
  let types: number[] | undefined;
  params.forEach((value, i) => {
    const type = typeof value === "boolean"
      ? 16
      : typeof value === "bigint"
      ? 20
      : value instanceof Uint8Array
      ? 17
      : 0;
    if (type !== 0) (types ??= new Array(params.length).fill(0))[i] = type;
  });
  return types;
}

/**
 * How Roost reads the text form of the types whose JavaScript value is not
 * their text, by type OID: booleans, bytea, integers (int8 exactly), floats,
 * json/jsonb parsed, timestamps as `parseTimestamp` says, and `date` as its
 * text (no time zone may shift it). Every other type reads as its text.
 */
export const textParsers: Readonly<Record<number, (text: string) => unknown>> = {
  16: (text) => text === "t", // bool
  17: byteaFromText,
  20: integerFromText, // int8
  21: Number, // int2
  23: Number, // int4
  26: Number, // oid
  700: Number, // float4
  701: Number, // float8
  114: (text) => JSON.parse(text), // json
  3802: (text) => JSON.parse(text), // jsonb
  1082: (text) => text, // date
  1114: parseTimestamp,
  1184: parseTimestamp,
};
