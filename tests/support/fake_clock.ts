/**
 * A clock for the pool that moves only when a test says (`advance`), with
 * timers that fire in order as it passes them: acquire timeouts, idle
 * timeouts, lifetimes and the housekeeping timer become deterministic.
 */
import type { PoolClock, PoolTimer } from "../../src/pool.ts";

interface Pending {
  at: number;
  fn: () => void;
  background: boolean;
}

/** A {@linkcode PoolClock} whose time is set by hand. */
export class FakeClock implements PoolClock {
  #now: number;
  #nextId = 1;
  readonly #timers = new Map<number, Pending>();

  /** A clock reading `start` ms since the epoch. */
  constructor(start = 1_000_000) {
    this.#now = start;
  }

  /** The current fake time. */
  now = (): number => this.#now;

  /** A timer that fires when the clock passes `ms` from now. */
  wait = (fn: () => void, ms: number): PoolTimer => this.#add(fn, ms, false);

  /** The same, flagged as a housekeeping timer (see `pending`). */
  background = (fn: () => void, ms: number): PoolTimer => this.#add(fn, ms, true);

  /** Cancels a timer. */
  cancel = (timer: PoolTimer | undefined): void => {
    this.#timers.delete(timer as unknown as number);
  };

  /** Timers not yet fired: all, or only the awaited (`"wait"`) or housekeeping (`"background"`) ones. */
  pending(kind?: "wait" | "background"): number {
    let count = 0;
    for (const timer of this.#timers.values()) {
      if (kind === undefined || timer.background === (kind === "background")) count++;
    }
    return count;
  }

  /** Moves time forward by `ms`, firing each timer due on the way, earliest first, at its own time. */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      let nextId: number | undefined;
      let next: Pending | undefined;
      for (const [id, timer] of this.#timers) {
        if (timer.at <= end && (next === undefined || timer.at < next.at)) {
          nextId = id;
          next = timer;
        }
      }
      if (next === undefined || nextId === undefined) break;
      this.#timers.delete(nextId);
      this.#now = Math.max(this.#now, next.at);
      next.fn();
    }
    this.#now = end;
  }

  #add(fn: () => void, ms: number, background: boolean): PoolTimer {
    const id = this.#nextId++;
    this.#timers.set(id, { at: this.#now + Math.max(0, ms), fn, background });
    return id as unknown as PoolTimer;
  }
}
