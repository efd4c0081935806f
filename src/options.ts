/**
 * The options of `new Database(url, options)`, validated up front so a typo
 * is a {@linkcode ConfigError} at construction, not a surprise in production.
 *
 * @module
 */
import type { Driver } from "./driver.ts";
import type { DriverName } from "./drivers/mod.ts";
import { ConfigError } from "./errors.ts";
import { poolDefaults, type PoolOptions, type ResolvedPoolOptions } from "./pool.ts";
import type { QueryHook } from "./query_event.ts";
import { type ResolvedRoutingOptions, routingDefaults, type RoutingOptions } from "./routing_options.ts";
import { runtime } from "./runtime.ts";
import { checkPooled } from "./pooler.ts";
import { DatabaseUrl, mostMilliseconds, parseDatabaseUrl } from "./url.ts";

/** A replica: its URL, or its URL and pool settings of its own. */
export type ReplicaOption = string | {
  /** The replica's URL (same dialect as the primary). */
  url: string;
  /** Its pool settings; default: the primary's `pool` option. */
  pool?: PoolOptions;
};

/** The options of `new Database(url, options)`. */
export interface DatabaseOptions {
  /**
   * Registers the instance under this name, so `Database.get(name)` finds it
   * anywhere in the program. A taken name is a `RegistryError`.
   */
  name?: string;
  /**
   * The driver: the name of one Roost ships, or a driver object (for bundles
   * that must not load drivers lazily). Default: the runtime's own (see
   * docs/drivers.md).
   */
  driver?: DriverName | Driver;
  /** Pool limits and timeouts; see {@linkcode PoolOptions} for the defaults. */
  pool?: PoolOptions;
  /**
   * Read replicas. Their connections are read-only on the server too. They
   * serve `db.replica()` scopes, and with `routing.reads: "replicas"` the
   * reads outside any scope.
   */
  replicas?: readonly ReplicaOption[];
  /** How queries are routed between the primary and the replicas; see {@linkcode RoutingOptions}. */
  routing?: RoutingOptions;
  /**
   * Called after every query with where it ran, why, how long it took and
   * its error, if any (never its parameters). Errors the hook throws are
   * ignored.
   */
  onQuery?: QueryHook;
  /**
   * Who owns connections. `"instance"`: one pool per server, shared by the
   * whole instance. `"context"`: each `db.context()` opens its own
   * connections (at most 6 at once across the instance's servers, a
   * Worker's limit per request) and closes them when it ends; outside any
   * context, each statement or scope opens a connection of its own and
   * closes it after. Default `"context"` on Workers, where a socket must not
   * outlive its request, `"instance"` elsewhere.
   */
  connectionScope?: "instance" | "context";
  /**
   * The longest a statement may run, in milliseconds, before the server
   * cancels it with a `QueryCanceledError`; the connection stays usable.
   * Sent to the server as the session's `statement_timeout` (Postgres),
   * `max_statement_time` (MariaDB) or `max_execution_time` (MySQL, which
   * applies it to SELECTs only); it overrides the URL's `statement_timeout`
   * and applies to replicas too. SQLite runs statements in-process, where
   * nothing can cancel one, so it has no effect there. Default: none.
   */
  statementTimeout?: number;
  /**
   * Puts query parameters where debugging wants them: on a failed query's
   * `QueryError` as `parameters`, in each `onQuery` event, and in the server
   * messages that quote a value. Off by default, because parameters hold
   * passwords and personal data: then no error, event or message carries
   * them (quoted values are replaced by `…`).
   */
  debugParameters?: boolean;
  /**
   * For test suites: the instance runs everything in one transaction on one
   * primary connection, opened by the first query and rolled back by
   * `close()`, so a test leaves nothing behind. `transaction()` and
   * `begin()` become savepoints of it (their `isolation` and `readOnly` do
   * not apply), replica scopes read from it too (a replica could not see
   * its rows), and top-level transactions run one at a time. On Postgres
   * each top-level statement runs in a savepoint of its own, so one that
   * fails does not abort the outer transaction. Default false.
   */
  forceRollback?: boolean;
}

/** A replica with its options resolved. */
export interface ResolvedReplica {
  /** Its parsed URL. */
  url: DatabaseUrl;
  /** Its pool settings. */
  pool: ResolvedPoolOptions;
}

/** Options with defaults applied. */
export interface ResolvedOptions {
  /** The primary's URL, with the options that travel in URLs applied. */
  url: DatabaseUrl;
  /** The registry name, if any. */
  name: string | undefined;
  /** The driver option as given. */
  driver: DriverName | Driver | undefined;
  /** Pool settings with every default filled in. */
  pool: ResolvedPoolOptions;
  /** The replicas, parsed. */
  replicas: ResolvedReplica[];
  /** Routing settings with every default filled in. */
  routing: ResolvedRoutingOptions;
  /** The query hook, if any. */
  onQuery: QueryHook | undefined;
  /** Who owns connections. */
  connectionScope: "instance" | "context";
  /** Whether errors and events carry query parameters. */
  debugParameters: boolean;
  /** Whether everything runs in one transaction rolled back at close. */
  forceRollback: boolean;
}

