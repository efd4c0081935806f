/**
 * The queries behind a table's helpers: reads by key or by a `where` object,
 * inserts, updates, deletes, and the race-safe get-or-create and
 * update-or-create. Every value is a bound parameter and every identifier is
 * quoted.
 *
 * @module
 */
import type { Row } from "../driver.ts";
import { ConfigError, NoResultError, QueryError, TooManyResultsError } from "../errors.ts";
import { KeysetPage, Page } from "../page.ts";
import type { Queryable } from "../queryable.ts";
import { type Sql, sql } from "../sql.ts";
import { encode, rowDecoder } from "./codec.ts";
import type { Column } from "./column.ts";

/** What the helpers need of a table: its name, columns and primary key. */
export interface CrudTable {
  /** The table's name. */
  readonly name: string;
  /** The columns by name. */
  readonly columns: Readonly<Record<string, Column<unknown, boolean, boolean>>>;
  /** The primary key's columns. */
  readonly primaryKey: readonly string[];
}

/** Options of `findAll`. */
export interface FindOptions {
  /** Order by these columns (ascending unless `descending`). */
  orderBy?: string | readonly string[];
  /** Order descending. Default false. */
  descending?: boolean;
  /** At most this many rows. */
  limit?: number;
}

/** Row decoders per table and dialect, built once. */
const decoders = new WeakMap<CrudTable, Map<string, (row: Row) => Row>>();

function decode<T>(table: CrudTable, db: Queryable, rows: Row[]): T[] {
  let byDialect = decoders.get(table);
  if (byDialect === undefined) decoders.set(table, byDialect = new Map());
  let decoder = byDialect.get(db.dialect);
  if (decoder === undefined) byDialect.set(db.dialect, decoder = rowDecoder(table.columns, db.dialect));
  return rows.map(decoder) as T[];
}

function columnOf(table: CrudTable, name: string): Column<unknown, boolean, boolean> {
  if (!Object.hasOwn(table.columns, name)) throw new ConfigError(`table "${table.name}" has no column "${name}"`);
  return table.columns[name];
}

/** The defined entries of a values object, each checked to name a column. */
function entries(table: CrudTable, values: object, what: string): [string, unknown][] {
  if (typeof values !== "object" || values === null || Array.isArray(values)) {
    throw new ConfigError(`${what} must be an object of column values`);
  }
  const list: [string, unknown][] = [];
  for (const [name, value] of Object.entries(values)) {
    columnOf(table, name);
    if (value !== undefined) list.push([name, value]);
  }
  return list;
}

/** `"a" = $1 and "b" is null`; an empty object matches every row. */
function whereSql(table: CrudTable, db: Queryable, where: object): Sql {
  if (typeof where !== "object" || where === null || Array.isArray(where)) {
    throw new ConfigError("where must be an object of column values");
  }
  const parts: Sql[] = [];
  for (const [name, value] of Object.entries(where)) {
    columnOf(table, name);
    if (value === undefined) throw new ConfigError(`where.${name} is undefined: pass null to match NULL`);
    parts.push(
      value === null ? sql`${sql.ident(name)} is null` : sql`${sql.ident(name)} = ${param(table, db, name, value)}`,
    );
  }
  return parts.length === 0 ? sql`1 = 1` : sql.join(parts, " and ");
}

function nonEmpty(where: object, action: string): object {
  if (typeof where === "object" && where !== null && Object.keys(where).length === 0) {
    throw new ConfigError(`${action} needs a non-empty where: to ${action} every row, run the statement yourself`);
  }
  return where;
}

/** The where object of a primary key value (one column) or key object (any number). */
function keyWhere(table: CrudTable, key: unknown): Record<string, unknown> {
  const names = table.primaryKey;
  if (names.length === 0) throw new ConfigError(`table "${table.name}" has no primary key`);
  if (typeof key === "object" && key !== null && !(key instanceof Uint8Array) && !(key instanceof Date)) {
    const where: Record<string, unknown> = {};
    for (const name of names) {
      const value = (key as Record<string, unknown>)[name];
      if (value === undefined || value === null) throw new ConfigError(`the key of "${table.name}" needs "${name}"`);
      where[name] = value;
    }
    return where;
  }
  if (names.length > 1) throw new ConfigError(`the key of "${table.name}" has ${names.length} columns: pass an object`);
  if (key === undefined || key === null) throw new ConfigError(`getByPk needs a key value`);
  return { [names[0]]: key };
}

