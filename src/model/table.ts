/**
 * `defineTable`: a table's columns and keys in TypeScript, with the row types
 * inferred from them and the helpers that read and write its rows.
 *
 * @module
 */
import type { DialectName } from "../dialect.ts";
import { ConfigError } from "../errors.ts";
import type { KeysetPage, Page } from "../page.ts";
import type { Queryable } from "../queryable.ts";
import { definedTables, type TableDefinition } from "../schema.ts";
import type { Column } from "./column.ts";
import * as crud from "./crud.ts";
import { createStatements, dropStatement } from "./ddl.ts";

/** A table's columns by name. */
export type Columns = Record<string, Column<unknown, boolean, boolean>>;

/** What a column holds in a row: its value type, with `null` when it is nullable. */
export type ColumnValue<C> = C extends Column<infer V, infer N, boolean> ? N extends true ? V | null : V : never;

/** The columns an insert may leave out: nullable ones and those with a default. */
export type OptionalColumns<C extends Columns> = {
  [K in keyof C]: C[K] extends Column<unknown, infer N, infer O> ? N extends true ? K : O extends true ? K : never
    : never;
}[keyof C];

/** An object type written out key by key, so editors show its fields rather than a formula. */
export type Simplify<T> = { [K in keyof T]: T[K] };

/** A row of a table with these columns, as the helpers return it. */
export type RowOf<C extends Columns> = Simplify<{ -readonly [K in keyof C]: ColumnValue<C[K]> }>;

/** The values an insert takes: nullable columns and columns with a default may be left out. */
export type InsertOf<C extends Columns> = Simplify<
  & { -readonly [K in Exclude<keyof C, OptionalColumns<C>>]: ColumnValue<C[K]> }
  & { -readonly [K in OptionalColumns<C>]?: ColumnValue<C[K]> }
>;

/** The row type of a table: `type User = TableRow<typeof users>`. */
export type TableRow<T extends Table<Columns>> = T extends Table<infer C> ? RowOf<C> : never;

/** The insert type of a table: `type NewUser = TableInsert<typeof users>`. */
export type TableInsert<T extends Table<Columns>> = T extends Table<infer C> ? InsertOf<C> : never;

/** Table-level keys and indexes of {@linkcode defineTable}. */
export interface TableOptions<C extends Columns> {
  /** A primary key over several columns (or use `.primaryKey()` on one column). */
  primaryKey?: readonly (keyof C & string)[];
  /** Sets of columns whose values are unique together. */
  unique?: readonly (readonly (keyof C & string)[])[];
  /** Sets of columns to index. */
  indexes?: readonly (readonly (keyof C & string)[])[];
}

/** Options of {@linkcode Table.findAll}. */
export interface FindOptions<C extends Columns> {
  /** Order by these columns (ascending unless `descending`). */
  orderBy?: (keyof C & string) | readonly (keyof C & string)[];
  /** Order descending. Default false. */
  descending?: boolean;
  /** At most this many rows. */
  limit?: number;
}

/**
 * Options of a numbered page of a table's rows ({@linkcode Table.paginate}):
 * `page` (from 1, default 1) of `pageSize` rows, ordered by `orderBy` (the
 * primary key when omitted), then by the primary key, so pages never overlap.
 */
export interface TablePageOptions<C extends Columns> {
  /** The page wanted, from 1. Default 1. */
  page?: number;
  /** Rows per page, at least 1. */
  pageSize: number;
  /** Order by these columns; the primary key's columns follow. Default: the primary key. */
  orderBy?: (keyof C & string) | readonly (keyof C & string)[];
  /** Order descending. Default false. */
  descending?: boolean;
}

/**
 * Options of a keyset page of a table's rows ({@linkcode Table.paginate}):
 * the `pageSize` rows after the cursor `after` (`null` for the first page),
 * ordered by `orderBy` then the primary key (which tells rows apart).
 */
export interface TableKeysetOptions<C extends Columns> {
  /** Rows per page, at least 1. */
  pageSize: number;
  /** Continue after this cursor, a previous page's `nextCursor`; `null` for the first page. */
  after: string | null;
  /** Order by these columns; the primary key's columns follow. Default: the primary key. */
  orderBy?: (keyof C & string) | readonly (keyof C & string)[];
  /** Order descending. Default false. */
  descending?: boolean;
}

/** A primary key value, or an object holding the key's columns. */
export type KeyOf<C extends Columns> = string | number | bigint | Partial<RowOf<C>>;

