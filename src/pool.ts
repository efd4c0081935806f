/**
 * A runtime-agnostic connection pool: limits, FIFO waiters with an acquire
 * timeout, idle timeout, max lifetime with jitter, validation of long-idle
 * connections, eviction of broken ones, and a draining close. Its
 * housekeeping timers never keep a process alive; a caller waiting for a
 * connection does, until it is served or its `acquireTimeout` rejects it.
 *
 * Its parts: src/pool/options.ts (options, hooks, clock, counters),
 * src/pool/pooled_connection.ts (one connection's bookkeeping),
 * src/pool/waiters.ts (the FIFO of callers waiting), src/pool/lending.ts
 * (streaming connections lent out or asked back), src/pool/sharing.ts
 * (which busy connection a single statement may join).
 *
 * @module
 */
import { ClosedError, PoolTimeoutError } from "./errors.ts";
import { Lending } from "./pool/lending.ts";
import type { PoolClock, PoolHooks, PoolStats, PoolTimer, ResolvedPoolOptions } from "./pool/options.ts";
import { systemClock } from "./pool/options.ts";
import { PooledConnection } from "./pool/pooled_connection.ts";
import { joinShared, shareDepth, shareWithin } from "./pool/sharing.ts";
import { WaiterQueue } from "./pool/waiters.ts";

export * from "./pool/options.ts";
export { PooledConnection } from "./pool/pooled_connection.ts";
export { shareDepth, shareWithin };

/**
 * How long (ms) one clock reading stands for now for synchronous statements
 * (see `Pool.takeReady`): a SQLite statement outside scopes reads the clock
 * at most once per this long while the event loop turns.
 */
export const recentFor = 5;

/** A pool of connections of type `C`. */
export class Pool<C> {
  readonly #hooks: PoolHooks<C>;
  readonly #clock: PoolClock;
  readonly #options: ResolvedPoolOptions;
  readonly #label: string;
  readonly #all = new Set<PooledConnection<C>>();
  readonly #idle: PooledConnection<C>[] = [];
  readonly #lending = new Lending<C>();
  readonly #waiters: WaiterQueue<C>;
  #opening = 0;
  #reaper: PoolTimer | undefined;
  #warm = false;
  #closing: Promise<void> | undefined;
  /** The pool's last clock reading (see {@linkcode release}). */
  #lastNow = 0;
  /** Set while the last reading still counts as now for a synchronous statement (see {@linkcode takeReady}). */
  #recent: PoolTimer | undefined;
  #drained: (() => void) | undefined;
  readonly #reuse: boolean;
  /** Connections being closed, which `close()` waits for. */
  readonly #closes = new Set<Promise<void>>();
  /**
   * One per open under way, aborted by `close()` (see {@linkcode #open}). Not
   * one for the pool: a Worker may make none in its global scope, where a
   * module-scope `Database` builds its pools, and a signal made in one
   * request cannot be listened to in another.
   */
  readonly #opens = new Set<AbortController>();

  /**
   * Creates an empty pool; nothing is opened until the first `acquire` or
   * `warm`. Without `reuse`, a released connection is closed instead of kept.
   */
  constructor(hooks: PoolHooks<C>, options: ResolvedPoolOptions, label: string, reuse = true) {
    this.#hooks = hooks;
    const clock = this.#clock = hooks.clock ?? systemClock;
    this.#waiters = new WaiterQueue(clock);
    this.#options = options;
    this.#label = label;
    this.#reuse = reuse;
  }