const table$ = (table: CrudTable) => sql.ident(table.name);

/**
 * A column value as a bound parameter. JSON goes as text cast to `jsonb` on
 * Postgres, so every driver parses it (Bun.SQL would store a bound string as
 * a JSON string).
 */
function param(table: CrudTable, db: Queryable, name: string, value: unknown): Sql {
  const column = table.columns[name];
  const encoded = encode(column, value);
  return column.spec.kind === "json" && db.dialect === "postgres" && encoded !== null
    ? sql`${encoded}::text::jsonb`
    : sql`${encoded}`;
}

/** The rows matching `where`. */
export async function findAll<T>(
  db: Queryable,
  table: CrudTable,
  where: object,
  options: FindOptions = {},
): Promise<T[]> {
  let query = sql`select * from ${table$(table)} where ${whereSql(table, db, where)}`;
  if (options.orderBy !== undefined) {
    const names = typeof options.orderBy === "string" ? [options.orderBy] : options.orderBy;
    const direction = sql.unsafe(options.descending ? " desc" : "");
    query = sql`${query} order by ${
      sql.join(names.map((name) => (columnOf(table, name), sql`${sql.ident(name)}${direction}`)))
    }`;
  }
  if (options.limit !== undefined) {
    if (!Number.isSafeInteger(options.limit) || options.limit < 0) {
      throw new ConfigError("limit must be a whole number");
    }
    query = sql`${query} limit ${options.limit}`;
  }
  return decode<T>(table, db, await db.fetchAll(query));
}

/** What `Table.paginate` takes: a numbered page's options, or a keyset page's (they name `after`). */
export interface TablePaging {
  page?: number;
  pageSize: number;
  after?: string | null;
  orderBy?: string | readonly string[];
  descending?: boolean;
}

const numberedKeys = ["page", "pageSize", "orderBy", "descending"];
const keysetKeys = ["pageSize", "after", "orderBy", "descending"];

/**
 * One page of the rows matching `where`, decoded: numbered, or keyset when
 * the options name `after`. Rows order by `orderBy`, then by the primary
 * key's columns not already in it, so the order tells every row apart.
 */
export async function paginate<T>(
  db: Queryable,
  table: CrudTable,
  where: object,
  options: TablePaging,
): Promise<Page<T> | KeysetPage<T>> {
  if (typeof options !== "object" || options === null) throw new ConfigError("paginate needs an options object");
  const keyset = "after" in options;
  for (const key of Object.keys(options)) {
    if (!(keyset ? keysetKeys : numberedKeys).includes(key)) {
      throw new ConfigError(
        `unknown pagination option "${key}" (known: ${(keyset ? keysetKeys : numberedKeys).join(", ")})`,
      );
    }
  }
  const given = options.orderBy === undefined
    ? []
    : typeof options.orderBy === "string"
    ? [options.orderBy]
    : [...options.orderBy];
  for (const name of given) columnOf(table, name);
  const order = [...given, ...table.primaryKey.filter((name) => !given.includes(name))];
  if (order.length === 0) {
    throw new ConfigError(
      `table "${table.name}" has no primary key: paginate it with orderBy over columns that tell rows apart`,
    );
  }
  const rows = sql`select * from ${table$(table)} where ${whereSql(table, db, where)}`;
  if (keyset) {
    const page = await db.paginate(rows, {
      pageSize: options.pageSize,
      orderBy: order,
      after: options.after,
      descending: options.descending === true,
    });
    return new KeysetPage(decode<T>(table, db, page.items), page.pageSize, page.nextCursor);
  }
  const direction = sql.unsafe(options.descending === true ? " desc" : "");
  const ordered = sql`${rows} order by ${sql.join(order.map((name) => sql`${sql.ident(name)}${direction}`))}`;
  const page = await db.paginate(ordered, { page: options.page ?? 1, pageSize: options.pageSize });
  return new Page(decode<T>(table, db, page.items), page.page, page.pageSize, page.totalRows);
}

