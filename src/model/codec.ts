/**
 * What model helpers change between a row as TypeScript sees it and as each
 * dialect stores it: JSON documents are written as JSON text; SQLite's
 * `0`/`1` booleans, ISO 8601 instants and JSON text are read back as
 * booleans, Dates and values; 64-bit integers are read as `bigint`.
 *
 * @module
 */
import type { DialectName } from "../dialect.ts";
import type { Row } from "../driver.ts";
import type { Column } from "./column.ts";

type Columns = Readonly<Record<string, Column<unknown, boolean, boolean>>>;

/** A value as the database takes it for a column. */
export function encode(column: Column<unknown, boolean, boolean>, value: unknown): unknown {
  if (value === undefined || value === null) return null;
  return column.spec.kind === "json" ? JSON.stringify(value) : value;
}

/** Reads an instant written by SQLite (`current_timestamp` has no zone: it is UTC). */
function instant(value: unknown): unknown {
  if (typeof value !== "string") return value;
  const zoned = /(?:[zZ]|[+-]\d\d:?\d\d)$/.test(value);
  return new Date(zoned ? value : `${value.replace(" ", "T")}Z`);
}

type Decoder = (value: unknown) => unknown;

function decoderOf(column: Column<unknown, boolean, boolean>, dialect: DialectName): Decoder | undefined {
  switch (column.spec.kind) {
    case "bigint":
    case "bigserial":
      return (value) => typeof value === "number" ? BigInt(value) : value;
    case "boolean":
      return dialect === "postgres" ? undefined : (value) => typeof value === "number" ? value !== 0 : value;
    case "timestamp":
      return dialect === "sqlite" ? instant : undefined;
    case "json":
      return dialect === "sqlite" ? (value) => typeof value === "string" ? JSON.parse(value) : value : undefined;
    default:
      return undefined;
  }
}

/** Builds the function that turns a row read from `dialect` into the table's row type (in place). */
export function rowDecoder(columns: Columns, dialect: DialectName): (row: Row) => Row {
  const decoders: [string, Decoder][] = [];
  for (const name of Object.keys(columns)) {
    const decoder = decoderOf(columns[name], dialect);
    if (decoder !== undefined) decoders.push([name, decoder]);
  }
  return (row) => {
    for (const [name, decoder] of decoders) {
      const value = row[name];
      if (value !== null && value !== undefined) row[name] = decoder(value);
    }
    return row;
  };
}
