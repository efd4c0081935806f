/**
 * One connection of a pool with the bookkeeping the pool keeps on it.
 *
 * @module
 */

/** One pooled connection and its bookkeeping. */
export class PooledConnection<C> {
  /** The driver's connection. */
  readonly connection: C;
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
   * can tell (when it was handed out, or when a statement sharing it ended:
   * then the pool's last clock reading while none waits, never later than that end).
   */
  since = 0;
  /** When `takeReady` last handed it out (the clock reading that hand-out made). */
  takenAt = 0;
  /** Set when an error showed the connection is unusable. */
  broken = false;
  /** Set when a statement changed its session's settings: it is closed when given back, and shared with no one. */
  sessionChanged = false;
  /** Set when the pool closed it while it was held (a closing pool's timeout, a `db.context()` that ended). */
  cutOff = false;
  /** Set once the connection has been given back (so the next hand-out may need a check). */
  released = false;
  /** When a background check last began (connections that cannot watch their own socket). */
  checkedAt = 0;

  /** Wraps a freshly opened connection. */
  constructor(connection: C, now: number, lifetime: number) {
    this.connection = connection;
    this.idleSince = now;
    this.expiresAt = lifetime > 0 ? now + lifetime - Math.random() * lifetime * 0.05 : Infinity;
  }
}
