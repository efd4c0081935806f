/**
 * What a database's async context holds for a call tree: its call context
 * (when it last wrote; on Workers, its own connections) and the scope it
 * entered (a held session, a transaction, a replica or primary route).
 *
 * @module
 */
import type { DriverConnection } from "./driver.ts";
import type { Pool } from "./pool.ts";
import type { ScopeRoute, WriteClock } from "./router.ts";
import type { Server } from "./server.ts";
import type { Session } from "./session.ts";
import type { Transaction } from "./transaction.ts";

/**
 * A call tree's context (`db.context()`, or the instance's own outside any):
 * when it last wrote, for read-your-writes, and, where connections are
 * scoped to contexts (Workers), the pools holding its own connections.
 */
export class CallContext implements WriteClock {
  /** When the context last wrote (ms since the epoch). */
  last = -Infinity;
  /** With `connectionScope: "context"`: this context's pool per server, made on first use. */
  #pools: Map<Server, Pool<DriverConnection>> | undefined;

  /** Records a write now. */
  mark(): void {
    this.last = Date.now();
  }

  /** True when the last write is less than `ms` old. */
  within(ms: number): boolean {
    return Date.now() - this.last < ms;
  }

  /** Set once the context has ended and closed its connections. */
  ended = false;
  /** The enclosing context, whose connections a nested one uses. */
  readonly #outer: CallContext | undefined;

  /** A context; a nested one keeps its own writes but uses the enclosing context's connections. */
  constructor(outer?: CallContext) {
    this.#outer = outer;
  }

  /** This context's pool for `server`, made by `make` on first use; undefined once the context has ended. */
  poolFor(server: Server, make: () => Pool<DriverConnection>): Pool<DriverConnection> | undefined {
    if (this.ended) return undefined;
    if (this.#outer) return this.#outer.poolFor(server, make);
    this.#pools ??= new Map();
    let pool = this.#pools.get(server);
    if (pool === undefined) this.#pools.set(server, pool = make());
    return pool;
  }

  /**
   * Closes this context's connections, waiting until they are closed: held
   * ones at once when the context is over, or after `timeout` ms when the
   * database closes while the context still runs.
   */
  async end(timeout = 0): Promise<void> {
    this.ended = true;
    const pools = this.#pools;
    if (pools !== undefined) await Promise.all([...pools.values()].map((pool) => pool.close(timeout)));
  }
}

/** What an instance's async context holds inside a scope. */
export interface ScopeState {
  /** The held connection, in a connection or transaction scope. */
  readonly session: Session | undefined;
  /** The transaction whose callback this is, if any. */
  readonly tx: Transaction | undefined;
  /** The route a `replica()` or `primary()` scope forces. */
  readonly route: ScopeRoute | undefined;
  /** The call context: its writes (read-your-writes) and, when connections are scoped to contexts, its connections. */
  readonly context: CallContext;
}
