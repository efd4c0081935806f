/**
 * The mysql2 driver: MySQL and MariaDB on Deno, Bun, Node and Workers.
 * Each Roost connection is one mysql2 connection; Roost's pool does the
 * pooling, so every query gets an acquire timeout (mysql2's own pool has none).
 *
 * @example Passing the driver object (for bundlers that drop lazy imports)
 * ```ts
 * import { Database } from "@roost/db";
 * import { mysql2 } from "@roost/db/drivers/mysql2";
 * const db = new Database("mysql://root@localhost/app", { driver: mysql2 });
 * ```
 *
 * @module
 */
import { Buffer } from "node:buffer";
import mysqlCore from "mysql2";
import type mysql from "mysql2/promise";
import type { Driver, DriverConnection, ExecuteResult, Row, Rows, StreamPlacement } from "../../driver.ts";
import { ConfigError } from "../../errors.ts";
import { runtime } from "../../runtime.ts";
import { connectTimeoutSeconds } from "../../url.ts";
import { executeBatched, inBatches } from "../shared/batch.ts";
import { onAbort } from "../shared/abort.ts";
import {
  connectFailed,
  connectionLost,
  type ErrorRules,
  ownCode,
  sanitizedCause,
  translateError,
} from "../shared/errors.ts";
import { nodeTlsOptions, type TlsRequest, tlsRequest } from "../shared/tls.ts";
import { integerFromText } from "../shared/values.ts";
import { fatalMysqlErrors, mysqlErrorFields, redactMysqlValues } from "./errors.ts";
import { startMysqlSession } from "./session.ts";
import { mysqlParam, tinyintBoolean } from "./values.ts";

type Connection = mysql.Connection;
type Field = { name: string; columnType?: number; type?: number; characterSet?: number; columnLength?: number };

const tiny = 1;
const longlong = 8;
const binaryCharset = 63;
/** BIT, the BLOBs and (VAR)BINARY: bytes when their character set is binary. */
const byteTypes = new Set([16, 249, 250, 251, 252, 253, 254]);

/**
 * Whether the runtime compiles code from a string. Where it does, mysql2
 * generates a row parser per result shape, which reads rows faster than its
 * static one (a third more 100-row selects a second); where it does not,
 * mysql2 is opened with `disableEval`. workerd allows it while a Worker's
 * modules load and refuses it while a request runs, which is when mysql2
 * builds its parsers, so a probe at load time would say yes: Workers are
 * asked by name, other runtimes by trying.
 */
const codeFromStrings = runtime !== "workerd" && (() => {
  try {
    return new Function("return true")() === true;
  } catch {
    return false;
  }
})();

/** Column names mysql2 refuses to read (they would reach Object.prototype's internals). */
const refusedNames = new Set([
  "__proto__",
  "__defineGetter__",
  "__defineSetter__",
  "__lookupGetter__",
  "__lookupSetter__",
]);

/**
 * Listens to a statement's `fields`, which mysql2 announces just before it
 * builds the row parser. Its generated parser refuses a column named like
 * Object.prototype's internals while it is built, which mysql2 takes for a
 * broken connection; its static one refuses it while reading the row, which
 * fails the statement only (a QueryError). Such a result is read statically.
 */
function refuseInternalsPerRow(
  this: { options?: { disableEval?: boolean } },
  fields: readonly Field[] | undefined,
): void {
  if (this.options && fields?.some((field) => refusedNames.has(field.name))) this.options.disableEval = true;
}

/**
 * The most rows a stream hands on at once, whatever its `batchSize`. Fewer
 * rows alive at a time let V8 keep its young generation small: a million
 * rows in batches of 1,000 raised resident memory by about 60 MiB on Node,
 * in chunks of 256 by about 28 MiB.
 */
const streamChunk = 256;

const sanitized = (error: unknown) => sanitizedCause(error, mysqlErrorFields, redactMysqlValues);

