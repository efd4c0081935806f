/**
 * A runtime-agnostic connection pool: limits, FIFO waiters with an acquire
 * timeout, idle timeout, max lifetime with jitter, validation of long-idle
 * connections, eviction of broken ones, and a draining close. Its
 * housekeeping timers never keep a process alive; a caller waiting for a
 * connection does, until it is served or its `acquireTimeout` rejects it.
 *
 * @module
 */
import { ClosedError, PoolTimeoutError } from "./errors.ts";
import { backgroundTimeout } from "./runtime.ts";

/**
 * A busy connection of a pipelining driver takes one more single statement
 * only while the statement it runs began less than this many milliseconds
 * ago, so nothing queues behind a statement already known to be slow.
 */
export const shareWithin = 5;
/** At most this many single statements are in flight on one shared connection. */
export const shareDepth = 8;

/** Pool limits and timeouts; durations are in milliseconds, and 0 disables a timeout. */
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

/** How the pool opens, checks and closes connections. */
export interface PoolHooks<C> {
  /** Opens a connection; throws `ConnectionError` when it cannot. */
  open(): Promise<C>;
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
  /** The clock the age of a shared connection's statement is read from (tests pass their own). Default `Date.now`. */
  now?(): number;
}

/** One pooled connection and its bookkeeping. */
export class PooledConnection<C> {
  /** The driver's connection. */
  readonly connection: C;
  /** When it was opened. */
  readonly openedAt: number;
  /** When it retires (Infinity for never). */
  readonly expiresAt: number;
  /** When it last became idle. */
  idleSince: number;
  /** How many callers hold it (more than one while a stream lends it or single statements share it). */
  holders = 1;
  /** Set while only single statements of a pipelining driver hold it, so more of them may join. */
  shared = false;
  /**
   * While shared: when the statement it runs now began, as far as the pool
   * can tell (when it was handed out, or when a statement sharing it ended).
   */
  since = 0;
  /** Set when an error showed the connection is unusable. */
  broken = false;
  /** Set once the connection has been given back (so the next hand-out may need a check). */
  released = false;
  /** When a background check last began (connections that cannot watch their own socket). */
  checkedAt = 0;

  /** Wraps a freshly opened connection. */
  constructor(connection: C, now: number, lifetime: number) {
    this.connection = connection;
    this.openedAt = now;
    this.idleSince = now;
    this.expiresAt = lifetime > 0 ? now + lifetime - Math.random() * lifetime * 0.05 : Infinity;
  }
}

interface Waiter<C> {
  resolve(item: PooledConnection<C>): void;
  reject(error: unknown): void;
  timer: ReturnType<typeof setTimeout> | undefined;
  settled: boolean;
  /** A single statement of a pipelining driver, which may share a busy connection. */
  shares: boolean;
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

/** A pool of connections of type `C`. */
export class Pool<C> {
  readonly #hooks: PoolHooks<C>;
  readonly #now: () => number;
  readonly #options: ResolvedPoolOptions;
  readonly #label: string;
  readonly #all = new Set<PooledConnection<C>>();
  readonly #idle: PooledConnection<C>[] = [];
  /** Streaming connections that callers may borrow, with how many streams run on each (see `lend`). */
  readonly #lenders = new Map<PooledConnection<C>, number>();
  /** Streams that give their connection back when asked, with how to ask them (see `lend`). */
  readonly #yielders = new Map<PooledConnection<C>, () => void>();
  /** Streams asked to give their connection back that have not yet done so. */
  readonly #asked = new Set<PooledConnection<C>>();
  /** Waiters that need a connection of their own (scopes, streams): while any waits, nothing is shared. */
  #exclusiveWaiters = 0;
  #waiters: Waiter<C>[] = [];
  #opening = 0;
  #reaper: ReturnType<typeof setTimeout> | undefined;
  #warm = false;
  #closing: Promise<void> | undefined;
  #drained: (() => void) | undefined;
  readonly #reuse: boolean;
  /** Connections being closed, which `close()` waits for. */
  readonly #closes = new Set<Promise<void>>();

