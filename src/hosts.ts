/**
 * Multi-host URLs (`postgres://h1:5432,h2:5433/db?target_session_attrs=…`):
 * which of a URL's servers a new connection goes to. As in libpq, each new
 * connection tries the hosts in the order written (shuffled with
 * `load_balance_hosts=random`), each within the URL's `connect_timeout`,
 * asks the server what it is, and keeps the first that matches
 * `target_session_attrs`, closing the others. It runs in the core, so every
 * driver of the dialect does the same; the drivers only ever see one host.
 * The main entry loads this module, which installs itself into
 * src/session_setup.ts; the Worker entry (edge.ts) leaves it out, so a
 * Worker bundle carries none of it and refuses host lists.
 *
 * @module
 */
import type { Dialect } from "./dialect.ts";
import type { DriverConnection, Row } from "./driver.ts";
import { ConfigError, ConnectionError, messageOf } from "./errors.ts";
import { installHostChooser, placeConnection } from "./session_setup.ts";
import { connectTimeoutSeconds, DatabaseUrl, type HostAddress, hostText, type TargetSessionAttrs } from "./url.ts";

/** What a connection found its server to be. */
interface SessionState {
  /** Replaying another server's changes (a hot standby; on MySQL, `read_only` on). */
  standby: boolean;
  /** Its sessions refuse writes. */
  readOnly: boolean;
}

/** Each `target_session_attrs` but prefer-standby (which is standby, then any): what it wants and its test. */
const wanted: Record<Exclude<TargetSessionAttrs, "prefer-standby">, [string, (state: SessionState) => boolean]> = {
  "any": ["any server", () => true],
  "read-write": ["read-write", (state) => !state.readOnly],
  "read-only": ["read-only", (state) => state.readOnly],
  "primary": ["a primary", (state) => !state.standby],
  "standby": ["a standby", (state) => state.standby],
};

/** The URL of one of `url`'s hosts, without the options that choose among hosts (a driver never sees them). */
export function hostUrl(url: DatabaseUrl, address: HostAddress): DatabaseUrl {
  const { target_session_attrs: _, load_balance_hosts: __, ...options } = url.options;
  return new DatabaseUrl({ ...url, hosts: [address], options }, url.password());
}

const truthy = (value: unknown) =>
  value === true || value === 1 || value === 1n || value === "1" || value === "t" || value === "on";

/** Asks the server what it is (the dialect's `sessionState` query). */
async function stateOf(connection: DriverConnection, dialect: Dialect): Promise<SessionState> {
  const row: Row = await connection.fetchOne(dialect.sessionState!, []) ?? {};
  return { standby: truthy(row.standby), readOnly: truthy(row.read_only) };
}

/** The state as a message says it. */
function describe(state: SessionState): string {
  return state.standby ? "a standby" : state.readOnly ? "a read-only primary" : "a read-write primary";
}

/** The codes of a write refused because the server is read-only: Postgres's SQLSTATE, MySQL's and MariaDB's name. */
const readOnlyCodes = ["25006", "ER_OPTION_PREVENTS_STATEMENT"];

/**
 * `connection`, reporting itself broken once a statement was refused because
 * its server is read-only: a primary fenced while its connections sat in the
 * pool (`default_transaction_read_only` turned on before a fail-over). The
 * pool then closes it instead of reusing it, and the next connection looks
 * for a host that matches again. The refused statement wrote nothing.
 */
function fenceable(connection: DriverConnection): DriverConnection {
  let fenced = false;
  const watch = <T>(result: Promise<T>): Promise<T> =>
    result.catch((error: unknown) => {
      if (readOnlyCodes.includes((error as { code?: string } | undefined)?.code ?? "")) fenced = true;
      throw error;
    });
  return {
    get atomicBatches() {
      return connection.atomicBatches;
    },
    get broken() {
      return fenced || connection.broken === true;
    },
    get backendId() {
      return connection.backendId;
    },
    get unwatched() {
      return connection.unwatched;
    },
    execute: (text, params) => watch(connection.execute(text, params)),
    executeMany: (text, paramSets) => watch(connection.executeMany(text, paramSets)),
    fetchAll: (text, params) => watch(connection.fetchAll(text, params)),
    fetchOne: (text, params) => watch(connection.fetchOne(text, params)),
    fetchRows: (text, params) => watch(connection.fetchRows(text, params)),
    stream: (text, params, batchSize, placement, arrays) =>
      connection.stream(text, params, batchSize, placement, arrays),
    timeoutSet: connection.timeoutSet && (() => connection.timeoutSet!()),
    ping: connection.ping && (() => connection.ping!()),
    close: () => connection.close(),
    destroy: connection.destroy && (() => connection.destroy!()),
  };
}

