/**
 * Replica routing: the servers of one `Database` (a primary and its
 * replicas), the replicas' health with exponential backoff and background
 * rechecks, and the pickers that choose among the healthy ones.
 *
 * @module
 */
import type { DriverConnection } from "./driver.ts";
import { ConfigError, ConnectionError, ReadOnlyError } from "./errors.ts";
import type { Pool, PoolStats } from "./pool.ts";
import { backgroundTimeout } from "./runtime.ts";

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
});

/** Why a query ran where it did, as reported to `onQuery`. */
export type RouteReason =
  | "write"
  | "read"
  | "replica-scope"
  | "primary-scope"
  | "read-your-writes"
  | "fallback"
  | "held";

/** What the `onQuery` hook receives after every query. Parameters are never included. */
export interface QueryEvent {
  /** Which server ran it. */
  readonly served: "primary" | "replica";
  /** The replica's position in the `replicas` option, when a replica ran it. */
  readonly replica?: number;
  /** The server's URL, password redacted. */
  readonly url: string;
  /** Why the query ran there. */
  readonly reason: RouteReason;
  /** The method that ran it. */
  readonly method: "execute" | "executeMany" | "fetchAll" | "fetchOne" | "iterate";
  /** The SQL text as sent (placeholders, no values). */
  readonly sql: string;
  /** The parameters (every set's, in order, for `executeMany`); only with the `debugParameters` option. */
  readonly parameters?: readonly unknown[];
  /** Milliseconds from sending the query to its last row (or its error). */
  readonly duration: number;
  /** The error it failed with; a failed replica read that was retried elsewhere is reported too. */
  readonly error?: unknown;
}

/** Receives a {@linkcode QueryEvent} after every query; errors it throws are ignored. */
export type QueryHook = (event: QueryEvent) => void;

/** Hands a query's event to the hook; a hook that throws must not fail the query it reports. */
export function reportQuery(
  hook: QueryHook,
  member: Member,
  reason: RouteReason,
  method: QueryEvent["method"],
  sql: string,
  started: number,
  error?: unknown,
  parameters?: readonly unknown[],
): void {
  const { served, index, url } = member;
  const event: QueryEvent = {
    served,
    ...(served === "replica" ? { replica: index } : {}),
    url,
    reason,
    method,
    sql,
    ...(parameters === undefined ? {} : { parameters }),
    duration: performance.now() - started,
    ...(error === undefined ? {} : { error }),
  };
  try {
    hook(event);
  } catch {
    // Ignored, as documented.
  }
}

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
}

/** Where a query goes and why. */
export interface Target {
  /** The server. */
  readonly member: Member;
  /** Why it goes there. */
  readonly reason: RouteReason;
}

const reasons: readonly RouteReason[] = [
  "write",
  "read",
  "replica-scope",
  "primary-scope",
  "read-your-writes",
  "fallback",
  "held",
];

/** The error a write gets where only a replica may be used, before it reaches any server. */
export function replicaWriteError(what: string): ReadOnlyError {
  return new ReadOnlyError(
    `${what} is not allowed on a replica: replicas are read-only (write outside db.replica(), or inside db.primary())`,
  );
}

/** One server of a `Database`: its pool, and for a replica its health. */
export class Member {
  /** The primary or a replica. */
  readonly served: "primary" | "replica";
  /** Position in the `replicas` option; -1 for the primary. */
  readonly index: number;
  /** The server's URL, password redacted. */
  readonly url: string;
  /** Its connections. */
  readonly pool: Pool<DriverConnection>;
  /** True while in the rotation. */
  healthy = true;
  /** Failures since it was last healthy. */
  failures = 0;
  /** When it left the rotation. */
  downSince: number | undefined;
  /** When it is checked next. */
  nextCheck: number | undefined;
  /** Why it left the rotation. */
  lastError: string | undefined;
  /** The pending recheck. */
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Back in the rotation on trial (rechecks without timers): its next connection decides. */
  probation = false;
  /** This server as the target of a query, one per reason, made once instead of per query. */
  readonly via: Readonly<Record<RouteReason, Target>>;

