/**
 * `routing.maxLag`: each replica's replication lag, measured in the
 * background by the reads that pick a replica (at most once per
 * `recheckAfter` per replica, so never a query per read and never a timer),
 * and the replicas it keeps out of the rotation. The main entry loads this
 * module, which installs itself into the router; the Worker entry leaves it
 * out, so a Worker bundle carries none of it.
 *
 * @module
 */
import type { DialectName } from "./dialect.ts";
import { ConfigError, ConnectionError, messageOf } from "./errors.ts";
import { replicaLag } from "./replica_lag.ts";
import { installLagWatch, type LagWatch, type Router } from "./router.ts";
import type { ReplicaStats } from "./routing_options.ts";
import type { Server } from "./server.ts";

/** What is known of one replica's lag. */
interface LagState {
  /** True while it is out of the rotation for its lag. */
  lagging: boolean;
  /** The lag (ms) last measured; undefined when unknown or not measured yet. */
  lag: number | undefined;
  /** Why the lag is unknown. */
  error: string | undefined;
  /** When the last check started (ms since the epoch; 0: none yet, or one is due). */
  started: number;
  /** True while a check runs. */
  measuring: boolean;
}

/**
 * Measures a replica's replication lag (ms) on a connection of its pool, or
 * says why it is unknown; throws only when no connection could be had.
 */
async function measure(server: Server, dialect: DialectName): Promise<number | string> {
  const item = await server.pool.acquire();
  try {
    return await replicaLag(dialect, item.connection);
  } catch (error) {
    return `its lag could not be measured: ${messageOf(error)}`;
  } finally {
    server.pool.release(item, item.connection.broken === true);
  }
}

/** The lag watch of one router. */
class ReplicaLagWatch implements LagWatch {
  readonly #router: Router;
  readonly #dialect: DialectName;
  readonly #maxLag: number;
  readonly #states = new Map<Server, LagState>();
  #stopped = false;

  constructor(router: Router, dialect: DialectName) {
    this.#router = router;
    this.#dialect = dialect;
    this.#maxLag = router.options.maxLag;
    for (const server of router.replicas) {
      this.#states.set(server, { lagging: false, lag: undefined, error: undefined, started: 0, measuring: false });
    }
  }

  /**
   * Starts a check of each healthy replica whose last one started at least
   * `recheckAfter` ms ago, in the background: the read that called goes on
   * with what is known. A check still running after `maxRecheckAfter` ms no
   * longer holds up the next one; a replica out of the rotation for a
   * failure is measured again on the first read after it is back.
   */
  due(): void {
    if (this.#stopped) return;
    const now = Date.now();
    const { recheckAfter, maxRecheckAfter } = this.#router.options;
    for (const [server, state] of this.#states) {
      const since = now - state.started;
      if (!server.healthy) state.started = 0;
      else if (since >= recheckAfter && !(state.measuring && since < maxRecheckAfter)) {
        state.started = now;
        state.measuring = true;
        void this.#check(server, state, now);
      }
    }
  }

  async #check(server: Server, state: LagState, started: number): Promise<void> {
    let lag: number | string;
    try {
      lag = await measure(server, this.#dialect);
    } catch (error) {
      // Connection failures are health's business; a busy pool (no connection in time) leaves the last measurement.
      if (error instanceof ConnectionError) this.#router.markDown(server, error);
      return;
    } finally {
      if (state.started === started) state.measuring = false;
    }
    // After close(), or when a newer check has started since, this result is not the one to keep.
    if (this.#stopped || state.started !== started) return;
    const was = state.lagging;
    state.lag = typeof lag === "number" ? lag : undefined;
    state.error = typeof lag === "number" ? undefined : lag;
    state.lagging = typeof lag !== "number" || lag > this.#maxLag;
    if (state.lagging !== was) this.#router.listHealthy();
  }

  lagging(server: Server): string | undefined {
    const state = this.#states.get(server);
    if (!state?.lagging) return undefined;
    return state.error ?? `${state.lag} ms behind its primary (routing.maxLag is ${this.#maxLag})`;
  }

  stats(server: Server, stats: ReplicaStats): void {
    const state = this.#states.get(server);
    if (state === undefined) return;
    stats.lagging = state.lagging;
    if (state.lag !== undefined) stats.lag = state.lag;
    if (state.error !== undefined) stats.lagError = state.error;
  }

  stop(): void {
    this.#stopped = true;
  }
}

/** Refuses a `maxLag` that is not a non-negative integer, or where no lag can be measured or a check would outlive a request. */
function lagWatch(router: Router, dialect: DialectName, timers: boolean): LagWatch {
  const { maxLag } = router.options;
  const why = typeof maxLag !== "number" || !Number.isInteger(maxLag) || maxLag < 0
    ? " must be a non-negative integer (milliseconds; 0 measures no lag)"
    : dialect === "sqlite"
    ? ": SQLite does not replicate, so there is no lag to measure"
    : !timers
    ? ': with connectionScope "context" (Workers) a lag check would run on one request\'s connections and outlive it'
    : undefined;
  if (why !== undefined) {
    throw new ConfigError(`routing.maxLag${why}`, { code: "ROOST_INVALID_MAX_LAG" });
  }
  return new ReplicaLagWatch(router, dialect);
}

installLagWatch(lagWatch);
