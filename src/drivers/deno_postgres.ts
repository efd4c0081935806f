/**
 * Placeholder while the driver is written.
 *
 * @module
 */
import type { Driver } from "../driver.ts";
import { ConfigError } from "../errors.ts";

/** Not written yet. */
export const denoPostgres: Driver = {
  name: "deno-postgres",
  dialect: "postgres",
  interleavedStreams: false,
  connect: () => Promise.reject(new ConfigError("not written yet", { code: "ROOST_DRIVER_UNAVAILABLE" })),
};
