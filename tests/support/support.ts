/**
 * Shared test helpers: the databases every behavioural test runs against,
 * unique names so runtimes can share a server, and cleanup.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import type { TestOptions } from "node:test";
import { fileURLToPath } from "node:url";
import { ConfigError, Database, type DatabaseOptions, type DialectName, type DriverName, sql } from "../mod.ts";
import { availableDrivers } from "../src/drivers/mod.ts";

/** The runtime running the tests. */
export const runtime: string = "Bun" in globalThis ? "bun" : "Deno" in globalThis ? "deno" : "node";

/** A database the behavioural suite runs against, through one driver. */
export interface Target {
  /** Shown in test names as `[place · driver]`; `tests/run.ts` counts results by it. */
  label: string;
  dialect: DialectName;
  /** The driver every instance of this target uses. */
  driver: DriverName;
  /** Opens a fresh instance on this target. */
  open(options?: DatabaseOptions): Database;
  /** The URL instances open. */
  url: string;
  /** Where this driver cannot follow Roost's value rules (each one is listed in README's Values section). */
  quirks: ReadonlySet<Quirk>;
}

/**
 * A documented divergence of one driver. `json-params-by-value`: Bun.SQL
 * types a json/jsonb parameter by its JavaScript value, so a string is stored
 * as a JSON string (not parsed as JSON text) and a bare number is refused.
 */
export type Quirk = "json-params-by-value";

const quirksOf = (dialect: DialectName, driver: DriverName): Quirk[] =>
  driver === "bun-sql" && dialect === "postgres" ? ["json-params-by-value"] : [];

let counter = 0;

/** A name no other test, runtime or run uses at the same time. */
export function uniqueName(prefix = "t"): string {
  counter++;
  return `${prefix}_${runtime}_${Date.now().toString(36)}_${counter}_${Math.random().toString(36).slice(2, 6)}`;
}

/** A unique quoted table identifier. */
export function uniqueTable(prefix = "t"): ReturnType<typeof sql.ident> {
  return sql.ident(uniqueName(prefix));
}

const scratch = mkdtempSync(join(tmpdir(), "roost-test-"));
let removeScheduled = false;

/** A path for a SQLite file in a temporary directory removed when the process exits. */
export function tempDatabasePath(name = uniqueName("db")): string {
  if (!removeScheduled) {
    removeScheduled = true;
    globalThis.addEventListener?.("unload", () => rmSync(scratch, { recursive: true, force: true }));
    (globalThis as { process?: { on?(event: string, fn: () => void): void } }).process?.on?.(
      "exit",
      () => rmSync(scratch, { recursive: true, force: true }),
    );
  }
  return join(scratch, `${name}.db`);
}

function target(place: string, dialect: DialectName, driver: DriverName, url: string): Target {
  return {
    label: `[${place} · ${driver}]`,
    dialect,
    driver,
    url,
    open: (options) => new Database(url, { driver, ...options }),
    quirks: new Set(quirksOf(dialect, driver)),
  };
}

const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env ?? {};

/** True in CI, where an unreachable server is a failure, never a skip. */
export const inCi: boolean = env.CI === "true" || env.CI === "1";

/** The places the suite runs: SQLite always, the servers from the environment or the local defaults. */
const places: { place: string; dialect: DialectName; url: string; server: boolean; drivers?: DriverName[] }[] = [
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
    url: env.ROOST_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test",
    server: true,
  },
  {
    place: "mysql",
    dialect: "mysql",
    url: env.ROOST_TEST_MYSQL_URL ?? "mysql://root@127.0.0.1:3306/test",
    server: true,
  },
];

const reason = (error: unknown) => error instanceof Error ? error.message : String(error);

/**
 * Opens one connection through the target's driver. A server that cannot be
 * reached is skipped locally and fails CI; so is a driver whose package cannot
 * be loaded (the JSR ones, where neither JSR nor the local mirror tests/run.ts
 * serves can be reached), with the reason printed.
 */
