/**
 * The lock that keeps concurrent migrators (processes, instances, machines)
 * from applying the same migration twice.
 *
 * - Postgres: a session advisory lock (`pg_try_advisory_lock`, polled until
 *   `lockTimeout`) on the migrator's pinned connection, keyed by the history
 *   table's name; advisory locks belong to one database, so two databases on
 *   a server never wait for each other.
 * - MySQL / MariaDB: a named lock (`GET_LOCK`, waited for in whole seconds,
 *   then polled) on the pinned connection, named after the database and the
 *   history table, since MySQL's lock names are server-wide.
 * - SQLite: no run-wide lock. Each migration runs in its own
 *   `BEGIN IMMEDIATE` transaction, which holds the database's write lock,
 *   and re-reads the history inside it, skipping what another migrator
 *   applied meanwhile; {@linkcode retryWhileBusy} waits up to `lockTimeout`
 *   for that write lock.
 *
 * Session locks end with their connection, so a migrator that dies never
 * leaves one behind. They need a real session: behind a pooler in
 * transaction mode (PgBouncer's `pool_mode = transaction`), point the
 * migrator at the server itself.
 *
 * @module
 */
import { QueryError } from "../errors.ts";
import { transactionPooled } from "../pooler.ts";
import { parseDatabaseUrl } from "../url.ts";
import type { Queryable } from "../queryable.ts";
import { sql } from "../sql.ts";
import { MigrationError } from "./errors.ts";

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Refuses (`MigrationError`, code `ROOST_MIGRATION_POOLED`) a Postgres
 * database behind a transaction pooler (`pooler=transaction` in `url`, the
 * instance's redacted URL): a session lock there would be taken on one
 * server session, released on another, and left to the pooler's other clients.
 */
export function refusePooled(url: string): void {
  const parsed = parseDatabaseUrl(url);
  if (parsed.dialect !== "postgres" || !transactionPooled(parsed)) return;
  throw new MigrationError(
    "migrations need a session of their own for their lock, which pooler=transaction does not give: open the " +
      "migrator's Database on the server's own URL (or a session-mode pooler, pooler=session)",
    { code: "ROOST_MIGRATION_POOLED" },
  );
}

/** A 64-bit signed FNV-1a hash of a text: the Postgres advisory lock key of a history table. */
export function lockKey(text: string): bigint {
  let hash = 0xcbf29ce484222325n;
  for (const byte of new TextEncoder().encode(`roost_migrate:${text}`)) {
    hash ^= BigInt(byte);
    hash = (hash * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return BigInt.asIntN(64, hash);
}

/** Calls `take` until it returns true, backing off from 10 ms to 200 ms; `ROOST_MIGRATION_LOCKED` at the deadline. */
async function pollUntil(
  deadline: number,
  table: string,
  timeout: number,
  take: () => Promise<boolean>,
): Promise<void> {
  for (let delay = 10;; delay = Math.min(delay * 2, 200)) {
    if (await take()) return;
    const left = deadline - Date.now();
    if (left <= 0) throw lockedError(table, timeout);
    await sleep(Math.min(delay, left));
  }
}

function lockedError(table: string, timeout: number, cause?: unknown): MigrationError {
  return new MigrationError(
    `another migrator held the migration lock of "${table}" for longer than lockTimeout (${timeout} ms)`,
    { code: "ROOST_MIGRATION_LOCKED", cause },
  );
}

/**
 * Takes the migration lock of `table` on a pinned connection, waiting up to
 * `timeout` ms; resolves to the function that releases it. On SQLite there
 * is nothing to take (see the module's notes).
 */
export async function acquireLock(conn: Queryable, table: string, timeout: number): Promise<() => Promise<void>> {
  const deadline = Date.now() + timeout;
  if (conn.dialect === "postgres") {
    // The key is computed, never user text: it is safe to write inline (and every driver types a literal alike).
    const key = sql.unsafe(lockKey(table).toString());
    await pollUntil(deadline, table, timeout, async () => {
      const taken = await conn.fetchVal(sql`select pg_try_advisory_lock(${key})`);
      return taken === true || taken === "t";
    });
    return async () => {
      await conn.execute(sql`select pg_advisory_unlock(${key})`);
    };
  }
  if (conn.dialect === "mysql") {
    const name = sql`concat('roost_migrate_', sha1(concat(database(), '.', ${table})))`;
    await pollUntil(deadline, table, timeout, async () => {
      // GET_LOCK waits up to the whole seconds left itself; the poll covers the last fraction.
      const seconds = Math.max(0, Math.floor((deadline - Date.now()) / 1000));
      const taken = await conn.fetchVal(sql`select get_lock(${name}, ${seconds})`);
      if (taken === null || taken === undefined) {
        throw new MigrationError(`GET_LOCK failed for the migration lock of "${table}"`, {
          code: "ROOST_MIGRATION_LOCKED",
        });
      }
      return Number(taken) === 1;
    });
    return async () => {
      await conn.execute(sql`select release_lock(${name})`);
    };
  }
  return () => Promise.resolve();
}

/** True for SQLite's "another connection holds the write lock" after its busy timeout. */
function isBusy(error: unknown): boolean {
  return error instanceof QueryError && typeof error.code === "string" &&
    (error.code.startsWith("SQLITE_BUSY") || error.code.startsWith("SQLITE_LOCKED")) &&
    error.code !== "SQLITE_BUSY_SNAPSHOT";
}

/**
 * Runs `fn` (a SQLite statement or transaction that takes the write lock)
 * again while it fails with `SQLITE_BUSY`, until `timeout` ms have passed
 * since `started`; then fails with `ROOST_MIGRATION_LOCKED`. A busy
 * statement changed nothing, so trying again is safe. Other dialects run
 * `fn` once.
 */
export async function retryWhileBusy<T>(
  dialect: string,
  table: string,
  timeout: number,
  fn: () => Promise<T>,
): Promise<T> {
  if (dialect !== "sqlite") return await fn();
  const deadline = Date.now() + timeout;
  for (let delay = 5;; delay = Math.min(delay * 2, 100)) {
    try {
      return await fn();
    } catch (error) {
      if (!isBusy(error)) throw error;
      const left = deadline - Date.now();
      if (left <= 0) throw lockedError(table, timeout, error);
      await sleep(Math.min(delay, left));
    }
  }
}
