/**
 * Replica routing: where each statement goes (the routing rules), the
 * fail-over from a replica that cannot serve to the next, the replicas'
 * health with exponential backoff and rechecks, and the pickers that choose
 * among the healthy ones. It decides and records; running statements and
 * opening connections belong to the layers that call it.
 *
 * @module
 */
import type { DialectName } from "./dialect.ts";
import { ConfigError, ConnectionError, messageOf, ReadOnlyError } from "./errors.ts";
import type { ReplicaStats, ResolvedRoutingOptions } from "./routing_options.ts";
import { backgroundTimeout } from "./runtime.ts";
import type { Server, Target } from "./server.ts";

/** The route a `db.replica()` or `db.primary()` scope imposes on its statements. */
export type ScopeRoute = "primary" | "replica";

/** A call tree's record of its last write, which read-your-writes consults. */
export interface WriteClock {
  /** True when the last write is less than `ms` old. */
  within(ms: number): boolean;
}

/** The error a write gets where only a replica may be used, before it reaches any server. */
export function replicaWriteError(what: string): ReadOnlyError {
  return new ReadOnlyError(
    `${what} is not allowed on a replica: replicas are read-only (write outside db.replica(), or inside db.primary())`,
  );
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

/**
 * What `routing.maxLag` adds to a router (src/lag_watch.ts, which the main
 * entry installs; the Worker entry has none).
 */
export interface LagWatch {
  /** Starts the lag checks that are due (a read is picking a replica). */
  due(): void;
  /** Why `server` is out of the rotation for its lag; undefined while it is not. */
  lagging(server: Server): string | undefined;
  /** Adds `server`'s lag to its stats. */
  stats(server: Server, stats: ReplicaStats): void;
  /** Starts no check from now on, and keeps no result (the database is closing). */
  stop(): void;
}

/** Makes the lag watch of a router whose options set `maxLag`; throws `ConfigError` where it cannot work. */
export type LagWatchFactory = (router: Router, dialect: DialectName, timers: boolean) => LagWatch;

let lagWatch: LagWatchFactory | undefined;

/** Installs what `routing.maxLag` needs (src/lag_watch.ts does when it loads: the main entry loads it, edge.ts not). */
export function installLagWatch(factory: LagWatchFactory): void {
  lagWatch = factory;
}

/** The primary, the replicas, their health, the routing rules and the choice among replicas. */
export class Router {
  /** The primary. */
  readonly primary: Server;
  /** The replicas, in the order given. */
  readonly replicas: readonly Server[];
  /** The routing options. */
  readonly options: ResolvedRoutingOptions;
  /** True when reads outside scopes may go to replicas (`routing.reads: "replicas"`, with replicas). */
  readonly routesReads: boolean;
  /** `routing.readYourWrites` (ms; 0 when off). */
  readonly readYourWrites: number;
  #healthy: Server[];
  #turn = 0;
  #stopped = false;
  readonly #timers: boolean;
  readonly #probe: (server: Server) => Promise<void>;
  readonly #lag: LagWatch | undefined;

  /**
   * Routes between a primary and its replicas. With `timers`, a replica out
   * of the rotation is rechecked by `probe` (which resolves once it works
   * again) in the background; without (where connections belong to
   * requests, as on Workers, and a timer would outlive its request) it
   * rejoins on trial once its recheck is due, and its next connection decides.
   * With `routing.maxLag`, a lag watch measures the replicas of `dialect`.
   */
  constructor(
    primary: Server,
    replicas: readonly Server[],
    options: ResolvedRoutingOptions,
    timers: boolean,
    probe: (server: Server) => Promise<void>,
    dialect: DialectName,
  ) {
    this.primary = primary;
    this.replicas = replicas;
    this.options = options;
    this.routesReads = options.reads === "replicas" && replicas.length > 0;
    this.readYourWrites = options.readYourWrites;
    this.#healthy = [...replicas];
    this.#timers = timers;
    this.#probe = probe;
    if (options.maxLag !== 0) {
      if (!lagWatch) throw new ConfigError("routing.maxLag: not in edge.ts");
      this.#lag = lagWatch(this, dialect, timers);
    }
  }

  /**
   * Whether a statement only reads, as far as routing needs to know: read
   * when neither read routing nor read-your-writes would act on the answer.
   */
  reads(text: string): boolean {
    return this.routesReads || this.readYourWrites > 0 ? isReadStatement(text) : true;
  }

  /** Where an `execute` goes: the primary. */
  writeTarget(route: ScopeRoute | undefined): Target {
    return this.primary.targets[route === "primary" ? "primary-scope" : "write"];
  }

  /**
   * Where a fetch outside any held connection goes, and why: `reads` says
   * whether its statement reads, `clock` when its call tree last wrote.
   */
  readTarget(route: ScopeRoute | undefined, reads: boolean, clock: WriteClock): Target {
    if (route === "primary") return this.primary.targets["primary-scope"];
    if (route !== "replica" && !(this.routesReads && reads)) {
      return this.primary.targets[this.routesReads ? "write" : "read"];
    }
    if (this.readYourWrites > 0 && clock.within(this.readYourWrites)) return this.primary.targets["read-your-writes"];
    return this.replicaTarget(route === "replica" ? "replica-scope" : "read");
  }

  /** A healthy replica, or the fallback when none is (a `ConnectionError` with `fallback: "error"`). */
  replicaTarget(reason: "read" | "replica-scope"): Target {
    if (this.replicas.length === 0) return this.primary.targets.fallback;
    const server = this.#pick();
    if (server !== undefined) return server.targets[reason];
    if (this.options.fallback === "error") throw this.#noReplicaError();
    return this.primary.targets.fallback;
  }

  /**
   * What to try after `target` failed with `error`: a replica that failed
   * to connect leaves the rotation and the next healthy one (or the
   * fallback) is tried; any other failure is rethrown.
   */
  nextAfter(target: Target, error: unknown): Target {
    const { server, reason } = target;
    if (server.role !== "replica" || !(error instanceof ConnectionError) || this.#stopped) throw error;
    this.markDown(server, error);
    return this.replicaTarget(reason === "read" ? "read" : "replica-scope");
  }

  /** Runs `attempt` on `target`, and on the next target after each replica that cannot serve. */
  async withFailover<T>(target: Target, attempt: (target: Target) => Promise<T>): Promise<T> {
    for (;;) {
      try {
        return await attempt(target);
      } catch (error) {
        target = this.nextAfter(target, error);
      }
    }
  }

  /** A healthy replica chosen by the picker, or undefined when none is healthy. */
  #pick(): Server | undefined {
    if (!this.#timers && this.#healthy.length < this.replicas.length) this.#readmitDue();
    this.#lag?.due();
    const healthy = this.#healthy;
    if (healthy.length <= 1) return healthy[0];
    const { picker } = this.options;
    if (picker === "round-robin") return healthy[this.#turn++ % healthy.length];
    if (picker === "random") return healthy[Math.floor(Math.random() * healthy.length)];
    if (picker === "least-busy") return this.#leastBusy(healthy);
    const candidates = healthy.map((s) => ({ index: s.index, url: s.url, stats: s.pool.stats() }));
    const chosen = picker(candidates);
    if (!Number.isInteger(chosen) || chosen < 0 || chosen >= healthy.length) {
      throw new ConfigError(
        `routing.picker returned ${String(chosen)}; it must return a position in the array of ` +
          `${healthy.length} healthy replicas it was given (0 to ${healthy.length - 1})`,
      );
    }
    return healthy[chosen];
  }

  #leastBusy(healthy: readonly Server[]): Server {
    // Start the scan at a rotating position so ties (an idle fleet) spread out.
    const start = this.#turn++ % healthy.length;
    let best = healthy[start];
    let bestLoad = Infinity;
    for (let k = 0; k < healthy.length; k++) {
      const server = healthy[(start + k) % healthy.length];
      const { busy, waiting } = server.pool.stats();
      if (busy + waiting < bestLoad) {
        best = server;
        bestLoad = busy + waiting;
      }
    }
    return best;
  }

  #noReplicaError(): ConnectionError {
    const why = this.replicas.map((s) =>
      `replica ${s.index} <${s.url}>: ${(s.healthy && this.#lag?.lagging(s)) || (s.lastError ?? "down")}`
    ).join("; ");
    return new ConnectionError(`no healthy replica (${why})`, { code: "ROOST_NO_REPLICA" });
  }

  /**
   * Takes a replica out of the rotation after a connection failure and
   * schedules its recheck with exponential backoff.
   */
  markDown(server: Server, error: unknown): void {
    if (server.role !== "replica" || this.#stopped) return;
    server.lastError = messageOf(error);
    if (!server.healthy) return; // its recheck is already scheduled
    server.healthy = false;
    // A replica on trial that fails again waits longer before its next trial.
    server.failures = server.probation ? server.failures + 1 : 1;
    server.probation = false;
    server.downSince ??= Date.now();
    this.#healthy = this.#healthy.filter((s) => s !== server);
    this.#scheduleCheck(server);
  }

  /** Ends a replica's trial after it connected: it is healthy again. */
  confirm(server: Server): void {
    if (!server.probation) return;
    server.probation = false;
    this.#revive(server);
  }

  #readmitDue(): void {
    const now = Date.now();
    let readmitted = false;
    for (const server of this.replicas) {
      if (server.healthy || server.nextCheck === undefined || now < server.nextCheck) continue;
      server.healthy = true;
      server.probation = true;
      server.nextCheck = undefined;
      readmitted = true;
    }
    if (readmitted) this.listHealthy();
  }

  #scheduleCheck(server: Server): void {
    const { recheckAfter, maxRecheckAfter } = this.options;
    const delay = Math.min(maxRecheckAfter, recheckAfter * 2 ** (server.failures - 1));
    server.nextCheck = Date.now() + delay;
    if (this.#timers) server.timer = backgroundTimeout(() => void this.#check(server), delay);
  }

  async #check(server: Server): Promise<void> {
    server.timer = undefined;
    if (this.#stopped) return;
    try {
      await this.#probe(server);
    } catch (error) {
      if (this.#stopped) return;
      server.failures++;
      server.lastError = messageOf(error);
      this.#scheduleCheck(server);
      return;
    }
    if (this.#stopped) return;
    this.#revive(server);
  }

  #revive(server: Server): void {
    server.healthy = true;
    server.failures = 0;
    server.downSince = undefined;
    server.nextCheck = undefined;
    server.lastError = undefined;
    this.listHealthy();
  }

  /** Lists the replicas in the rotation again (after a change of health or lag). */
  listHealthy(): void {
    this.#healthy = this.replicas.filter((s) => s.healthy && !this.#lag?.lagging(s));
  }

  /** Each replica's pool counters and health. */
  replicaStats(): ReplicaStats[] {
    return this.replicas.map((s) => {
      const stats: ReplicaStats = { ...s.pool.stats(), url: s.url, healthy: s.healthy, failures: s.failures };
      if (s.downSince !== undefined) stats.downSince = s.downSince;
      if (s.nextCheck !== undefined) stats.nextCheck = s.nextCheck;
      if (s.lastError !== undefined) stats.lastError = s.lastError;
      this.#lag?.stats(s, stats);
      return stats;
    });
  }

  /** Stops routing to replicas that fail and cancels pending rechecks (the database is closing). */
  stop(): void {
    this.#stopped = true;
    this.#lag?.stop();
    for (const server of this.replicas) {
      if (server.timer !== undefined) clearTimeout(server.timer);
      server.timer = undefined;
    }
  }
}
