/**
 * How the core opens a server connection: the driver's own set-up (session
 * parameters, type catalogue) and Roost's (a replica's read-only mode) run
 * first, and the user's statement timeout is set last, so it never cuts
 * off set-up.
 *
 * @module
 */
import type { Dialect } from "./dialect.ts";
import type { Driver, DriverConnection } from "./driver.ts";
import { transactionPooled } from "./pooler.ts";
import { DatabaseUrl, type UrlOptionValue } from "./url.ts";

/**
 * The URL a driver connects with: without the statement timeout, which the
 * core sets after set-up, and with `options` (a side connection's short
 * connect timeout) added.
 */
export function setupUrl(url: DatabaseUrl, options: Record<string, UrlOptionValue> = {}): DatabaseUrl {
  const { statement_timeout: _, ...rest } = url.options;
  return new DatabaseUrl({ ...url, options: { ...rest, ...options } }, url.password());
}

/**
 * Opens a connection through `driver` to `url` and sets it up: read-only
 * when `readOnly`, then the URL's `statement_timeout` (ms) through the
 * dialect's statements, each tried until one succeeds. A failed step
 * closes the connection and throws.
 */
export async function openSession(
  driver: Driver,
  url: DatabaseUrl,
  dialect: Dialect,
  readOnly: boolean,
): Promise<DriverConnection> {
  const connection = await driver.connect(setupUrl(url));
  const timeout = url.options.statement_timeout;
  try {
    // Behind a transaction pooler the SET would land on a server session other clients get next: a replica is
    // read-only through Roost's routing (ReadOnlyError) and the server's own recovery mode instead.
    if (readOnly && !transactionPooled(url)) await connection.execute(dialect.readOnlySession, []);
    if (timeout !== undefined) {
      let failed: unknown = 0;
      for (const statement of dialect.statementTimeout(Number(timeout))) {
        failed = await connection.execute(statement, []).then(() => undefined, (error) => error);
        if (failed === undefined) break;
      }
      if (failed) throw failed;
      connection.timeoutSet?.();
    }
  } catch (error) {
    await connection.close();
    throw error;
  }
  return connection;
}
