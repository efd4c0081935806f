/**
 * The databases the behavioural suite runs against, and the one way to
 * restrict a test to some of them.
 *
 * A target is one place (`sqlite memory`, `sqlite file`, `sqlite worker`,
 * `postgres`, `pglite`, `mysql`, and the Postgres server through a PgBouncer
 * of the process's own, `pgbouncer transaction` and `pgbouncer session`:
 * tests/support/pgbouncer.ts) through one driver, shown in test names as
 * `[place · driver]`. Importing this module probes every target once (a
 * server that cannot be reached is skipped locally, with a `SKIPPING` line,
 * and fails CI), so only behaviour tests import it; tests/unit/ never does.
 *
 * Restricting tests, the one way:
 *
 *   // a group of tests: define it only for the targets it is about
 *   for (const target of targets({ dialects: ["postgres"] })) {
 *     describe(`server restart on ${target.label}`, () => { … });
 *   }
 *   targets({ drivers: ["postgres-js", "bun-sql"] })      // by driver
 *   targets({ places: ["sqlite file", "postgres", "mysql"] })  // by place (here: no in-memory database)
 *   targets({ dialects: serverDialects, onePerDialect: true }) // one target per server, for tests of a server
 *
 *   // one test inside a per-target group: skip it, reported as a skip
 *   test("SQLite's extended result codes", skipUnless(matches(target, { dialects: ["sqlite"] }), "SQLite only"), …);
 *
 * `ROOST_TEST_DRIVERS=postgres-js,node-sqlite` narrows every `targets()` of a
 * run from outside (tests/run.ts's `node-pg4` runner uses it), as
 * `ROOST_TEST_PLACES="pgbouncer transaction"` does by place;
 * `ROOST_TEST_PGBOUNCER` picks the PgBouncer targets (see `pgbouncerDrivers`).
 * Behind PgBouncer in transaction mode a test that needs one server session
 * for a connection's life is a skip with `notTransactionPooled`'s reason
 * (`transactionPooled(target)`); tests of a server of one's own filter by
 * `serverPlaces`, which leaves the PgBouncer places out. A group that
 * applies nowhere on this machine is simply not defined (its targets are not
 * here, and the `SKIPPING` line says why); a test that does not apply to one
 * target is a skip, through `skipUnless` (tests/support/support.ts), never a
 * silent return.
 */
import {
  ConfigError,
  Database,
  type DatabaseOptions,
  type DialectName,
  type DriverName,
  parseDatabaseUrl,
  sql,
} from "../../mod.ts";
import { availableDrivers, resolveDriverName } from "../../src/drivers/mod.ts";
import { startPgBouncer } from "./pgbouncer.ts";
import { eventually, inCi, runtime, serverUrls, tempDatabasePath, uniqueName } from "./support.ts";
import { startWsProxy } from "./ws_proxy.ts";

/** Where a target's database lives. */
export type Place =
  | "sqlite memory"
  | "sqlite file"
  | "sqlite worker"
  | "postgres"
  | "pglite"
  | "mysql"
  | "pgbouncer transaction"
  | "pgbouncer session";

/** A database the behavioural suite runs against, through one driver. */
export interface Target {
  /** Shown in test names as `[place · driver]`; `tests/run.ts` counts results by it. */
  label: string;
  place: Place;
  dialect: DialectName;
  /** The driver every instance of this target uses. */
  driver: DriverName;
  /** Opens a fresh instance on this target. */
  open(options?: DatabaseOptions): Database;
  /** The URL instances open. */
  url: string;
  /** Where this driver cannot follow Roost's value rules (each one is listed in docs/values.md). */
  quirks: ReadonlySet<Quirk>;
}

/**
 * A documented divergence of one driver, named here when a driver cannot
 * follow a value rule (bun-sql's json/jsonb parameters, which Bun.SQL binds
 * by JSON.stringify, follow Roost's rule through
 * src/drivers/postgres/json_params.ts): `"text-drops-leading-bom"`, pglite
 * reads text through a TextDecoder of its own that drops one leading U+FEFF,
 * beyond Roost's reach (docs/values.md).
 */
export type Quirk = "text-drops-leading-bom";

/** Which targets a test is about; a field left out means any. */
export interface TargetFilter {
  dialects?: readonly DialectName[];
  drivers?: readonly DriverName[];
  places?: readonly Place[];
  /** Only the first target of each dialect: for tests about a server rather than a driver. */
  onePerDialect?: boolean;
}

/** The dialects with a server (Postgres, MySQL/MariaDB). */
export const serverDialects: readonly DialectName[] = ["postgres", "mysql"];