  /**
   * Creates an empty pool; nothing is opened until the first `acquire` or
   * `warm`. Without `reuse`, a released connection is closed instead of kept.
   */
  constructor(hooks: PoolHooks<C>, options: ResolvedPoolOptions, label: string, reuse = true) {
    this.#hooks = hooks;
    this.#now = hooks.now ?? Date.now;
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
    const item = await this.acquire();
    this.release(item);
    const missing = this.#options.min - this.#all.size - this.#opening;
    await Promise.all(Array.from({ length: Math.max(0, missing) }, () => this.#openIdle()));
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
      if (!await this.#checked(item)) continue;
      if (shares && item.holders === 1 && !item.shared) {
        // An idle or new connection taken by a single statement is one that more of them may join.
        this.#startShared(item);
        this.#dispatch();
      }
      return item;
    }
  }

  /** False when a long-idle connection failed its check (it is closed then). */
  async #checked(item: PooledConnection<C>): Promise<boolean> {
    // A connection opened for this caller was just proven alive; with validateAfter 0 every other one is checked.
    const fresh = !item.released;
    if (item.holders > 1 || fresh) return true;
    if (Date.now() - item.idleSince < this.#options.validateAfter && !this.#hooks.unwatched?.(item.connection)) {
      return true;
    }
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
   * none is idle, others are waiting, or the idle one is due a check.
   */
  takeReady(): PooledConnection<C> | undefined {
    const item = this.#idle[this.#idle.length - 1];
    if (item === undefined || this.#waiters.length > 0 || this.closed) return undefined;
    const now = Date.now();
    if (now >= item.expiresAt || this.#hooks.broken?.(item.connection)) return undefined;
    const due = now - item.idleSince >= this.#options.validateAfter ||
      this.#hooks.unwatched?.(item.connection) === true;
    if (due && this.#hooks.ping !== undefined) return undefined;
    this.#idle.pop();
    item.holders = 1;
    return item;
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
  takeShared(): PooledConnection<C> | undefined {
    const ready = this.takeReady();
    if (ready !== undefined) return this.#startShared(ready);
    if (this.#waiters.length > 0 || this.closed || this.#canGrow()) return undefined;
    return this.#share();
  }

  /** The least loaded busy connection a single statement may join now, with that statement counted in. */
  #share(): PooledConnection<C> | undefined {
    const now = this.#now();
    const wallClock = Date.now();
    let least: PooledConnection<C> | undefined;
    for (const item of this.#all) {
      if (
        !item.shared || item.broken || item.holders >= shareDepth || now - item.since >= shareWithin ||
        (least !== undefined && item.holders >= least.holders) || this.#hooks.broken?.(item.connection)
      ) continue;
      // A connection past its lifetime takes no more, so it drains and retires even under steady load.
      if (wallClock >= item.expiresAt) continue;
      least = item;
    }
    if (least !== undefined) least.holders++;
    return least;
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
      this.#lenders.set(item, (this.#lenders.get(item) ?? 0) + 1);
      this.#dispatch();
      return;
    }
    this.#yielders.set(item, giveBack);
    this.#askYielders();
  }

  /** Ends {@linkcode lend}. */
  unlend(item: PooledConnection<C>): void {
    const streams = this.#lenders.get(item);
    if (streams !== undefined && streams > 1) this.#lenders.set(item, streams - 1);
    else this.#lenders.delete(item);
    this.#yielders.delete(item);
    this.#asked.delete(item);
  }

  /** Gives a connection back; a broken one is closed and replaced on demand. */
  release(item: PooledConnection<C>, broken = false): void {
    if (broken) item.broken = true;
    if (this.#asked.delete(item)) this.#yielders.delete(item);
    if (--item.holders > 0) {
      if (item.shared) {
        // Its next statement starts now: statements waiting to share may join it.
        item.since = this.#now();
        this.#dispatch();
        return;
      }
      // A borrower gave back a streaming connection: the next waiter may borrow it.
      if (this.#lenders.has(item)) this.#dispatch();
      return;
    }
    item.shared = false;
    if (
      item.broken || !this.#reuse || this.#hooks.broken?.(item.connection) || this.closed ||
      Date.now() >= item.expiresAt
    ) {
      this.#destroy(item);
      this.#dispatch();
      return;
    }
    item.idleSince = Date.now();
    item.released = true;
    const waiter = this.#nextWaiter();
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
   * Stops handing out connections, fails waiters with `ClosedError`, closes
   * idle connections, waits up to `timeout` ms for held ones to come back,
   * then closes whatever is left; resolves once the connections that were
   * not cut off are closed.
   */
  close(timeout = 5_000): Promise<void> {
    if (this.#closing) return this.#closing;
    if (this.#reaper !== undefined) clearTimeout(this.#reaper);
    const waiters = this.#waiters;
    this.#waiters = [];
    this.#closing = (async () => {
      for (const waiter of waiters) this.#settle(waiter)?.reject(new ClosedError(`${this.#label} is closed`));
      for (const item of [...this.#idle]) this.#destroy(item);
      if (this.#all.size + this.#opening > 0) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        // Whoever closes awaits this wait, which is bounded: its timer may keep the process alive meanwhile.
        if (timeout > 0) {
          await new Promise<void>((resolve) => {
            this.#drained = resolve;
            timer = setTimeout(resolve, timeout);
          });
        }
        clearTimeout(timer);
      }
      // Connections still busy after the timeout are cut off.
      for (const item of [...this.#all]) this.#destroy(item, true);
      await Promise.all(this.#closes);
    })();
    return this.#closing;
  }

  #obtain(shares: boolean): Promise<PooledConnection<C>> | PooledConnection<C> {
    if (this.closed) throw new ClosedError(`${this.#label} is closed`);
    // Whoever comes while others wait queues behind them.
    if (this.#waiters.length === 0) {
      const idle = this.#takeIdle();
      if (idle) return idle;
      if (this.#canGrow()) return this.#open();
      const lender = this.#borrow();
      if (lender) return lender;
      const shared = shares ? this.#share() : undefined;
      if (shared) return shared;
    }
    // Nothing is sent for a waiting statement, so its timeout withdraws it whole.
    return new Promise<PooledConnection<C>>((resolve, reject) => {
      const waiter: Waiter<C> = {
        resolve: shares
          ? (item) => {
            // A borrowed streaming connection (two holders) stays the stream's.
            if (item.holders === 1) this.#startShared(item);
            resolve(item);
          }
          : resolve,
        reject,
        timer: undefined,
        settled: false,
        shares,
      };
      if (!shares) this.#exclusiveWaiters++;
      const { acquireTimeout } = this.#options;
      if (acquireTimeout > 0) {
        const since = Date.now();
        // An ordinary timer: someone awaits this waiter, so the process must live until it settles.
        waiter.timer = setTimeout(() => {
          this.#waiters = this.#waiters.filter((w) => w !== waiter);
          const { size, busy, waiting } = this.stats();
          this.#settle(waiter)?.reject(
            new PoolTimeoutError(
              `no connection became free in ${Date.now() - since} ms (acquireTimeout ${acquireTimeout} ms; ` +
                `${this.#label}: ${busy} of ${size} busy, max ${this.#options.max}, ${waiting} more waiting)`,
            ),
          );
        }, acquireTimeout);
      }
      this.#waiters.push(waiter);
      // Callers waiting ahead of it may have left a streaming connection free to borrow.
      if (this.#lenders.size > 0) this.#dispatch();
      this.#askYielders();
    });
  }

  /** Marks a connection just handed to a single statement as shared, its statement starting now. */
  #startShared(item: PooledConnection<C>): PooledConnection<C> {
    item.shared = true;
    item.since = this.#now();
    return item;
  }

  /** Asks streams to give their connection back, one per caller that waits with no connection left to open. */
  #askYielders(): void {
    if (this.#yielders.size === 0 || this.#canGrow()) return;
    let wanted = this.#waiters.length - this.#asked.size;
    for (const [item, giveBack] of this.#yielders) {
      if (wanted <= 0) return;
      if (this.#asked.has(item)) continue;
      this.#asked.add(item);
      wanted--;
      giveBack();
    }
  }

  #canGrow(): boolean {
    return this.#all.size + this.#opening < this.#options.max;
  }

  #takeIdle(): PooledConnection<C> | undefined {
    const now = Date.now();
    for (let item = this.#idle.pop(); item; item = this.#idle.pop()) {
      if (now < item.expiresAt && !this.#hooks.broken?.(item.connection)) {
        item.holders = 1;
        return item;
      }
      this.#destroy(item);
    }
    return undefined;
  }

  /** A streaming connection that only streams hold: one other borrower at a time, so scopes never mix. */
  #borrow(): PooledConnection<C> | undefined {
    const item = this.#lendable();
    if (item) item.holders++;
    return item;
  }

  #lendable(): PooledConnection<C> | undefined {
    for (const [item, streams] of this.#lenders) if (item.holders === streams) return item;
    return undefined;
  }

  async #open(): Promise<PooledConnection<C>> {
    this.#opening++;
    let connection: C;
    try {
      connection = await this.#hooks.open();
    } catch (error) {
      this.#opening--;
      this.#checkDrained();
      this.#dispatch();
      throw error;
    }
    this.#opening--;
    if (this.closed) {
      await this.#hooks.close(connection);
      this.#checkDrained();
      throw new ClosedError(`${this.#label} is closed`);
    }
    const item = new PooledConnection(connection, Date.now(), this.#options.maxLifetime);
    this.#all.add(item);
    return item;
  }

  async #openIdle(): Promise<void> {
    const item = await this.#open();
    this.release(item);
  }

  #settle(waiter: Waiter<C>): Waiter<C> | undefined {
    if (waiter.settled) return undefined;
    waiter.settled = true;
    if (!waiter.shares) this.#exclusiveWaiters--;
    if (waiter.timer !== undefined) clearTimeout(waiter.timer);
    return waiter;
  }

  #nextWaiter(): Waiter<C> | undefined {
    for (let waiter = this.#waiters.shift(); waiter; waiter = this.#waiters.shift()) {
      if (this.#settle(waiter)) return waiter;
    }
    return undefined;
  }

  #dispatch(): void {
    while (this.#waiters.length > 0 && !this.closed) {
      const item = this.#takeIdle() ?? this.#borrow();
      if (item) {
        const waiter = this.#nextWaiter();
        if (waiter) waiter.resolve(item);
        else this.release(item);
        continue;
      }
      if (this.#canGrow()) {
        const waiter = this.#nextWaiter();
        if (!waiter) return;
        this.#open().then(waiter.resolve, waiter.reject);
        continue;
      }
      // None free: a single statement first in line may join a busy connection, unless a scope or stream waits.
      while (this.#waiters[0]?.settled) this.#waiters.shift();
      if (this.#waiters[0]?.shares !== true || this.#exclusiveWaiters > 0) return;
      const shared = this.#share();
      if (shared === undefined) return;
      this.#nextWaiter()!.resolve(shared);
    }
  }

  #destroy(item: PooledConnection<C>, force = false): void {
    if (!this.#all.delete(item)) return;
    const at = this.#idle.indexOf(item);
    if (at >= 0) this.#idle.splice(at, 1);
    this.#lenders.delete(item);
    this.#yielders.delete(item);
    this.#asked.delete(item);
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
        if (!this.closed) this.#fillToMin();
      },
    );
  }

  /** Opens idle connections in the background until the pool holds `min` (counting those opening). */
  #fillToMin(): void {
    for (let n = this.#options.min - this.#all.size - this.#opening; n > 0; n--) this.#openIdle().catch(() => {});
  }

  #scheduleReap(): void {
    if (this.#reaper !== undefined || this.closed) return;
    const { idleTimeout, maxLifetime } = this.#options;
    const horizon = Math.min(idleTimeout || Infinity, maxLifetime || Infinity);
    if (horizon === Infinity && !(this.#warm && this.#options.min > 0)) return;
    const every = Math.max(5, Math.min(1_000, Math.floor(horizon / 2)));
    this.#reaper = backgroundTimeout(() => {
      this.#reaper = undefined;
      this.#reap();
    }, every);
  }

  #reap(): void {
    const now = Date.now();
    const { idleTimeout, min } = this.#options;
    for (const item of [...this.#idle]) {
      // A connection whose socket died while idle is dropped now, so `min` is refilled without waiting for a caller.
      const broken = this.#hooks.broken?.(item.connection) === true;
      const expired = now >= item.expiresAt;
      const idleTooLong = idleTimeout > 0 && now - item.idleSince >= idleTimeout && this.#all.size > min;
      if (broken || expired || idleTooLong) this.#destroy(item);
      else if (this.#warm && min > 0) this.#checkIdle(item, now);
    }
    if (this.#warm) this.#fillToMin();
    if (this.#idle.length > 0 || this.#all.size < min) this.#scheduleReap();
  }
}