  /** True once `close` has been called. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** Current counters. */
  stats(): PoolStats {
    const size = this.#all.size + this.#opening;
    const idle = this.#idle.length;
    return { size, idle, busy: size - idle, waiting: this.#waiters.length };
  }

  /** Opens connections up to `min` (at least one, to prove the settings work). */
  async warm(): Promise<void> {
    this.#warm = true;
    this.release(await this.acquire());
    await this.#fillToMin();
  }

  /**
   * Takes a connection, waiting (FIFO) up to `acquireTimeout` when all are
   * busy. With `shares` (one statement of a pipelining driver), a busy
   * connection may be shared while its current statement is young and its
   * pipeline short ({@linkcode shareWithin}, {@linkcode shareDepth}).
   */
  async acquire(shares = false): Promise<PooledConnection<C>> {
    for (;;) {
      const item = await this.#obtain(shares);
      // Only a connection due a check costs one more await.
      if (this.#needsCheck(item) && !await this.#checked(item)) continue;
      if (shares && item.holders === 1 && !item.shared) {
        // An idle or new connection taken by a single statement is one that more of them may join.
        this.#startShared(item);
        this.#dispatch();
      }
      return item;
    }
  }

  /** True when a connection just obtained is to be checked before it is handed out. */
  #needsCheck(item: PooledConnection<C>): boolean {
    // A connection opened for this caller was just proven alive; with validateAfter 0 every other one is checked.
    const fresh = !item.released;
    return item.holders <= 1 && !fresh && this.#due(item, this.#now());
  }

  /** False when a long-idle connection failed its check (it is closed then). */
  async #checked(item: PooledConnection<C>): Promise<boolean> {
    const check = this.#hooks.ping?.(item.connection);
    if (check === undefined) return true;
    try {
      await check;
      return true;
    } catch {
      item.holders = 0;
      this.#destroy(item);
      return false;
    }
  }

