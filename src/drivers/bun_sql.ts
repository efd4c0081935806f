/**
 * Placeholder while the driver is written.
 *
 * @module
 */
import type { Driver } from "../driver.ts";
import { ConfigError } from "../errors.ts";

/** Not written yet. */
export const bunSqlPostgres: Driver = {
  name: "bun-sql",
  dialect: "postgres",
  interleavedStreams: false,
  connect: () => Promise.reject(new ConfigError("not written yet", { code: "ROOST_DRIVER_UNAVAILABLE" })),
};

/** Not written yet. */
export const bunSqlMysql: Driver = { ...bunSqlPostgres, dialect: "mysql" };