/**
 * The places with a server of their own (not PGlite, Postgres in the test's
 * process): for tests of what only a server does (restarts, other sessions,
 * TLS, replicas, several connections).
 */
export const serverPlaces: readonly Place[] = ["postgres", "mysql"];

/** Why a test that needs one server session for a connection's life is skipped behind a transaction pooler. */
export const notTransactionPooled =
  "behind PgBouncer in transaction mode a connection has no server session of its own between transactions";

/** Why the migrator's tests are skipped behind a transaction pooler. */
export const migratorNeedsSession =
  "the migrator's lock needs a server session of its own, which PgBouncer in transaction mode does not give: it refuses (ROOST_MIGRATION_POOLED)";

/**
 * Where the session parameters Roost starts a session with (UTC, ISO dates)
 * are not set: deno-postgres can send them only in the `options` start-up
 * parameter, which PgBouncer does not forward, and behind a transaction
 * pooler a SET would land on a shared server session (docs/poolers.md).
 */
export function sessionParametersUnset(target: Target): string | undefined {
  return target.place === "pgbouncer transaction" && target.driver === "deno-postgres"
    ? "deno-postgres behind PgBouncer in transaction mode cannot set the session's TimeZone and DateStyle"
    : undefined;
}

/** Whether `target` is behind a pooler in transaction mode. */
export const transactionPooled = (target: Target): boolean => target.place === "pgbouncer transaction";

/** Why a test of a server's behaviour is skipped on PGlite. */
export const notPglite = "PGlite is one Postgres session inside this process (no server, socket or other sessions)";

const quirksOf = (_dialect: DialectName, driver: DriverName): Quirk[] =>
  driver === "pglite" ? ["text-drops-leading-bom"] : [];

function target(place: Place, dialect: DialectName, driver: DriverName, url: string): Target {
  return {
    label: `[${place} · ${driver}]`,
    place,
    dialect,
    driver,
    url,
    open: (options) => new Database(url, { driver, ...options }),
    quirks: new Set(quirksOf(dialect, driver)),
  };
}

const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env ?? {};

/**
 * `ROOST_TEST_PLACES` (comma-separated places, e.g. `pgbouncer transaction`)
 * limits the targets to those places, as `ROOST_TEST_DRIVERS` does to drivers.
 */
const onlyPlaces = env.ROOST_TEST_PLACES?.split(",").map((name) => name.trim()).filter((name) => name !== "");

const pgbouncerModes = ["transaction", "session"] as const;

/**
 * The drivers run through PgBouncer (both modes): every Postgres server
 * driver of this runtime (postgres-js, bun-sql, deno-postgres, and neon
 * through this process's WebSocket proxy), about 8 to 20 s per target;
 * neon's two modes take about 50 s summed on Node (whose files run in
 * parallel), 27 s on Bun and 55 s on Deno, measured on a 2-core machine.
 * `ROOST_TEST_PGBOUNCER=all` is the same; `narrow` keeps transaction mode
 * on the driver native to this runtime (postgres-js on Node, bun-sql on
 * Bun, deno-postgres on Deno) and session mode on postgres-js on Node; `off`
 * runs none (tests/run.ts's node-pg4 runner).
 */
function pgbouncerDrivers(mode: "transaction" | "session"): DriverName[] {
  const which = env.ROOST_TEST_PGBOUNCER ?? "all";
  if (which === "off") return [];
  if (which === "narrow") {
    const here = runtime === "bun" ? "bun-sql" : runtime === "deno" ? "deno-postgres" : "postgres-js";
    return mode === "transaction" || runtime === "node" ? [here] : [];
  }
  return ["postgres-js", "bun-sql", "deno-postgres", "neon"];
}

/** The places the suite runs: SQLite always, the servers from the environment or the local defaults. */
const places: {
  place: Place;
  dialect: DialectName;
  url: string;
  server: boolean;
  drivers?: DriverName[];
  /** The URL scheme of a place whose drivers open that scheme only (`pglite:`). */
  scheme?: string;
}[] = [
  { place: "sqlite memory", dialect: "sqlite", url: "sqlite::memory:", server: false },
  { place: "sqlite file", dialect: "sqlite", url: `sqlite://${tempDatabasePath()}`, server: false },
  {
    place: "sqlite worker",
    dialect: "sqlite",
    url: `sqlite://${tempDatabasePath()}?worker=true`,
    server: false,
    drivers: ["node-sqlite", "bun-sqlite"], // the drivers that can run in a worker thread
  },
  {
    place: "postgres",
    dialect: "postgres",
    url: serverUrls.postgres,
    server: true,
  },
  // Postgres compiled to WebAssembly, in memory: each instance is a new database (see docs/drivers.md).
  { place: "pglite", dialect: "postgres", url: "pglite::memory:", server: false, scheme: "pglite:" },
  {
    place: "mysql",
    dialect: "mysql",
    url: serverUrls.mysql,
    server: true,
  },
  ...pgbouncerModes.map((mode) => ({
    place: `pgbouncer ${mode}` as Place,
    dialect: "postgres" as DialectName,
    url: "", // known once this process's PgBouncer runs
    server: true,
    drivers: pgbouncerDrivers(mode),
  })),
];