/** mysql2's errors: `code` is its name of the server's error, `fatal` marks a connection it gave up. */
const errors: ErrorRules = {
  dialect: "mysql",
  cause: sanitized,
  redact: redactMysqlValues,
  classify(error) {
    // mysql2 names MySQL's errors only; MariaDB's own (1969: max_statement_time) come as a number.
    const code = ownCode(error) ??
      (error.errno === 1969 ? "ER_STATEMENT_TIMEOUT" : typeof error.sqlState === "string" ? error.sqlState : undefined);
    return {
      code,
      fatal: error.fatal === true || (code !== undefined && fatalMysqlErrors.has(code)) || connectionLost(code),
    };
  },
};

const translate = (error: unknown, text: string) => translateError(errors, error, text);

/** One value as mysql2 binds it right: MySQL's bind rules, with bytes as Buffers (mysql2 sends only those as binary). */
function toMysql(value: unknown, index: number): unknown {
  const bound = mysqlParam(value, index);
  return bound instanceof Uint8Array && !Buffer.isBuffer(bound)
    ? Buffer.from(bound.buffer, bound.byteOffset, bound.byteLength)
    : bound;
}

/** Converts parameters for binding; copies the array only when a value needs converting. */
function mysqlParams(params: readonly unknown[]): unknown[] {
  let out: unknown[] | undefined;
  for (let i = 0; i < params.length; i++) {
    const converted = toMysql(params[i], i);
    if (converted !== params[i]) {
      out ??= params.slice();
      out[i] = converted;
    }
  }
  return out ?? params as unknown[];
}

/** The columns of a result that need converting, by kind. */
interface Plan {
  /** BIGINT: a safe one comes as a number (kept), a bigger one as its text (made a bigint). */
  integers: string[];
  /** Binary columns: Buffer to Uint8Array. */
  bytes: string[];
  /** TINYINT(1), which is what BOOLEAN means: 0 and 1 to false and true. */
  booleans: string[];
}

/** Which columns need converting; undefined when none does (no allocation then: the common case). */
function conversions(fields: readonly Field[] | undefined): Plan | undefined {
  if (!fields) return undefined;
  let plan: Plan | undefined;
  for (const field of fields) {
    const type = field.columnType ?? field.type;
    if (type === longlong) (plan ??= { integers: [], bytes: [], booleans: [] }).integers.push(field.name);
    else if (type === tiny && field.columnLength === 1) {
      (plan ??= { integers: [], bytes: [], booleans: [] }).booleans.push(field.name);
    } else if (type !== undefined && byteTypes.has(type) && field.characterSet === binaryCharset) {
      (plan ??= { integers: [], bytes: [], booleans: [] }).bytes.push(field.name);
    }
  }
  return plan;
}

function convertRows(rows: Row[], fields: readonly Field[] | undefined): Row[] {
  if (rows.length === 0) return rows;
  const plan = conversions(fields);
  if (plan) { for (const row of rows) convertRow(row, plan); }
  return rows;
}

function convertRow(row: Row, plan: Plan): Row {
  for (const name of plan.integers) {
    const value = row[name];
    if (typeof value === "string") row[name] = integerFromText(value);
  }
  for (const name of plan.bytes) {
    const value = row[name];
    if (value instanceof Uint8Array) row[name] = new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  }
  for (const name of plan.booleans) row[name] = tinyintBoolean(row[name]);
  return row;
}

/** One column's conversion in an array row. */
type Convert = (value: unknown) => unknown;

const exactText: Convert = (value) => typeof value === "string" ? integerFromText(value) : value;
const plainBytes: Convert = (value) =>
  value instanceof Uint8Array ? new Uint8Array(value.buffer, value.byteOffset, value.byteLength) : value;

/** `conversions` for array rows: each column's by position; undefined when none is needed. */
function conversionsAt(fields: readonly Field[] | undefined): (Convert | undefined)[] | undefined {
  let plan: (Convert | undefined)[] | undefined;
  fields?.forEach((field, i) => {
    const type = field.columnType ?? field.type;
    const convert = type === longlong
      ? exactText
      : type === tiny && field.columnLength === 1
      ? tinyintBoolean
      : type !== undefined && byteTypes.has(type) && field.characterSet === binaryCharset
      ? plainBytes
      : undefined;
    if (convert) (plan ??= [])[i] = convert;
  });
  return plan;
}