/** A copy of `hosts` in random order (Fisher-Yates). */
function shuffled(hosts: readonly HostAddress[]): HostAddress[] {
  const copy = [...hosts];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [copy[i], copy[j]] = [copy[j], copy[i]];
  }
  return copy;
}

/**
 * `connect`'s connection, or a `ConnectionError` once `ms` have passed
 * without one (a host that takes the TCP connection and never answers); a
 * connection that comes later is closed. No deadline when `ms` is 0
 * (`connect_timeout=0`, as in libpq).
 */
function within(
  opening: Promise<DriverConnection>,
  ms: number,
  address: HostAddress,
  dialect: string,
): Promise<DriverConnection> {
  if (ms <= 0) return opening;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      opening.then((connection) => connection.close(), () => {});
      reject(
        new ConnectionError(
          `could not connect to ${dialect} at ${hostText(address)}: no answer within connect_timeout (${ms / 1000} s)`,
          {
            code: "ROOST_CONNECT_TIMEOUT",
          },
        ),
      );
    }, ms);
  });
  return Promise.race([opening, late]).finally(() => clearTimeout(timer));
}

/**
 * Opens a connection to the first of `url`'s hosts that answers and
 * matches its `target_session_attrs` (`connect` opens one to a one-host
 * URL). A URL of one host and no `target_session_attrs` goes straight to
 * `connect`. Throws a `ConfigError` at once (the same on every host);
 * otherwise, when no host will do, a `ConnectionError`: the one host's own
 * error when it could not be reached, `ROOST_HOSTS_UNREACHABLE` when none
 * of several could, and `ROOST_NO_MATCHING_HOST` when some answered but
 * none matched; the message says what each host did, and `cause` is an
 * `AggregateError` of the hosts' errors. A connection for writes
 * (`writes`, with read-write or primary) is one the pool discards once
 * its server refuses a write as read-only (see `fenceable`). Once `signal`
 * aborts (the pool closed), no further host is tried.
 */
export async function connectToHost(
  url: DatabaseUrl,
  dialect: Dialect,
  connect: (url: DatabaseUrl) => Promise<DriverConnection>,
  writes = true,
  signal?: AbortSignal,
): Promise<DriverConnection> {
  const target = (url.options.target_session_attrs ?? "any") as TargetSessionAttrs;
  if (url.hosts.length === 1 && target === "any") return connect(url);
  const want = wanted[target === "prefer-standby" ? "standby" : target];
  const timeout = connectTimeoutSeconds(url) * 1000;
  const order = url.options.load_balance_hosts === "random" ? shuffled(url.hosts) : url.hosts;
  const outcomes: string[] = [];
  const errors: unknown[] = [];
  // prefer-standby: the first server that answered but is no standby, kept in case no standby answers.
  let fallback: [DriverConnection, DatabaseUrl] | undefined;
  let answered = false;
  for (const address of order) {
    // The pool closed (its open was given up): no further host is tried.
    if (signal?.aborted) {
      if (fallback) await fallback[0].close();
      throw signal.reason;
    }
    const single = hostUrl(url, address);
    let connection: DriverConnection | undefined;
    try {
      connection = await within(connect(single), timeout, address, dialect.name);
      const state = target === "any" ? undefined : await stateOf(connection, dialect);
      if (state === undefined || want[1](state)) {
        if (fallback) await fallback[0].close();
        const chosen = writes && (target === "read-write" || target === "primary") ? fenceable(connection) : connection;
        placeConnection(chosen, single);
        return chosen;
      }
      answered = true;
      outcomes.push(`${hostText(address)} is ${describe(state)}`);
      if (target === "prefer-standby" && fallback === undefined) fallback = [connection, single];
      else await connection.close();
    } catch (error) {
      if (connection) await connection.close();
      if (error instanceof ConfigError) {
        if (fallback) await fallback[0].close();
        throw error;
      }
      if (url.hosts.length === 1) throw error;
      errors.push(error);
      outcomes.push(
        messageOf(error).includes(hostText(address)) ? messageOf(error) : `${hostText(address)}: ${messageOf(error)}`,
      );
    }
  }
  if (fallback) {
    placeConnection(fallback[0], fallback[1]);
    return fallback[0];
  }
  const hosts = url.hosts.map(hostText).join(",");
  throw answered
    ? new ConnectionError(`no host of ${hosts} is ${want[0]} (${outcomes.join("; ")})`, {
      code: "ROOST_NO_MATCHING_HOST",
      cause: new AggregateError(errors, "the hosts that could not be reached"),
    })
    : new ConnectionError(`could not connect to any host of ${hosts} (${outcomes.join("; ")})`, {
      code: "ROOST_HOSTS_UNREACHABLE",
      cause: new AggregateError(errors, "each host's error"),
    });
}

installHostChooser(connectToHost);
