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
import type { Driver } from "../driver.ts";
import { ConfigError } from "../errors.ts";
import { openSqlite, type SyncDatabase, type SyncStatement } from "./sqlite.ts";

/** The part of `bun:sqlite` this driver uses, typed here so other runtimes can type-check it. */
interface BunSqliteModule {
  Database: new (
    path: string,
    options: { readonly?: boolean; create?: boolean; readwrite?: boolean; safeIntegers?: boolean; strict?: boolean },
  ) => {
    prepare(text: string): SyncStatement;
    exec(text: string): void;
    close(): void;
  };
}

// A computed specifier: only Bun can resolve it, and only Bun loads this file.
const specifier = ["bun", "sqlite"].join(":");
let loaded: Promise<BunSqliteModule> | undefined;

function load(): Promise<BunSqliteModule> {
  if (!("Bun" in globalThis)) return Promise.reject(new ConfigError("the bun-sqlite driver runs only on Bun"));
  return loaded ??= import(specifier) as Promise<BunSqliteModule>;
}

/** The `bun:sqlite` driver. */
export const bunSqlite: Driver = {
  name: "bun-sqlite",
  dialect: "sqlite",
  interleavedStreams: true,
  async connect(url) {
    const { Database } = await load();
    return openSqlite((path, { readOnly, create }): SyncDatabase => {
      const options = readOnly ? { readonly: true } : { readwrite: true, create };
      return new Database(path, { ...options, safeIntegers: true, strict: true });
    }, url);
  },
};