const optionKeys = [
  "name",
  "driver",
  "pool",
  "replicas",
  "routing",
  "onQuery",
  "connectionScope",
  "statementTimeout",
  "debugParameters",
  "forceRollback",
];
const routingKeys = Object.keys(routingDefaults);
const poolKeys = Object.keys(poolDefaults) as (keyof PoolOptions)[];

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function checkKeys(value: Record<string, unknown>, known: readonly string[], what: string): void {
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) throw new ConfigError(`unknown ${what} "${key}" (known: ${known.join(", ")})`);
  }
}

function resolvePool(pool: unknown, url: DatabaseUrl): ResolvedPoolOptions {
  if (pool !== undefined && !isObject(pool)) throw new ConfigError("the pool option must be an object");
  const given = pool ?? {};
  checkKeys(given, poolKeys, "pool option");
  const resolved = { ...poolDefaults };
  for (const key of poolKeys) {
    const value = given[key];
    if (value === undefined) continue;
    if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
      throw new ConfigError(`pool.${key} must be a non-negative integer (milliseconds for durations)`);
    }
    resolved[key] = value;
  }
  if (resolved.max < 1) throw new ConfigError("pool.max must be at least 1");
  if (resolved.min > resolved.max) throw new ConfigError("pool.min must not exceed pool.max");
  if (url.inMemory || url.embedded) {
    // Each SQLite connection to :memory: is a separate, empty database, and a
    // PGlite database is one connection in this process (a second on its
    // directory would corrupt it; a new one takes a second or more to start):
    // the instance keeps exactly one, for its whole life.
    return { ...resolved, min: Math.min(resolved.min, 1), max: 1, idleTimeout: 0, maxLifetime: 0 };
  }
  if (url.bound) {
    // A D1 connection is a D1 session over the binding, and costs nothing: one per pool keeps a context's
    // statements in one session (its reads see its writes), shared by its concurrent statements.
    return { ...resolved, min: 0, max: 1, idleTimeout: 0, maxLifetime: 0 };
  }
  return resolved;
}

/** The URL with the statement timeout option set, when one is given (refused behind a transaction pooler). */
function withTimeout(url: DatabaseUrl, timeout: number | undefined): DatabaseUrl {
  if (timeout === undefined) return checkPooled(url);
  return checkPooled(
    new DatabaseUrl(
      { ...url, hosts: url.hosts, options: { ...url.options, statement_timeout: timeout } },
      url.password(),
    ),
  );
}

function resolveReplicas(
  replicas: unknown,
  primary: DatabaseUrl,
  pool: unknown,
  timeout: number | undefined,
): ResolvedReplica[] {
  if (replicas === undefined) return [];
  if (!Array.isArray(replicas)) throw new ConfigError("the replicas option must be an array of URLs");
  return replicas.map((replica: unknown, i) => {
    const given = typeof replica === "string" ? { url: replica } : replica;
    if (!isObject(given) || typeof given.url !== "string") {
      throw new ConfigError(`replicas[${i}] must be a URL or an object with a url`);
    }
    checkKeys(given, ["url", "pool"], `replicas[${i}] option`);
    const url = parseDatabaseUrl(given.url);
    if (url.dialect !== primary.dialect) {
      throw new ConfigError(`replicas[${i}] is a ${url.dialect} URL, but the primary is ${primary.dialect}`);
    }
    if (url.bound || primary.bound) {
      throw new ConfigError(
        `replicas[${i}]: D1 replicates itself (see the d1 driver's session option)`,
      );
    }
    if (url.inMemory || url.embedded || primary.embedded) {
      throw new ConfigError(`replicas[${i}]: an in-memory or PGlite database has no replicas`);
    }
    return { url: withTimeout(url, timeout), pool: resolvePool(given.pool ?? pool, url) };
  });
}

function positiveInteger(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value > 0;
}

