/**
 * The `@db/sqlite` driver (JSR, denodrivers/sqlite3): SQLite on Deno through
 * FFI. Opt-in with `driver: "deno-sqlite"`; the default SQLite driver on Deno
 * stays `node-sqlite`. It behaves like the other SQLite drivers: statements
 * cached per connection, integers exact (`int64`), blobs as `Uint8Array`,
 * lock waits done asynchronously.
 *
 * The package is imported at the first connection (`jsr:@db/sqlite@^0.13`),
 * never at type-check time. It needs `--allow-ffi` and fetches its SQLite
 * library on first use unless `DENO_SQLITE_PATH` names one; when either
 * fails, connecting throws a `ConfigError` with code
 * `ROOST_DRIVER_UNAVAILABLE`.
 *
 * @example Passing the driver object
 * ```ts
 * import { Database } from "@roost/db";
 * import { denoSqlite } from "@roost/db/drivers/deno-sqlite";
 * const db = new Database("sqlite::memory:", { driver: denoSqlite });
 * ```
 *
 * @module
 */
import type { Driver } from "../../driver.ts";
import { importJsr } from "../shared/jsr.ts";
import type { ArrayStatement, SyncDatabase, SyncStatement } from "./connection.ts";
import { openSqlite } from "./open.ts";

/** The package and versions this driver is written against. */
const specifier = "jsr:@db/sqlite@^0.13";

/**
 * The part of an `@db/sqlite` statement this driver uses. Parameters are
 * passed as one array, which the package binds positionally.
 */
interface JsrStatement {
  /** Runs the statement; returns the number of changed rows. */
  run(params: readonly unknown[]): number;
  /** Every row as an array of column values. */
  values(params: readonly unknown[]): unknown[][];
  /** The first row as an array, or undefined. */
  value(params: readonly unknown[]): unknown[] | undefined;
  /** The result's column names. */
  columnNames(): string[];
  /** Steps through the rows as objects (0.12 and later). */
  iter?(params: readonly unknown[]): Iterator<Record<string, unknown>>;
  /** Frees the statement; throws when its last run failed. */
  finalize(): void;
}

/** The part of an `@db/sqlite` database this driver uses. */
interface JsrDatabase {
  prepare(sql: string): JsrStatement;
  exec(sql: string): number;
  close(): void;
}

/** The options of `new Database()` this driver sets (`parseJson` exists in newer versions only). */
interface JsrOpenOptions {
  readonly?: boolean;
  create?: boolean;
  int64?: boolean;
  parseJson?: boolean;
}

/** The `@db/sqlite` module, typed by the part this driver uses. */
interface JsrSqliteModule {
  Database: new (path: string, options: JsrOpenOptions) => JsrDatabase;
}

/**
 * `@db/sqlite` reports a failed statement as a plain `Error` carrying
 * SQLite's message and no code; the message tells the code (SQLite's texts
 * for its result codes are fixed).
 */
const messageCodes: readonly [RegExp, number][] = [
  [/^UNIQUE constraint failed/, 2067],
  [/^NOT NULL constraint failed/, 1299],
  [/^CHECK constraint failed/, 275],
  [/^FOREIGN KEY constraint failed/, 787],
  [/constraint failed/, 19],
  [/^database is locked/, 5],
  [/^database table is locked/, 6],
  [/^attempt to write a readonly database/, 8],
  [/^interrupted/, 9],
  [/^disk I\/O error/, 10],
  [/^database disk image is malformed/, 11],
  [/^database or disk is full/, 13],
  [/^unable to open database file/, 14],
  [/^string or blob too big/, 18],
  [/^datatype mismatch/, 20],
  [/^file is not a database/, 26],
];

/**
 * Gives an `@db/sqlite` error the numeric `errcode` the shared SQLite
 * connection reads (for `SQLITE_*` codes and busy waits): its own `code` when
 * it has one (`SqliteError`), refined by the message, else the message's.
 */
