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
import type { DatabaseUrl } from "./url.ts";

/** The options of `new Database(url, options)`. */
export interface DatabaseOptions {
  /**
   * Registers the instance under this name, so `Database.get(name)` finds it
   * anywhere in the program. A taken name is a `RegistryError`.
   */
  name?: string;
  /**
   * The driver: the name of one Roost ships, or a driver object (for bundles
   * that must not load drivers lazily). Default: the runtime's own (see the
   * README's driver matrix).
   */
  driver?: DriverName | Driver;
  /** Pool limits and timeouts; see {@linkcode PoolOptions} for the defaults. */
  pool?: PoolOptions;
}

/** Options with defaults applied. */
export interface ResolvedOptions {
  /** The registry name, if any. */
  name: string | undefined;
  /** The driver option as given. */
  driver: DriverName | Driver | undefined;
  /** Pool settings with every default filled in. */
  pool: ResolvedPoolOptions;
}

const optionKeys = ["name", "driver", "pool"];
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
  if (url.inMemory) {
    // Each SQLite connection to :memory: is a separate, empty database: the
    // instance keeps exactly one, for its whole life.
    return { ...resolved, min: Math.min(resolved.min, 1), max: 1, idleTimeout: 0, maxLifetime: 0 };
  }
  return resolved;
}

/** Validates options and fills in defaults. */
export function resolveOptions(options: unknown, url: DatabaseUrl): ResolvedOptions {
  if (!isObject(options)) throw new ConfigError("Database options must be an object");
  checkKeys(options, optionKeys, "Database option");
  const { name, driver } = options;
  if (name !== undefined && (typeof name !== "string" || name.trim() === "")) {
    throw new ConfigError("the name option must be a non-empty string");
  }
  if (
    driver !== undefined && typeof driver !== "string" && !(isObject(driver) && typeof driver.connect === "function")
  ) {
    throw new ConfigError("the driver option must be a driver name or a driver object");
  }
  return {
    name: name as string | undefined,
    driver: driver as DriverName | Driver | undefined,
    pool: resolvePool(options.pool, url),
  };
}
