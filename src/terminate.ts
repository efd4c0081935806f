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
 * Returns a function that ends server session `id` soon: the ids added in
 * the same turn of the event loop are ended together, from one connection
 * `open` makes (with a short connect timeout), which lives at most a
 * second more. Nothing waits for it and it never throws, so a close
 * resolves as soon as its sockets are cut.
 */
export function sessionEnder(
  open: () => Promise<DriverConnection>,
  statements: (ids: readonly number[]) => readonly string[],
): (id: number) => void {
  let pending: number[] = [];
  const run = async () => {
    const ids = pending;
    pending = [];
    const connection = await open();
    // Unreferenced: the connection's socket keeps the process alive meanwhile, never longer than this.
    const timer = backgroundTimeout(() => connection.close(), 1_000);
    // A session that ended meanwhile is no reason to spare the others.
    for (const statement of statements(ids)) await connection.execute(statement, []).catch(() => {});
    clearTimeout(timer);
    await connection.close();
  };
  return (id) => {
    if (pending.push(id) === 1) queueMicrotask(() => run().catch(() => {}));
  };
}