function resolveRouting(routing: unknown): ResolvedRoutingOptions {
  if (routing === undefined) return routingDefaults;
  if (!isObject(routing)) throw new ConfigError("the routing option must be an object");
  checkKeys(routing, routingKeys, "routing option");
  const given = routing as RoutingOptions;
  const recheckAfter = given.recheckAfter ?? routingDefaults.recheckAfter;
  const resolved: ResolvedRoutingOptions = {
    reads: given.reads ?? routingDefaults.reads,
    picker: given.picker ?? routingDefaults.picker,
    readYourWrites: given.readYourWrites ?? routingDefaults.readYourWrites,
    fallback: given.fallback ?? routingDefaults.fallback,
    recheckAfter,
    // A first recheck later than the default cap raises the cap with it.
    maxRecheckAfter: given.maxRecheckAfter ??
      Math.max(routingDefaults.maxRecheckAfter, typeof recheckAfter === "number" ? recheckAfter : 0),
    maxLag: given.maxLag ?? 0, // checked by src/lag_watch.ts
  };
  const { reads, picker, readYourWrites, fallback, maxRecheckAfter } = resolved;
  if (reads !== "primary" && reads !== "replicas") {
    throw new ConfigError('routing.reads must be "primary" or "replicas"');
  }
  if (typeof picker !== "function" && !["round-robin", "random", "least-busy"].includes(picker)) {
    throw new ConfigError('routing.picker must be "round-robin", "random", "least-busy" or a function');
  }
  if (readYourWrites !== 0 && !positiveInteger(readYourWrites)) {
    throw new ConfigError("routing.readYourWrites must be a non-negative integer (milliseconds)");
  }
  if (fallback !== "primary" && fallback !== "error") {
    throw new ConfigError('routing.fallback must be "primary" or "error"');
  }
  if (!positiveInteger(recheckAfter) || !positiveInteger(maxRecheckAfter) || maxRecheckAfter < recheckAfter) {
    throw new ConfigError(
      "routing.recheckAfter and routing.maxRecheckAfter must be positive integers (milliseconds), " +
        "maxRecheckAfter at least recheckAfter",
    );
  }
  return resolved;
}

/** Refuses the `wsproxy` URL option unless the driver is `neon`, the one driver that goes through a WebSocket proxy. */
function checkWebSocketProxy(driver: DriverName | Driver | undefined, urls: readonly DatabaseUrl[]): void {
  const name = typeof driver === "object" ? driver.name : driver;
  if (name !== "neon" && urls.some((url) => url.options.wsproxy !== undefined)) {
    throw new ConfigError(
      'URL option "wsproxy" is for the "neon" driver only',
    );
  }
}

/**
 * Validates options and fills in defaults; `url` comes back with the
 * options that travel in it (`statementTimeout`) applied.
 */
export function resolveOptions(options: unknown, url: DatabaseUrl): ResolvedOptions {
  if (!isObject(options)) throw new ConfigError("Database options must be an object");
  checkKeys(options, optionKeys, "Database option");
  const {
    name,
    driver,
    onQuery,
    connectionScope = runtime === "workerd" ? "context" : "instance",
    statementTimeout,
    debugParameters = false,
    forceRollback = false,
  } = options;
  if (name !== undefined && (typeof name !== "string" || name.trim() === "")) {
    throw new ConfigError("the name option must be a non-empty string");
  }
  if (
    driver !== undefined && typeof driver !== "string" && !(isObject(driver) && typeof driver.connect === "function")
  ) {
    throw new ConfigError("the driver option must be a driver name or a driver object");
  }
  if (onQuery !== undefined && typeof onQuery !== "function") {
    throw new ConfigError("the onQuery option must be a function");
  }
  // At most what the servers take (a 32-bit count of milliseconds), as the URL's statement_timeout.
  if (statementTimeout !== undefined && !(positiveInteger(statementTimeout) && statementTimeout <= mostMilliseconds)) {
    throw new ConfigError(
      `the statementTimeout option must be a whole number of milliseconds from 1 to ${mostMilliseconds}`,
    );
  }
  if (typeof debugParameters !== "boolean") throw new ConfigError("the debugParameters option must be true or false");
  if (typeof forceRollback !== "boolean") throw new ConfigError("the forceRollback option must be true or false");
  if (forceRollback && connectionScope === "context") {
    throw new ConfigError(
      'forceRollback keeps one connection for the instance, which connectionScope "context" forbids',
    );
  }
  if (connectionScope !== "instance" && connectionScope !== "context") {
    throw new ConfigError('the connectionScope option must be "instance" or "context"');
  }
  if (connectionScope === "context" && (url.inMemory || url.embedded)) {
    throw new ConfigError(
      'connectionScope "context" cannot keep an in-memory SQLite or a PGlite database, which lives in one connection',
    );
  }
  // SQLite and PGlite run a statement in this process, where nothing can cancel it (docs/drivers.md).
  const timeout = url.dialect === "sqlite" || url.embedded ? undefined : statementTimeout as number | undefined;
  const replicas = resolveReplicas(options.replicas, url, options.pool, timeout);
  checkWebSocketProxy(driver as DriverName | Driver | undefined, [url, ...replicas.map((replica) => replica.url)]);
  return {
    url: withTimeout(url, timeout),
    name: name as string | undefined,
    driver: driver as DriverName | Driver | undefined,
    pool: resolvePool(options.pool, url),
    replicas,
    routing: resolveRouting(options.routing),
    onQuery: onQuery as QueryHook | undefined,
    connectionScope,
    debugParameters,
    forceRollback,
  };
}
