/**
 * What a pool is told: its limits and timeouts (with their defaults), the
 * hooks that open, check and close its connections, the clock and timers it
 * runs on, and the counters it reports.
 *
 * @module
 */
import { backgroundTimeout, timerDelay } from "../runtime.ts";

/**
 * Pool limits and timeouts; durations are in milliseconds, and 0 disables a
 * timeout. One longer than a timer takes (2^31 - 1 ms, about 24.8 days)
 * waits that long.
 */
export interface PoolOptions {
  /** Connections kept open even when idle (opened by `connect()`, refilled in the background). Default 0. */
  min?: number;
  /** Most connections open at once. Default 10 (1 for SQLite `:memory:`). */
  max?: number;
  /** How long `acquire` waits for a free connection before a `PoolTimeoutError`. Default 10 000. */
  acquireTimeout?: number;
  /** An idle connection above `min` is closed after this long. Default 30 000. */
  idleTimeout?: number;
  /**
   * A connection is retired after this long (up to 5% earlier, so a pool's
   * connections do not all expire together). Only idle connections are
   * retired, never one inside a query or transaction. Default 1 800 000.
   */
  maxLifetime?: number;
  /** A connection idle longer than this is checked (`ping`) before it is handed out; 0 checks every time. Default 500. */
  validateAfter?: number;
}

/** Pool options with every default filled in. */
export type ResolvedPoolOptions = Required<PoolOptions>;

/** The defaults of {@linkcode PoolOptions}. */
export const poolDefaults: ResolvedPoolOptions = Object.freeze({
  min: 0,
  max: 10,
  acquireTimeout: 10_000,
  idleTimeout: 30_000,
  maxLifetime: 1_800_000,
  validateAfter: 500,
});

/** A pool's counters at one moment. */
export interface PoolStats {
  /** Connections open or opening. */
  size: number;
  /** Open connections nobody holds. */
  idle: number;
  /** Connections held (or being opened) for a caller. */
  busy: number;
  /** Callers waiting for a connection. */
  waiting: number;
}

/** A pending timer of a {@linkcode PoolClock}. */
export type PoolTimer = ReturnType<typeof setTimeout>;

/**
 * The time a pool runs on: when connections expire, idle out or are due a
 * check, and the timers of waits and housekeeping. Tests pass their own to
 * move time by hand; the default is the runtime's.
 */
export interface PoolClock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** A timer someone awaits (an acquire timeout, a close's wait), which keeps the process alive. */
  wait(fn: () => void, ms: number): PoolTimer;
  /** A housekeeping timer, which never keeps the process alive. */
  background(fn: () => void, ms: number): PoolTimer;
  /** Cancels a timer of either kind. */
  cancel(timer: PoolTimer | undefined): void;
}

/** The runtime's clock and timers. */
export const systemClock: PoolClock = {
  now: () => Date.now(),
  wait: (fn, ms) => setTimeout(fn, timerDelay(ms)),
  background: backgroundTimeout,
  cancel: (timer) => clearTimeout(timer),
};

/** How the pool opens, checks and closes connections. */
export interface PoolHooks<C> {
  /**
   * Opens a connection; throws `ConnectionError` when it cannot. `signal`
   * aborts when the pool closes: an open still under way is to give up and
   * close what it opened (the pool no longer waits for it).
   */
  open(signal?: AbortSignal): Promise<C>;
  /** Closes a connection; must not throw. */
  close(connection: C): Promise<void>;
  /** Closes a connection at once, even in the middle of a statement; must not throw. Default: `close`. */
  destroy?(connection: C): Promise<void>;
  /** True when a connection knows it is unusable, so it is closed instead of reused. */
  broken?(connection: C): boolean;
  /**
   * Checks a long-idle connection before reuse: returns a promise that
   * rejects when it is dead, or undefined when the connection needs no check.
   */
  ping?(connection: C): Promise<void> | undefined;
  /**
   * True when the connection cannot notice by itself that the server closed
   * it while idle (its driver reads the socket only during a statement): it
   * is then checked (`ping`) before every reuse, whatever `validateAfter`
   * says, and while the pool keeps `min` connections its idle ones are
   * checked in the background, so a dead one is replaced without waiting for
   * a caller.
   */
  unwatched?(connection: C): boolean;
  /** The clock and timers of everything else (tests pass their own). Default {@linkcode systemClock}. */
  clock?: PoolClock;
}