/** The first row matching `where`, or undefined; `lock` reads the newest committed row (MySQL's repeatable read). */
export async function findOne<T>(db: Queryable, table: CrudTable, where: object, lock = false): Promise<T | undefined> {
  const locking = sql.unsafe(lock && db.dialect === "mysql" ? " lock in share mode" : "");
  const rows = await db.fetchAll(
    sql`select * from ${table$(table)} where ${whereSql(table, db, where)} limit 1${locking}`,
  );
  return decode<T>(table, db, rows)[0];
}

/** The row with this primary key, or undefined. */
export async function getByPk<T>(db: Queryable, table: CrudTable, key: unknown): Promise<T | undefined> {
  return await findOne<T>(db, table, keyWhere(table, key));
}

/** The one row matching `where`: `NoResultError` when none does, `TooManyResultsError` when several do. */
export async function getOne<T>(db: Queryable, table: CrudTable, where: object): Promise<T> {
  const rows = await db.fetchAll(sql`select * from ${table$(table)} where ${whereSql(table, db, where)} limit 2`);
  if (rows.length === 0) throw new NoResultError(`no row of "${table.name}" matches`, { code: "ROOST_NO_RESULT" });
  if (rows.length > 1) {
    throw new TooManyResultsError(`more than one row of "${table.name}" matches`, { code: "ROOST_TOO_MANY_RESULTS" });
  }
  return decode<T>(table, db, rows)[0];
}

/** How many rows match `where`. */
export async function count(db: Queryable, table: CrudTable, where: object): Promise<number> {
  return Number(await db.fetchVal(sql`select count(*) from ${table$(table)} where ${whereSql(table, db, where)}`));
}

function insertSql(table: CrudTable, db: Queryable, values: [string, unknown][], tail: string): Sql {
  if (values.length === 0) {
    return db.dialect === "mysql"
      ? sql`insert into ${table$(table)} () values ()`
      : sql`insert into ${table$(table)} default values${sql.unsafe(tail)}`;
  }
  const names = sql.join(values.map(([name]) => sql.ident(name)));
  const params = sql.join(values.map(([name, value]) => param(table, db, name, value)));
  return sql`insert into ${table$(table)} (${names}) values (${params})${sql.unsafe(tail)}`;
}

/** Where a row just inserted on MySQL (no RETURNING) can be found again: its key, else its values. */
function insertedWhere(table: CrudTable, values: [string, unknown][], lastInsertId: unknown): object {
  const given = Object.fromEntries(values);
  const key = table.primaryKey;
  if (key.length > 0 && key.every((name) => given[name] !== undefined && given[name] !== null)) {
    return Object.fromEntries(key.map((name) => [name, given[name]]));
  }
  const serial = key.length === 1 && /serial/.test(table.columns[key[0]].spec.kind);
  if (serial && lastInsertId !== undefined) return { ...keyWhere(table, lastInsertId) };
  return comparable(table, values);
}

/** The values a row can be found again by: JSON, bytes and floats do not compare reliably by equality. */
function comparable(table: CrudTable, values: [string, unknown][]): Record<string, unknown> {
  return Object.fromEntries(
    values.filter(([name]) => !["json", "blob", "real"].includes(table.columns[name].spec.kind)),
  );
}

/** Inserts one row and returns it as stored (defaults and serial keys filled in). */
export async function insert<T>(db: Queryable, table: CrudTable, values: object): Promise<T> {
  const list = entries(table, values, "values");
  if (db.dialect !== "mysql") {
    return decode<T>(table, db, [await db.fetchOne(insertSql(table, db, list, " returning *")) as Row])[0];
  }
  const { lastInsertId } = await db.execute(insertSql(table, db, list, ""));
  const row = await findOne<T>(db, table, insertedWhere(table, list, lastInsertId));
  if (row === undefined) throw new NoResultError(`the row inserted into "${table.name}" could not be read back`);
  return row;
}

