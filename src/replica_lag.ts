/**
 * How far a replica is behind its primary, as `routing.maxLag` measures it:
 * one statement on one of the replica's connections, read in ms, or the
 * reason it cannot say.
 *
 * @module
 */
import type { DialectName } from "./dialect.ts";
import type { DriverConnection, Row } from "./driver.ts";

/**
 * Postgres: 0 on a server not in recovery, and 0 when all WAL received is
 * replayed (an idle primary sends no commits, so the time since the last
 * replayed one grows without any lag; after a restart the receive position
 * restarts at the segment where streaming resumed, behind the replayed
 * one); otherwise the time since the last
 * replayed commit, which never understates the lag of what waits to be
 * replayed. NULL (nothing replayed since the standby started) is unknown.
 */
const postgresLag = "SELECT CASE WHEN NOT pg_is_in_recovery() THEN 0 " +
  "WHEN pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0 " +
  "ELSE greatest(0, extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()) * 1000)::float8 END AS lag";

function postgres(row: Row | undefined): number | string {
  const lag = row?.lag;
  if (lag === null || lag === undefined) {
    return "its lag is unknown: the standby has replayed no commit since it started";
  }
  return Math.round(Number(lag));
}

/**
 * MySQL/MariaDB: `Seconds_Behind_Master` (`Seconds_Behind_Source` on MySQL
 * 8), in whole seconds; NULL while the replica's IO or SQL thread is
 * stopped, which is unknown. No row: the server replicates from nothing.
 */
function mysql(row: Row | undefined): number | string {
  if (row === undefined) return 0;
  const seconds = row.Seconds_Behind_Master ?? row.Seconds_Behind_Source;
  if (seconds === null || seconds === undefined) {
    return "its lag is unknown: replication is stopped (Seconds_Behind_Master is NULL)";
  }
  return Number(seconds) * 1_000;
}

/**
 * The replication lag of the server behind `connection` in ms, or why it
 * is unknown (a statement the server refused counts as unknown too; the
 * connection's own failure is thrown).
 */
export async function replicaLag(dialect: DialectName, connection: DriverConnection): Promise<number | string> {
  if (dialect === "postgres") return postgres(await connection.fetchOne(postgresLag, []));
  if (dialect !== "mysql") return 0;
  let row: Row | undefined;
  try {
    // MariaDB 10.5+ and MySQL 8.0.22+; MySQL 8.4 knows no other spelling.
    row = await connection.fetchOne("SHOW REPLICA STATUS", []);
  } catch {
    row = await connection.fetchOne("SHOW SLAVE STATUS", []);
  }
  return mysql(row);
}
