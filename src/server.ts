/**
 * One server of a `Database` (its primary or a replica): its pool and, for a
 * replica, its health as the router records it.
 *
 * @module
 */
import type { DriverConnection } from "./driver.ts";
import type { Pool } from "./pool.ts";
import type { RouteReason } from "./query_event.ts";

/** Where a statement goes and why (the reason `onQuery` reports). */
export interface Target {
  /** The server. */
  readonly server: Server;
  /** Why it goes there. */
  readonly reason: RouteReason;
}

const reasons: readonly RouteReason[] = [
  "write",
  "read",
  "replica-scope",
  "primary-scope",
  "read-your-writes",
  "fallback",
  "held",
];

/** A server and its pool; for a replica, its health too. */
export class Server {
  /** The primary or a replica (what `QueryEvent.served` reports). */
  readonly role: "primary" | "replica";
  /** Position in the `replicas` option; -1 for the primary. */
  readonly index: number;
  /** The server's URL, password redacted. */
  readonly url: string;
  /** Its connections. */
  readonly pool: Pool<DriverConnection>;
  /** With `connectionScope: "context"`: makes a context's own pool of this server. */
  readonly contextPool: (() => Pool<DriverConnection>) | undefined;
  /** This server as a target, one per reason, made once instead of per statement. */
  readonly targets: Readonly<Record<RouteReason, Target>>;
  /** True while in the rotation. */
  healthy = true;
  /** Failures since it was last healthy. */
  failures = 0;
  /** When it left the rotation. */
  downSince: number | undefined;
  /** When it is checked next. */
  nextCheck: number | undefined;
  /** Why it left the rotation. */
  lastError: string | undefined;
  /** The pending recheck. */
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Back in the rotation on trial (rechecks without timers): its next connection decides. */
  probation = false;
  /**
   * Behind a pooler in transaction mode (`pooler=transaction`): a scope's
   * connection keeps no server session between transactions, so no cursor
   * outlives one there (src/session.ts).
   */
  transactionPooled = false;

  /** A server and its pool (and, where connections belong to contexts, how a context makes its own). */
  constructor(
    role: "primary" | "replica",
    index: number,
    url: string,
    pool: Pool<DriverConnection>,
    contextPool?: () => Pool<DriverConnection>,
  ) {
    this.role = role;
    this.index = index;
    this.url = url;
    this.pool = pool;
    this.contextPool = contextPool;
    const targets: Partial<Record<RouteReason, Target>> = {};
    for (const reason of reasons) targets[reason] = { server: this, reason };
    this.targets = targets as Record<RouteReason, Target>;
  }
}
