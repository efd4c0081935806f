/**
 * Picks a driver for a dialect on the current runtime, loading it lazily so
 * the core never imports a driver it does not use.
 *
 * @module
 */
import type { DialectName } from "../dialect.ts";
import type { Driver } from "../driver.ts";
import { ConfigError } from "../errors.ts";
import { runtime, type RuntimeName } from "../runtime.ts";

/** The drivers Roost ships, by the name the `driver` option takes. */
export type DriverName = "node-sqlite" | "bun-sqlite" | "postgres-js" | "mysql2";

interface DriverEntry {
  dialect: DialectName;
  runtimes: readonly RuntimeName[];
  load(): Promise<Driver>;
}

const drivers: Record<DriverName, DriverEntry> = {
  "node-sqlite": {
    dialect: "sqlite",
    runtimes: ["node", "deno"],
    load: () => import("./node_sqlite.ts").then((m) => m.nodeSqlite),
  },
  "bun-sqlite": {
    dialect: "sqlite",
    runtimes: ["bun"],
    load: () => import("./bun_sqlite.ts").then((m) => m.bunSqlite),
  },
  "postgres-js": {
    dialect: "postgres",
    runtimes: ["node", "deno", "bun", "workerd"],
    load: () => import("./postgres_js.ts").then((m) => m.postgresJs),
  },
  "mysql2": {
    dialect: "mysql",
    runtimes: ["node", "deno", "bun", "workerd"],
    load: () => import("./mysql2.ts").then((m) => m.mysql2),
  },
};

const defaults: Partial<Record<RuntimeName, Partial<Record<DialectName, DriverName>>>> = {
  node: { sqlite: "node-sqlite", postgres: "postgres-js", mysql: "mysql2" },
  deno: { sqlite: "node-sqlite", postgres: "postgres-js", mysql: "mysql2" },
  bun: { sqlite: "bun-sqlite", postgres: "postgres-js", mysql: "mysql2" },
  workerd: { postgres: "postgres-js", mysql: "mysql2" },
};

/** True when `name` is a driver Roost ships. */
export function isDriverName(name: string): name is DriverName {
  return Object.hasOwn(drivers, name);
}

/**
 * Resolves the `driver` option (a name, a driver object, or nothing for the
 * runtime's default) to a loader. Validation happens now; loading at the
 * first connection.
 */
export function driverLoader(dialect: DialectName, option: DriverName | Driver | undefined): () => Promise<Driver> {
  if (typeof option === "object" && option !== null) {
    if (option.dialect !== dialect) {
      throw new ConfigError(`driver "${option.name}" speaks ${option.dialect}, but the URL is for ${dialect}`);
    }
    return () => Promise.resolve(option);
  }
  const name = option ?? defaults[runtime]?.[dialect];
  if (name === undefined) {
    throw new ConfigError(`no default ${dialect} driver on ${runtime}: pass the driver option`);
  }
  if (!isDriverName(name)) {
    throw new ConfigError(`unknown driver "${String(name)}" (known: ${Object.keys(drivers).join(", ")})`);
  }
  const entry = drivers[name];
  if (entry.dialect !== dialect) {
    throw new ConfigError(`driver "${name}" speaks ${entry.dialect}, but the URL is for ${dialect}`);
  }
  if (!entry.runtimes.includes(runtime)) {
    throw new ConfigError(`driver "${name}" runs on ${entry.runtimes.join(", ")}, not on ${runtime}`);
  }
  return entry.load;
}
