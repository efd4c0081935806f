/**
 * A SQLite connection run in a Worker thread (`sqlite:app.db?worker=true`):
 * the thread opens it with the same synchronous driver and runs every
 * statement, and the connection returned here forwards calls to it, so a long
 * query no longer blocks the event loop. Loaded only when the option is set.
 *
 * The thread never keeps the process alive while it is idle, and ends when
 * the connection closes. If it dies, the connection reports `broken` and its
 * calls fail with `ConnectionError`.
 *
 * @module
 */
import { Worker } from "node:worker_threads";
import type { DriverConnection, ExecuteResult, Row, Rows, StreamPlacement } from "../../driver.ts";
import { ConnectionError, messageOf, QueryError } from "../../errors.ts";
import type { DatabaseUrl } from "../../url.ts";
import { sqliteParams } from "./values.ts";
import { siblingModule } from "../shared/sibling.ts";
import {
  decodeError,
  type SqliteWorkerDriver,
  type SqliteWorkerRequest,
  type SqliteWorkerResponse,
  type StreamStep,
} from "./worker_protocol.ts";

/**
 * The thread's module as `node:worker_threads` takes it: its file; or,
 * where Roost itself was loaded over http(s) (from JSR, on Deno, whose
 * `node:worker_threads` starts only `file:` and `data:` modules), a `data:`
 * module that imports it.
 */
export function threadModule(module: URL): URL {
  if (module.protocol === "file:" || module.protocol === "data:") return module;
  return new URL(`data:text/javascript,${encodeURIComponent(`import ${JSON.stringify(module.href)};`)}`);
}

/**
 * Never called: the thread's module by a literal specifier, so Deno's tools
 * (`deno install`, `deno cache`, `deno compile`) fetch it with the module
 * that starts it, and a program installed ahead runs `worker=true` offline.
 */
export const threadModuleForTools = (): Promise<unknown> => import("./worker_thread.ts");

/** A request without its id (the connection numbers them). */
type Request = SqliteWorkerRequest extends infer R ? R extends unknown ? Omit<R, "id"> : never : never;

interface Pending {
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

/**
 * A SQLite connection whose statements run in a Worker thread. Parameters
 * are converted here (so invalid ones fail before crossing), rows and errors
 * come back through structured clone, errors rebuilt as the same Roost
 * classes with the same message, `code` and `sql`.
 */
export class SqliteWorkerConnection implements DriverConnection {
  readonly #worker: Worker;
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #nextStream = 1;
  #failure: ConnectionError | undefined;
  #closing: Promise<void> | undefined;

  private constructor(worker: Worker) {
    this.#worker = worker;
    worker.on("message", (response: SqliteWorkerResponse) => this.#settle(response));
    worker.on("error", (error: unknown) => {
      this.#fail(new ConnectionError(`the SQLite worker thread failed: ${messageOf(error)}`, { cause: error }));
    });
    worker.on("messageerror", (error: unknown) => {
      this.#fail(
        new ConnectionError("the SQLite worker thread sent a message that could not be read", { cause: error }),
      );
    });
    worker.on("exit", (code: number) => {
      this.#fail(new ConnectionError(`the SQLite worker thread exited (exit code ${code})`));
    });
  }

  /** Starts a thread and opens the connection in it; throws `ConnectionError` when either fails. */
  static async open(driver: SqliteWorkerDriver, url: DatabaseUrl): Promise<SqliteWorkerConnection> {
    let worker: Worker;
    try {
      worker = new Worker(threadModule(siblingModule("worker_thread", import.meta.url)));
    } catch (error) {
      throw new ConnectionError(`could not start a worker thread for SQLite: ${messageOf(error)}`, { cause: error });
    }
    const connection = new SqliteWorkerConnection(worker);
    const { dialect, scheme, host, port, user, database, options } = url;
    try {
      await connection.#call({ op: "open", driver, url: { dialect, scheme, host, port, user, database, options } });
    } catch (error) {
      await connection.close();
      throw error;
    }
    return connection;
  }

  /** True once the thread has died or the connection has closed. */
  get broken(): boolean {
    return this.#failure !== undefined;
  }