/** An array row converted in place by `plan`. */
function convertValues(row: unknown[], plan: readonly (Convert | undefined)[]): unknown[] {
  for (let i = 0; i < plan.length; i++) {
    const convert = plan[i];
    if (convert) row[i] = convert(row[i]);
  }
  return row;
}

/** A result's rows as arrays, converted, with its column names. */
function rowArraysOf(result: unknown, fields: Field[] | undefined): Rows {
  const rows = Array.isArray(result) ? result as unknown[][] : [];
  const plan = rows.length > 0 ? conversionsAt(fields) : undefined;
  if (plan) { for (const row of rows) convertValues(row, plan); }
  return { columns: fields?.map((field) => field.name) ?? [], rows };
}

/** What a statement changed: mysql2's result header as an `ExecuteResult`. */
function outcomeOf(result: unknown): ExecuteResult {
  const header = result as { affectedRows?: number; insertId?: number | string };
  const outcome: ExecuteResult = { rowCount: header.affectedRows ?? 0 };
  if (header.insertId) outcome.lastInsertId = integerFromText(String(header.insertId));
  return outcome;
}

/** A result's rows, converted; none for a statement that returns no rows. */
function rowsOf(result: unknown, fields: Field[] | undefined): Row[] {
  return Array.isArray(result) ? convertRows(result as Row[], fields) : [];
}

/** A result's first row, converted (the others are not). */
function firstRowOf(result: unknown, fields: Field[] | undefined): Row | undefined {
  if (!Array.isArray(result) || result.length === 0) return undefined;
  const plan = conversions(fields);
  return plan ? convertRow(result[0] as Row, plan) : result[0] as Row;
}

/** A mysql2 row stream (a Readable in object mode): its rows, which a destroy ends with an error. */
type RowStream = AsyncIterable<Row> & {
  destroy(error?: Error): void;
  read(): Row | null;
  on(event: string, listener: () => void): void;
  readonly errored: Error | null;
  readonly readableEnded: boolean;
  readonly destroyed: boolean;
};

/** Whether a stream's error is the server's answer, which ends the result and leaves the connection usable. */
function fromServer(error: Error): boolean {
  const { errno, fatal } = error as { errno?: unknown; fatal?: unknown };
  return typeof errno === "number" && fatal !== true;
}

/**
 * A result streaming in batches. MySQL sends a result whole before the
 * connection takes another statement, so when one comes on a scope's
 * connection while the loop is suspended between batches, the connection
 * calls `drain`: the rest of the rows are read into this stream's memory and
 * handed out from there. Until then rows are read as they are handed out
 * (flat memory). A stream on a connection of its own is never drained.
 */
class ResultStream {
  readonly #rows: RowStream;
  readonly #convert: (row: Row) => Row;
  readonly #size: number;
  /** The batches read ahead by a drain, handed out in order. */
  readonly #ahead: Row[][] = [];
  #ended = false;
  #failure: { error: unknown } | undefined;
  /** The batch being read for the consumer, which a drain waits for so rows keep their order. */
  #reading: Promise<unknown> | undefined;
  #draining: Promise<void> | undefined;
  /** Wakes a read waiting for the stream to have rows, end or fail. */
  #wake: (() => void) | undefined;

  constructor(rows: RowStream, convert: (row: Row) => Row, size: number) {
    this.#rows = rows;
    this.#convert = convert;
    this.#size = size;
    const wake = () => {
      const waiting = this.#wake;
      this.#wake = undefined;
      waiting?.();
    };
    // Rows are taken with read() as long as there are some, a promise only when the stream has none buffered:
    // an async iterator's promise per row costs more. The error listener also keeps an error from going unheard.
    for (const event of ["readable", "end", "close", "error"]) rows.on(event, wake);
  }

