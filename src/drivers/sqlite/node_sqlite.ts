/**
 * The `node:sqlite` driver: SQLite built into Node.js (>= 22.13) and Deno.
 * The default SQLite driver on both.
 *
 * @example Passing the driver object (for bundlers that drop lazy imports)
 * ```ts
 * import { Database } from "@roost/db";
 * import { nodeSqlite } from "@roost/db/drivers/node-sqlite";
 * const db = new Database("sqlite::memory:", { driver: nodeSqlite });
 * ```
 *
 * @module
 */
import { existsSync } from "node:fs";
import { DatabaseSync, StatementSync } from "node:sqlite";
import type { Driver } from "../../driver.ts";
import type { ArrayStatement, RowReader, SyncDatabase } from "./connection.ts";
import { allWith, getWith } from "./arguments.ts";
import { connectSqlite } from "./open.ts";
import { plainRow, rowOf } from "./values.ts";

/** The parts of node:sqlite's statements used here that older typings may lack (Node >= 22.16 and 24, Deno 2). */
interface Statement {
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
  iterate(...params: unknown[]): Iterator<unknown>;
  setReadBigInts(enabled: boolean): void;
  setReturnArrays?(enabled: boolean): void;
  columns?(): { name: string }[];
}

/** The authorizer hook (Node >= 24.10, Deno 2.5), which SQLite calls whenever it compiles a statement. */
type Authorizing = { setAuthorizer?(callback: (() => number) | null): void };

/**
 * A SELECT's reads as finished rows. Where the runtime can, the statement
 * returns each row as an array and the row is built from the column names,
 * which is cheaper than the object without prototype node:sqlite would build
 * and Roost would copy. The names are read again after SQLite compiled any
 * statement on this database (`compiled.count`, counted by the authorizer),
 * since a schema change recompiles a cached statement, and with it perhaps
 * its columns (`select *`, or a column renamed).
 */
function rowReader(statement: Statement, compiled: { count: number } | undefined): RowReader {
  if (compiled === undefined || statement.setReturnArrays === undefined || statement.columns === undefined) {
    return {
      get: (values) => plainRow(getWith(statement, values)),
      all: (values) => allWith(statement, values).map(plainRow),
    };
  }
  const columns = statement.columns.bind(statement);
  statement.setReturnArrays(true);
  let names: string[] = [];
  let seen = -1;
  const namesNow = () => {
    if (seen !== compiled.count) {
      seen = compiled.count;
      names = columns().map((column) => column.name);
    }
    return names;
  };
  return {
    get(params) {
      const values = getWith(statement, params) as unknown[] | undefined;
      return values === undefined ? undefined : rowOf(namesNow(), values);
    },
    all(params) {
      const rows = allWith(statement, params) as unknown[][];
      const names = namesNow();
      for (let i = 0; i < rows.length; i++) (rows as unknown[])[i] = rowOf(names, rows[i]);
      return rows;
    },
  };
}

/**
 * A statement reading arrays (integers as `bigint`). Where the runtime cannot
 * return arrays (Node < 22.16), each row object is read in the order of the
 * statement's columns (by its keys' order where it cannot tell them): there
 * a repeated column name repeats its last value.
 */
function arrayStatement(statement: Statement): ArrayStatement {
  statement.setReadBigInts(true);
  const columns = () => statement.columns?.().map((column) => column.name);
  if (statement.setReturnArrays !== undefined) {
    statement.setReturnArrays(true);
    return {
      all: (values) => allWith(statement, values) as unknown[][],
      iterate: (values) => statement.iterate(...values) as Iterator<unknown[]>,
      columns: () => columns() ?? [],
    };
  }
  let names: string[] | undefined;
  const toArray = (row: unknown) => {
    const object = row as Record<string, unknown>;
    names ??= columns() ?? Object.keys(object);
    return names.map((name) => object[name]);
  };
  return {
    all: (values) => allWith(statement, values).map(toArray),
    iterate: (values) => allWith(statement, values).map(toArray)[Symbol.iterator](),
    columns: () => names ?? columns() ?? [],
  };
}

/** Whether statements can return arrays (Node >= 22.16 and 24, Deno 2), and so step them (see `arrayStatement`). */
const streamsArrays = typeof (StatementSync.prototype as Partial<Statement>).setReturnArrays === "function";

function open(path: string, options: { readOnly: boolean; create: boolean }): SyncDatabase {
  if (!options.create && path !== ":memory:" && !existsSync(path)) {
    throw Object.assign(new Error("unable to open database file (mode=rw needs an existing file)"), { errcode: 14 });
  }
  const db = new DatabaseSync(path, { readOnly: options.readOnly });
  let compiled: { count: number } | undefined;
  const authorizing = db as unknown as Authorizing;
  if (authorizing.setAuthorizer !== undefined) {
    const counter = compiled = { count: 0 };
    // Allows everything (SQLITE_OK); it is here only to count compilations.
    authorizing.setAuthorizer(() => (counter.count++, 0));
  }
  return {
    prepare(text) {
      const statement = db.prepare(text);
      statement.setReadBigInts(true);
      return statement;
    },
    prepareNumbers: (text) => rowReader(db.prepare(text) as unknown as Statement, compiled),
    prepareArrays: (text) => arrayStatement(db.prepare(text) as unknown as Statement),
    streamsArrays,
    exec: (text) => db.exec(text),
    close: () => db.close(),
  };
}

/** The `node:sqlite` driver. */
export const nodeSqlite: Driver = {
  name: "node-sqlite",
  dialect: "sqlite",
  interleavedStreams: true,
  pipelines: true,
  connect: (url) => connectSqlite("node-sqlite", open, url),
};
