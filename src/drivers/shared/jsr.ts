/**
 * Loading a driver package from JSR at run time, on Deno only. Each driver
 * passes a loader holding the literal `import("jsr:…")`, so Deno's tools see
 * the dependency (where JSR cannot be reached, `deno check` notes the failed
 * download and goes on); an import that fails or takes too long becomes a
 * `ConfigError` with code `ROOST_DRIVER_UNAVAILABLE`.
 *
 * @module
 */
import { ConfigError } from "../../errors.ts";
import { backgroundTimeout, runtime } from "../../runtime.ts";
import { permissionDenied } from "./permissions.ts";

/** How long an import may take before the driver is reported unavailable (a first download can be slow). */
const importTimeout = 20_000;

/** Imports that succeeded, by specifier; a failed one is tried again at the next connection. */
const loaded = new Map<string, Promise<unknown>>();

/** Terminal colour codes, which Deno puts in some messages. */
const ansiColour = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g");

/** An import failure's reason as one short line: no control characters or colour codes, at most 300 characters. */
export function oneLine(error: unknown): string {
  const text = (error instanceof Error ? `${error.name}: ${error.message}` : String(error)).replace(ansiColour, "");
  let line = "";
  for (const char of text) line += char < " " || char === "\x7f" ? " " : char;
  line = line.replace(/\s+/g, " ").trim();
  return line.length > 300 ? `${line.slice(0, 297)}...` : line;
}

/** True when the module at `url` was installed as an npm package, where Deno refuses `jsr:` imports. */
export function fromNpmPackage(url: string): boolean {
  return url.includes("/node_modules/");
}

/**
 * Imports `specifier` (a `jsr:` package) through `load` for the driver named `driver`.
 * Throws `ConfigError` (`ROOST_DRIVER_UNAVAILABLE`) off Deno, when the import
 * fails (JSR unreachable, package or native library not loadable, or Roost
 * installed from npm, where Deno loads no `jsr:` package) or when it has not
 * finished after 20 seconds; `ConfigError` (`ROOST_PERMISSION_DENIED`, naming
 * the flag) when Deno refused a permission.
 */
export async function importJsr<T>(driver: string, specifier: string, load: () => Promise<unknown>): Promise<T> {
  if (runtime !== "deno") {
    throw new ConfigError(`the ${driver} driver runs only on Deno (it loads ${specifier})`, {
      code: "ROOST_DRIVER_UNAVAILABLE",
    });
  }
  const done = loaded.get(specifier);
  if (done !== undefined) return await done as T;
  const attempt: Promise<unknown> = load();
  // A timed-out import may still fail later: that rejection is not an unhandled one.
  attempt.catch(() => {});
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = backgroundTimeout(
      () => reject(new Error(`no answer after ${importTimeout / 1000} seconds`)),
      importTimeout,
    );
  });
  try {
    const module = await Promise.race([attempt, timeout]);
    loaded.set(specifier, attempt);
    return module as T;
  } catch (error) {
    // A permission Deno refused (--allow-ffi for @db/sqlite's native library, say) names its flag.
    const refused = permissionDenied(driver, error);
    if (refused !== undefined) throw refused;
    if (fromNpmPackage(import.meta.url)) {
      throw new ConfigError(
        `the ${driver} driver needs Roost from JSR (deno add jsr:@roost/db): Deno does not load ${specifier} ` +
          `from inside an npm package, which is where this copy of Roost is (${oneLine(error)})`,
        { code: "ROOST_DRIVER_UNAVAILABLE", cause: error },
      );
    }
    throw new ConfigError(
      `the ${driver} driver could not load ${specifier}: JSR could not be reached or the package could not be ` +
        `loaded (${oneLine(error)})`,
      { code: "ROOST_DRIVER_UNAVAILABLE", cause: error },
    );
  } finally {
    clearTimeout(timer);
  }
}
