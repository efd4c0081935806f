/**
 * The set-up every Roost MySQL session gets, whatever the driver.
 *
 * @module
 */
import type { DriverConnection } from "../../driver.ts";

/**
 * Starts a Roost MySQL session on a new connection: UTC. DATETIME is read as
 * UTC and Dates bind as UTC, so TIMESTAMP columns then store and return the
 * exact instant, and NOW() agrees with the UTC reading. When the set-up
 * fails, the connection is closed and the error thrown.
 */
export async function startMysqlSession(connection: DriverConnection): Promise<void> {
  try {
    await connection.execute("SET time_zone = '+00:00'", []);
  } catch (error) {
    await connection.close();
    throw error;
  }
}
