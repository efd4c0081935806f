/**
 * The sockets of the deno-postgres driver's connects: a process-wide wrapper
 * of `Deno.connect` that records the sockets opened inside Roost's connects
 * (and gives them `TCP_NODELAY`), so a connect Roost gives up on has its
 * socket closed.
 *
 * @module
 */
import { backgroundTimeout } from "../../runtime.ts";
import { onAbort } from "../shared/abort.ts";
import type { PgClient } from "./deno_postgres_client.ts";

/** A socket deno-postgres opened (a `Deno.TcpConn`). */
interface Closable {
  close(): void;
  setNoDelay?(noDelay?: boolean): void;
}

/** The sockets one `connect()` call opened, and whether Roost gave up on it. */
interface Opened {
  sockets: Closable[];
  abandoned: boolean;
}

/** What `node:async_hooks` gives this driver. */
interface AsyncStorage {
  run<T>(store: Opened, callback: () => T): T;
  getStore(): Opened | undefined;
}

let opening: AsyncStorage | undefined;

/**
 * Records the sockets deno-postgres opens (with `Deno.connect`) while a
 * Roost connection is being made, so a connection Roost gives up on (its
 * `connect_timeout` passed while the server stayed silent) has its socket
 * closed: deno-postgres closes only the sockets of connections it finished.
 * Each such socket also gets `TCP_NODELAY`.
 * `Deno.connect` is wrapped once, and behaves as before outside Roost's
 * connects (it only records, inside them).
 */
async function openingSockets(): Promise<AsyncStorage | undefined> {
  if (opening !== undefined) return opening;
  const deno = (globalThis as { Deno?: { connect?: (...args: unknown[]) => Promise<Closable> } }).Deno;
  const connect = deno?.connect;
  if (deno === undefined || connect === undefined) return undefined;
  const { AsyncLocalStorage } = await import("node:async_hooks");
  if (opening !== undefined) return opening;
  const storage: AsyncStorage = new AsyncLocalStorage<Opened>();
  deno.connect = function (this: unknown, ...args: unknown[]): Promise<Closable> {
    const connecting = connect.apply(this, args);
    const opened = storage.getStore();
    if (opened !== undefined) {
      connecting.then((socket) => {
        // deno-postgres writes each message of a statement with parameters separately (Parse, Bind, Execute…):
        // with Nagle's algorithm on, each such statement waits ~40 ms for the server's delayed ACK.
        socket.setNoDelay?.(true);
        opened.sockets.push(socket);
        if (opened.abandoned) closeSockets(opened);
      }, () => {});
    }
    return connecting;
  };
  opening = storage;
  return storage;
}

function closeSockets(opened: Opened): void {
  for (const socket of opened.sockets.splice(0)) {
    try {
      socket.close();
    } catch {
      // Closed already, or handed to TLS (which took it over).
    }
  }
}

/**
 * Connects, giving up after `seconds` (0: no limit) or when `signal` aborts;
 * a connection that arrives later is closed.
 */
export async function connectWithin(client: PgClient, seconds: number, signal?: AbortSignal): Promise<void> {
  const storage = await openingSockets();
  const opened: Opened = { sockets: [], abandoned: false };
  const connecting = storage === undefined ? client.connect() : storage.run(opened, () => client.connect());
  if (seconds <= 0 && signal === undefined) return await connecting;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopListening = () => {};
  const timeout = new Promise<never>((_, reject) => {
    if (seconds > 0) {
      timer = backgroundTimeout(
        () => reject(Object.assign(new Error(`timed out after ${seconds} s`), { code: "CONNECT_TIMEOUT" })),
        seconds * 1000,
      );
    }
    stopListening = onAbort(signal, () => reject(signal?.reason));
  });
  try {
    await Promise.race([connecting, timeout]);
  } catch (error) {
    connecting.then(() => client.end(), () => {}).catch(() => {});
    // A connect still under way (a silent server) holds its socket until the server answers: close it now.
    opened.abandoned = true;
    closeSockets(opened);
    throw error;
  } finally {
    clearTimeout(timer);
    stopListening();
  }
}
