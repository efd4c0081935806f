/**
 * The query shapes every query method accepts, and their normalisation to
 * the dialect's SQL text and parameters.
 *
 * @module
 */
import type { Dialect, DialectName } from "./dialect.ts";
import { QueryError } from "./errors.ts";
import { placeholderCount } from "./placeholders.ts";
import { type CompiledQuery, compileSql, Sql } from "./sql.ts";

/** A compiled query from Kysely (`query.compile()`). */
export interface KyselyCompiledQuery {
  /** SQL text in the dialect's placeholders. */
  readonly sql: string;
  /** Its parameters. */
  readonly parameters: readonly unknown[];
}

/** A compiled query from Drizzle (`query.toSQL()`). */
export interface DrizzleQuery {
  /** SQL text in the dialect's placeholders. */
  readonly sql: string;
  /** Its parameters. */
  readonly params: readonly unknown[];
}

/**
 * What query methods accept: an {@linkcode Sql} value from the `sql` tag, a
 * string in the dialect's own placeholder syntax (with a parameters array),
 * a Kysely compiled query or a Drizzle `toSQL()` result.
 */
export type Query = Sql | string | KyselyCompiledQuery | DrizzleQuery;

const noParams: readonly unknown[] = Object.freeze([]);

function invalid(message: string): QueryError {
  return new QueryError(message, { code: "ROOST_INVALID_QUERY" });
}

/**
 * The most parameters one statement can bind: the protocols count them in
 * 16 bits (the postgres.js driver stops at 65 533). SQLite reports its own
 * limit, which each build sets.
 */
const maxParams: Record<DialectName, number> = { postgres: 65_535, mysql: 65_535, sqlite: Infinity };

/** The error of a query with more parameters than `max`, the most `where` takes. */
export function tooManyParameters(query: CompiledQuery, max: number, where: string): QueryError {
  return new QueryError(
    `the query has ${query.params.length} parameters, but ${where} takes at most ${max}: ` +
      "split it, or pass a list as one array parameter",
    { code: "ROOST_TOO_MANY_PARAMETERS", sql: query.text },
  );
}

/** Throws when a query has more parameters than one statement of its dialect can bind. */
function checkSize(query: CompiledQuery, dialect: DialectName): CompiledQuery {
  if (query.params.length > maxParams[dialect]) {
    throw tooManyParameters(query, maxParams[dialect], `a ${dialect} statement`);
  }
  return query;
}

/** The error of a statement with `expected` parameters given `given` values (in its `set`-th set, for executeMany). */
export function parameterCountError(text: string, expected: number, given: number, set?: number): QueryError {
  const values = `${given} value${given === 1 ? " was" : "s were"} given${set === undefined ? "" : ` in set ${set}`}`;
  return new QueryError(
    `the query has ${expected} parameter placeholder${expected === 1 ? "" : "s"}, but ${values}`,
    { code: "ROOST_PARAMETER_COUNT", sql: text },
  );
}

/** Normalises a query and its optional parameters for one dialect. */
export function compileQuery(query: Query, params: readonly unknown[] | undefined, dialect: Dialect): CompiledQuery {
  if (query instanceof Sql) {
    if (params !== undefined) throw invalid("an sql`…` query carries its values: pass no parameters array");
    return checkSize(compileSql(query, dialect), dialect.name);
  }
  if (typeof query === "string") {
    if (params !== undefined && !Array.isArray(params)) throw invalid("parameters must be an array");
    const compiled = { text: query, params: params ?? noParams };
    const expected = placeholderCount(query, dialect.name);
    if (expected !== compiled.params.length) throw parameterCountError(query, expected, compiled.params.length);
    return checkSize(compiled, dialect.name);
  }
  if (typeof query === "object" && query !== null && typeof query.sql === "string") {
    if (params !== undefined) throw invalid("a compiled query carries its parameters: pass no parameters array");
    const carried = "parameters" in query ? query.parameters : (query as DrizzleQuery).params;
    if (!Array.isArray(carried)) {
      throw invalid("a compiled query needs a parameters (Kysely) or params (Drizzle) array");
    }
    return checkSize({ text: query.sql, params: carried }, dialect.name);
  }
  throw invalid("a query is an sql`…` value, a string, a Kysely compiled query or a Drizzle toSQL() result");
}