  /**
   * An idle connection taken at once, without a promise: the fast path of
   * {@linkcode acquire}. Undefined when the caller must go through `acquire`:
   * none is idle, others are waiting, or the idle one is due a check. With
   * `synchronous` (a statement that will have ended when the caller gives
   * the connection back with {@linkcode releaseNow}, before anything else
   * runs), a clock reading up to {@linkcode recentFor} ms old stands for now
   * (see {@linkcode #recentNow}).
   */
  takeReady(synchronous?: boolean): PooledConnection<C> | undefined {
    const idle = this.#idle;
    // Length first: reading idle[-1] of an empty list is a slow property lookup, and under load the list is empty.
    if (idle.length === 0 || this.#waiters.length > 0 || this.closed) return undefined;
    const item = idle[idle.length - 1];
    const now = synchronous ? this.#recentNow() : this.#now();
    if (this.#spent(item, now) || (this.#hooks.ping !== undefined && this.#due(item, now))) return undefined;
    this.#idle.pop();
    item.holders = 1;
    item.takenAt = now;
    return item;
  }

  /**
   * Gives back a connection taken with {@linkcode takeReady} (or
   * {@linkcode takeShared} when it was idle) whose statement ran
   * synchronously, so nothing touched the pool meanwhile: it is idle again,
   * since it was taken, without reading the clock again. Anything less
   * simple goes through {@linkcode release}.
   */
  releaseNow(item: PooledConnection<C>): void {
    if (
      item.holders !== 1 || item.broken || !this.#reuse || this.closed || this.#hooks.broken?.(item.connection) === true
    ) {
      this.release(item);
      return;
    }
    item.holders = 0;
    item.shared = false;
    item.idleSince = item.takenAt;
    item.released = true;
    this.#idle.push(item);
    this.#scheduleReap();
  }

  /**
   * A connection for one statement of a pipelining driver, taken at once: an
   * idle one, or, when none is idle and the pool is full, a busy one that
   * only such statements hold (never one a scope or stream holds), whose
   * current statement began less than {@linkcode shareWithin} ms ago and
   * with fewer than {@linkcode shareDepth} in flight, the least loaded.
   * Undefined when the caller must go through `acquire`: one can still be
   * opened, others wait (they go first; while a scope or stream waits,
   * nothing is shared, so busy connections drain to it), or no busy
   * connection may be shared now.
   */
  takeShared(synchronous?: boolean): PooledConnection<C> | undefined {
    const ready = this.takeReady(synchronous);
    if (ready !== undefined) return this.#startShared(ready, ready.takenAt);
    if (this.#waiters.length > 0 || this.closed || this.#canGrow()) return undefined;
    return this.#share();
  }

  /** The least loaded busy connection a single statement may join now, with that statement counted in. */
  #share(): PooledConnection<C> | undefined {
    return joinShared(this.#all, this.#hooks, this.#now());
  }

  /** Marks a connection just handed to a single statement as shared, its statement starting now. */
  #startShared(item: PooledConnection<C>, now = this.#now()): PooledConnection<C> {
    item.shared = true;
    item.since = now;
    return item;
  }

  /**
   * Marks a held connection as streaming, so a caller that finds the pool
   * exhausted is not left waiting on it. Without `giveBack`, callers that
   * would otherwise wait borrow it (for drivers whose connections run
   * statements between a stream's batches): any number of streams, and one
   * other caller at a time, so scopes never mix. With it, the
   * pool calls `giveBack` once when a caller waits and no connection can be
   * opened: the stream is then to release its connection soon (the caller
   * still waits no longer than `acquireTimeout`).
   */
  lend(item: PooledConnection<C>, giveBack?: () => void): void {
    if (giveBack === undefined) {
      this.#lending.lend(item);
      this.#dispatch();
      return;
    }
    this.#lending.yieldOnRequest(item, giveBack);
    this.#askYielders();
  }

  /** Ends {@linkcode lend}. */
  unlend(item: PooledConnection<C>): void {
    this.#lending.end(item);
  }

  /** Gives a connection back; a broken one is closed and replaced on demand. */
  release(item: PooledConnection<C>, broken = false): void {
    if (broken) item.broken = true;
    this.#lending.released(item);
    if (--item.holders > 0) {
      if (item.shared) {
        // Its next statement starts now: statements waiting to share may join it. While none waits, the pool's
        // last clock reading stands for now: no later than now, so the statement counts as older, never younger,
        // than it is; under load every statement that joins reads the clock, and a reading fewer per statement shows.
        item.since = this.#waiters.length > 0 ? this.#now() : this.#lastNow;
        this.#dispatch();
        return;
      }
      // A borrower gave back a streaming connection: the next waiter may borrow it.
      if (this.#lending.lent(item)) this.#dispatch();
      return;
    }
    item.shared = false;
    const now = this.#now();
    if (item.broken || item.sessionChanged || !this.#reuse || this.closed || this.#spent(item, now)) {
      this.#destroy(item);
      this.#dispatch();
      // A warmed pool refills `min` in the background, also when the connection it lost was a busy one.
      if (this.#warm) this.#scheduleReap();
      return;
    }
    item.idleSince = now;
    item.released = true;
    const waiter = this.#waiters.next();
    if (waiter) {
      item.holders = 1;
      waiter.resolve(item);
      // More single statements waiting may join the one that just took it.
      if (waiter.shares) this.#dispatch();
      return;
    }
    this.#idle.push(item);
    this.#scheduleReap();
  }

  /**
   * Stops handing out connections, fails waiters with `ClosedError`, gives
   * up opens under way (their callers get `ClosedError` at once; a server
   * that has not answered yet is not waited for until `connect_timeout`),
   * closes idle connections, waits up to `timeout` ms for held ones to come
   * back, then closes whatever is left; resolves once the connections that
   * were not cut off are closed.
   */
  close(timeout = 5_000): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#clock.cancel(this.#reaper);
    this.#clock.cancel(this.#recent);
    this.#closing = (async () => {
      this.#waiters.rejectAll(() => this.#closedError());
      for (const item of [...this.#idle]) this.#destroy(item);
      if (this.#all.size + this.#opening > 0) {
        let timer: PoolTimer | undefined;
        // Whoever closes awaits this wait, which is bounded: its timer may keep the process alive meanwhile.
        if (timeout > 0) {
          await new Promise<void>((resolve) => {
            this.#drained = resolve;
            timer = this.#clock.wait(resolve, timeout);
          });
        }
        this.#clock.cancel(timer);
      }
      // Connections still busy after the timeout are cut off.
      for (const item of [...this.#all]) this.#destroy(item, true);
      await Promise.all(this.#closes);
    })();
    // Once closed: an open that gives up then sees the pool closed and says so.
    for (const stop of this.#opens) {
      try {
        stop.abort();
      } catch {
        // A Worker's request other than the one the open belongs to: that request's end closes it.
      }
    }
    return this.#closing;
  }

  #closedError(): ClosedError {
    return new ClosedError(`${this.#label} is closed`);
  }

  #obtain(shares: boolean): Promise<PooledConnection<C>> | PooledConnection<C> {
    if (this.closed) throw this.#closedError();
    // Whoever comes while others wait queues behind them.
    if (this.#waiters.length === 0) {
      const idle = this.#takeIdle();
      if (idle) return idle;
      if (this.#canGrow()) return this.#open();
      const lender = this.#lending.borrow();
      if (lender) return lender;
      const shared = shares ? this.#share() : undefined;
      if (shared) return shared;
    }
    // A borrowed streaming connection (two holders) stays the stream's.
    const served = shares ? (item: PooledConnection<C>) => item.holders === 1 && this.#startShared(item) : undefined;
    // Nothing is sent for a waiting statement, so its timeout withdraws it whole.
    const queued = this.#waiters.wait(
      shares,
      this.#options.acquireTimeout,
      (waited) => this.#timeoutError(waited),
      served,
    );
    // Callers waiting ahead of it may have left a streaming connection free to borrow.
    if (this.#lending.lends) this.#dispatch();
    this.#askYielders();
    return queued;
  }

  #timeoutError(waited: number): PoolTimeoutError {
    const { size, busy, waiting } = this.stats();
    const { acquireTimeout, max } = this.#options;
    return new PoolTimeoutError(
      `no connection became free in ${waited} ms (acquireTimeout ${acquireTimeout} ms; ` +
        `${this.#label}: ${busy} of ${size} busy, max ${max}, ${waiting} more waiting)`,
    );
  }

  /** Asks streams to give their connection back, one per caller that waits with no connection left to open. */
  #askYielders(): void {
    if (!this.#canGrow()) this.#lending.ask(this.#waiters.length);
  }

  /** True when `item` is past its lifetime or knows it is unusable: it is closed, never handed out. */
  #spent(item: PooledConnection<C>, now: number): boolean {
    return now >= item.expiresAt || this.#hooks.broken?.(item.connection) === true;
  }

  /** True when an idle `item` is checked before it is handed out: idle past `validateAfter`, or unwatched. */
  #due(item: PooledConnection<C>, now: number): boolean {
    return now - item.idleSince >= this.#options.validateAfter || this.#hooks.unwatched?.(item.connection) === true;
  }

  /** Reads the clock, and keeps the reading for {@linkcode release}. */
  #now(): number {
    return this.#lastNow = this.#clock.now();
  }

  /**
   * Now, for a synchronous statement: the pool's last reading while it is
   * recent, that is while the housekeeping timer started at the reading that
   * made it recent has not fired ({@linkcode recentFor} ms, or later when
   * code runs without a break in between: then the statements run one after
   * the other on the connection anyway). Reading the clock was about a third
   * of Roost's own CPU time per SQLite point select on Bun.
   * A reading that lags only makes a connection look younger and less idle
   * than it is, by that lag: it is retired or checked that much later, and
   * the idle timeout counts from that much earlier.
   */
  #recentNow(): number {
    if (this.#recent !== undefined) return this.#lastNow;
    this.#recent = this.#clock.background(() => this.#recent = undefined, recentFor);
    return this.#now();
  }

  #canGrow(): boolean {
    return this.#all.size + this.#opening < this.#options.max;
  }

