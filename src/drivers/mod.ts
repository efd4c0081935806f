/**
 * Picks a driver for a dialect on the current runtime, loading it lazily so
 * the core never imports a driver it does not use.
 *
 * Each driver's module is imported by a literal specifier (`load` below), so
 * Deno's tools see every driver: `deno install` and `deno cache` fetch them
 * (and the packages they import), the lockfile pins them, and `deno compile`
 * includes them, which is what a Deno program from JSR that runs offline or
 * with `--frozen` needs. The npm build turns each into a specifier computed
 * at run time (scripts/build.ts, through `importDriverModule`), so a bundler
 * (esbuild, wrangler, Vite) never follows them there: a bundle holds only the
 * drivers its code imports itself and passes as the `driver` option, which is
 * how Workers and other bundled targets load one, and needs none of the
 * optional peer packages (postgres, mysql2, @electric-sql/pglite) it does
 * not use.
 *
 * The drivers live by dialect: `postgres/`, `mysql/`, `sqlite/`, each with
 * the pieces every driver of that dialect uses (values, errors, session
 * set-up, cursors), and `shared/` for what all dialects share (batches,
 * error translation, TLS, JSR loading, the Bun.SQL client). Adding a driver
 * is its module in its dialect's folder plus its entry in `drivers` below,
 * whose `load` is `() => import("./<dialect>/<module>.ts")` (and its name in
 * `DriverName`).
 *
 * Loading this module installs the registry for `./option.ts`: the main
 * entry (`mod.ts`) and the CLI import it; the Worker entry (`edge.ts`) does
 * not, so a Worker bundle carries none of it.
 *
 * @module
 */
import type { DialectName } from "../dialect.ts";
import type { Driver } from "../driver.ts";
import { ConfigError } from "../errors.ts";
import { runtime, type RuntimeName } from "../runtime.ts";
import { oneLine } from "./shared/jsr.ts";
import { installRegistry, passDriverObject } from "./option.ts";
import { siblingModule } from "./shared/sibling.ts";

/** The drivers Roost ships, by the name the `driver` option takes. */
export type DriverName =
  | "node-sqlite"
  | "bun-sqlite"
  | "deno-sqlite"
  | "postgres-js"
  | "deno-postgres"
  | "bun-sql"
  | "mysql2"
  | "pglite"
  | "neon";

/** A driver's module, as its `load` imports it. */
type DriverModule = Record<string, unknown>;

/**
 * Imports a driver module under this directory (`path` without extension)
 * by a specifier no bundler resolves. The npm build rewrites each `load`
 * below, the literal import of `./sqlite/node_sqlite.js`, into
 * `() => importDriverModule("sqlite/node_sqlite")` (scripts/build.ts).
 */
export async function importDriverModule(path: string): Promise<DriverModule> {
  return await import(siblingModule(path, import.meta.url).href);
}

/**
 * One driver Roost ships: how to import its module under `src/drivers/`, the export of that module for each dialect it speaks, the
 * runtimes it runs on, and what it needs besides Roost (an npm or JSR
 * package to install, or the runtime feature it is built on), for the
 * message when it cannot load. The export is also what to import from
 * `@roost/db/drivers/<name>` to pass the driver object yourself.
 */
interface DriverEntry {
  /** Imports the driver's module, by a literal specifier (see the module comment). */
  load: () => Promise<DriverModule>;
  dialects: Partial<Record<DialectName, string>>;
  runtimes: readonly RuntimeName[];
  package?: string;
  builtin?: string;
  /** The URL scheme this driver alone opens (`pglite:`), where it opens no server URL. */
  scheme?: string;
}

