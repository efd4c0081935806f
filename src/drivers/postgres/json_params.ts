/**
 * Roost's rule for json/jsonb parameters on Bun.SQL: a string bound to a
 * json/jsonb parameter is JSON text the server parses, anything else is its
 * JSON. Bun.SQL (1.4, oven-sh/bun#28819) encodes every value it binds to such
 * a parameter with `JSON.stringify`, strings included, and types numbers,
 * booleans and bigints itself (so the server refuses them there). So, per
 * connection and once per statement text, the server is asked which
 * parameters are json/jsonb, and those are sent as text the server casts:
 * `$1` becomes `($1::text::jsonb)`, and the value its JSON text.
 *
 * The question is a `DO` block that prepares the text, reads its parameter
 * types from `pg_prepared_statements` and deallocates it, catching any error
 * in a subtransaction of its own: it never fails, never aborts the caller's
 * transaction and never leaves a prepared statement behind. A text the
 * server cannot prepare without Bun.SQL's types is sent as it is and fails,
 * or runs, on its own.
 *
 * @module
 */
import { skipQuoted } from "../../placeholders.ts";

/** The types a json parameter is cast to from text, by type OID. */
const jsonTypes: Record<number, string> = { 114: "json", 3802: "jsonb" };

/**
 * How a statement text is sent when a parameter needs Roost's JSON rule:
 * its text with those placeholders cast from text, and their indexes.
 */
interface JsonPlan {
  text: string;
  json: readonly number[];
}

/** The statements a connection remembers, at most (then it forgets them all and asks again). */
export const maxPlans = 500;

/** Sends one simple-protocol query and returns its results, one per statement. */
export type SimpleQuery = (text: string) => Promise<unknown>;

/**
 * True for a value Bun.SQL would bind to a json/jsonb parameter otherwise
 * than Roost does: anything but null, plain objects and arrays (which both
 * make JSON text of).
 */
function differs(value: unknown): boolean {
  return typeof value !== "object" || value instanceof Uint8Array;
}

/** A json parameter's value as JSON text: a string as it is (JSON text already), anything else serialised. */
function jsonText(value: unknown): unknown {
  if (value === null || typeof value === "string") return value;
  return typeof value === "bigint" ? value.toString() : JSON.stringify(value);
}

/** Statements PREPARE takes (after comments, spaces and opening parentheses). */
const preparable = /^(?:select|insert|update|delete|with|values|table|merge)\b/i;

/** A DECLARE's head up to its query (which is what gets prepared). */
const declareHead =
  /^declare\s+(?:"(?:[^"]|"")*"|[A-Za-z_][\w$]*)\s+(?:(?:binary|insensitive|asensitive|no\s+scroll|scroll)\s+)*cursor\s+(?:with(?:out)?\s+hold\s+)?for\s+/i;

/**
 * The statement to ask the server about for `text`: the text itself when
 * PREPARE takes it, a DECLARE's query, or undefined (nothing to ask: a
 * utility statement, a DO, a CALL).
 */
export function probeTarget(text: string): string | undefined {
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === "(" || c === " " || c === "\t" || c === "\n" || c === "\r") i++;
    else if ((c === "-" && text[i + 1] === "-") || (c === "/" && text[i + 1] === "*")) {
      i = skipQuoted(text, i, "postgres");
    } else break;
  }
  const rest = text.slice(i);
  if (preparable.test(rest)) return text;
  const head = declareHead.exec(rest);
  return head === null ? undefined : probeTarget(rest.slice(head[0].length));
}

/** A dollar-quote tag that does not occur in `text`. */
function freeTag(text: string, base: string): string {
  let tag = `$${base}$`;
  for (let n = 1; text.includes(tag); n++) tag = `$${base}${n}$`;
  return tag;
}

let probeCount = 0;

/**
 * The simple-protocol query that learns the parameter types of `target`: a
 * DO block that prepares it under a unique name, keeps the types as a
 * transaction-local setting, deallocates it, and on any error keeps an
 * empty answer instead (its subtransaction rolls back; the caller's
 * transaction goes on); then a SELECT of the setting.
 */
export function probeStatement(target: string): string {
  const name = `roost_probe_${++probeCount}`;
  const quote = freeTag(target, "roost_q");
  const body = freeTag(target + quote, "roost_do");
  return `DO ${body}DECLARE types text; BEGIN ` +
    `EXECUTE 'PREPARE ${name} AS ' || ${quote}${target}${quote}; ` +
    `SELECT parameter_types::oid[]::text INTO types FROM pg_catalog.pg_prepared_statements WHERE name = '${name}'; ` +
    `EXECUTE 'DEALLOCATE ${name}'; ` +
    `PERFORM pg_catalog.set_config('roost.probe', types, true); ` +
    `EXCEPTION WHEN OTHERS THEN PERFORM pg_catalog.set_config('roost.probe', '', true); ` +
    `END${body}; SELECT pg_catalog.current_setting('roost.probe') AS types`;
}