function withErrcode(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  const own = (error as { code?: unknown }).code;
  const numeric = typeof own === "number" ? own : undefined;
  const message = error.message.replace(/^\d+: /, "");
  const fromMessage = messageCodes.find(([pattern]) => pattern.test(message))?.[1];
  const fromSqlite = error.constructor === Error || error.name === "SqliteError";
  const errcode = numeric === undefined
    ? fromMessage ?? (fromSqlite ? 1 : undefined)
    : fromMessage !== undefined && (fromMessage & 0xff) === numeric
    ? fromMessage
    : numeric;
  if (errcode === undefined) return error;
  try {
    Object.defineProperty(error, "errcode", { value: errcode, configurable: true, enumerable: true });
    return error;
  } catch {
    return Object.assign(new Error(error.message, { cause: error }), { errcode });
  }
}

/** SQLite's message for a duplicate key: the table and columns of the index, `t.a, t.b`. */
const uniqueFailed = /^UNIQUE constraint failed: (.+)$/;

/**
 * SQLITE_CONSTRAINT_PRIMARYKEY (1555) for a duplicate primary key. SQLite
 * words it as a UNIQUE violation (2067), and the package passes on the
 * message without the extended code, so the table's primary key tells them
 * apart: the violation is the primary key's when the message lists exactly
 * its columns, in order. Any doubt keeps 2067.
 */
function primaryKeyCode(db: JsrDatabase, error: unknown): unknown {
  if ((error as { errcode?: unknown })?.errcode !== 2067 || !(error instanceof Error)) return error;
  const listed = uniqueFailed.exec(error.message)?.[1];
  if (listed === undefined) return error;
  const first = listed.split(", ")[0];
  let statement: JsrStatement | undefined;
  try {
    statement = db.prepare("SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk");
    // The table name ends at one of the dots of the first entry; names may hold dots.
    for (let dot = first.indexOf("."); dot > 0; dot = first.indexOf(".", dot + 1)) {
      const table = first.slice(0, dot);
      const key = statement.values([table]).map(([name]) => `${table}.${String(name)}`).join(", ");
      if (key === listed) {
        Object.defineProperty(error, "errcode", { value: 1555, configurable: true, enumerable: true });
        break;
      }
    }
  } catch {
    // No answer (a locked schema, a closed database): the error keeps SQLITE_CONSTRAINT_UNIQUE.
  } finally {
    try {
      statement?.finalize();
    } catch {
      // Nothing to free.
    }
  }
  return error;
}

/** Runs a call into the package, giving its errors SQLite codes (the primary key's when `db` can tell). */
function guard<T>(call: () => T, db?: JsrDatabase): T {
  try {
    return call();
  } catch (error) {
    const coded = withErrcode(error);
    throw db === undefined ? coded : primaryKeyCode(db, coded);
  }
}

/**
 * `-0` as `0`: the package binds small integers through an FFI `i32`, which
 * refuses `-0` (SQLite would store 0 anyway).
 */
function bindable(params: readonly unknown[]): readonly unknown[] {
  return params.some((value) => Object.is(value, -0))
    ? params.map((value) => Object.is(value, -0) ? 0 : value)
    : params;
}

const encoder = new TextEncoder();

/**
 * The SQL text padded with trailing spaces to its UTF-8 length: some
 * versions pass the text's UTF-16 length to SQLite as its byte length, which
 * would cut off SQL holding non-ASCII characters. Trailing spaces change
 * nothing where the length is right.
 */
function preparable(text: string): string {
  const extra = encoder.encode(text).length - text.length;
  return extra > 0 ? text + " ".repeat(extra) : text;
}

/**
 * A column value as the other SQLite drivers return it. Versions without the
 * `parseJson` option parse what SQLite's JSON functions return: such an
 * object or array goes back to JSON text (SQLite writes JSON without spaces,
 * as `JSON.stringify` does).
 */
function sqliteValue(value: unknown): unknown {
  return typeof value === "object" && value !== null && !(value instanceof Uint8Array) ? JSON.stringify(value) : value;
}

/** A row object from column names and values (a later duplicate name wins, as in the other drivers). */
function rowObject(names: readonly string[], values: readonly unknown[]): Record<string, unknown> {
  const row: Record<string, unknown> = {};
  for (let i = 0; i < names.length; i++) row[names[i]] = sqliteValue(values[i]);
  return row;
}

/**
 * Column names the package can put in the row-object code it generates for
 * `iter()` (it writes each name between double quotes, unescaped).
 */
