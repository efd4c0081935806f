/**
 * The Worker thread behind a `worker=true` SQLite connection: it opens the
 * connection with the runtime's synchronous SQLite driver and answers the
 * proxy's requests (see `sqlite_worker.ts`) one message at a time, so a long
 * statement blocks this thread instead of the program's event loop.
 *
 * @module
 */
import { parentPort } from "node:worker_threads";
import type { Driver, DriverConnection, Row } from "../../driver.ts";
import { ConnectionError } from "../../errors.ts";
import { DatabaseUrl } from "../../url.ts";
import {
  encodeError,
  type SqliteWorkerDriver,
  type SqliteWorkerRequest,
  type SqliteWorkerResponse,
  type StreamStep,
} from "./worker_protocol.ts";

if (parentPort === null) throw new Error("sqlite_worker_thread.ts runs only as a Worker thread");
const port = parentPort;

let connection: DriverConnection | undefined;
const streams = new Map<number, AsyncIterator<Row[]>>();

async function loadDriver(name: SqliteWorkerDriver): Promise<Driver> {
  return name === "bun-sqlite"
    ? (await import("./bun_sqlite.ts")).bunSqlite
    : (await import("./node_sqlite.ts")).nodeSqlite;
}

function opened(): DriverConnection {
  if (connection === undefined) throw new ConnectionError("the SQLite connection is not open");
  return connection;
}

/** One batch of a stream, or `done` once it has no more rows. */
async function next(id: number): Promise<StreamStep> {
  const rows = streams.get(id);
  if (rows === undefined) return { done: true };
  try {
    const result = await rows.next();
    if (result.done) streams.delete(id);
    return result.done ? { done: true } : { done: false, batch: result.value };
  } catch (error) {
    streams.delete(id);
    throw error;
  }
}

async function stop(id: number): Promise<void> {
  const rows = streams.get(id);
  streams.delete(id);
  await rows?.return?.();
}

async function handle(request: SqliteWorkerRequest): Promise<unknown> {
  switch (request.op) {
    case "open": {
      const driver = await loadDriver(request.driver);
      const { worker: _, ...options } = request.url.options;
      connection = await driver.connect(new DatabaseUrl({ ...request.url, options }));
      return undefined;
    }
    case "execute":
      return await opened().execute(request.text, request.params);
    case "executeMany":
      return await opened().executeMany(request.text, request.paramSets);
    case "fetchAll":
      return await opened().fetchAll(request.text, request.params);
    case "fetchOne":
      return await opened().fetchOne(request.text, request.params);
    case "fetchRows":
      return await opened().fetchRows(request.text, request.params);
    case "stream": {
      const { stream, text, params, batchSize, placement, arrays } = request;
      streams.set(stream, opened().stream(text, params, batchSize, placement, arrays));
      return await next(stream);
    }
    case "next":
      return await next(request.stream);
    case "return":
      return await stop(request.stream);
    case "ping":
      opened();
      return undefined;
    case "close": {
      for (const id of [...streams.keys()]) await stop(id).catch(() => {});
      await connection?.close();
      connection = undefined;
      return undefined;
    }
  }
}

function reply(response: SqliteWorkerResponse): void {
  try {
    port.postMessage(response);
  } catch (error) {
    // A value structured clone cannot copy: answer with the error instead of never answering.
    port.postMessage({ id: response.id, ok: false, error: encodeError(error) });
  }
}

port.on("message", (request: SqliteWorkerRequest) => {
  handle(request).then(
    (value) => reply({ id: request.id, ok: true, value }),
    (error) => reply({ id: request.id, ok: false, error: encodeError(error) }),
  );
});