async function usable(candidate: Target, server: boolean): Promise<boolean> {
  const db = candidate.open({ pool: { acquireTimeout: 5_000 } });
  try {
    await db.connect();
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

const candidates = places.flatMap(({ place, dialect, url, server, drivers }) =>
  availableDrivers(dialect).filter((driver) => drivers?.includes(driver) ?? true)
    .filter((driver) => onlyDrivers?.includes(driver) ?? true)
    .map((driver) => ({ target: target(place, dialect, driver, url), server }))
);

const usableTargets: Target[] = (await Promise.all(
  candidates.map(async ({ target, server }) => (await usable(target, server)) ? target : undefined),
)).filter((candidate) => candidate !== undefined);

/** Every database and driver the suite runs against on this machine. */
export function targets(): Target[] {
  return usableTargets;
}

/** One target per server dialect (Postgres, MySQL), for tests about a server rather than a driver. */
export function serverTargets(): Target[] {
  return usableTargets.filter((target, i, all) =>
    target.dialect !== "sqlite" && all.findIndex((other) => other.dialect === target.dialect) === i
  );
}

/**
 * The major version of the postgres.js (npm `postgres`) this runtime loads:
 * 3, or 4 where `postgres` is mapped to the `postgres-v4` devDependency
 * (tests/run.ts's `node-pg4` runner); 0 where it is not installed. Read from
 * the package.json of the package `postgres` resolves to.
 */
export const postgresJsMajor: number = (() => {
  try {
    const manifest = new URL("../package.json", import.meta.resolve("postgres"));
    return Number(JSON.parse(readFileSync(manifest, "utf8")).version.split(".")[0]);
  } catch {
    return 0;
  }
})();

/** A finished script: its exit code and output. */
export interface ScriptRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

const repository = fileURLToPath(new URL("..", import.meta.url));

/**
 * Runs a script of the repository (`examples/…`) to its end under this
 * runtime, from the repository's root, with `args` after it and `env` over
 * this process's environment (an undefined value removes a variable).
 */
export function runScript(
  script: string,
  args: readonly string[] = [],
  env: Record<string, string | undefined> = {},
): Promise<ScriptRun> {
  const merged: Record<string, string> = {};
  for (const [key, value] of Object.entries({ ...process.env, ...env })) if (value !== undefined) merged[key] = value;
  const child = spawn(process.execPath, runtime === "deno" ? ["run", "-A", script, ...args] : [script, ...args], {
    cwd: repository,
    env: merged,
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => stdout += chunk);
  child.stderr.on("data", (chunk) => stderr += chunk);
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
}

/**
 * The suite's one way to leave a test out where it does not apply: node:test
 * options (`options` kept) that skip it with `reason` unless `applies`.
 * node --test, bun test and deno test all report such a test as skipped
 * (Deno: an ignored step), so a test that does not apply never counts as a
 * pass. Skip tests, not describes: a skipped describe vanishes from Node's
 * and Bun's counts. Where a whole group cannot apply, do not define it.
 */
export function skipUnless(applies: boolean, reason: string, options: TestOptions = {}): TestOptions {
  return applies ? options : { ...options, skip: reason };
}

/**
 * Resolves as `promise` does, or fails naming `what` when it has not settled
 * within `ms`: a generous limit for "this happens instead of hanging", never
 * a measurement of how fast.
 */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** Column types that differ between dialects. */
export function columnType(dialect: DialectName, kind: "autoId" | "bytes"): string {
  const types = {
    autoId: {
      sqlite: "integer primary key",
      postgres: "serial primary key",
      mysql: "integer auto_increment primary key",
    },
    bytes: { sqlite: "blob", postgres: "bytea", mysql: "longblob" },
  };
  return types[kind][dialect];
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A promise with its resolve function, for ordering concurrent tasks. */
export function signal(): { promise: Promise<void>; resolve(): void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => resolve = r);
  return { promise, resolve };
}

/** Polls `probe` until `check` holds, failing with `what` and the last value seen after `ms`. */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T> | T,
  check: (value: T) => boolean,
  ms = 5_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (check(value)) return value;
    if (Date.now() > deadline) throw new Error(`expected ${what} within ${ms} ms; last seen: ${JSON.stringify(value)}`);
    await sleep(20);
  }
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
    const db = new Database(this.url);
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

  /** How many connections the server has to the database. */
  async connections(): Promise<number> {
    return (await this.backends()).length;
  }

  /** Waits until the server has `n` connections to the database. */
  connectionsAre(n: number, what: string, ms?: number): Promise<number> {
    return eventually(`${what}: ${n} server connections`, () => this.connections(), (count) => count === n, ms);
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