/** The registry of drivers: adding a driver is one line here (and its module). */
const drivers: Record<DriverName, DriverEntry> = {
  "node-sqlite": {
    load: () => import("./sqlite/node_sqlite.ts"),
    dialects: { sqlite: "nodeSqlite" },
    runtimes: ["node", "deno"],
    builtin: "node:sqlite (Node.js >= 22.13, or Deno)",
  },
  "bun-sqlite": {
    load: () => import("./sqlite/bun_sqlite.ts"),
    dialects: { sqlite: "bunSqlite" },
    runtimes: ["bun"],
    builtin: "bun:sqlite (Bun)",
  },
  "deno-sqlite": {
    load: () => import("./sqlite/deno_sqlite.ts"),
    dialects: { sqlite: "denoSqlite" },
    runtimes: ["deno"],
    package: "jsr:@db/sqlite",
  },
  "postgres-js": {
    load: () => import("./postgres/postgres_js.ts"),
    dialects: { postgres: "postgresJs" },
    runtimes: ["node", "deno", "bun", "workerd"],
    package: "postgres",
  },
  "deno-postgres": {
    load: () => import("./postgres/deno_postgres.ts"),
    dialects: { postgres: "denoPostgres" },
    runtimes: ["deno"],
    package: "jsr:@db/postgres",
  },
  "bun-sql": {
    load: () => import("./bun_sql.ts"),
    dialects: { postgres: "bunSqlPostgres", mysql: "bunSqlMysql" },
    runtimes: ["bun"],
    builtin: "Bun.SQL (Bun >= 1.2)",
  },
  "mysql2": {
    load: () => import("./mysql/mysql2.ts"),
    dialects: { mysql: "mysql2" },
    runtimes: ["node", "deno", "bun", "workerd"],
    package: "mysql2",
  },
  "pglite": {
    load: () => import("./postgres/pglite.ts"),
    dialects: { postgres: "pglite" },
    runtimes: ["node", "deno", "bun"],
    package: "@electric-sql/pglite",
    scheme: "pglite:",
  },
  "neon": {
    load: () => import("./postgres/neon.ts"),
    dialects: { postgres: "neon" },
    runtimes: ["node", "deno", "bun", "workerd"],
    package: "@neondatabase/serverless",
  },
};

/**
 * The driver each runtime uses when the `driver` option is absent. Each
 * default passes the whole behavioural suite on its runtime. On Bun,
 * Postgres runs on Bun.SQL (`bun-sql`, faster than postgres.js there, and
 * by Roost's value rules); MySQL stays on mysql2, as Bun.SQL counts changed
 * rather than matched rows in updates and reads a MySQL result whole.
 */
export const defaultDrivers: Readonly<Record<RuntimeName, Partial<Record<DialectName, DriverName>>>> = {
  node: { sqlite: "node-sqlite", postgres: "postgres-js", mysql: "mysql2" },
  deno: { sqlite: "node-sqlite", postgres: "postgres-js", mysql: "mysql2" },
  bun: { sqlite: "bun-sqlite", postgres: "bun-sql", mysql: "mysql2" },
  // A Worker is a bundle, which holds only the drivers it imports: it passes the driver object.
  workerd: {},
  unknown: { postgres: "postgres-js", mysql: "mysql2" },
};

/** The command that installs an npm package on the current runtime. */
function installCommand(name: string): string {
  if (name.startsWith("jsr:")) return `deno add ${name}`;
  if (runtime === "bun") return `bun add ${name}`;
  if (runtime === "deno") return `deno add npm:${name}`;
  return `npm i ${name}`;
}

/** The running runtime's name and version, for messages. */
function runtimeVersion(): string {
  const facts = globalThis as { Bun?: { version?: string }; Deno?: { version?: { deno?: string } } };
  const process = (globalThis as { process?: { version?: string } }).process;
  if (runtime === "bun") return `Bun ${facts.Bun?.version ?? "?"}`;
  if (runtime === "deno") return `Deno ${facts.Deno?.version?.deno ?? "?"}`;
  return runtime === "node" ? `Node.js ${process?.version ?? "?"}` : runtime;
}

/**
 * The `ConfigError` (`ROOST_DRIVER_UNAVAILABLE`) for a driver whose module
 * failed to load: it names the dialect, the driver, what to install (or the
 * runtime it needs), the way round it (pass the driver object) and the
 * underlying error's message on one line.
 */
