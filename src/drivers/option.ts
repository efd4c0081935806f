/**
 * Turns the `driver` option into a loader. A driver object needs nothing
 * more; a driver name, or no option (the runtime's default), needs the
 * registry of the drivers Roost ships (`./mod.ts`). The main entry installs
 * the registry; the Worker entry (`edge.ts`, which the `workerd`, `worker`
 * and `edge-light` export conditions pick) leaves it out, so a Worker bundle
 * carries neither the registry nor its messages: there a bundle imports its
 * driver and passes the object.
 *
 * @module
 */
import type { DialectName } from "../dialect.ts";
import type { Driver } from "../driver.ts";
import type { DriverName } from "./mod.ts";
import { ConfigError } from "../errors.ts";
import { runtime } from "../runtime.ts";

/**
 * Resolves a driver name, or the default for the URL's `scheme` on this
 * runtime when `name` is undefined, to a loader; throws `ConfigError` at once
 * when it cannot.
 */
export type DriverRegistry = (
  dialect: DialectName,
  name: DriverName | undefined,
  scheme?: string,
) => () => Promise<Driver>;

let registry: DriverRegistry | undefined;

/** Installs the registry that resolves driver names (done by `./mod.ts` when it loads). */
export function installRegistry(resolve: DriverRegistry): void {
  registry = resolve;
}

/**
 * The driver object a bundle imports for each dialect, and its module under
 * `@roost/db/drivers/`: what runs in a Worker. The registry's `workerd`
 * entries say the same (a unit test holds them together).
 */
export const bundledDrivers: Partial<Record<DialectName, { exported: string; name: DriverName }>> = {
  postgres: { exported: "postgresJs", name: "postgres-js" },
  mysql: { exported: "mysql2", name: "mysql2" },
};

/** The `ConfigError` for a bundle that names its driver, or names none, instead of passing the object. */
export function passDriverObject(dialect: DialectName): ConfigError {
  const bundled = bundledDrivers[dialect];
  return new ConfigError(
    bundled === undefined
      ? `no ${dialect} driver runs on ${runtime}`
      : `on ${runtime} a bundle holds only the drivers it imports, so pass the driver object: ` +
        `import { ${bundled.exported} } from "@roost/db/drivers/${bundled.name}" and ` +
        `new Database(url, { driver: ${bundled.exported} })`,
  );
}

/**
 * Resolves the `driver` option (a driver object, a name, or nothing for the
 * runtime's default) to a loader. Validation happens now; loading at the
 * first connection.
 */
export function driverLoader(
  dialect: DialectName,
  option: DriverName | Driver | undefined,
  scheme?: string,
): () => Promise<Driver> {
  if (typeof option === "object" && option !== null) {
    // The pglite driver opens pglite: URLs and the d1 driver d1: URLs, and nothing else does.
    const own = (name: string, of: string) => (option.name === name) !== (scheme === of);
    if (option.dialect !== dialect || own("pglite", "pglite:") || own("d1", "d1:")) {
      throw new ConfigError(`driver "${option.name}" cannot open a ${scheme} URL`);
    }
    return () => Promise.resolve(option);
  }
  // A D1 database is reached through its binding, which only the driver object carries.
  if (scheme === "d1:") {
    throw new ConfigError(
      'a d1: URL needs the D1 binding: import { d1 } from "@roost/db/drivers/d1" and ' +
        'new Database("d1:DB", { driver: d1(env.DB) })',
      { code: "ROOST_D1_NEEDS_BINDING" },
    );
  }
  if (registry === undefined) throw passDriverObject(dialect);
  return registry(dialect, option, scheme);
}