/**
 * A defined table: its DDL for `db.schema`, and helpers that read and write
 * its rows through any `Queryable` (a database, a connection, a
 * transaction). Values are always bound parameters and names always quoted.
 */
export class Table<C extends Columns = Columns> implements TableDefinition {
  /** The table's name. */
  readonly name: string;
  /** The columns by name. */
  readonly columns: Readonly<C>;
  /** The primary key's columns. */
  readonly primaryKey: readonly (keyof C & string)[];
  /** Sets of columns whose values are unique together (single-column ones included). */
  readonly unique: readonly (readonly (keyof C & string)[])[];
  /** Sets of columns with an index. */
  readonly indexes: readonly (readonly (keyof C & string)[])[];

  /** Checks and holds a definition; use {@linkcode defineTable}. */
  constructor(name: string, columns: C, options: TableOptions<C> = {}) {
    if (typeof name !== "string" || name === "" || name.includes("\0")) {
      throw new ConfigError("a table needs a name without NUL characters");
    }
    const names = Object.keys(columns);
    if (names.length === 0) throw new ConfigError(`table "${name}" needs at least one column`);
    const known = (set: readonly string[], what: string) => {
      if (!Array.isArray(set) || set.length === 0) throw new ConfigError(`table "${name}": ${what} needs columns`);
      for (const column of set) {
        if (!names.includes(column)) throw new ConfigError(`table "${name}": ${what} names unknown column "${column}"`);
      }
      return set;
    };
    const flagged = names.filter((column) => columns[column].spec.primaryKey);
    if (flagged.length > 0 && options.primaryKey !== undefined) {
      throw new ConfigError(`table "${name}": give the primary key either on a column or in options, not both`);
    }
    if (flagged.length > 1) {
      throw new ConfigError(`table "${name}": a key over several columns goes in options.primaryKey`);
    }
    this.name = name;
    this.columns = Object.freeze({ ...columns });
    this.primaryKey = Object.freeze(options.primaryKey ? [...known(options.primaryKey, "primaryKey")] : flagged);
    for (const column of names) {
      const spec = columns[column].spec;
      if (/serial/.test(spec.kind) && (this.primaryKey.length !== 1 || this.primaryKey[0] !== column)) {
        throw new ConfigError(`table "${name}": serial column "${column}" must be the primary key on its own`);
      }
    }
    this.unique = Object.freeze([
      ...names.filter((column) => columns[column].spec.unique).map((column) => [column]),
      ...(options.unique ?? []).map((set) => [...known(set, "unique")]),
    ]);
    this.indexes = Object.freeze((options.indexes ?? []).map((set) => [...known(set, "indexes")]));
  }

  /** The statements that create this table (if it does not exist) and its indexes on a dialect. */
  createStatements(dialect: DialectName): string[] {
    return createStatements(this, dialect);
  }

  /** The statement that drops this table (if it exists) on a dialect. */
  dropStatement(dialect: DialectName): string {
    return dropStatement(this, dialect);
  }

  /** The tables this one references. */
  dependencies(): readonly TableDefinition[] {
    const tables: TableDefinition[] = [];
    for (const column of Object.values(this.columns)) {
      const target = column.spec.references?.table();
      if (target !== undefined && target !== this && !tables.includes(target as TableDefinition)) {
        tables.push(target as TableDefinition);
      }
    }
    return tables;
  }

  /** The row with this primary key, or `undefined`. */
  getByPk(db: Queryable, key: KeyOf<C>): Promise<RowOf<C> | undefined> {
    return crud.getByPk<RowOf<C>>(db, this, key);
  }

  /** The one row matching `where`; `NoResultError` when none does, `TooManyResultsError` when several do. */
  getOne(db: Queryable, where: Partial<RowOf<C>>): Promise<RowOf<C>> {
    return crud.getOne<RowOf<C>>(db, this, where);
  }

  /** The first row matching `where`, or `undefined`. */
  findOne(db: Queryable, where: Partial<RowOf<C>>): Promise<RowOf<C> | undefined> {
    return crud.findOne<RowOf<C>>(db, this, where);
  }

  /** The rows matching `where` (every row when omitted). */
  findAll(db: Queryable, where: Partial<RowOf<C>> = {}, options: FindOptions<C> = {}): Promise<RowOf<C>[]> {
    return crud.findAll<RowOf<C>>(db, this, where, options);
  }

