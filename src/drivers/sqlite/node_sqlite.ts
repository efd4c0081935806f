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
import { DatabaseSync } from "node:sqlite";
import type { Driver } from "../../driver.ts";
import type { SyncDatabase } from "./connection.ts";
import { connectSqlite } from "./open.ts";

function open(path: string, options: { readOnly: boolean; create: boolean }): SyncDatabase {
  if (!options.create && path !== ":memory:" && !existsSync(path)) {
    throw Object.assign(new Error("unable to open database file (mode=rw needs an existing file)"), { errcode: 14 });
  }
  const db = new DatabaseSync(path, { readOnly: options.readOnly });
  return {
    prepare(text) {
      const statement = db.prepare(text);
      statement.setReadBigInts(true);
      return statement;
    },
    prepareNumbers: (text) => db.prepare(text),
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
