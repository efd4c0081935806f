/**
 * The callers waiting for a connection, served first come, first served,
 * each withdrawn whole when its acquire timeout passes.
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
  /** Its acquire timeout, while pending. */
  timer: PoolTimer | undefined;
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
      const waiter: Waiter<C> = {
        resolve: served ? (item) => (served(item), resolve(item)) : resolve,
        reject,
        timer: undefined,
        settled: false,
        shares,
      };
      if (!shares) this.exclusive++;
      if (timeout > 0) {
        const since = this.#clock.now();
        // An ordinary timer: someone awaits this waiter, so the process must live until it settles.
        waiter.timer = this.#clock.wait(() => {
          this.#waiters = this.#waiters.filter((w) => w !== waiter);
          this.settle(waiter)?.reject(timedOut(this.#clock.now() - since));
        }, timeout);
      }
      this.#waiters.push(waiter);
    });
  }

  /** Marks a waiter served or failed; undefined when it already was. */
  settle(waiter: Waiter<C>): Waiter<C> | undefined {
    if (waiter.settled) return undefined;
    waiter.settled = true;
    if (!waiter.shares) this.exclusive--;
    this.#clock.cancel(waiter.timer);
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
