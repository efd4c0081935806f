/**
 * Bun.SQL speaking PostgreSQL: the Postgres flavour of the Bun.SQL client
 * (`shared/bun_sql.ts`), built from the Postgres pieces every Postgres
 * driver uses. Exported to users through `@roost/db/drivers/bun-sql`.
 *
 * @module
 */
import type { Driver } from "../../driver.ts";
import { executePipelined } from "../shared/batch.ts";
import { bunSqlDriver, type ColumnConverter, type Flavour } from "../shared/bun_sql.ts";
import { ownCode, sanitizedCause } from "../shared/errors.ts";
import { cursorStream } from "./cursor.ts";
import { postgresErrorFields, postgresFailure } from "./errors.ts";
import { JsonParams } from "./json_params.ts";
import { postgresSessionParameters } from "./session.ts";
import { postgresParam } from "./values.ts";

/** Postgres's infinite dates and timestamps as the text the other drivers return. */
function infinityText(value: unknown): unknown {
  return value === Infinity ? "infinity" : value === -Infinity ? "-infinity" : value;
}

/** A Date Bun.SQL made of a `date` as its `YYYY-MM-DD` text (anything else as it is). */
function dateText(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(dateText);
  if (value instanceof Date && !Number.isNaN(value.getTime())) return value.toISOString().slice(0, 10);
  return infinityText(value);
}

/**
 * The columns Bun.SQL reads differently from Roost, by type OID: dates and
 * arrays of dates (Bun.SQL reads a Date at UTC midnight) as their text,
 * timestamps' `infinity` (Bun.SQL reads a number) as text.
 */
const converters: Record<number, ColumnConverter> = {
  1082: dateText,
  1182: dateText,
  1114: infinityText,
  1184: infinityText,
};

/**
 * The types Bun.SQL reads as booleans, numbers (int2, int4, oid, float4,
 * float8), strings ("char", name, text, bpchar, varchar, time, interval,
 * numeric, uuid) or Dates (date, timestamp, timestamptz; Infinity for
 * `infinity`), by OID. Not int8 (a bigint), bytea (a Buffer) or arrays.
 */
const plainTypes = new Set([
  ...[16, 21, 23, 26, 700, 701], // bool, int2, int4, oid, float4, float8
  ...[18, 19, 25, 1042, 1043, 1083, 1186, 1700, 2950], // "char", name, text, bpchar, varchar, time, interval, numeric, uuid
  ...[1082, 1114, 1184], // date, timestamp, timestamptz
]);

/** Arrays go to Bun.SQL as they are: it encodes them as Postgres arrays of the parameter's type. */
const serverTypedArray = (array: unknown[]): unknown => array;

function plainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** The fields of a Bun.SQL Postgres error a cause keeps: the server's, and its SQLSTATE in `errno`. */
const causeFields = [...postgresErrorFields, "errno"];

const postgresFlavour: Flavour = {
  dialect: "postgres",
  errors: {
    dialect: "postgres",
    cause: (error) => sanitizedCause(error, causeFields),
    // Server errors carry their SQLSTATE in `errno`; `code` is Bun's own.
    classify: (error) => postgresFailure(typeof error.errno === "string" ? error.errno : undefined, ownCode(error)),
  },
  session: postgresSessionParameters,
  backendId: "pg_backend_pid()",
  param(value, index) {
    // Bun.SQL encodes plain objects as JSON itself (JSON text it would encode
    // again, as a JSON string) and arrays as Postgres arrays.
    if (typeof value === "object" && value !== null && plainObject(value)) return value;
    return postgresParam(value, index, serverTypedArray);
  },
  // Bun.SQL binds every value of a json/jsonb parameter by JSON.stringify (oven-sh/bun#28819): such
  // parameters are found out and sent as text the server casts, so JSON text is parsed (docs/values.md).
  paramTyping: () => new JsonParams(),
  convert: ({ type }) => converters[type],
  plain: ({ type }) => plainTypes.has(type),
  outcome: (result) => ({ rowCount: result.count ?? 0 }),
  // A single-row insert becomes multi-row inserts; anything else is pipelined (behind a transaction pooler, not).
  executeMany: (calls, text, paramSets) =>
    executePipelined(
      text,
      paramSets,
      calls.execute,
      (params) => calls.send(text, params),
      (error) => error as Error,
      calls.pipelines,
    ),
  // Bun.SQL has no cursor API: the server keeps one.
  stream: (calls, text, params, batchSize, placement, arrays) => {
    const run = arrays ? calls.arrays : calls.run;
    return cursorStream(
      run,
      () => run(text, params),
      (error) => calls.translate(error, text),
      text,
      params,
      batchSize,
      placement,
    );
  },
};

/** Bun.SQL speaking PostgreSQL. */
export const bunSqlPostgres: Driver = bunSqlDriver(postgresFlavour);