const generatedName = /^[^"\\\n\r\u2028\u2029]*$/;

/** Wraps an `iter()` iterator: errors get SQLite codes, values are read as `sqliteValue` says. */
function guardedIterator(rows: Iterator<Record<string, unknown>>, db: JsrDatabase): Iterator<unknown> {
  return {
    next: () => {
      const next = guard(() => rows.next(), db);
      if (next.done) return next;
      const row: Record<string, unknown> = {};
      for (const key in next.value) row[key] = sqliteValue(next.value[key]);
      return { done: false, value: row };
    },
    return: (value?: unknown) => rows.return?.(value) ?? { done: true, value },
  };
}

const insertPattern = /^\s*(insert|replace)\b/i;

/** The package's database behind the statement API the shared SQLite connection expects. */
function adapt(db: JsrDatabase): SyncDatabase {
  let lastRowid: JsrStatement | undefined;
  // The package reads last_insert_rowid() through a 32-bit FFI result; SQL reads all 64 bits.
  const lastInsertRowid = (): number | bigint => {
    lastRowid ??= guard(() => db.prepare("SELECT last_insert_rowid()"), db);
    const [id] = guard(() => lastRowid!.value([]), db) ?? [0];
    return typeof id === "bigint" ? id : Number(id);
  };
  return {
    prepare(text: string): SyncStatement {
      const statement = guard(() => db.prepare(preparable(text)), db);
      const inserts = insertPattern.test(text);
      return {
        run(...params) {
          const changes = guard(() => statement.run(bindable(params)), db);
          return { changes, lastInsertRowid: inserts && changes > 0 ? lastInsertRowid() : 0 };
        },
        all(...params) {
          const rows = guard(() => statement.values(bindable(params)), db);
          const names = guard(() => statement.columnNames(), db);
          return rows.map((values) => rowObject(names, values));
        },
        get(...params) {
          const values = guard(() => statement.value(bindable(params)), db);
          return values === undefined ? undefined : rowObject(guard(() => statement.columnNames(), db), values);
        },
        iterate(...params) {
          const names = guard(() => statement.columnNames(), db);
          if (typeof statement.iter === "function" && names.every((name) => generatedName.test(name))) {
            return guardedIterator(statement.iter(bindable(params)), db);
          }
          // Names the generated code cannot hold: read the rows at once instead of streaming them.
          const rows = guard(() => statement.values(bindable(params)), db);
          return rows.map((values) => rowObject(names, values))[Symbol.iterator]();
        },
        finalize() {
          try {
            statement.finalize();
          } catch {
            // sqlite3_finalize repeats the statement's last error; the statement is freed all the same.
          }
        },
      };
    },
    prepareArrays(text: string): ArrayStatement {
      const statement = guard(() => db.prepare(preparable(text)), db);
      // The package steps only objects: a stream reads its arrays whole.
      const all = (params: readonly unknown[]) =>
        guard(() => statement.values(bindable(params)), db).map((values) => values.map(sqliteValue));
      return {
        all,
        iterate: (params) => all(params)[Symbol.iterator](),
        columns: () => guard(() => statement.columnNames(), db),
        finalize() {
          try {
            statement.finalize();
          } catch {
            // See finalize() above.
          }
        },
      };
    },
    exec: (text) => {
      guard(() => db.exec(text), db);
    },
    close: () => {
      try {
        lastRowid?.finalize();
      } catch {
        // See finalize() above.
      }
      guard(() => db.close(), db);
    },
  };
}

/** The `@db/sqlite` driver. */
export const denoSqlite: Driver = {
  name: "deno-sqlite",
  dialect: "sqlite",
  interleavedStreams: true,
  pipelines: true,
  async connect(url) {
    const { Database } = await importJsr<JsrSqliteModule>(
      "deno-sqlite",
      specifier,
      // The exact JSR specifier, by design: an optional Deno-only driver, not a dependency of the package.
      // deno-lint-ignore no-import-prefix
      () => import("jsr:@db/sqlite@^0.13"),
    );
    return await openSqlite(
      (path, { readOnly, create }) => {
        const db = guard(() => new Database(path, { readonly: readOnly, create, int64: true, parseJson: false }));
        return adapt(db);
      },
      url,
      "deno-sqlite",
    );
  },
};
