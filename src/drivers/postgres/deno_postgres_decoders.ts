/**
 * How the deno-postgres driver reads result values: decoders by type OID
 * where the library's own differ from Roost's values, and the repair of the
 * byte-order marks the library drops from text.
 *
 * @module
 */
import { integerFromText } from "../shared/values.ts";
import { byteaFromText, parseArray, parseTimestamp } from "./values.ts";

/** How one array element's text becomes its value (undefined: the text itself). */
type ElementDecoder = ((text: string) => unknown) | undefined;

/** Element decoders by type oid, as Roost reads each type (see README, Values). */
const elementDecoders: Record<number, ElementDecoder> = {
  16: (text) => text === "t",
  17: byteaFromText,
  20: integerFromText,
  21: Number,
  23: Number,
  26: Number,
  114: JSON.parse,
  700: Number,
  701: Number,
  1082: undefined, // date: its text, which no time zone can shift
  1114: parseTimestamp,
  1184: parseTimestamp,
  3802: JSON.parse,
};

/** Array type oids and their element types. */
const arrayTypes: Record<number, number> = {
  1000: 16,
  1001: 17,
  1002: 18,
  1003: 19,
  1005: 21,
  1007: 23,
  1009: 25,
  1014: 1042,
  1015: 1043,
  1016: 20,
  1021: 700,
  1022: 701,
  1028: 26,
  1040: 829,
  1041: 869,
  651: 650,
  1115: 1114,
  1182: 1082,
  1183: 1083,
  1185: 1184,
  1187: 1186,
  1231: 1700,
  1270: 1266,
  199: 114,
  2951: 2950,
  3807: 3802,
};

/**
 * Result decoding where deno-postgres's own differs from Roost's values: int8
 * exact (it gives bigints), float8 and oid as numbers (it gives strings),
 * `date` as text, timestamps independent of the process's time zone
 * (`infinity` as text), bytea as a plain Uint8Array, and arrays through
 * Roost's parser (NULL elements as null, quoted "NULL" as the string).
 */
export const decoders: Record<number, (text: string) => unknown> = {
  17: byteaFromText,
  20: integerFromText,
  26: Number,
  701: Number,
  1082: (text) => text,
  1114: parseTimestamp,
  1184: parseTimestamp,
};
for (const [array, element] of Object.entries(arrayTypes)) {
  const parseElement = elementDecoders[element];
  decoders[Number(array)] = (text) => parseArray(text, parseElement);
}

/** The part of deno-postgres's array result (the prototype of what `queryArray` returns) the BOM repair wraps. */
interface RowInserter {
  rows: unknown[][];
  insertRow(row: (Uint8Array | null)[], controls?: { decoders?: unknown }): void;
}

/** Set once `repairBoms` has wrapped the result class (there is one per process). */
let bomsRepaired = false;

/** True until `repairBoms` has wrapped the result class. */
export function bomsUnrepaired(): boolean {
  return !bomsRepaired;
}

/**
 * deno-postgres decodes every value with a `TextDecoder` that drops a
 * leading U+FEFF before any decoder of Roost's sees the text, so `'\uFEFFa'`
 * would read back `'a'`. This wraps the result class's `insertRow` so that,
 * for results of Roost's clients only (told by their `decoders`), a string
 * value whose bytes began with the BOM gets it back. Other users of the
 * library in the process are unaffected.
 */
export function repairBoms(result: object): void {
  const prototype = Object.getPrototypeOf(result) as RowInserter | null;
  if (bomsRepaired || prototype === null || typeof prototype.insertRow !== "function") return;
  bomsRepaired = true;
  const insertRow = prototype.insertRow;
  prototype.insertRow = function (this: RowInserter, row, controls) {
    insertRow.call(this, row, controls);
    if (controls?.decoders !== decoders) return;
    const values = this.rows[this.rows.length - 1];
    for (let i = 0; i < row.length; i++) {
      const bytes = row[i];
      if (
        bytes != null && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf && typeof values[i] === "string"
      ) {
        values[i] = `\uFEFF${values[i]}`;
      }
    }
  };
}
