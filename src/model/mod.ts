/**
 * Tables defined in TypeScript, with inferred row types and helpers for the
 * common reads and writes: `getByPk`, `getOne`, `getOrCreate`,
 * `updateOrCreate`, `insert`, `update`, `delete`. `db.schema` creates and
 * drops them.
 *
 * @example
 * ```ts
 * import { Database } from "@roost/db";
 * import { column, defineTable } from "@roost/db/model";
 *
 * const users = defineTable("users", {
 *   id: column.serial().primaryKey(),
 *   email: column.text().notNull().unique(),
 *   joined: column.timestamp().notNull().defaultNow(),
 * });
 * const db = new Database("sqlite::memory:");
 * await db.schema.createTables([users]);
 * const ada = await users.insert(db, { email: "ada@example.org" });
 * console.log(ada.id, ada.joined instanceof Date); // 1 true
 * await db.close();
 * ```
 *
 * @module
 */
export { Column, column } from "./column.ts";
export type { ColumnKind, ColumnReference, ColumnSpec, ReferenceAction, ReferencedTable } from "./column.ts";
export { defineTable, Table } from "./table.ts";
export type {
  Columns,
  ColumnValue,
  FindOptions,
  InsertOf,
  KeyOf,
  OptionalColumns,
  RowOf,
  Simplify,
  TableInsert,
  TableKeysetOptions,
  TableOptions,
  TablePageOptions,
  TableRow,
} from "./table.ts";
