/**
 * Opening a SQLite connection from a URL, for every SQLite driver: the
 * database file's mode, the session's pragmas, and the Worker thread when
 * the URL asks for one.
 *
 * @module
 */
import type { DriverConnection } from "../../driver.ts";
import { ConfigError, ConnectionError, messageOf } from "../../errors.ts";
import type { DatabaseUrl } from "../../url.ts";
import { SqliteConnection, type SyncDatabase, type SyncDatabaseOpener } from "./connection.ts";
import { sqliteError } from "./errors.ts";
import { permissionDenied } from "../shared/permissions.ts";

/**
 * Opens a SQLite connection and applies the URL's settings; a permission
 * Deno refused `driver` is a `ConfigError` `ROOST_PERMISSION_DENIED`.
 */
export async function openSqlite(
  open: SyncDatabaseOpener,
  url: DatabaseUrl,
  driver = "sqlite",
): Promise<SqliteConnection> {
  if (url.options.worker === true) {
    // Drivers that support the option go through connectSqlite, which strips it in the thread.
    throw new ConfigError("this SQLite driver cannot run its connection in a worker thread (worker=true)");
  }
  const mode = (url.options.mode as string | undefined) ?? "rwc";
  const path = url.database;
  let db: SyncDatabase;
  try {
    db = open(path, { readOnly: mode === "ro", create: mode === "rwc" });
  } catch (error) {
    const refused = permissionDenied(driver, error);
    if (refused !== undefined) throw refused;
    const reason = messageOf(error);
    throw new ConnectionError(`could not open SQLite database "${path}": ${reason}`, {
      cause: error,
      code: sqliteError(error, "").code,
    });
  }
  const connection = new SqliteConnection(db, Number(url.options.busy_timeout ?? 5_000));
  const settings = [
    // Waiting for locks is done asynchronously by SqliteConnection, never by blocking the thread.
    "PRAGMA busy_timeout = 0",
    `PRAGMA foreign_keys = ${url.options.foreign_keys === false ? "OFF" : "ON"}`,
  ];
  if (!url.inMemory && mode !== "ro") {
    settings.push(`PRAGMA journal_mode = ${String(url.options.journal_mode ?? "wal").toUpperCase()}`);
  }
  try {
    for (const text of settings) await connection.execute(text, []);
  } catch (error) {
    await connection.close();
    const refused = permissionDenied(driver, error);
    if (refused !== undefined) throw refused;
    const reason = messageOf(error);
    throw new ConnectionError(`could not set up SQLite database "${path}": ${reason}`, { cause: error });
  }
  return connection;
}

/**
 * Opens a SQLite connection for `driver`: in a Worker thread when the URL
 * says `worker=true` (the worker module is loaded only then), else here.
 */
export async function connectSqlite(
  driver: "node-sqlite" | "bun-sqlite",
  open: SyncDatabaseOpener,
  url: DatabaseUrl,
): Promise<DriverConnection> {
  if (url.options.worker !== true) return await openSqlite(open, url, driver);
  const { openSqliteWorker } = await import("./worker.ts");
  return await openSqliteWorker(driver, url);
}