const reason = (error: unknown) => error instanceof Error ? error.message : String(error);

/**
 * Opens one connection through the target's driver. A server that cannot be
 * reached is skipped locally and fails CI; so is a driver whose package cannot
 * be loaded (the JSR ones, where neither JSR nor the local mirror tests/run.ts
 * serves can be reached), with the reason printed.
 */
async function usable(candidate: Target, server: boolean, embedded: boolean): Promise<boolean> {
  const db = candidate.open({ pool: { acquireTimeout: 5_000 } });
  try {
    // A PGlite database takes seconds to start, and nothing can be unreachable: its driver loading is the probe.
    if (embedded) {
      await resolveDriverName(candidate.dialect, candidate.driver, parseDatabaseUrl(candidate.url).scheme)();
    } else await db.connect();
    return true;
  } catch (error) {
    if (error instanceof ConfigError && error.code === "ROOST_DRIVER_UNAVAILABLE") {
      // CI serves the JSR packages from a local mirror (tests/run.ts): there every driver must load.
      if (inCi) {
        throw new Error(`${candidate.label} could not load in CI, where every driver must run: ${reason(error)}`);
      }
      console.warn(`SKIPPING ${candidate.label}: ${reason(error)}`);
      return false;
    }
    if (!server) throw error;
    if (inCi) throw new Error(`${candidate.label} is unreachable in CI, where every server must run: ${reason(error)}`);
    console.warn(
      `SKIPPING ${candidate.label}: server unreachable (${reason(error)}); start it or set its ROOST_TEST_*_URL`,
    );
    return false;
  } finally {
    await db.close();
  }
}

/**
 * `ROOST_TEST_DRIVERS` (comma-separated driver names) limits the targets to
 * those drivers' (tests/run.ts's `node-pg4` runner: `postgres-js` only).
 */
const onlyDrivers = env.ROOST_TEST_DRIVERS?.split(",").map((name) => name.trim()).filter((name) => name !== "");

/**
 * The neon driver reaches Postgres through a WebSocket: one proxy
 * (tests/support/ws_proxy.ts) per test process serves its target, whose URL
 * names it in `wsproxy`.
 */
const wsProxy = availableDrivers("postgres").includes("neon") && (onlyDrivers?.includes("neon") ?? true)
  ? await startWsProxy()
  : undefined;

/**
 * `url` as `driver` reaches it: for neon, through this process's WebSocket
 * proxy (for a test that makes a server URL of its own, such as a standby's).
 */
export function reachedBy(driver: DriverName, url: string): string {
  if (driver !== "neon" || wsProxy === undefined) return url;
  const reached = new URL(url);
  reached.searchParams.set("wsproxy", wsProxy.address);
  return reached.toString();
}

const chosenPlaces = places.map((entry) => ({
  ...entry,
  drivers: availableDrivers(entry.dialect, undefined, entry.scheme).filter((driver) =>
    (entry.drivers?.includes(driver) ?? true) && (onlyDrivers?.includes(driver) ?? true) &&
    (onlyPlaces?.includes(entry.place) ?? true)
  ),
}));

/**
 * This process's PgBouncer, started only when a pgbouncer target is chosen.
 * Where pgbouncer is missing or fails to start, its targets are skipped
 * locally (a `SKIPPING` line) and fail CI.
 */
const pgbouncer = chosenPlaces.some((entry) => entry.place.startsWith("pgbouncer") && entry.drivers.length > 0)
  ? await startPgBouncer(serverUrls.postgres).catch((error) => {
    if (inCi) throw new Error(`PgBouncer could not start in CI, where its targets must run: ${reason(error)}`);
    for (const mode of pgbouncerModes) console.warn(`SKIPPING [pgbouncer ${mode}]: ${reason(error)}`);
    return undefined;
  })
  : undefined;
for (const entry of chosenPlaces) {
  if (!entry.place.startsWith("pgbouncer")) continue;
  const mode = entry.place.slice("pgbouncer ".length) as "transaction" | "session";
  if (pgbouncer === undefined) entry.drivers = [];
  else entry.url = `${pgbouncer.url(mode)}?pooler=${mode}`;
}

