/**
 * Pagination of any query: numbered pages ({@linkcode Page}) with their
 * totals, and keyset pages ({@linkcode KeysetPage}) that continue after a
 * cursor, for tables too large to count or to skip through.
 *
 * @module
 */
import type { Dialect } from "./dialect.ts";
import type { Row } from "./driver.ts";
import { ConfigError } from "./errors.ts";
import type { CompiledQuery } from "./sql.ts";

/** Options of a numbered page: `db.paginate(query, { page, pageSize })`. */
export interface PageOptions {
  /** The page wanted, from 1. Default 1. */
  page?: number;
  /** Rows per page, at least 1. */
  pageSize: number;
  /** The parameters of a query written as a string in the dialect's placeholders. */
  params?: readonly unknown[];
}

/** Options of a keyset page: `db.paginate(query, { pageSize, orderBy, after })`. */
export interface KeysetOptions {
  /** Rows per page, at least 1. */
  pageSize: number;
  /**
   * The result columns that order the rows and, together, tell every row
   * apart (end with a unique column such as the primary key).
   */
  orderBy: string | readonly string[];
  /** Continue after this cursor, a previous page's `nextCursor`. First page when omitted or `null`. */
  after?: string | null;
  /** Newest first: order by the columns descending. Default false. */
  descending?: boolean;
  /** The parameters of a query written as a string in the dialect's placeholders. */
  params?: readonly unknown[];
}

/**
 * One numbered page of a query's rows and where it sits among the others;
 * iterable over its items.
 *
 * An empty result has one empty page 1: `totalRows` and `totalPages` are 0 and
 * every `has*` is false. A page past the end has no items, keeps its number,
 * and its `previousPage` is the last page that has rows.
 */
export class Page<T = Row> implements Iterable<T> {
  /** The rows on this page. */
  readonly items: T[];
  /** This page's number, from 1. */
  readonly page: number;
  /** Rows per page. */
  readonly pageSize: number;
  /** Rows in the whole result. */
  readonly totalRows: number;
  /** Pages in the whole result (0 when it is empty). */
  readonly totalPages: number;
  /** Whether a later page has rows. */
  readonly hasNext: boolean;
  /** Whether an earlier page has rows. */
  readonly hasPrevious: boolean;
  /** Whether any other page has rows. */
  readonly hasOther: boolean;
  /** The next page's number, or `null` on the last page. */
  readonly nextPage: number | null;
  /** The previous page's number, or `null` on the first page. */
  readonly previousPage: number | null;
  /** The position of this page's first row in the whole result, from 1; 0 when the page is empty. */
  readonly startIndex: number;
  /** The position of this page's last row in the whole result; 0 when the page is empty. */
  readonly endIndex: number;

  /** Builds a page from its rows and the result's total. */
  constructor(items: T[], page: number, pageSize: number, totalRows: number) {
    this.items = items;
    this.page = page;
    this.pageSize = pageSize;
    this.totalRows = totalRows;
    this.totalPages = Math.ceil(totalRows / pageSize);
    this.hasNext = page < this.totalPages;
    this.hasPrevious = page > 1 && this.totalPages > 0;
    this.hasOther = this.hasNext || this.hasPrevious;
    this.nextPage = this.hasNext ? page + 1 : null;
    this.previousPage = this.hasPrevious ? Math.min(page - 1, this.totalPages) : null;
    this.startIndex = items.length > 0 ? (page - 1) * pageSize + 1 : 0;
    this.endIndex = items.length > 0 ? this.startIndex + items.length - 1 : 0;
  }

  /** Iterates over the page's rows. */
  [Symbol.iterator](): Iterator<T> {
    return this.items[Symbol.iterator]();
  }
}

/**
 * One keyset page: the rows after a cursor in the order of `orderBy`, and
 * the cursor that continues after them. Needs no count and no skipping, so
 * every page costs the same however deep it is.
 */
export class KeysetPage<T = Row> implements Iterable<T> {
  /** The rows on this page. */
  readonly items: T[];
  /** Rows per page. */
  readonly pageSize: number;
  /** Whether rows follow this page. */
  readonly hasNext: boolean;
  /** Pass as `after` for the next page; `null` on the last page. */
  readonly nextCursor: string | null;

  /** Builds a page from its rows and the cursor after them. */
  constructor(items: T[], pageSize: number, nextCursor: string | null) {
    this.items = items;
    this.pageSize = pageSize;
    this.hasNext = nextCursor !== null;
    this.nextCursor = nextCursor;
  }

  /** Iterates over the page's rows. */
  [Symbol.iterator](): Iterator<T> {
    return this.items[Symbol.iterator]();
  }
}

/** What pagination needs from a query handle: rows for a compiled query. */
export type RowReader = (query: CompiledQuery) => Promise<Row[]>;

const pageKeys = new Set(["page", "pageSize", "params"]);
const keysetKeys = new Set(["pageSize", "orderBy", "after", "descending", "params"]);

function checkCount(name: string, value: unknown): number {
  if (!Number.isSafeInteger(value) || (value as number) < 1) {
    throw new ConfigError(`${name} must be a whole number of at least 1`);
  }
  return value as number;
}

/** Checks pagination options; true for keyset options (they name `orderBy`). */
export function isKeyset(options: PageOptions | KeysetOptions): options is KeysetOptions {
  if (typeof options !== "object" || options === null) throw new ConfigError("paginate needs an options object");
  const keyset = "orderBy" in options;
  for (const key of Object.keys(options)) {
    if (!(keyset ? keysetKeys : pageKeys).has(key)) throw new ConfigError(`unknown pagination option "${key}"`);
  }
  checkCount("pageSize", options.pageSize);
  if (!keyset) checkCount("page", options.page ?? 1);
  return keyset;
}