  #call(request: Request): Promise<unknown> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      try {
        this.#worker.postMessage({ ...request, id });
      } catch (error) {
        const sql = "text" in request ? request.text : undefined;
        reject(
          new QueryError(`could not send the statement to the SQLite worker thread: ${messageOf(error)}`, { sql }),
        );
        return;
      }
      this.#pending.set(id, { resolve, reject });
      // While a call is in flight the thread keeps the process alive; idle, it never does.
      if (this.#pending.size === 1) this.#worker.ref();
    });
  }

  #settle(response: SqliteWorkerResponse): void {
    const pending = this.#pending.get(response.id);
    if (pending === undefined) return;
    this.#pending.delete(response.id);
    if (this.#pending.size === 0) this.#worker.unref();
    if (response.ok) pending.resolve(response.value);
    else pending.reject(decodeError(response.error));
  }

  #fail(error: ConnectionError): void {
    if (this.#failure !== undefined) return;
    this.#failure = error;
    for (const pending of this.#pending.values()) pending.reject(error);
    this.#pending.clear();
    this.#worker.unref();
  }

  /** Runs a statement in the thread. */
  execute(text: string, params: readonly unknown[]): Promise<ExecuteResult> {
    try {
      return this.#call({ op: "execute", text, params: sqliteParams(params) }) as Promise<ExecuteResult>;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Runs one statement for every parameter set in the thread. */
  executeMany(text: string, paramSets: readonly (readonly unknown[])[]): Promise<ExecuteResult> {
    try {
      const converted = paramSets.map(sqliteParams);
      return this.#call({ op: "executeMany", text, paramSets: converted }) as Promise<ExecuteResult>;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Returns every row. */
  fetchAll(text: string, params: readonly unknown[]): Promise<Row[]> {
    try {
      return this.#call({ op: "fetchAll", text, params: sqliteParams(params) }) as Promise<Row[]>;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Returns the first row, or undefined. */
  fetchOne(text: string, params: readonly unknown[]): Promise<Row | undefined> {
    try {
      return this.#call({ op: "fetchOne", text, params: sqliteParams(params) }) as Promise<Row | undefined>;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Returns every row as an array, with the column names. */
  fetchRows(text: string, params: readonly unknown[]): Promise<Rows> {
    try {
      return this.#call({ op: "fetchRows", text, params: sqliteParams(params) }) as Promise<Rows>;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Streams rows a batch per round trip; between batches the thread runs
   * other statements, and `return()` finalises the thread's statement.
   */
  async *stream(
    text: string,
    params: readonly unknown[],
    batchSize: number,
    placement: StreamPlacement,
    arrays?: boolean,
  ): AsyncIterableIterator<Row[]> {
    const stream = this.#nextStream++;
    let open = false;
    try {
      const converted = sqliteParams(params);
      open = true;
      let result = await this.#call({
        op: "stream",
        stream,
        text,
        params: converted,
        batchSize,
        placement,
        arrays,
      }) as StreamStep;
      while (!result.done) {
        yield result.batch!;
        result = await this.#call({ op: "next", stream }) as StreamStep;
      }
      open = false;
    } catch (error) {
      // A failed stream is already gone from the thread.
      open = false;
      throw error;
    } finally {
      if (open && this.#failure === undefined) await this.#call({ op: "return", stream }).catch(() => {});
    }
  }

  /** Checks that the thread still answers. */
  async ping(): Promise<void> {
    await this.#call({ op: "ping" });
  }

  /**
   * Stops the thread at once, abandoning the statement in flight (which
   * rejects with `ConnectionError`, as does every later call). `close()` is
   * the orderly way; this is for a thread that must not finish its work.
   */
  async terminate(): Promise<void> {
    this.#fail(new ConnectionError("the SQLite worker thread was terminated"));
    try {
      await this.#worker.terminate();
    } catch {
      // Already gone.
    }
  }

  /** Closes the connection in the thread, then ends the thread; never throws. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      try {
        await this.#call({ op: "close" });
      } catch {
        // The thread is gone or could not close: ending it is all that is left.
      }
      this.#fail(new ConnectionError("the SQLite connection is closed"));
      try {
        await this.#worker.terminate();
      } catch {
        // Already gone.
      }
    })();
    return this.#closing;
  }
}

/** Opens a SQLite connection in a Worker thread with `driver`, the URL's other options applying as usual. */
export function openSqliteWorker(driver: SqliteWorkerDriver, url: DatabaseUrl): Promise<SqliteWorkerConnection> {
  return SqliteWorkerConnection.open(driver, url);
}
