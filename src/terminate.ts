/**
 * Ends, on the server, the sessions of connections Roost cut off (a close
 * past its timeout, the end of a context), so their statements stop instead
 * of running to completion, and the ones queued behind them never start.
 *
 * @module
 */
import type { DriverConnection } from "./driver.ts";
import { backgroundTimeout } from "./runtime.ts";

/**
 * Returns a function that ends server session `id`: the ids given in the
 * same turn of the event loop are ended together, from one connection
 * `open` makes (with a short connect timeout), which lives at most a second
 * once open. The promise it returns settles when that is done or has
 * failed; it never rejects, so whoever awaits it (a pool's close) is held
 * up by a bounded wait only.
 */
export function sessionEnder(
  open: () => Promise<DriverConnection>,
  statements: (ids: readonly number[]) => readonly string[],
): (id: number) => Promise<void> {
  let pending: number[] = [];
  let batch: Promise<void> | undefined;
  const run = async (ids: readonly number[]) => {
    const connection = await open();
    // Unreferenced: the connection's socket keeps the process alive meanwhile, never longer than this.
    const timer = backgroundTimeout(() => connection.close(), 1_000);
    // A session that ended meanwhile is no reason to spare the others.
    for (const statement of statements(ids)) await connection.execute(statement, []).catch(() => {});
    clearTimeout(timer);
    await connection.close();
  };
  return (id) => {
    pending.push(id);
    batch ??= Promise.resolve().then(() => {
      const ids = pending;
      pending = [];
      batch = undefined;
      return run(ids).catch(() => {});
    });
    return batch;
  };
}
