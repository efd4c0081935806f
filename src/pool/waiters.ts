/**
 * The callers waiting for a connection, served first come, first served,
 * each withdrawn whole when its acquire timeout passes. One timer serves the
 * whole queue, set for the earliest deadline: a timer per wait cost a set
 * and a clear on every statement that waited (several µs on Deno), and under
 * load nearly every statement waits.
 *
 * @module
 */
import type { PoolClock, PoolTimer } from "./options.ts";
import type { PooledConnection } from "./pooled_connection.ts";

/** A caller waiting for a connection. */
export interface Waiter<C> {
  /** Hands it a connection. */
  resolve(item: PooledConnection<C>): void;
  /** Fails its wait. */
  reject(error: unknown): void;
  /** When its acquire timeout passes (Infinity: never). */
  deadline: number;
  /** When it began to wait, for the timeout's message. */
  since: number;
  /** What its timeout fails it with, given the milliseconds it waited. */
  timedOut: (waited: number) => unknown;
  /** Set once it was served or failed. */
  settled: boolean;
  /** A single statement of a pipelining driver, which may share a busy connection. */
  shares: boolean;
}

/** Callers waiting for a connection, in the order they came. */
export class WaiterQueue<C> {
  #waiters: Waiter<C>[] = [];
  /** How many waiters need a connection of their own (scopes, streams): while any waits, nothing is shared. */
  exclusive = 0;
  readonly #clock: PoolClock;
  /** The one timeout timer, while anyone waits with a deadline, and the deadline it is set for. */
  #timer: PoolTimer | undefined;
  #timerAt = Infinity;

  /** An empty queue whose timeouts run on `clock`. */
  constructor(clock: PoolClock) {
    this.#clock = clock;
  }

  /** How many wait. */
  get length(): number {
    return this.#waiters.length;
  }

  /**
   * Queues a caller; the promise settles when it is handed a connection
   * (`served` runs on it first, before anyone else can see it) or fails.
   * After `timeout` ms (0: never) it leaves the queue and fails with what
   * `timedOut` makes of the milliseconds it waited.
   */
  wait(
    shares: boolean,
    timeout: number,
    timedOut: (waited: number) => unknown,
    served?: (item: PooledConnection<C>) => void,
  ): Promise<PooledConnection<C>> {
    return new Promise((resolve, reject) => {
      const since = timeout > 0 ? this.#clock.now() : 0;
      const waiter: Waiter<C> = {
        resolve: served ? (item) => (served(item), resolve(item)) : resolve,
        reject,
        deadline: timeout > 0 ? since + timeout : Infinity,
        since,
        timedOut,
        settled: false,
        shares,
      };
      if (!shares) this.exclusive++;
      this.#waiters.push(waiter);
      if (waiter.deadline < this.#timerAt) this.#arm(waiter.deadline);
    });
  }

  /**
   * Sets the timer for `deadline`. An ordinary timer: someone awaits the
   * waiters, so the process must live until they settle.
   */
  #arm(deadline: number): void {
    this.#clock.cancel(this.#timer);
    this.#timerAt = deadline;
    this.#timer = this.#clock.wait(() => this.#expire(), Math.max(0, deadline - this.#clock.now()));
  }

  /** Fails the waiters whose deadline has passed, then sets the timer for the next deadline. */
  #expire(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = this.#clock.now();
    const expired = this.#waiters.filter((waiter) => !waiter.settled && waiter.deadline <= now);
    if (expired.length > 0) this.#waiters = this.#waiters.filter((waiter) => !waiter.settled && waiter.deadline > now);
    for (const waiter of expired) this.settle(waiter)?.reject(waiter.timedOut(now - waiter.since));
    let next = Infinity;
    for (const waiter of this.#waiters) if (!waiter.settled && waiter.deadline < next) next = waiter.deadline;
    if (next < Infinity) this.#arm(next);
  }

  /** Marks a waiter served or failed; undefined when it already was. Once none waits, the timer is stopped. */
  settle(waiter: Waiter<C>): Waiter<C> | undefined {
    if (waiter.settled) return undefined;
    waiter.settled = true;
    if (!waiter.shares) this.exclusive--;
    if (this.#timer !== undefined && this.#waiters.length === 0) {
      this.#clock.cancel(this.#timer);
      this.#timer = undefined;
      this.#timerAt = Infinity;
    }
    return waiter;
  }

  /** Takes the first waiter still waiting out of the queue, settled. */
  next(): Waiter<C> | undefined {
    for (let waiter = this.#waiters.shift(); waiter; waiter = this.#waiters.shift()) {
      if (this.settle(waiter)) return waiter;
    }
    return undefined;
  }

  /** True when the first waiter still waiting is a single statement that may share, and no scope or stream waits. */
  nextShares(): boolean {
    while (this.#waiters[0]?.settled) this.#waiters.shift();
    return this.#waiters[0]?.shares === true && this.exclusive === 0;
  }

  /** Fails every waiter with an error of `make` and empties the queue. */
  rejectAll(make: () => unknown): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) this.settle(waiter)?.reject(make());
  }
}
