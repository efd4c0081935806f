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
import type { SyncDatabase, SyncStatement } from "./connection.ts";
import { connectSqlite } from "./open.ts";

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
      return new Database(path, { ...options, safeIntegers: true, strict: true });
    }, url);
  },
};