  /**
   * One page of the rows matching `where` (every row when `{}`), decoded as
   * `findAll` decodes them. With `page` and `pageSize`: a numbered
   * {@linkcode Page} with the totals. With `after` (`null` for the first
   * page): a {@linkcode KeysetPage} of the rows after that cursor, as fast
   * deep in the table as at its start. Both order by `orderBy`, then the
   * primary key, so every row appears on exactly one page.
   *
   * @example
   * ```ts
   * import { Database } from "@roost/db";
   * import { column, defineTable } from "@roost/db/model";
   *
   * const notes = defineTable("notes", { id: column.serial().primaryKey(), done: column.boolean().notNull() });
   * const db = new Database("sqlite::memory:");
   * await db.schema.createTables([notes]);
   * const second = await notes.paginate(db, { done: false }, { page: 2, pageSize: 20 });
   * const first = await notes.paginate(db, {}, { pageSize: 20, after: null });
   * const next = await notes.paginate(db, {}, { pageSize: 20, after: first.nextCursor });
   * ```
   */
  paginate(db: Queryable, where: Partial<RowOf<C>>, options: TablePageOptions<C>): Promise<Page<RowOf<C>>>;
  /** The keyset page of the rows matching `where` after the cursor `options.after`. */
  paginate(db: Queryable, where: Partial<RowOf<C>>, options: TableKeysetOptions<C>): Promise<KeysetPage<RowOf<C>>>;
  paginate(
    db: Queryable,
    where: Partial<RowOf<C>>,
    options: TablePageOptions<C> | TableKeysetOptions<C>,
  ): Promise<Page<RowOf<C>> | KeysetPage<RowOf<C>>> {
    return crud.paginate<RowOf<C>>(db, this, where, options);
  }

  /** How many rows match `where` (every row when omitted). */
  count(db: Queryable, where: Partial<RowOf<C>> = {}): Promise<number> {
    return crud.count(db, this, where);
  }

  /** Inserts one row and returns it as stored, defaults and serial key filled in. */
  insert(db: Queryable, values: InsertOf<C>): Promise<RowOf<C>> {
    return crud.insert<RowOf<C>>(db, this, values);
  }

  /** Sets `values` on the rows matching a non-empty `where`; returns how many matched. */
  update(db: Queryable, where: Partial<RowOf<C>>, values: Partial<InsertOf<C>>): Promise<number> {
    return crud.update(db, this, where, values);
  }

  /** Deletes the rows matching a non-empty `where`; returns how many it deleted. */
  delete(db: Queryable, where: Partial<RowOf<C>>): Promise<number> {
    return crud.remove(db, this, where);
  }

  /**
   * The row matching `where`, or a new one made from `where` and `defaults`:
   * `[row, created]`. Safe when callers race, given a primary key or unique
   * constraint over the `where` columns: one caller creates the row and the
   * others get it.
   */
  getOrCreate(
    db: Queryable,
    where: Partial<RowOf<C>>,
    defaults: Partial<InsertOf<C>> = {},
  ): Promise<[RowOf<C>, boolean]> {
    return crud.getOrCreate<RowOf<C>>(db, this, where, defaults);
  }

  /**
   * Sets `values` on the row matching `where`, or creates it from both:
   * `[row, created]`. Race-safe under the same condition as `getOrCreate`.
   */
  updateOrCreate(db: Queryable, where: Partial<RowOf<C>>, values: Partial<InsertOf<C>>): Promise<[RowOf<C>, boolean]> {
    return crud.updateOrCreate<RowOf<C>>(db, this, where, values);
  }
}

/**
 * Defines a table: its name, its columns (from the `column` builders) and
 * optional table-level keys. The row and insert types follow from the
 * columns. The table joins the list `db.schema.createTables()` creates when
 * given none.
 *
 * @example
 * ```ts
 * import { Database } from "@roost/db";
 * import { column, defineTable, type TableRow } from "@roost/db/model";
 *
 * const users = defineTable("users", {
 *   id: column.serial().primaryKey(),
 *   email: column.text().notNull().unique(),
 *   name: column.text(),
 * });
 * type User = TableRow<typeof users>; // { id: number; email: string; name: string | null }
 *
 * const db = new Database("sqlite::memory:");
 * await db.schema.createTables([users]);
 * const [ada, created] = await users.getOrCreate(db, { email: "ada@example.org" }, { name: "Ada" });
 * ```
 */
export function defineTable<C extends Columns>(name: string, columns: C, options: TableOptions<C> = {}): Table<C> {
  const table = new Table(name, columns, options);
  // A table defined again under its name (a reloaded module) replaces the earlier definition.
  const earlier = definedTables.findIndex((defined) => defined.name === name);
  if (earlier >= 0) definedTables.splice(earlier, 1);
  definedTables.push(table);
  return table;
}
