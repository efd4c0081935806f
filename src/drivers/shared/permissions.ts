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

/**
 * The flag that grants what `error` (a Deno permission refusal,
 * `NotCapable` in Deno 2 and `PermissionDenied` before, possibly as the
 * `cause` of another error) was refused, e.g. `--allow-env=PGAPPNAME`;
 * undefined when `error` is no refusal.
 */
export function refusedFlag(error: unknown): string | undefined {
  for (let current = error, depth = 0; current instanceof Error && depth < 4; current = current.cause, depth++) {
    if (current.name === "NotCapable" || current.name === "PermissionDenied") {
      const [, kind, what] = /Requires (\w+) access(?: to "([^"]*)")?/.exec(current.message) ?? [];
      return kind === undefined ? current.message : `--allow-${kind}${what ? `=${what}` : ""}`;
    }
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
  permissions?: {
    requestSync?(descriptor: { name: "net"; host: string }): { state: string };
    querySync?(descriptor: { name: "env"; variable: string }): { state: string };
  };
}

/**
 * An environment variable where reading it asks nothing: on Deno only when
 * `--allow-env` already grants it (a read would otherwise prompt, or be
 * refused, for a variable most programs never set); elsewhere as the
 * process has it (undefined where there is no `process.env`, as on Workers
 * without `nodejs_compat`).
 */
export function quietEnv(name: string): string | undefined {
  const deno = (globalThis as unknown as { Deno?: DenoFacts }).Deno;
  if (deno?.permissions?.querySync !== undefined) {
    if (deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") return undefined;
  }
  return (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.[name];
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
  // As Deno words its own refusal, so it reads as one (`refusedFlag`).
  throw Object.assign(new Error(`Requires net access to "${address}"`), { name: "NotCapable" });
}
