/**
 * The options of replica routing (`routing` of `DatabaseOptions`), their
 * defaults, and what `db.stats()` says about each replica.
 *
 * @module
 */
import type { PoolStats } from "./pool.ts";

/** A replica as the picker sees it. */
export interface ReplicaCandidate {
  /** Its position in the `replicas` option (0-based). */
  readonly index: number;
  /** Its URL, password redacted. */
  readonly url: string;
  /** Its pool's counters right now. */
  readonly stats: PoolStats;
}

/**
 * Chooses a replica for a read among the healthy ones (never empty) and
 * returns a position in that array.
 */
export type ReplicaPicker = (replicas: readonly ReplicaCandidate[]) => number;

/** How `Database` routes queries between the primary and its replicas. */
export interface RoutingOptions {
  /**
   * Where reads outside any scope go. `"primary"` (default): replicas serve
   * only `db.replica()` scopes. `"replicas"`: `fetchAll`, `fetchOne`,
   * `fetchVal` and `iterate` outside transactions and connection scopes go to
   * a replica when their statement reads (starts with SELECT, WITH, VALUES,
   * TABLE, SHOW, EXPLAIN or DESCRIBE); `insert … returning` and other writes
   * stay on the primary.
   */
  reads?: "primary" | "replicas";
  /** Which healthy replica serves a read: `"round-robin"` (default), `"random"`, `"least-busy"` or your function. */
  picker?: "round-robin" | "random" | "least-busy" | ReplicaPicker;
  /**
   * For this many ms after a write, reads of the same context (see
   * `db.context()`; outside one, of the whole instance) go to the primary, so
   * a caller always sees what it just wrote despite replication lag.
   * Default 0 (off).
   */
  readYourWrites?: number;
  /**
   * When no replica is healthy: `"primary"` (default) reads from the
   * primary; `"error"` throws a `ConnectionError` with code `ROOST_NO_REPLICA`.
   */
  fallback?: "primary" | "error";
  /** A replica that failed is rechecked after this many ms, doubling after each failed check. Default 1 000. */
  recheckAfter?: number;
  /** The longest wait between two rechecks of a failed replica. Default 30 000 (or `recheckAfter`, if longer). */
  maxRecheckAfter?: number;
  /**
   * A replica whose measured replication lag exceeds this many ms leaves the
   * rotation until a later measurement finds it within; 0 (default) measures
   * nothing. Lag is measured by a read that picks a replica, at most once per
   * `recheckAfter` ms per replica and without delaying that read (Postgres:
   * time since the last replayed commit while received WAL waits to be
   * replayed, else 0; MySQL/MariaDB: `Seconds_Behind_Master`, whole seconds,
   * unknown and so too far behind while replication is stopped). Not with
   * `connectionScope: "context"` (Workers), nor for SQLite replicas, nor
   * from the Worker entry.
   */
  maxLag?: number;
}

/** Routing options with every default filled in. */
export type ResolvedRoutingOptions = Required<RoutingOptions>;

/** The defaults of {@linkcode RoutingOptions}. */
export const routingDefaults: ResolvedRoutingOptions = Object.freeze({
  reads: "primary",
  picker: "round-robin",
  readYourWrites: 0,
  fallback: "primary",
  recheckAfter: 1_000,
  maxRecheckAfter: 30_000,
  maxLag: 0,
});

/** A replica's counters and health, as `db.stats()` reports them. */
export interface ReplicaStats extends PoolStats {
  /** Its URL, password redacted. */
  url: string;
  /** False while it is out of the rotation. */
  healthy: boolean;
  /** Failed connections or checks since it was last healthy. */
  failures: number;
  /** When it left the rotation (ms since the epoch). */
  downSince?: number;
  /** When it is checked next (ms since the epoch). */
  nextCheck?: number;
  /** Why it left the rotation. */
  lastError?: string;
  /** With `routing.maxLag`: true while it is out of the rotation because its lag exceeds it or is unknown. */
  lagging?: boolean;
  /** Its replication lag (ms) as last measured, with `routing.maxLag`; absent when unknown or not measured yet. */
  lag?: number;
  /** Why its lag is unknown (replication stopped, the check failed), with `routing.maxLag`. */
  lagError?: string;
}
