/**
 * The Bun.SQL drivers: PostgreSQL and MySQL/MariaDB through the client built
 * into Bun (opt-in with `driver: "bun-sql"`). Each Roost connection is one
 * Bun.SQL client with `max: 1`, so Roost's pool decides when connections
 * open, retire and time out, exactly as with the other drivers.
 *
 * @example Choosing Bun.SQL for Postgres on Bun
 * ```ts
 * import { Database } from "@roost/db";
 * const db = new Database("postgres://app@localhost/app", { driver: "bun-sql" });
 * ```
 *
 * @example Passing the driver object (for bundlers that drop lazy imports)
 * ```ts
 * import { Database } from "@roost/db";
 * import { bunSqlMysql } from "@roost/db/drivers/bun-sql";
 * const db = new Database("mysql://root@localhost/app", { driver: bunSqlMysql });
 * ```
 *
 * @module
 */
export { bunSqlPostgres } from "./postgres/bun_sql.ts";
export { bunSqlMysql } from "./mysql/bun_sql.ts";
