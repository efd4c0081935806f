/**
 * The query shapes every query method accepts, and their normalisation to
 * the dialect's SQL text and parameters.
 *
 * @module
 */
import type { Dialect } from "./dialect.ts";
import { QueryError } from "./errors.ts";
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

/** Normalises a query and its optional parameters for one dialect. */
export function compileQuery(query: Query, params: readonly unknown[] | undefined, dialect: Dialect): CompiledQuery {
  if (query instanceof Sql) {
    if (params !== undefined) throw invalid("an sql`…` query carries its values: pass no parameters array");
    return compileSql(query, dialect);
  }
  if (typeof query === "string") {
    if (params !== undefined && !Array.isArray(params)) throw invalid("parameters must be an array");
    return { text: query, params: params ?? noParams };
  }
  if (typeof query === "object" && query !== null && typeof query.sql === "string") {
    if (params !== undefined) throw invalid("a compiled query carries its parameters: pass no parameters array");
    const carried = "parameters" in query ? query.parameters : (query as DrizzleQuery).params;
    if (!Array.isArray(carried)) {
      throw invalid("a compiled query needs a parameters (Kysely) or params (Drizzle) array");
    }
    return { text: query.sql, params: carried };
  }
  throw invalid("a query is an sql`…` value, a string, a Kysely compiled query or a Drizzle toSQL() result");
}