  /** A server and its pool. */
  constructor(served: "primary" | "replica", index: number, url: string, pool: Pool<DriverConnection>) {
    this.served = served;
    this.index = index;
    this.url = url;
    this.pool = pool;
    const via: Partial<Record<RouteReason, Target>> = {};
    for (const reason of reasons) via[reason] = { member: this, reason };
    this.via = via as Record<RouteReason, Target>;
  }
}

const readKeywords = new Set(["select", "with", "values", "table", "show", "explain", "describe", "desc"]);

function isSpace(code: number): boolean {
  return code === 32 || (code >= 9 && code <= 13);
}

function isLetter(code: number): boolean {
  const lower = code | 32;
  return lower >= 97 && lower <= 122;
}

/**
 * True when a statement's first keyword is one that reads (SELECT, WITH,
 * VALUES, TABLE, SHOW, EXPLAIN, DESCRIBE), skipping whitespace, comments
 * and opening parentheses. Only decides where automatic routing sends a
 * fetch: a replica session is read-only on the server either way.
 */
export function isReadStatement(text: string): boolean {
  let i = 0;
  const n = text.length;
  while (i < n) {
    const code = text.charCodeAt(i);
    if (isSpace(code) || code === 40) i++;
    else if (code === 45 && text.charCodeAt(i + 1) === 45) {
      const end = text.indexOf("\n", i);
      i = end < 0 ? n : end + 1;
    } else if (code === 47 && text.charCodeAt(i + 1) === 42) {
      const end = text.indexOf("*/", i + 2);
      i = end < 0 ? n : end + 2;
    } else break;
  }
  let end = i;
  while (end < n && end - i < 8 && isLetter(text.charCodeAt(end))) end++;
  return readKeywords.has(text.slice(i, end).toLowerCase());
}

/** The primary, the replicas, their health, and the choice among them. */
export class Router {
  /** The primary. */
  readonly primary: Member;
  /** The replicas, in the order given. */
  readonly replicas: readonly Member[];
  /** The routing options. */
  readonly options: ResolvedRoutingOptions;
  #healthy: Member[];
  #turn = 0;
  #closed = false;
  readonly #timers: boolean;

  /**
   * Routes between a primary and replicas. With `timers`, a replica that
   * left the rotation is rechecked in the background; without (where
   * connections belong to requests, as on Workers, and a timer would outlive
   * its request) it rejoins on trial once its recheck is due, and its next
   * connection decides.
   */
  constructor(primary: Member, replicas: readonly Member[], options: ResolvedRoutingOptions, timers = true) {
    this.primary = primary;
    this.replicas = replicas;
    this.options = options;
    this.#healthy = [...replicas];
    this.#timers = timers;
  }