  /**
   * True once the whole result has arrived, or the server failed it: the
   * connection then owes nothing more of it. A failure of mysql2's own (a
   * row it refuses to read) leaves the rest of the result on its way.
   */
  get ended(): boolean {
    return this.#ended;
  }

  /** The next batch (empty at the end); the error that cut the result short comes after the rows before it. */
  async next(): Promise<Row[]> {
    if (this.#draining) await this.#draining;
    const ahead = this.#ahead.shift();
    if (ahead) return ahead;
    if (this.#failure) throw this.#failure.error;
    if (this.#ended) return [];
    const reading = this.#reading = this.#read();
    try {
      return await reading;
    } finally {
      this.#reading = undefined;
    }
  }

  /** Reads the rest of the result into memory, so the connection can take another statement; never throws. */
  drain(): Promise<void> {
    return this.#draining ??= this.#readRest();
  }

  /** Stops reading (the connection is discarded with it). */
  destroy(): void {
    this.#rows.destroy();
  }

  /** Reads the rest of the result and drops it (leaving early keeps the connection); never throws. */
  async discard(): Promise<void> {
    await this.drain();
    this.#ahead.length = 0;
  }

  async #readRest(): Promise<void> {
    await this.#reading?.catch(() => undefined);
    try {
      while (!this.#ended && !this.#failure) {
        const batch = await this.#read();
        if (batch.length > 0) this.#ahead.push(batch);
      }
    } catch (error) {
      this.#failure = { error };
    }
  }

  async #read(): Promise<Row[]> {
    const rows = this.#rows;
    const batch: Row[] = [];
    while (batch.length < this.#size) {
      const row = rows.read();
      if (row !== null) {
        batch.push(this.#convert(row));
        continue;
      }
      if (rows.errored || (rows.destroyed && !rows.readableEnded)) {
        const error = rows.errored ?? new Error("the stream was closed before its end");
        this.#ended = fromServer(error);
        // The rows read before the failure are handed out first; the next read throws it.
        this.#failure = { error };
        if (batch.length > 0) return batch;
        throw error;
      }
      if (rows.readableEnded) {
        this.#ended = true;
        break;
      }
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
    return batch;
  }
}

class Mysql2Connection implements DriverConnection {
  readonly #connection: Connection;
  /** mysql2's callback connection under the promise one. */
  readonly #core: CoreConnection;
  #lost: Error | undefined;
  /** The server's connection id. */
  readonly backendId: number;
  /** The rows of the stream running now, which a destroy must end too. */
  #rows: { destroy(error?: Error): void } | undefined;
  /** A scope's stream whose result is still arriving: read into its memory before another statement is sent. */
  #open: ResultStream | undefined;
  /** Whether the session has a statement timeout (a scope's stream then reads its result whole: see `stream`). */
  #timed = false;

  constructor(connection: Connection) {
    this.#connection = connection;
    this.#core = (connection as unknown as { connection: CoreConnection }).connection;
    this.backendId = connection.threadId;
    // An idle connection's error must never crash the process: remember it, fail the next use.
    connection.on("error", (error: Error) => this.#lost = error);
    // The server closing the socket (KILL, a restart) comes as "end"; "error" follows only once the socket
    // is closed, which on Deno is a few ticks later: long enough for the pool to hand the connection out.
    connection.on("end", () => this.#lost ??= new Error("the server closed the connection"));
  }

  get broken(): boolean {
    return this.#lost !== undefined;
  }

  #check(text: string): void {
    if (this.#lost) throw translate(Object.assign(this.#lost, { fatal: true }), text);
  }

  timeoutSet(): void {
    this.#timed = true;
  }

  /** Frees the connection of a scope's stream suspended between batches: its rest is read into its memory. */
  async #settle(): Promise<void> {
    const open = this.#open;
    if (!open) return;
    await open.drain();
    if (this.#open === open) this.#open = undefined;
    if (!open.ended) this.#abandon(open);
  }

  /**
   * Gives up the connection under a result that did not reach its end: the
   * server keeps sending the rest and MySQL cannot cancel it, so the
   * connection is discarded rather than drained.
   */
  #abandon(rows: { destroy(): void }): void {
    this.#lost ??= new Error("stream abandoned before its end");
    rows.destroy();
    this.#connection.destroy();
  }

  /**
   * Runs a prepared statement (mysql2 prepares each text once per connection
   * and keeps it) on mysql2's callback connection, its promise wrapper left
   * out: that adds a promise and captures a stack trace on every call, and
   * Roost's errors carry their own. `done` makes the result of what mysql2
   * answered.
   */
  #run<T>(
    text: string,
    params: readonly unknown[],
    done: (result: unknown, fields: Field[] | undefined) => T,
  ): Promise<T> {
    if (this.#open) return this.#settle().then(() => this.#run(text, params, done));
    return new Promise((resolve, reject) => {
      try {
        this.#check(text);
        this.#core.execute(text, mysqlParams(params), (error, result, fields) => {
          if (error) return reject(translate(error, text));
          // A conversion that throws fails this statement, never mysql2's callback.
          try {
            resolve(done(result, fields));
          } catch (failed) {
            reject(translate(failed, text));
          }
        }).on("fields", refuseInternalsPerRow);
      } catch (error) {
        reject(translate(error, text));
      }
    });
  }

  execute(text: string, params: readonly unknown[]): Promise<ExecuteResult> {
    return this.#run(text, params, outcomeOf);
  }

  /** A single-tuple INSERT becomes multi-row INSERTs; anything else reuses one prepared statement. */
  executeMany(text: string, paramSets: readonly (readonly unknown[])[]): Promise<ExecuteResult> {
    return executeBatched(text, paramSets, (chunkText, params) => this.execute(chunkText, params));
  }

  fetchAll(text: string, params: readonly unknown[]): Promise<Row[]> {
    return this.#run(text, params, rowsOf);
  }

  fetchOne(text: string, params: readonly unknown[]): Promise<Row | undefined> {
    return this.#run(text, params, firstRowOf);
  }

  /** `#run` with rows as arrays (mysql2's `rowsAsArray`). */
  fetchRows(text: string, params: readonly unknown[]): Promise<Rows> {
    if (this.#open) return this.#settle().then(() => this.fetchRows(text, params));
    return new Promise((resolve, reject) => {
      try {
        this.#check(text);
        this.#core.execute({ sql: text, rowsAsArray: true }, mysqlParams(params), (error, result, fields) => {
          if (error) return reject(translate(error, text));
          try {
            resolve(rowArraysOf(result, fields));
          } catch (failed) {
            reject(translate(failed, text));
          }
        }).on("fields", refuseInternalsPerRow);
      } catch (error) {
        reject(translate(error, text));
      }
    });
  }

  async *stream(
    text: string,
    params: readonly unknown[],
    batchSize: number,
    placement: StreamPlacement,
    arrays?: boolean,
  ): AsyncIterableIterator<Row[]> {
    await this.#settle();
    this.#check(text);
    // MySQL and MariaDB time a streamed statement until its last row is sent, so under a statement timeout a loop
    // slower than the timeout would be cut off: in a scope, where the result was always read whole, it still is.
    if (placement !== "own" && this.#timed) {
      const rows = arrays ? this.fetchRows(text, params).then((result) => result.rows as unknown as Row[]) : undefined;
      yield* inBatches(rows ?? this.fetchAll(text, params), batchSize);
      return;
    }
    // MySQL sends the whole result as one stream, so a batch here is only how many rows are handed on at once:
    // at most `streamChunk`, which keeps fewer rows alive at a time (see `streamChunk`).
    const chunk = Math.min(batchSize, streamChunk);
    const { rows, convert } = this.#query(text, params, chunk, arrays);
    const stream = new ResultStream(rows, convert, chunk);
    // On a scope's connection, another statement while the loop is suspended first reads the rest into the
    // stream's memory (`#settle`); on a connection of its own nothing else runs until the stream ends.
    const inScope = placement !== "own";
    if (inScope) this.#open = stream;
    let failed = false;
    try {
      for (;;) {
        const batch = await stream.next();
        if (batch.length === 0) break;
        yield batch;
      }
    } catch (error) {
      failed = true;
      throw translate(error, text);
    } finally {
      // Leaving a scope's stream early reads the rest and drops it, so the connection (and its transaction) stays.
      if (inScope && !failed) await stream.discard();
      if (this.#open === stream) this.#open = undefined;
      if (this.#rows === rows) this.#rows = undefined;
      if (!stream.ended) this.#abandon(stream);
    }
  }

  /** Sends a query whose rows stream, `chunk` rows buffered at most, and how to convert each row. */
  #query(
    text: string,
    params: readonly unknown[],
    chunk: number,
    arrays?: boolean,
  ): { rows: RowStream; convert: (row: Row) => Row } {
    const values = mysqlParams(params);
    const query = this.#core.query(arrays ? { sql: text, values, rowsAsArray: true as const } : { sql: text, values });
    let fields: Field[] | undefined;
    query.on("fields", refuseInternalsPerRow);
    query.on("fields", (received: Field[] | undefined) => fields = received);
    const rows = this.#rows = query.stream({ highWaterMark: chunk }) as RowStream;
    if (arrays) {
      let at: ReturnType<typeof conversionsAt>;
      let seen = false;
      const convertArray = (row: unknown[]) => {
        if (!seen) {
          at = conversionsAt(fields);
          seen = true;
        }
        return at ? convertValues(row, at) : row;
      };
      return { rows, convert: convertArray as unknown as (row: Row) => Row };
    }
    let plan: ReturnType<typeof conversions>;
    let planned = false;
    const convert = (row: Row) => {
      if (!planned) {
        plan = conversions(fields);
        planned = true;
      }
      return plan ? convertRow(row, plan) : row;
    };
    return { rows, convert };
  }

  async ping(): Promise<void> {
    await this.#settle();
    this.#check("ping");
    try {
      await this.#connection.ping();
    } catch (error) {
      throw translate(error, "ping");
    }
  }

  async close(): Promise<void> {
    // A scope's stream left suspended would hold the connection's end back: it is cut off instead.
    if (this.#open) return this.destroy();
    if (this.#lost) {
      this.#connection.destroy();
      return;
    }
    await this.#connection.end().catch(() => this.#connection.destroy());
  }

  destroy(): Promise<void> {
    this.#lost ??= new Error("connection destroyed");
    // A stream cut off between batches would otherwise wait forever for its next row.
    this.#rows?.destroy(Object.assign(this.#lost, { fatal: true }));
    // mysql2's own destroy() only half-closes the socket, so a running statement would still deliver its result.
    const core = this.#core;
    if (core.stream) core.stream.destroy();
    else this.#connection.destroy();
    return Promise.resolve();
  }
}

/** A mysql2 command, which announces a result's columns before its rows. */
interface Listening {
  on(
    event: "fields",
    listener: (this: { options?: { disableEval?: boolean } }, fields: Field[] | undefined) => void,
  ): void;
}

/** The parts of mysql2's callback connection Roost uses. */
interface CoreConnection {
  stream?: { destroy(): void };
  execute(
    sql: string | { sql: string; rowsAsArray: true },
    values: unknown[],
    callback: (error: Error | null, result: unknown, fields: Field[] | undefined) => void,
  ): Listening;
  query(options: { sql: string; values: unknown[]; rowsAsArray?: true }): Listening & {
    stream(options: { highWaterMark: number }): unknown;
  };
}

/** An IPv4 or IPv6 address, not a host name. */
const ipAddress = (host: string) => /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.includes(":");

/**
 * The URL's TLS settings as mysql2's `ssl` option. mysql2 checks the host
 * name only when told to (`verifyIdentity`), so `verify_ca` checks the
 * chain and `verify_identity` the chain and the name. It cannot fall back to
 * plain text itself: `preferred` asks for TLS without verifying, and
 * `connect` opens a plain connection when the server has no TLS.
 */
function sslOption(request: TlsRequest, host: string): mysql.ConnectionOptions["ssl"] {
  if (request.mode === "disable") return undefined;
  // mysql2 gives node:tls no name for an IP address, and Node's and Deno's then check the certificate for
  // "localhost": refused (ROOST_VERIFY_IDENTITY_IP) rather than connecting unchecked.
  if (request.mode === "verify-full" && ipAddress(host)) {
    throw new ConfigError(
      `mysql2 cannot check the server's certificate against an IP address (${host}) under sslmode=verify_identity: ` +
        "connect by a host name the certificate lists, or use the bun-sql driver on Bun",
      { code: "ROOST_VERIFY_IDENTITY_IP" },
    );
  }
  // mysql2 passes neither checkServerIdentity nor a host to node:tls: verifyIdentity runs node:tls's own check.
  const { checkServerIdentity: _, ...options } = nodeTlsOptions(request, host);
  return { ...options, verifyIdentity: request.mode === "verify-full" };
}

/** mysql2's error when `ssl` is set and the server's greeting offers no TLS. */
const noTlsOffered = "HANDSHAKE_NO_SSL_SUPPORT";

/** mysql2's callback connection, as far as giving up its connect goes. */
interface CoreConnecting {
  readonly stream: { destroy(error?: Error): void };
  once(event: "connect" | "error", listener: (error?: unknown) => void): void;
  off(event: "error", listener: (error?: unknown) => void): void;
  close(): void;
  promise(): Connection;
}

/**
 * Connects as mysql2's promise `createConnection` does, but keeps hold of
 * the connection while it connects, so that when `signal` aborts its socket
 * is destroyed at once (mysql2 then fails the connect) instead of waiting
 * for a silent server until `connectTimeout`.
 */
function connectCore(signal: AbortSignal | undefined, options: mysql.ConnectionOptions): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const core = mysqlCore.createConnection(options) as unknown as CoreConnecting;
    const failed = (error?: unknown) => {
      stopListening();
      reject(error);
    };
    core.once("connect", () => {
      stopListening();
      core.off("error", failed);
      resolve(core.promise());
    });
    core.once("error", failed);
    const stopListening = onAbort(signal, () => {
      // The socket's error fails the handshake; close() then clears mysql2's connect timer.
      core.stream.destroy(new Error("the pool closed while connecting"));
      core.close();
      reject(signal?.reason);
    });
  });
}