const candidates = chosenPlaces.flatMap(({ place, dialect, url, server, drivers, scheme }) =>
  drivers
    .map((driver) => ({
      target: target(place, dialect, driver, reachedBy(driver, url)),
      server,
      embedded: scheme !== undefined,
    }))
);

const usableTargets: Target[] = (await Promise.all(
  candidates.map(async ({ target, server, embedded }) => (await usable(target, server, embedded)) ? target : undefined),
)).filter((candidate) => candidate !== undefined);

/** Whether `target` is one `filter` is about. */
export function matches(target: Target, filter: TargetFilter): boolean {
  return (filter.dialects?.includes(target.dialect) ?? true) &&
    (filter.drivers?.includes(target.driver) ?? true) &&
    (filter.places?.includes(target.place) ?? true);
}

/**
 * The databases and drivers the suite runs against on this machine, in a
 * fixed order, narrowed to those `filter` is about (every one without it).
 */
export function targets(filter: TargetFilter = {}): Target[] {
  const chosen = usableTargets.filter((candidate) => matches(candidate, filter));
  return filter.onePerDialect
    ? chosen.filter((candidate, i) => chosen.findIndex((other) => other.dialect === candidate.dialect) === i)
    : chosen;
}

/**
 * A database of a suite's own on a server target, so server-side counts see
 * only the suite's connections whatever else runs on the server. The
 * observer is an instance on the target's own database, which creates,
 * counts and drops it.
 */
export class OwnDatabase {
  /** The database's name. */
  readonly name: string;
  /** Its URL (the target's, with this database). */
  readonly url: string;
  readonly #postgres: boolean;
  #observer: Database | undefined;
  readonly #target: Target;

  /** Names a database (`prefix` + unique suffix) on `target`'s server; nothing is created yet. */
  constructor(target: Target, prefix: string) {
    this.#target = target;
    this.#postgres = target.dialect === "postgres";
    this.name = uniqueName(prefix);
    const url = new URL(target.url);
    url.pathname = `/${this.name}`;
    this.url = url.toString();
  }

  /** The instance on the target's own database. */
  get observer(): Database {
    return this.#observer ??= this.#target.open({ pool: { max: 1 } });
  }

  /** Creates the database. */
  async create(): Promise<void> {
    await this.observer.execute(sql`create database ${sql.ident(this.name)}`);
  }

  /** The ids of the server's connections to the database, ascending. */
  async backends(): Promise<number[]> {
    const rows = await this.observer.fetchAll<{ id: number | string }>(
      this.#postgres
        ? sql`select pid as id from pg_stat_activity where datname = ${this.name} and backend_type = 'client backend'`
        : sql`select id from information_schema.processlist where db = ${this.name}`,
    );
    return rows.map((row) => Number(row.id)).sort((a, b) => a - b);
  }

  /** The names of the tables in the database, sorted. */
  async tables(): Promise<string[]> {
    const db = new Database(this.url, { driver: this.#target.driver });
    try {
      const rows = await db.fetchAll<{ name: string }>(
        this.#postgres
          ? sql`select table_name as name from information_schema.tables where table_schema = 'public'`
          : sql`select table_name as name from information_schema.tables where table_schema = database()`,
      );
      return rows.map((row) => row.name).sort();
    } finally {
      await db.close();
    }
  }

  /**
   * How many connections the clients hold to the database: the server's, or
   * on a PgBouncer target the pgbouncer's client connections (the server
   * connections behind them it keeps open by design, for its next clients).
   */
  async connections(): Promise<number> {
    const place = this.#target.place;
    if (place === "pgbouncer transaction" || place === "pgbouncer session") {
      return await pgbouncer!.clients(place === "pgbouncer session" ? "session" : "transaction", this.name);
    }
    return (await this.backends()).length;
  }

  /** Waits until the clients hold `n` connections to the database (see `connections`). */
  connectionsAre(n: number, what: string, ms?: number): Promise<number> {
    return eventually(`${what}: ${n} connections`, () => this.connections(), (count) => count === n, ms);
  }

  /** Drops the database (closing whatever still uses it) and closes the observer. */
  async drop(): Promise<void> {
    if (this.#observer === undefined) return;
    try {
      await this.#observer.execute(
        this.#postgres
          ? sql`drop database if exists ${sql.ident(this.name)} with (force)`
          : sql`drop database if exists ${sql.ident(this.name)}`,
      );
    } finally {
      await this.#observer.close();
      this.#observer = undefined;
    }
  }
}
