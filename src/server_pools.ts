/**
 * How a `Database` makes each server's pool: what the pool calls to open,
 * check, close and destroy a connection, and, where connections belong to
 * call contexts (Workers), how a context makes a pool of its own.
 *
 * @module
 */
import { dialectOf } from "./dialect.ts";
import type { Driver, DriverConnection } from "./driver.ts";
import { Pool, type PoolHooks, type ResolvedPoolOptions } from "./pool.ts";
import { runtime } from "./runtime.ts";
import { transactionPooled } from "./pooler.ts";
import { Server } from "./server.ts";
import { checkHostChoice, hostOf, openSession, setupUrl } from "./session_setup.ts";
import { sessionEnder } from "./terminate.ts";
import type { DatabaseUrl } from "./url.ts";

/** A Worker's limit on simultaneous outgoing connections per request. */
const socketsPerRequest = 6;

/**
 * A server and its pool. With connections scoped to contexts, the
 * instance's own pool never reuses a connection and never makes a caller
 * wait for another's (on Workers that other may be a different request),
 * and each context gets a pool of its own, sharing the per-request socket
 * limit with the context's pools for the other servers. `driver` loads the
 * driver (once); `servers` share a context's socket limit;
 * `openedOutsideContext` is told when, with connections scoped to contexts,
 * one opens outside any; `replicaConnected` when a replica's connection opened.
 */
export function makeServer(
  role: "primary" | "replica",
  index: number,
  url: DatabaseUrl,
  options: ResolvedPoolOptions,
  label: string,
  driver: () => Promise<Driver>,
  contextScoped: boolean,
  servers: number,
  openedOutsideContext: () => void,
  replicaConnected: (server: Server) => void,
): Server {
  checkHostChoice(url);
  const dialect = dialectOf(url.dialect);
  // Behind a pooler the session's id is the pooler's (or names a server session another client may hold next).
  const terminate = url.options.pooler === undefined ? dialect.terminateSessions : undefined;
  // A session is ended from a connection to the host it is on: a multi-host URL has one ender per host.
  const enders = new Map<string, (id: number) => Promise<void>>();
  const endSession = terminate && runtime !== "workerd"
    ? (id: number, host: DatabaseUrl) => {
      const key = `${host.host}:${host.port}`;
      let ender = enders.get(key);
      if (ender === undefined) {
        ender = sessionEnder(async () => (await driver()).connect(setupUrl(host, { connect_timeout: 1 })), terminate);
        enders.set(key, ender);
      }
      return ender(id);
    }
    : undefined;
  const hooks: PoolHooks<DriverConnection> = {
    open: async (signal) => {
      const connection = await openSession(await driver(), url, dialect, role === "replica", signal);
      if (role === "replica") replicaConnected(server);
      return connection;
    },
    close: (connection) => connection.close(),
    destroy: (connection) => {
      const id = connection.backendId;
      const cut = connection.destroy?.() ?? connection.close();
      // Its socket is cut now; the session ends on the server right after, which a closing pool waits for
      // (boundedly), so once close() resolves nothing of Roost's holds the process or runs on the server.
      return id === undefined || endSession === undefined
        ? cut
        : Promise.all([cut, endSession(id, hostOf(connection) ?? url)]).then(() => {});
    },
    broken: (connection) => connection.broken === true,
    ping: (connection) => connection.ping?.(),
    unwatched: (connection) => connection.unwatched === true,
  };
  // Outside any context each connection serves one statement or scope: the first one opened is said once.
  const root = { ...hooks, open: (signal?: AbortSignal) => (openedOutsideContext(), hooks.open(signal)) };
  const max = Math.max(1, Math.min(options.max, Math.floor(socketsPerRequest / servers)));
  const server = contextScoped
    ? new Server(
      role,
      index,
      url.toString(),
      new Pool(root, { ...options, max: Infinity }, label, false),
      () => new Pool(hooks, { ...options, min: 0, max }, `${label} (context)`),
    )
    : new Server(role, index, url.toString(), new Pool(hooks, options, label));
  server.transactionPooled = transactionPooled(url);
  return server;
}

/** Checks a replica out of the rotation: takes a connection of its pool and pings it (or runs `SELECT 1`). */
export async function probeServer(server: Server): Promise<void> {
  const item = await server.pool.acquire();
  let broken = false;
  try {
    await (item.connection.ping?.() ?? item.connection.fetchOne("SELECT 1", []));
  } catch (error) {
    broken = true;
    throw error;
  } finally {
    server.pool.release(item, broken);
  }
}