  /** A healthy replica chosen by the picker, or undefined when none is healthy. */
  pick(): Member | undefined {
    if (!this.#timers && this.#healthy.length < this.replicas.length) this.#readmitDue();
    const healthy = this.#healthy;
    if (healthy.length <= 1) return healthy[0];
    const { picker } = this.options;
    if (picker === "round-robin") return healthy[this.#turn++ % healthy.length];
    if (picker === "random") return healthy[Math.floor(Math.random() * healthy.length)];
    if (picker === "least-busy") return this.#leastBusy(healthy);
    const candidates = healthy.map((m) => ({ index: m.index, url: m.url, stats: m.pool.stats() }));
    const chosen = picker(candidates);
    if (!Number.isInteger(chosen) || chosen < 0 || chosen >= healthy.length) {
      throw new ConfigError(
        `routing.picker returned ${String(chosen)}; it must return a position in the array of ` +
          `${healthy.length} healthy replicas it was given (0 to ${healthy.length - 1})`,
      );
    }
    return healthy[chosen];
  }

  #leastBusy(healthy: readonly Member[]): Member {
    // Start the scan at a rotating position so ties (an idle fleet) spread out.
    const start = this.#turn++ % healthy.length;
    let best = healthy[start];
    let bestLoad = Infinity;
    for (let k = 0; k < healthy.length; k++) {
      const member = healthy[(start + k) % healthy.length];
      const { busy, waiting } = member.pool.stats();
      if (busy + waiting < bestLoad) {
        best = member;
        bestLoad = busy + waiting;
      }
    }
    return best;
  }

  /** The error a read gets when no replica is healthy and `fallback` is `"error"`. */
  noReplicaError(): ConnectionError {
    const why = this.replicas.map((m) => `replica ${m.index} <${m.url}>: ${m.lastError ?? "down"}`).join("; ");
    return new ConnectionError(`no healthy replica (${why})`, { code: "ROOST_NO_REPLICA" });
  }

  /**
   * Takes a replica out of the rotation after a connection failure and
   * schedules its recheck with exponential backoff.
   */
  markDown(member: Member, error: unknown): void {
    if (member.served !== "replica" || this.#closed) return;
    member.lastError = error instanceof Error ? error.message : String(error);
    if (!member.healthy) return; // its recheck is already scheduled
    member.healthy = false;
    // A replica on trial that fails again waits longer before its next trial.
    member.failures = member.probation ? member.failures + 1 : 1;
    member.probation = false;
    member.downSince ??= Date.now();
    this.#healthy = this.#healthy.filter((m) => m !== member);
    this.#scheduleCheck(member);
  }

  /** Ends a replica's trial after it connected: it is healthy again. */
  confirm(member: Member): void {
    if (!member.probation) return;
    member.probation = false;
    this.#revive(member);
  }

  #readmitDue(): void {
    const now = Date.now();
    let readmitted = false;
    for (const member of this.replicas) {
      if (member.healthy || member.nextCheck === undefined || now < member.nextCheck) continue;
      member.healthy = true;
      member.probation = true;
      member.nextCheck = undefined;
      readmitted = true;
    }
    if (readmitted) this.#healthy = this.replicas.filter((m) => m.healthy);
  }

  #scheduleCheck(member: Member): void {
    const { recheckAfter, maxRecheckAfter } = this.options;
    const delay = Math.min(maxRecheckAfter, recheckAfter * 2 ** (member.failures - 1));
    member.nextCheck = Date.now() + delay;
    if (this.#timers) member.timer = backgroundTimeout(() => void this.#check(member), delay);
  }

  async #check(member: Member): Promise<void> {
    member.timer = undefined;
    if (this.#closed) return;
    try {
      const item = await member.pool.acquire();
      let broken = false;
      try {
        await (item.connection.ping?.() ?? item.connection.fetchOne("SELECT 1", []));
      } catch (error) {
        broken = true;
        throw error;
      } finally {
        member.pool.release(item, broken);
      }
    } catch (error) {
      if (this.#closed) return;
      member.failures++;
      member.lastError = error instanceof Error ? error.message : String(error);
      this.#scheduleCheck(member);
      return;
    }
    if (this.#closed) return;
    this.#revive(member);
  }

  #revive(member: Member): void {
    member.healthy = true;
    member.failures = 0;
    member.downSince = undefined;
    member.nextCheck = undefined;
    member.lastError = undefined;
    this.#healthy = this.replicas.filter((m) => m.healthy);
  }

  /** Each replica's pool counters and health. */
  replicaStats(): ReplicaStats[] {
    return this.replicas.map((m) => {
      const stats: ReplicaStats = { ...m.pool.stats(), url: m.url, healthy: m.healthy, failures: m.failures };
      if (m.downSince !== undefined) stats.downSince = m.downSince;
      if (m.nextCheck !== undefined) stats.nextCheck = m.nextCheck;
      if (m.lastError !== undefined) stats.lastError = m.lastError;
      return stats;
    });
  }

  /** Stops rechecks and closes every pool. */
  async close(timeout?: number): Promise<void> {
    this.#closed = true;
    for (const member of this.replicas) {
      if (member.timer !== undefined) clearTimeout(member.timer);
      member.timer = undefined;
    }
    await Promise.all([this.primary, ...this.replicas].map((m) => m.pool.close(timeout)));
  }
}
