/**
 * Placeholder while the driver is written.
 *
 * @module
 */
import type { Driver } from "../driver.ts";
import { ConfigError } from "../errors.ts";

/** Not written yet. */
export const denoSqlite: Driver = {
  name: "deno-sqlite",
  dialect: "sqlite",
  interleavedStreams: false,
  connect: () => Promise.reject(new ConfigError("not written yet", { code: "ROOST_DRIVER_UNAVAILABLE" })),
};
