/**
 * Array parameters for Postgres drivers that send every parameter as text
 * with no type of their own (deno-postgres, neon): a JS array becomes JSON
 * in a json/jsonb place and a Postgres array anywhere else, so the server is
 * asked once per statement text which type each place has.
 *
 * @module
 */
import { byteaText, postgresParam, serializeArray } from "./values.ts";

/** An array parameter, serialised once the server has said which type its place has. */
export class ArrayParam {
  readonly value: unknown[];
  readonly index: number;

  constructor(value: unknown[], index: number) {
    this.value = value;
    this.index = index;
  }

  /** JSON for json/jsonb places, Postgres's array text anywhere else. */
  encode(type: string | undefined): string {
    if (type === "json" || type === "jsonb") return JSON.stringify(this.value);
    return String(serializeArray(this.value, (item: unknown) => {
      const value = postgresParam(item, this.index, (array) => array);
      return value instanceof Uint8Array ? byteaText(value) : String(value);
    }));
  }
}

/** Statements `PREPARE` accepts, so the server can be asked for their parameters' types. */
export const preparable =
  /^\s*(?:(?:--[^\n]*\n|\/\*[\s\S]*?\*\/)\s*)*(?:select|insert|update|delete|with|values|merge|table)\b/i;

let probeCount = 0;

/**
 * The statements (one simple-protocol round trip) that ask the server for
 * the type names of `text`'s parameters (`integer[]`, `jsonb`…): PREPARE
 * it, read `pg_prepared_statements`, DEALLOCATE. Its second result's first
 * row holds the names as a text array.
 */
export function parameterTypesProbe(text: string): string {
  const name = `roost_types_${++probeCount}`;
  return `PREPARE ${name} AS ${text}\n;SELECT parameter_types::text[] FROM pg_catalog.pg_prepared_statements ` +
    `WHERE name = '${name}';DEALLOCATE ${name}`;
}
