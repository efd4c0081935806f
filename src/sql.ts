/**
 * The `sql` tagged template: SQL text with bound parameters that compiles to
 * each dialect's placeholders.
 *
 * @module
 */
import type { Dialect, DialectName } from "./dialect.ts";
import { dialectOf } from "./dialect.ts";
import { QueryError } from "./errors.ts";

/** A quoted identifier inside an {@linkcode Sql} value (see `sql.ident`). */
class Identifier {
  readonly names: readonly string[];
  constructor(names: readonly string[]) {
    this.names = names;
  }
}

/**
 * A dialect-neutral SQL fragment: text pieces with the values between them.
 * Values become bound parameters; nested `Sql` values are inlined. Build it
 * with the {@linkcode sql} tag, never by hand.
 */
export class Sql {
  /** The text pieces; always one more than `values`. */
  readonly strings: readonly string[];
  /** The values between the pieces: parameters, nested fragments or identifiers. */
  readonly values: readonly unknown[];
  /** True when no value is a nested fragment, so the text depends only on `strings`. */
  readonly flat: boolean;

  /** Creates a fragment; prefer the {@linkcode sql} tag. */
  constructor(strings: readonly string[], values: readonly unknown[]) {
    if (strings.length !== values.length + 1) {
      throw new QueryError("an Sql value needs one more text piece than values", { code: "ROOST_INVALID_QUERY" });
    }
    this.strings = strings;
    this.values = values;
    let flat = true;
    for (const value of values) {
      // Primitives first: on Bun an `instanceof` of a number or string cost about 100 instructions a value.
      if (typeof value === "object" && value !== null && (value instanceof Sql || value instanceof Identifier)) {
        flat = false;
        break;
      }
    }
    this.flat = flat;
  }
}

/** SQL text in a dialect's own placeholder syntax, with its parameters. */
export interface CompiledQuery {
  /** The SQL text with `$1`… (Postgres) or `?` (MySQL, SQLite) placeholders. */
  readonly text: string;
  /** The parameter values, in placeholder order. */
  readonly params: readonly unknown[];
}

/** The `sql` tag and its helpers. */
export interface SqlTag {
  /**
   * Builds a query: every `${value}` becomes a bound parameter, never text.
   *
   * @example
   * ```ts
   * import { sql } from "@roost/db";
   * const name = "Ada'; drop table users; --";
   * const query = sql`select * from users where name = ${name}`;
   * ```
   */
  (strings: TemplateStringsArray, ...values: unknown[]): Sql;
  /**
   * A quoted identifier; several names make a qualified one (`"schema"."table"`).
   * Embedded quote characters are doubled, so any string is safe here.
   *
   * @example
   * ```ts
   * import { sql } from "@roost/db";
   * const query = sql`select * from ${sql.ident("public", "users")}`;
   * ```
   */
  ident(...names: string[]): Sql;
  /**
   * Joins values or fragments with a separator (default `, `).
   *
   * @example
   * ```ts
   * import { sql } from "@roost/db";
   * const ids = [1, 2, 3];
   * const query = sql`select * from users where id in (${sql.join(ids)})`;
   * ```
   */
  join(parts: readonly unknown[], separator?: Sql | string): Sql;
  /**
   * Trusted SQL text inserted as it is. Never pass user input here.
   *
   * @example
   * ```ts
   * import { sql } from "@roost/db";
   * const order = sql.unsafe("desc");
   * const query = sql`select * from users order by id ${order}`;
   * ```
   */
  unsafe(text: string): Sql;
}

function tag(strings: TemplateStringsArray, ...values: unknown[]): Sql {
  return new Sql(strings, values);
}

function ident(...names: string[]): Sql {
  if (names.length === 0) throw new QueryError("sql.ident needs at least one name", { code: "ROOST_INVALID_QUERY" });
  for (const name of names) {
    // No database accepts NUL in a name; a driver would cut the name (and the statement) short there.
    if (typeof name !== "string" || name === "" || name.includes("\0")) {
      throw new QueryError("sql.ident takes non-empty strings without NUL characters", { code: "ROOST_INVALID_QUERY" });
    }
  }
  return new Sql(["", ""], [new Identifier(names)]);
}

function join(parts: readonly unknown[], separator: Sql | string = ", "): Sql {
  if (parts.length === 0) return new Sql([""], []);
  const sep = typeof separator === "string" ? unsafe(separator) : separator;
  const strings = [""];
  const values: unknown[] = [];
  parts.forEach((part, index) => {
    if (index > 0) {
      values.push(sep);
      strings.push("");
    }
    values.push(part);
    strings.push("");
  });
  return new Sql(strings, values);
}

function unsafe(text: string): Sql {
  if (typeof text !== "string") throw new QueryError("sql.unsafe takes a string", { code: "ROOST_INVALID_QUERY" });
  return new Sql([text], []);
}

/** Builds queries with bound parameters; see {@linkcode SqlTag}. */
export const sql: SqlTag = Object.assign(tag, { ident, join, unsafe });

function appendTo(query: Sql, dialect: Dialect, params: unknown[]): string {
  let text = query.strings[0];
  for (let i = 0; i < query.values.length; i++) {
    const value = query.values[i];
    if (value instanceof Sql) {
      text += appendTo(value, dialect, params);
    } else if (value instanceof Identifier) {
      text += value.names.map(dialect.quoteIdent).join(".");
    } else {
      params.push(value);
      text += dialect.placeholder(params.length);
    }
    text += query.strings[i + 1];
  }
  return text;
}

function flatText(query: Sql, dialect: Dialect): string {
  let text = dialect.textCache.get(query.strings);
  if (text === undefined) {
    text = query.strings[0];
    for (let i = 1; i < query.strings.length; i++) text += dialect.placeholder(i) + query.strings[i];
    dialect.textCache.set(query.strings, text);
  }
  return text;
}

/** Compiles an {@linkcode Sql} value for one dialect (text cached per template). */
export function compileSql(query: Sql, dialect: Dialect): CompiledQuery {
  if (query.flat) return { text: flatText(query, dialect), params: query.values };
  const params: unknown[] = [];
  return { text: appendTo(query, dialect, params), params };
}

/**
 * Compiles an {@linkcode Sql} value to a dialect's SQL text and parameters,
 * for logging, debugging or handing to another client.
 *
 * @example
 * ```ts
 * import { compile, sql } from "@roost/db";
 * compile(sql`select * from t where a = ${1} and b = ${2}`, "postgres");
 * // { text: "select * from t where a = $1 and b = $2", params: [1, 2] }
 * ```
 */
export function compile(query: Sql, dialect: DialectName): CompiledQuery {
  return compileSql(query, dialectOf(dialect));
}
