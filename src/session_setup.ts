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
import { ConfigError } from "./errors.ts";
import { transactionPooled } from "./pooler.ts";
import { DatabaseUrl, type UrlOptionValue } from "./url.ts";

/**
 * Opens a connection to the first of a URL's hosts that matches its
 * `target_session_attrs` (src/hosts.ts; `connect` opens one to a one-host
 * URL; `writes`: the connection is for writes).
 */
export type HostChooser = (
  url: DatabaseUrl,
  dialect: Dialect,
  connect: (url: DatabaseUrl) => Promise<DriverConnection>,
  writes: boolean,
  signal?: AbortSignal,
) => Promise<DriverConnection>;

let chooseHost: HostChooser | undefined;

/** Installs the host choice of multi-host URLs (src/hosts.ts does when it loads: the main entry loads it, edge.ts not). */
export function installHostChooser(chooser: HostChooser): void {
  chooseHost = chooser;
}

/** Throws a `ConfigError` when `url` needs the host choice and this entry has none (edge.ts). */
export function checkHostChoice(url: DatabaseUrl): void {
  if (!chooseHost && (url.hosts.length > 1 || url.options.target_session_attrs !== undefined)) {
    throw new ConfigError("a host list or target_session_attrs: not in edge.ts");
  }
}

/** Where each connection opened from a host list went. */
const placed = new WeakMap<DriverConnection, DatabaseUrl>();

/** Records the one-host URL `connection` went to (src/hosts.ts). */
export function placeConnection(connection: DriverConnection, url: DatabaseUrl): void {
  placed.set(connection, url);
}

/** The one-host URL a connection went to (for ending its session there), when it came from a host list. */
export function hostOf(connection: DriverConnection): DatabaseUrl | undefined {
  return placed.get(connection);
}

/**
 * The URL a driver connects with: without the statement timeout, which the
 * core sets after set-up, and with `options` (a side connection's short
 * connect timeout) added.
 */
export function setupUrl(url: DatabaseUrl, options: Record<string, UrlOptionValue> = {}): DatabaseUrl {
  const { statement_timeout: _, ...rest } = url.options;
  return new DatabaseUrl({ ...url, hosts: url.hosts, options: { ...rest, ...options } }, url.password());
}

/**
 * Opens a connection through `driver` to `url` (to the first of its hosts
 * that matches its `target_session_attrs`, see src/hosts.ts) and sets it up: read-only
 * when `readOnly`, then the URL's `statement_timeout` (ms) through the
 * dialect's statements, each tried until one succeeds. A failed step
 * closes the connection and throws. `signal` gives up a connect under way
 * (see `Driver.connect`).
 */
export async function openSession(
  driver: Driver,
  url: DatabaseUrl,
  dialect: Dialect,
  readOnly: boolean,
  signal?: AbortSignal,
): Promise<DriverConnection> {
  const connect = (host: DatabaseUrl) => driver.connect(setupUrl(host), signal);
  const connection = chooseHost ? await chooseHost(url, dialect, connect, !readOnly, signal) : await connect(url);
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