/** The type OIDs in a probe's answer (`{3802,23}`); undefined when the server could not prepare the text. */
function oidsOf(results: unknown): number[] | undefined {
  const answer = Array.isArray(results) ? results[1]?.[0]?.types : undefined;
  if (typeof answer !== "string" || !/^\{[\d,]*\}$/.test(answer)) return undefined;
  return answer.slice(1, -1).split(",").filter((oid) => oid !== "").map(Number);
}

/**
 * The SQLSTATEs a statement gets when a column's type changed under its
 * prepared form: datatype mismatch (an assignment), undefined function (an
 * operator), cannot coerce, ambiguous function.
 */
const staleCodes = new Set(["42804", "42883", "42846", "42725"]);

/**
 * `text` with each placeholder `$n` of a json/jsonb parameter (`types` by
 * number) cast from text, `($n::text::jsonb)`; placeholders inside strings,
 * quoted identifiers, comments and dollar-quoted bodies are left alone.
 */
export function castJsonPlaceholders(text: string, types: ReadonlyMap<number, string>): string {
  let out = "";
  let last = 0;
  for (let i = 0; i < text.length;) {
    const skipped = skipQuoted(text, i, "postgres");
    if (skipped !== i) {
      i = skipped;
      continue;
    }
    const digits = text[i] === "$" && !/[A-Za-z0-9_$]/.test(text[i - 1] ?? "")
      ? /^\d+/.exec(text.slice(i + 1, i + 8))?.[0]
      : undefined;
    if (digits === undefined) {
      i++;
      continue;
    }
    const type = types.get(Number(digits));
    if (type !== undefined) {
      out += `${text.slice(last, i)}($${digits}::text::${type})`;
      last = i + 1 + digits.length;
    }
    i += 1 + digits.length;
  }
  return out + text.slice(last);
}

/** How a text whose parameter types are `oids` is sent; null when none is json/jsonb. */
function planOf(text: string, oids: readonly number[]): JsonPlan | null {
  const types = new Map<number, string>();
  oids.forEach((oid, index) => {
    if (jsonTypes[oid] !== undefined) types.set(index + 1, jsonTypes[oid]);
  });
  if (types.size === 0) return null;
  return { text: castJsonPlaceholders(text, types), json: [...types.keys()].map((number) => number - 1) };
}

/**
 * One connection's knowledge of which statement texts have json/jsonb
 * parameters, and the means to send their values by Roost's rule.
 */
export class JsonParams {
  /**
   * Plans by statement text: null for a text with no json parameter (or
   * one never asked about), false for one the server could not prepare on
   * its own (sent as it is; asked again after it fails).
   */
  readonly #plans = new Map<string, JsonPlan | null | false>();

  /** How many texts are remembered (for tests of the bound). */
  get size(): number {
    return this.#plans.size;
  }

  /**
   * The text to send for `text` with `values` (turned into JSON text in
   * place where a parameter is json), or undefined when the server must be
   * asked first ({@linkcode learn}). A statement whose values Bun.SQL binds
   * right whatever their types costs nothing; one known costs a Map lookup.
   */
  ready(text: string, values: unknown[]): string | undefined {
    let i = 0;
    while (i < values.length && !differs(values[i])) i++;
    if (i === values.length) return text;
    const plan = this.#plans.get(text);
    if (plan === undefined) {
      if (probeTarget(text) !== undefined) return undefined;
      this.#remember(text, null);
      return text;
    }
    if (!plan) return text;
    for (const index of plan.json) values[index] = jsonText(values[index]);
    return plan.text;
  }

  /**
   * Asks the server through `simple` (on the statement's own connection, so
   * its session's tables and search path count) for the types of `text`'s
   * parameters and remembers its plan. Rejects only when the query could not
   * run at all; then nothing is remembered.
   */
  async learn(text: string, simple: SimpleQuery): Promise<void> {
    const target = probeTarget(text);
    const oids = target === undefined ? [] : oidsOf(await simple(probeStatement(target)));
    this.#remember(text, oids === undefined ? false : planOf(text, oids));
  }

  /**
   * Takes note that `text` failed with `error`: what the server could not
   * tell about it is forgotten (it may be told now: a table created since),
   * and so is what it told when the error says a column's type changed.
   * True in that last case: the statement may now have to be sent otherwise.
   */
  failed(text: string, error: Error): boolean {
    const code = (error as { code?: unknown }).code;
    const stale = typeof code === "string" && staleCodes.has(code);
    if (stale || this.#plans.get(text) === false) this.#plans.delete(text);
    return stale;
  }

  #remember(text: string, plan: JsonPlan | null | false): void {
    if (this.#plans.size >= maxPlans) this.#plans.clear();
    this.#plans.set(text, plan);
  }
}