/** Inserts a row unless a unique key already holds one: the row, or undefined on a conflict. */
async function insertUnlessConflict<T>(db: Queryable, table: CrudTable, values: object): Promise<T | undefined> {
  const list = entries(table, values, "values");
  if (db.dialect !== "mysql") {
    const row = await db.fetchOne(insertSql(table, db, list, " on conflict do nothing returning *"));
    return row === undefined ? undefined : decode<T>(table, db, [row])[0];
  }
  try {
    return await insert<T>(db, table, values);
  } catch (error) {
    if (error instanceof QueryError && error.code === "ER_DUP_ENTRY") return undefined;
    throw error;
  }
}

/** Updates the rows matching `where`; returns how many matched. */
export async function update(db: Queryable, table: CrudTable, where: object, values: object): Promise<number> {
  return (await db.execute(updateSql(table, db, nonEmpty(where, "update"), values, ""))).rowCount;
}

function updateSql(table: CrudTable, db: Queryable, where: object, values: object, tail: string): Sql {
  const list = entries(table, values, "values");
  if (list.length === 0) throw new ConfigError("update needs at least one column value");
  const set = sql.join(list.map(([name, value]) => sql`${sql.ident(name)} = ${param(table, db, name, value)}`));
  return sql`update ${table$(table)} set ${set} where ${whereSql(table, db, where)}${sql.unsafe(tail)}`;
}

/** Deletes the rows matching `where`; returns how many it deleted. */
export async function remove(db: Queryable, table: CrudTable, where: object): Promise<number> {
  const query = sql`delete from ${table$(table)} where ${whereSql(table, db, nonEmpty(where, "delete"))}`;
  return (await db.execute(query)).rowCount;
}

/**
 * The row matching `where`, created from `where` and `defaults` when there
 * is none: `[row, created]`. Safe when callers race, given a unique key over
 * the `where` columns: exactly one creates the row, the others read it.
 */
export async function getOrCreate<T>(
  db: Queryable,
  table: CrudTable,
  where: object,
  defaults: object = {},
): Promise<[T, boolean]> {
  const found = await findOne<T>(db, table, where);
  if (found !== undefined) return [found, false];
  const values = { ...defaults, ...where };
  const created = await insertUnlessConflict<T>(db, table, values);
  if (created !== undefined) return [created, true];
  // Another caller created it first; read theirs.
  const theirs = await findOne<T>(db, table, where, true);
  if (theirs !== undefined) return [theirs, false];
  // The conflict was on another unique key: insert again to report it.
  return [await insert<T>(db, table, values), true];
}

/**
 * Updates the rows matching `where` and returns the first; undefined when
 * none matched. MySQL has no RETURNING: there the row is found first and read
 * back by its key after the update, so a concurrent update of other columns
 * cannot hide it, and the count of changed rows (which Bun.SQL reports for
 * MySQL) does not matter.
 */
async function updateReturning<T>(
  db: Queryable,
  table: CrudTable,
  where: object,
  values: object,
): Promise<T | undefined> {
  if (db.dialect !== "mysql") {
    return decode<T>(table, db, await db.fetchAll(updateSql(table, db, where, values, " returning *")))[0];
  }
  const found = await findOne<Row>(db, table, where, true);
  if (found === undefined) return undefined;
  await db.execute(updateSql(table, db, where, values, ""));
  const changed = Object.fromEntries(entries(table, values, "values"));
  const key = table.primaryKey;
  const after = key.length > 0
    ? Object.fromEntries(key.map((name) => [name, changed[name] ?? found[name]]))
    : comparable(table, [...Object.entries(where), ...Object.entries(changed)]);
  return await findOne<T>(db, table, after, true);
}

/**
 * Updates the row matching `where` with `values`, or creates it from both:
 * `[row, created]`. Safe when callers race, given a unique key over the
 * `where` columns.
 */
export async function updateOrCreate<T>(
  db: Queryable,
  table: CrudTable,
  where: object,
  values: object,
): Promise<[T, boolean]> {
  nonEmpty(where, "update");
  if (entries(table, values, "values").length === 0) return await getOrCreate<T>(db, table, where);
  const updated = await updateReturning<T>(db, table, where, values);
  if (updated !== undefined) return [updated, false];
  const created = await insertUnlessConflict<T>(db, table, { ...where, ...values });
  if (created !== undefined) return [created, true];
  const again = await updateReturning<T>(db, table, where, values);
  if (again !== undefined) return [again, false];
  return [await insert<T>(db, table, { ...where, ...values }), true];
}