export function driverUnavailable(dialect: DialectName, name: DriverName, error: unknown): ConfigError {
  const entry = drivers[name];
  const fix = entry.package !== undefined
    ? `install the package "${entry.package}" (${installCommand(entry.package)})`
    : `it needs ${entry.builtin}, and this is ${runtimeVersion()}`;
  const exported = entry.dialects[dialect] ?? Object.values(entry.dialects)[0];
  return new ConfigError(
    `the ${dialect} driver "${name}" could not be loaded: ${fix}; a bundle imports the driver itself and passes ` +
      `it: import { ${exported} } from "@roost/db/drivers/${name}" and new Database(url, { driver: ${exported} }) ` +
      `(the import failed with: ${oneLine(error)})`,
    { code: "ROOST_DRIVER_UNAVAILABLE", cause: error },
  );
}

/** True when `name` is a driver Roost ships. */
export function isDriverName(name: string): name is DriverName {
  return Object.hasOwn(drivers, name);
}

/**
 * The drivers that speak `dialect` on `on` (the current runtime unless
 * given), the default first: those for the dialect's own URLs, or with
 * `scheme` those that open URLs of that scheme (`pglite:`).
 */
export function availableDrivers(dialect: DialectName, on: RuntimeName = runtime, scheme?: string): DriverName[] {
  const names = (Object.keys(drivers) as DriverName[])
    .filter((name) => drivers[name].runtimes.includes(on) && drivers[name].dialects[dialect] !== undefined)
    .filter((name) => drivers[name].scheme === scheme);
  const preferred = defaultDrivers[on][dialect];
  return preferred === undefined || !names.includes(preferred)
    ? names
    : [preferred, ...names.filter((name) => name !== preferred)];
}

/**
 * Resolves a driver name, or the runtime's default when none is given, to a
 * loader (the registry `./option.ts` consults). Validation happens now;
 * loading at the first connection.
 */
export function resolveDriverName(
  dialect: DialectName,
  option: DriverName | undefined,
  scheme?: string,
): () => Promise<Driver> {
  // A scheme of its own (pglite:) is opened by its driver alone, which opens nothing else.
  const own = (Object.keys(drivers) as DriverName[]).find((name) => scheme && drivers[name].scheme === scheme);
  if (option !== undefined && isDriverName(option) && drivers[option].scheme !== (own && scheme)) {
    throw new ConfigError(
      own === undefined
        ? `driver "${option}" opens ${drivers[option].scheme} URLs (pglite::memory:, pglite:path/to/dir), not a server`
        : `a ${scheme} URL is opened by the "${own}" driver, not by "${option}"`,
    );
  }
  const name = option ?? own ?? defaultDrivers[runtime][dialect];
  // On workerd a bundle imports its driver itself.
  if (name === undefined) throw passDriverObject(dialect);
  if (!isDriverName(name)) {
    throw new ConfigError(`unknown driver "${String(name)}" (known: ${Object.keys(drivers).join(", ")})`);
  }
  const entry = drivers[name];
  const exported = entry.dialects[dialect];
  if (exported === undefined) {
    throw new ConfigError(
      `driver "${name}" speaks ${Object.keys(entry.dialects).join(" and ")}, but the URL is for ${dialect}`,
    );
  }
  if (!entry.runtimes.includes(runtime)) {
    throw new ConfigError(`driver "${name}" runs on ${entry.runtimes.join(", ")}, not on ${runtime}`);
  }
  return async () => {
    try {
      return (await entry.load())[exported] as Driver;
    } catch (error) {
      // The JSR drivers say why themselves, with the same code.
      if (error instanceof ConfigError && error.code === "ROOST_DRIVER_UNAVAILABLE") throw error;
      throw driverUnavailable(dialect, name, error);
    }
  };
}

installRegistry(resolveDriverName);