/** The mysql2 driver. */
export const mysql2: Driver = {
  name: "mysql2",
  dialect: "mysql",
  interleavedStreams: false,
  async connect(url, signal) {
    const { charset } = url.options;
    const tls = tlsRequest(url);
    const ssl = sslOption(tls, url.host);
    let connection: Connection;
    const options: mysql.ConnectionOptions = {
      host: url.host,
      port: url.port,
      user: url.user || undefined,
      password: url.password() || undefined,
      database: url.database || undefined,
      connectTimeout: connectTimeoutSeconds(url) * 1_000,
      charset: charset === undefined ? "utf8mb4" : String(charset),
      // BIGINT as a number when it is safe, as its text only beyond: mysql2 then reads the common case straight from
      // its bytes, where all-text had it build a Long and print it for Roost to parse back: a 100-row select with two
      // BIGINT columns went from about 787,000 client instructions to 567,000 (raw mysql2's: 578,000).
      supportBigNumbers: true,
      bigNumberStrings: false,
      timezone: "Z",
      // DATE as its `YYYY-MM-DD` text, which no time zone can shift.
      dateStrings: ["DATE"],
      multipleStatements: false,
      disableEval: !codeFromStrings,
    };
    try {
      try {
        connection = await connectCore(signal, { ...options, ssl });
      } catch (error) {
        // preferred (libpq's prefer): TLS when the server offers it, else plain.
        if (tls.mode !== "prefer" || ownCode(error) !== noTlsOffered) throw error;
        connection = await connectCore(signal, options);
      }
    } catch (error) {
      throw connectFailed("mysql", url, error, sanitized(error), ownCode(error), "mysql2");
    }
    const wrapped = new Mysql2Connection(connection);
    await startMysqlSession(wrapped);
    return wrapped;
  },
};