/** The query without trailing semicolons or blanks, so it can be wrapped or extended. */
function inner(text: string): string {
  return text.replace(/[\s;]+$/, "");
}

/** `text` with two more parameters: the dialect's placeholders for them. */
function twoMore(query: CompiledQuery, rules: Dialect): [string, string] {
  const n = query.params.length;
  return [rules.placeholder(n + 1), rules.placeholder(n + 2)];
}

const totalColumn = "__roost_total";

/**
 * Reads one numbered page. Postgres and SQLite wrap the query and count with
 * a window function, one round trip; MySQL and MariaDB keep the query's own
 * order only outside a derived table, so there the page is the query with a
 * LIMIT and the count is a second query, skipped when the page shows the end.
 */
export async function readPage<T>(
  read: RowReader,
  query: CompiledQuery,
  options: PageOptions,
  rules: Dialect,
): Promise<Page<T>> {
  const page = options.page ?? 1;
  const size = options.pageSize;
  const offset = (page - 1) * size;
  const text = inner(query.text);
  const [limit, skip] = twoMore(query, rules);
  const params = [...query.params, size, offset];
  let rows: Row[];
  let total: number | undefined;
  if (rules.name === "mysql") {
    rows = await read({ text: `${text}\nlimit ${limit} offset ${skip}`, params });
  } else {
    const alias = rules.quoteIdent("__roost_page");
    rows = await read({
      text: `select *, count(*) over () as ${totalColumn} from (\n${text}\n) as ${alias} limit ${limit} offset ${skip}`,
      params,
    });
    if (rows.length > 0) total = Number(rows[0][totalColumn]);
    for (const row of rows) delete row[totalColumn];
  }
  if (total === undefined && (rows.length > 0 || offset === 0) && rows.length < size) total = offset + rows.length;
  if (total === undefined) {
    const counted = await read({
      text: `select count(*) as n from (\n${text}\n) as ${rules.quoteIdent("__roost_page")}`,
      params: query.params,
    });
    total = Number(counted[0]?.n ?? 0);
  }
  return new Page(rows as T[], page, size, total);
}

/** A cursor: the keyset values of a page's last row, as base64url JSON (bigints as `{"n":"…"}`). */
function encodeCursor(values: unknown[]): string {
  const json = JSON.stringify(values, (_key, value) => typeof value === "bigint" ? { n: String(value) } : value);
  const bytes = new TextEncoder().encode(json);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function decodeCursor(cursor: string, length: number): unknown[] {
  try {
    const binary = atob(cursor.replaceAll("-", "+").replaceAll("_", "/"));
    const json = new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0)));
    const values = JSON.parse(json, (_key, value) => typeof value?.n === "string" ? BigInt(value.n) : value);
    if (Array.isArray(values) && values.length === length) return values;
  } catch { /* reported below */ }
  throw new ConfigError("after is not a cursor from a page of this query (pass a page's nextCursor)");
}

/**
 * Reads one keyset page: the wrapped query, filtered to the rows after the
 * cursor and ordered by the keyset columns, one round trip. One row more
 * than a page is read to know whether another page follows.
 */
export async function readKeysetPage<T>(
  read: RowReader,
  query: CompiledQuery,
  options: KeysetOptions,
  rules: Dialect,
): Promise<KeysetPage<T>> {
  const columns = typeof options.orderBy === "string" ? [options.orderBy] : [...options.orderBy];
  if (columns.length === 0 || columns.some((column) => typeof column !== "string" || column === "")) {
    throw new ConfigError("orderBy must name one or more result columns");
  }
  if (options.descending !== undefined && typeof options.descending !== "boolean") {
    throw new ConfigError("descending must be a boolean");
  }
  if (options.after != null && typeof options.after !== "string") {
    throw new ConfigError("after must be a cursor string");
  }
  // Qualified, so SQLite can never read an unknown name as a string literal.
  const alias = rules.quoteIdent("__roost_page");
  const quoted = columns.map((column) => `${alias}.${rules.quoteIdent(column)}`);
  const params = [...query.params];
  const next = () => rules.placeholder(params.length);
  let where = "";
  if (options.after != null) {
    const values = decodeCursor(options.after, columns.length);
    const marks = values.map((value) => (params.push(value), next()));
    const [keys, after] = columns.length === 1 ? [quoted[0], marks[0]] : [`(${quoted})`, `(${marks})`];
    where = ` where ${keys} ${options.descending ? "<" : ">"} ${after}`;
  }
  params.push(options.pageSize + 1);
  const order = quoted.map((column) => options.descending ? `${column} desc` : column).join(", ");
  const rows = await read({
    text: `select * from (\n${inner(query.text)}\n) as ${alias}${where} order by ${order} limit ${next()}`,
    params,
  });
  for (const column of columns) {
    if (rows.length > 0 && !(column in rows[0])) {
      throw new ConfigError(`orderBy names "${column}", which the query does not return`);
    }
  }
  const more = rows.length > options.pageSize;
  if (more) rows.length = options.pageSize;
  let cursor: string | null = null;
  if (more) {
    const last = rows[rows.length - 1];
    cursor = encodeCursor(columns.map((column) => {
      const value = last[column];
      return value instanceof Date ? value.toISOString() : value;
    }));
  }
  return new KeysetPage(rows as T[], options.pageSize, cursor);
}
