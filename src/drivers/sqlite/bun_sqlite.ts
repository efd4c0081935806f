/**
 * The `bun:sqlite` driver: SQLite built into Bun. The default SQLite driver
 * on Bun.
 *
 * @example Passing the driver object (for bundlers that drop lazy imports)
 * ```ts
 * import { Database } from "@roost/db";
 * import { bunSqlite } from "@roost/db/drivers/bun-sqlite";
 * const db = new Database("sqlite::memory:", { driver: bunSqlite });
 * ```
 *
 * @module
 */
import type { Driver } from "../../driver.ts";
import { ConfigError } from "../../errors.ts";
import { builtinModule } from "../../runtime.ts";
import type { ArrayStatement, RowReader, SyncDatabase, SyncStatement } from "./connection.ts";
import { allWith, getWith } from "./arguments.ts";
import { connectSqlite } from "./open.ts";
import { toRow } from "./values.ts";

/** A bun:sqlite statement, which can read integers as numbers on its own (Bun >= 1.1.14). */
interface BunStatement extends SyncStatement {
  safeIntegers?(enabled: boolean): void;
  /** Every row as an array of values. */
  values(...params: unknown[]): unknown[][];
  /** The result's column names. */
  readonly columnNames: string[];
}

/** The error a numbers read throws for an integer it could not hold exactly, so the read runs again with bigints. */
function tooLarge(): RangeError {
  return Object.assign(new RangeError("an integer is beyond Number.MAX_SAFE_INTEGER"), { code: "ERR_OUT_OF_RANGE" });
}

/** Number.MAX_SAFE_INTEGER, read once: a read of it per value cost about 50 instructions a column on Bun. */
const maxSafe = Number.MAX_SAFE_INTEGER;

/**
 * Throws {@linkcode tooLarge} when a row has a number no integer within
 * Number.MAX_SAFE_INTEGER could have become: bun:sqlite rounds a larger
 * integer read as a number. (A large REAL takes the same detour, harmlessly.)
 */
function checked(row: unknown): unknown {
  const values = row as Record<string, unknown>;
  for (const key in values) {
    const value = values[key];
    if (typeof value === "number" && !(value <= maxSafe && value >= -maxSafe)) {
      throw tooLarge();
    }
  }
  return row;
}

/**
 * A SELECT's reads with integers as numbers: bun:sqlite's rows are plain
 * objects already. Without `safeIntegers` on statements, the bigint rows
 * are converted.
 */
function rowReader(statement: BunStatement): RowReader {
  if (statement.safeIntegers === undefined) {
    return {
      get: (values) => {
        const row = getWith(statement, values);
        return row == null ? undefined : toRow(row);
      },
      all: (values) => allWith(statement, values).map(toRow),
      finalize: () => statement.finalize?.(),
    };
  }
  statement.safeIntegers(false);
  return {
    get(values) {
      const row = getWith(statement, values);
      return row == null ? row : checked(row);
    },
    all(values) {
      const rows = allWith(statement, values);
      for (let i = 0; i < rows.length; i++) checked(rows[i]);
      return rows;
    },
    finalize: () => statement.finalize?.(),
  };
}

/**
 * A statement reading arrays (integers as `bigint`, as the database reads
 * them). bun:sqlite steps only objects, so a stream reads its arrays whole.
 */
function arrayStatement(statement: BunStatement): ArrayStatement {
  const all = (values: readonly unknown[]) => statement.values(...values);
  return {
    all,
    iterate: (values) => all(values)[Symbol.iterator](),
    columns: () => statement.columnNames,
    finalize: () => statement.finalize?.(),
  };
}

/** The part of `bun:sqlite` this driver uses, typed here so other runtimes can type-check it. */
interface BunSqliteModule {
  Database: new (
    path: string,
    options: { readonly?: boolean; create?: boolean; readwrite?: boolean; safeIntegers?: boolean; strict?: boolean },
  ) => {
    prepare(text: string): BunStatement;
    exec(text: string): void;
    close(): void;
  };
}

function load(): BunSqliteModule {
  // Loaded through getBuiltinModule: other runtimes' tools cannot resolve a `bun:` import.
  const module = builtinModule<BunSqliteModule>("bun:sqlite");
  if (module === undefined) throw new ConfigError("the bun-sqlite driver runs only on Bun");
  return module;
}

/** The `bun:sqlite` driver. */
export const bunSqlite: Driver = {
  name: "bun-sqlite",
  dialect: "sqlite",
  interleavedStreams: true,
  pipelines: true,
  connect(url) {
    const { Database } = load();
    return connectSqlite("bun-sqlite", (path, { readOnly, create }): SyncDatabase => {
      const options = readOnly ? { readonly: true } : { readwrite: true, create };
      const db = new Database(path, { ...options, safeIntegers: true, strict: true });
      return {
        prepare: (text) => db.prepare(text),
        prepareNumbers: (text) => rowReader(db.prepare(text)),
        prepareArrays: (text) => arrayStatement(db.prepare(text)),
        exec: (text) => db.exec(text),
        close: () => db.close(),
      };
    }, url);
  },
};
