/**
 * The handle `db.acquire()` returns: one pooled connection held until
 * `release()` or the end of an `await using` block, for code that cannot
 * keep its work inside one callback.
 *
 * @module
 */
import { Connection } from "./connection.ts";
import type { Session } from "./session.ts";
import { endSession } from "./transaction.ts";

/** What a forgotten handle leaves behind: its connection, and who to tell. */
interface Forgotten {
  session: Session;
  warn(): void;
}

/**
 * A handle garbage-collected before `release()` gives its connection back,
 * rolling back a transaction left open on it (a connection that cannot is
 * closed), and tells its database. Where the runtime has no
 * `FinalizationRegistry` (Workers at older compatibility dates: 2024-09-23 has none),
 * nothing watches: a Worker's connections end with their `db.context()`.
 */
const forgotten = typeof FinalizationRegistry === "function"
  ? new FinalizationRegistry<Forgotten>(({ session, warn }) => {
    if (session.ended) return;
    // Its db.context() already closed it: nothing was kept from anyone.
    if (session.item.cutOff) return session.end();
    warn();
    endSession(session).catch(() => {
      session.broken = true;
      session.end();
    });
  })
  : undefined;

/**
 * One connection taken from the pool by `db.acquire()`, held until
 * `release()` (or the end of an `await using` block). It runs queries,
 * transactions and savepoints like the handle of `db.connection(fn)`; `db.*`
 * calls do not join it. A handle garbage-collected unreleased gives its
 * connection back (rolling back what it left open) and is reported once
 * per database through the console.
 *
 * @example
 * ```ts
 * import { Database, sql } from "@roost/db";
 * const db = new Database("sqlite::memory:");
 * {
 *   await using conn = await db.acquire();
 *   await conn.execute(sql`create temp table scratch (n integer)`);
 *   await conn.fetchAll(sql`select * from scratch`);
 * } // released here
 * ```
 */
export class AcquiredConnection extends Connection {
  readonly #session: Session;
  readonly #owned: boolean;

  /** Wraps a session taken for the handle; `owned` is false for a shared one (`forceRollback`'s), which stays. */
  constructor(session: Session, owned: boolean, warn: () => void) {
    super(session);
    this.#session = session;
    this.#owned = owned;
    if (owned) forgotten?.register(this, { session, warn }, this);
  }

  /**
   * True once released, or once its connection was closed under it (the
   * `db.context()` it was taken in ended, or the database closed past its
   * timeout): its queries then throw `ClosedError`.
   */
  get released(): boolean {
    return this.#session.over;
  }

  /**
   * Gives the connection back to the pool, rolling back a transaction left
   * open on it. A second call does nothing.
   */
  async release(): Promise<void> {
    if (!this.#owned || this.#session.ended) return;
    forgotten?.unregister(this);
    // Closed under it: nothing is left to roll back, only the bookkeeping.
    if (this.#session.item.cutOff) this.#session.end();
    else await endSession(this.#session);
  }

  /** Releases: what `await using` calls when the block ends. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }
}