  #takeIdle(): PooledConnection<C> | undefined {
    const now = this.#now();
    for (let item = this.#idle.pop(); item; item = this.#idle.pop()) {
      if (!this.#spent(item, now)) {
        item.holders = 1;
        return item;
      }
      this.#destroy(item);
    }
    return undefined;
  }

  async #open(): Promise<PooledConnection<C>> {
    // Nothing is opened once close() has begun, whoever asks (a refill, a waiter's turn).
    if (this.closed) throw this.#closedError();
    this.#opening++;
    let connection: C;
    const stop = new AbortController();
    this.#opens.add(stop);
    try {
      connection = await this.#untilClosed(this.#hooks.open(stop.signal), stop.signal);
    } catch (error) {
      this.#opens.delete(stop);
      this.#opening--;
      this.#checkDrained();
      // A connect given up by close(), or failing after it: the caller learns the pool closed.
      if (this.closed) throw this.#closedError();
      this.#dispatch();
      throw error;
    }
    this.#opens.delete(stop);
    this.#opening--;
    if (this.closed) {
      await this.#hooks.close(connection);
      this.#checkDrained();
      throw this.#closedError();
    }
    const item = new PooledConnection(connection, this.#now(), this.#options.maxLifetime);
    this.#all.add(item);
    return item;
  }

  /**
   * `opening`, or a rejection as soon as the pool closes: the caller is not
   * kept waiting for a connect the hook may be slow to give up (a driver
   * that cannot abort it); should it still succeed, its connection is closed.
   */
  #untilClosed(opening: Promise<C>, signal: AbortSignal): Promise<C> {
    return new Promise<C>((resolve, reject) => {
      const stop = () => {
        reject(this.#closedError());
        opening.then((connection) => this.#hooks.close(connection), () => {}).catch(() => {});
      };
      if (signal.aborted) stop();
      else signal.addEventListener("abort", stop, { once: true });
      opening.then(
        (connection) => {
          signal.removeEventListener("abort", stop);
          resolve(connection);
        },
        (error) => {
          signal.removeEventListener("abort", stop);
          reject(error);
        },
      );
    });
  }

  async #openIdle(): Promise<void> {
    const item = await this.#open();
    this.release(item);
  }

  #dispatch(): void {
    while (this.#waiters.length > 0 && !this.closed) {
      const item = this.#takeIdle() ?? this.#lending.borrow();
      if (item) {
        const waiter = this.#waiters.next();
        if (waiter) waiter.resolve(item);
        else this.release(item);
        continue;
      }
      if (this.#canGrow()) {
        const waiter = this.#waiters.next();
        if (!waiter) return;
        this.#open().then(waiter.resolve, waiter.reject);
        continue;
      }
      // None free: a single statement first in line may join a busy connection, unless a scope or stream waits.
      if (!this.#waiters.nextShares()) return;
      const shared = this.#share();
      if (shared === undefined) return;
      this.#waiters.next()!.resolve(shared);
    }
  }

  #destroy(item: PooledConnection<C>, force = false): void {
    if (!this.#all.delete(item)) return;
    const at = this.#idle.indexOf(item);
    if (at >= 0) this.#idle.splice(at, 1);
    this.#lending.forget(item);
    if (force) item.cutOff = true;
    const close = force && this.#hooks.destroy ? this.#hooks.destroy : this.#hooks.close;
    const closing: Promise<void> = close(item.connection).catch(() => {}).then(() => {
      this.#closes.delete(closing);
    });
    this.#closes.add(closing);
    this.#checkDrained();
  }

  #checkDrained(): void {
    if (this.#drained && this.#all.size + this.#opening === 0) this.#drained();
  }

  /**
   * Checks an idle connection that cannot watch its own socket, at most once
   * per `validateAfter`: it is busy meanwhile, goes back idle (with its idle
   * time kept) when alive, and is replaced when dead.
   */
  #checkIdle(item: PooledConnection<C>, now: number): void {
    if (!this.#hooks.unwatched?.(item.connection) || now - item.checkedAt < this.#options.validateAfter) return;
    const at = this.#idle.indexOf(item);
    const check = at < 0 ? undefined : this.#hooks.ping?.(item.connection);
    if (check === undefined) return;
    this.#idle.splice(at, 1);
    item.holders = 1;
    item.checkedAt = now;
    const idleSince = item.idleSince;
    check.then(
      () => {
        this.release(item);
        if (this.#idle.includes(item)) item.idleSince = idleSince;
      },
      () => {
        item.holders = 0;
        this.#destroy(item);
        this.#dispatch();
        if (!this.closed) this.#fillToMin().catch(() => {});
      },
    );
  }

  /** Opens idle connections until the pool holds `min` (counting those opening); settles once they are open. */
  #fillToMin(): Promise<unknown> {
    const missing = this.#options.min - this.#all.size - this.#opening;
    return Promise.all(Array.from({ length: Math.max(0, missing) }, () => this.#openIdle()));
  }

  #scheduleReap(): void {
    if (this.#reaper !== undefined || this.closed) return;
    const { idleTimeout, maxLifetime } = this.#options;
    const horizon = Math.min(idleTimeout || Infinity, maxLifetime || Infinity);
    if (horizon === Infinity && !(this.#warm && this.#options.min > 0)) return;
    const every = Math.max(5, Math.min(1_000, Math.floor(horizon / 2)));
    this.#reaper = this.#clock.background(() => {
      this.#reaper = undefined;
      this.#reap();
    }, every);
  }

  #reap(): void {
    const now = this.#now();
    const { idleTimeout, min } = this.#options;
    for (const item of [...this.#idle]) {
      // A connection whose socket died while idle is dropped now, so `min` is refilled without waiting for a caller.
      const idleTooLong = idleTimeout > 0 && now - item.idleSince >= idleTimeout && this.#all.size > min;
      if (this.#spent(item, now) || idleTooLong) this.#destroy(item);
      else if (this.#warm && min > 0) this.#checkIdle(item, now);
    }
    // In the background: a connection that cannot be opened now is tried again at the next round.
    if (this.#warm) this.#fillToMin().catch(() => {});
    if (this.#idle.length > 0 || this.#all.size < min) this.#scheduleReap();
  }
}
