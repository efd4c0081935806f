/**
 * Parameters as the deno-postgres driver sends them: deno-postgres sends
 * every parameter untyped, so booleans, bigints and bytes get their type by
 * a cast written into the SQL text, and arrays are encoded once the server
 * has said which type their place has.
 *
 * @module
 */
import type { EncodedParam } from "./deno_postgres_client.ts";
import { ArrayParam } from "./array_params.ts";
import { postgresParam } from "./values.ts";

const identifierChar = /[\p{L}\p{N}_$]/u;
const placeholder = /\$(\d+)/y;
const dollarTag = /\$([A-Za-z_\u0080-\uffff][\w\u0080-\uffff]*)?\$/y;

/**
 * The SQL text with the listed placeholders cast (`$2` becomes `($2::bool)`),
 * skipping string literals, quoted identifiers, comments and dollar-quoted
 * bodies. deno-postgres sends every parameter untyped; postgres.js gives
 * booleans, bigints and bytes their type, and so does this.
 */
function castPlaceholders(text: string, casts: ReadonlyMap<number, string>): string {
  let out = "";
  let copied = 0;
  let i = 0;
  while (i < text.length) {
    const char = text[i];
    if (char === "'") {
      const escapes = /[eE]/.test(text[i - 1] ?? "") && !identifierChar.test(text[i - 2] ?? "");
      for (i++; i < text.length; i++) {
        if (escapes && text[i] === "\\") i++;
        else if (text[i] === "'") {
          if (text[i + 1] !== "'") break;
          i++;
        }
      }
      i++;
    } else if (char === '"') {
      const end = text.indexOf('"', i + 1);
      i = end < 0 ? text.length : end + 1;
    } else if (char === "-" && text[i + 1] === "-") {
      const end = text.indexOf("\n", i);
      i = end < 0 ? text.length : end + 1;
    } else if (char === "/" && text[i + 1] === "*") {
      let depth = 1;
      for (i += 2; i < text.length && depth > 0; i++) {
        if (text[i] === "/" && text[i + 1] === "*") {
          depth++;
          i++;
        } else if (text[i] === "*" && text[i + 1] === "/") {
          depth--;
          i++;
        }
      }
    } else if (char === "$" && !identifierChar.test(text[i - 1] ?? "")) {
      placeholder.lastIndex = i;
      dollarTag.lastIndex = i;
      const number = placeholder.exec(text);
      const tag = number === null ? dollarTag.exec(text) : null;
      if (number !== null) {
        const type = casts.get(Number(number[1]));
        if (type !== undefined) {
          out += `${text.slice(copied, i)}(${number[0]}::${type})`;
          copied = i + number[0].length;
        }
        i += number[0].length;
      } else if (tag !== null) {
        const end = text.indexOf(tag[0], i + tag[0].length);
        i = end < 0 ? text.length : end + tag[0].length;
      } else {
        i++;
      }
    } else {
      i++;
    }
  }
  return out + text.slice(copied);
}

/**
 * The statement and its parameters as deno-postgres sends them (see
 * `postgresParam` for the rules): booleans, bigints and bytes get their
 * type by a cast, Dates and strings go as text for the server to type, and
 * arrays become JSON or Postgres arrays depending on the type the server
 * gives their place (`parameterTypes` asks it).
 */
export async function bindParams(
  text: string,
  params: readonly unknown[],
  parameterTypes: (text: string) => Promise<readonly string[] | undefined>,
): Promise<[string, EncodedParam[]]> {
  const casts = new Map<number, string>();
  let arrays = false;
  const values = params.map((param, index): EncodedParam | ArrayParam => {
    const value = postgresParam(param, index, (array) => new ArrayParam(array, index));
    switch (typeof value) {
      case "string":
        return value;
      case "number":
        return Object.is(value, -0) ? "0" : String(value);
      case "boolean":
        casts.set(index + 1, "bool");
        return value ? "t" : "f";
      case "bigint":
        casts.set(index + 1, "int8");
        return value.toString();
      default:
        if (value instanceof Uint8Array) {
          casts.set(index + 1, "bytea");
          return value;
        }
        if (value instanceof ArrayParam) {
          arrays = true;
          return value;
        }
        return value === null ? null : String(value);
    }
  });
  const typed = casts.size === 0 ? text : castPlaceholders(text, casts);
  const types = arrays ? await parameterTypes(typed) : undefined;
  return [typed, values.map((value, i) => value instanceof ArrayParam ? value.encode(types?.[i]) : value)];
}
