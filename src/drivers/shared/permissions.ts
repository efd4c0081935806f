/**
 * Deno's permission refusals, made Roost errors. Deno refuses a driver
 * network, environment, file, FFI or system access the program was not
 * started with (`NotCapable: Requires env access to "PGAPPNAME", run again
 * with the --allow-env flag`); the driver turns that refusal into a
 * `ConfigError` with code `ROOST_PERMISSION_DENIED` whose message names the
 * exact flag to add. What each driver needs in all: docs/deno.md.
 *
 * @module
 */
import { ConfigError } from "../../errors.ts";

/** The kinds of access Deno names in a refusal; `--allow-<kind>` grants each. */
const kinds = new Set(["net", "env", "read", "write", "ffi", "sys", "run", "import"]);

/** True for Deno's refusal of a permission (`NotCapable` in Deno 2, `PermissionDenied` before). */
function isRefusal(error: unknown): error is Error {
  return error instanceof Error && (error.name === "NotCapable" || error.name === "PermissionDenied");
}

/**
 * The flag that grants what `error` (a Deno permission refusal, possibly as
 * the `cause` of another error) was refused, e.g. `--allow-env=PGAPPNAME`;
 * undefined when `error` is no refusal.
 */
export function refusedFlag(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current !== undefined; depth++) {
    if (isRefusal(current)) {
      const match = /Requires (\w+) access(?: to "([^"]*)")?/.exec(current.message);
      if (match === null || !kinds.has(match[1])) return `the permission Deno names: ${current.message.split("\n")[0]}`;
      return match[2] ? `--allow-${match[1]}=${match[2]}` : `--allow-${match[1]}`;
    }
    current = current instanceof Error ? current.cause : undefined;
  }
  return undefined;
}

/**
 * The `ConfigError` (`ROOST_PERMISSION_DENIED`) for a Deno permission
 * refusal met by `driver`, naming the flag to add; undefined when `error`
 * is not a refusal.
 */
export function permissionDenied(driver: string, error: unknown): ConfigError | undefined {
  const flag = refusedFlag(error);
  if (flag === undefined) return undefined;
  return new ConfigError(
    `Deno refused the ${driver} driver a permission: run with ${flag} (each driver's permissions: docs/deno.md)`,
    { code: "ROOST_PERMISSION_DENIED", cause: error },
  );
}

/** The parts of the `Deno` global used here. */
interface DenoFacts {
  permissions?: { requestSync?(descriptor: { name: "net"; host: string }): { state: string } };
  errors?: { NotCapable?: new (message: string) => Error };
}

/**
 * On Deno, asks for network access to `host:port` as Deno itself would at a
 * connect (a prompt at a terminal, else the flag's answer) and throws Deno's
 * refusal when it is not granted. For a driver whose library connects in a
 * way that would otherwise make the refusal an uncaught exception
 * (postgres.js on `node:net`); elsewhere it does nothing.
 */
export function requireNet(host: string, port: number): void {
  const deno = (globalThis as unknown as { Deno?: DenoFacts }).Deno;
  if (deno?.permissions?.requestSync === undefined || host.startsWith("/")) return;
  const address = `${host}:${port}`;
  if (deno.permissions.requestSync({ name: "net", host: address }).state === "granted") return;
  const refusal = new (deno.errors?.NotCapable ?? Error)(`Requires net access to "${address}"`);
  refusal.name = "NotCapable";
  throw refusal;
}
