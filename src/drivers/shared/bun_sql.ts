/**
 * The Bun.SQL client under both Bun.SQL drivers (`postgres/bun_sql.ts`,
 * `mysql/bun_sql.ts`): one connection class and one connector, with every
 * difference between the dialects carried by a {@linkcode Flavour}.
 *
 * @module
 */
import type { DialectName } from "../../dialect.ts";
import type { Driver, DriverConnection, ExecuteResult, Row, Rows, StreamPlacement } from "../../driver.ts";
import { ConfigError, ConnectionError, QueryError } from "../../errors.ts";
import { namedStatements, transactionPooled } from "../../pooler.ts";
import { connectTimeoutSeconds, type DatabaseUrl } from "../../url.ts";
import { onAbort } from "./abort.ts";
import type { Execute } from "./batch.ts";
import { connectFailed, type ErrorRules, translateError } from "./errors.ts";
import type { RunStatement } from "../postgres/cursor.ts";
import { type NodeTlsOptions, nodeTlsOptions, tlsRequest, withoutFiles } from "./tls.ts";
import { exactInteger, setColumn } from "./values.ts";

/** The rows of a Bun.SQL result, with its counters. */
export interface BunSqlResult extends Array<Row> {
  /** Column metadata: the type OID on Postgres, the MySQL type, display length and flags on MySQL. */
  columns?: readonly BunSqlColumn[];
  count: number | null;
  affectedRows: number | null;
  lastInsertRowid: number | bigint | null;
}

/** One column of a Bun.SQL result. */
export interface BunSqlColumn {
  name: string;
  type: number;
  length?: number;
  /** MySQL's column flags (BINARY_FLAG among them). */
  flags?: number;
}

/** A statement Bun.SQL was given: its result, or the same sent through the simple protocol. */
interface BunSqlQuery extends Promise<BunSqlResult> {
  /** Asks for the rows as arrays of values. */
  values(): BunSqlQuery;
  /** Sends the statement (or several, without parameters) through the simple protocol; one result each. */
  simple(): Promise<unknown>;
}

/** The part of a Bun.SQL client this driver uses, typed here so other runtimes can type-check it. */
interface BunSqlClient {
  unsafe(text: string, params?: unknown[]): BunSqlQuery;
  close(options?: { timeout?: number }): Promise<void>;
}

interface BunSqlOptions {
  adapter: "postgres" | "mysql";
  hostname: string;
  port: number;
  username?: string;
  password?: string;
  database?: string;
  max: number;
  idleTimeout: number;
  maxLifetime: number;
  connectionTimeout: number;
  bigint: boolean;
  prepare: boolean;
  tls: string | boolean | NodeTlsOptions;
  connection?: Record<string, string | number>;
  onclose(error: Error | null): void;
}

type BunSqlConstructor = new (options: BunSqlOptions) => BunSqlClient;

function bunSql(): BunSqlConstructor {
  const bun = (globalThis as { Bun?: { SQL?: BunSqlConstructor } }).Bun;
  if (bun?.SQL === undefined) throw new ConfigError("the bun-sql driver runs only on Bun (>= 1.2)");
  return bun.SQL;
}

/** Converts a column's value as Bun.SQL reads it into Roost's. */
export type ColumnConverter = (value: unknown) => unknown;

/** What a flavour's `executeMany` and `stream` get from the connection. */
export interface FlavourCalls {
  /** Runs a statement and returns its counts. */
  execute: Execute;
  /** Runs a statement and returns its raw result (errors translated). */
  send(text: string, params: readonly unknown[]): Promise<BunSqlResult>;
  /** Runs a statement and returns its rows as Roost values. */
  run: RunStatement;
  /** Runs a statement and returns its rows as arrays of Roost values (typed as rows). */
  arrays: RunStatement;
  /** Translates an error of the statement `text`. */
  translate(error: unknown, text: string): Error;
  /** False behind a transaction pooler (src/pooler.ts): statements go one at a time. */
  pipelines: boolean;
}

/**
 * What readies statements on one connection when Bun.SQL cannot bind some
 * values by Roost's rules without knowing their parameters' types
 * (`postgres/json_params.ts`).
 */
export interface ParamTyping {
  /** The text to send, `values` readied in place; undefined when the server must first be asked (`learn`). */
  ready(text: string, values: unknown[]): string | undefined;
  /** Asks the server, through a simple-protocol query, what `ready` needs to know of `text`. */
  learn(text: string, simple: (text: string) => Promise<unknown>): Promise<void>;
  /**
   * Takes note that `text` failed with `error` (forgetting what may be
   * stale); true when its parameters' types may have changed under it, so
   * it is worth asking again.
   */
  failed(text: string, error: Error): boolean;
}

/** How one dialect speaks through Bun.SQL: its session, errors, values, counts, batches and streams. */
export interface Flavour {
  dialect: DialectName & BunSqlOptions["adapter"];
  errors: ErrorRules;
  /** The run-time parameters the session starts with. */
  session(url: DatabaseUrl): Record<string, string>;
  /** The SQL expression of the session's id on the server. */
  backendId: string;
  /** Set-up run on a new connection once it is open. */
  setUp?(connection: DriverConnection): Promise<void>;
  /** The code of a failed connect, where the flavour can learn more than Bun.SQL's `code` says. */
  connectCode?(url: DatabaseUrl, code: string | undefined): Promise<string | undefined>;
  /** One parameter as Bun.SQL binds it right. */
  param(value: unknown, index: number): unknown;
  /** A new connection's {@linkcode ParamTyping}, where the flavour needs one. */
  paramTyping?(): ParamTyping;
  /** The converter a column's values need, if any (where Bun.SQL reads them differently from Roost's rules). */
  convert(column: BunSqlColumn): ColumnConverter | undefined;
  /**
   * True when Bun.SQL reads every value of the column as a string, number,
   * boolean, Date or null (never a bigint, byte buffer or array), so that
   * its values are copied without a look at each (before `convert`).
   */
  plain(column: BunSqlColumn): boolean;
  /** A result's counts. */
  outcome(result: BunSqlResult): ExecuteResult;
  /** Runs one statement for many parameter sets. */
  executeMany(calls: FlavourCalls, text: string, paramSets: readonly (readonly unknown[])[]): Promise<ExecuteResult>;
  /** Streams a query's rows in batches. */
  stream(
    calls: FlavourCalls,
    text: string,
    params: readonly unknown[],
    batchSize: number,
    placement: StreamPlacement,
    arrays?: boolean,
  ): AsyncIterableIterator<Row[]>;
}

/**
 * A value as Roost returns it: integers exact (number when safe), byte
 * buffers as plain Uint8Array, typed numeric arrays as arrays.
 */
function plainValue(value: unknown): unknown {
  if (typeof value === "bigint") return exactInteger(value);
  if (typeof value !== "object" || value === null || value instanceof Date) return value;
  if (value instanceof Uint8Array) {
    return value.constructor === Uint8Array ? value : new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  }
  if (Array.isArray(value)) return value.map(plainValue);
  if (ArrayBuffer.isView(value)) return Array.from(value as unknown as ArrayLike<number | bigint>, plainValue);
  return value;
}

/** What a column's values need, if anything: undefined where Bun.SQL's value is Roost's as it is. */
type ColumnRead = ColumnConverter | undefined;

/**
 * How the rows of one result's columns become Roost rows, worked out once
 * per columns array (Bun.SQL reuses one per prepared statement).
 */
interface RowShape {
  readonly names: readonly string[];
  /** Each column's read, by position. */
  readonly reads: readonly ColumnRead[];
  /** The columns whose values are read, by name (the last of repeated names, which holds the row's value). */
  readonly converted: readonly (readonly [name: string, read: ColumnConverter])[];
}

/** What a column's values need: `plainValue` unless the flavour knows them plain, then its converter. */
function readOf(column: BunSqlColumn, flavour: Flavour): ColumnRead {
  const convert = flavour.convert(column);
  if (flavour.plain(column)) return convert;
  return convert === undefined ? plainValue : (value) => convert(plainValue(value));
}

/** The shape of rows with these columns, by the flavour's rules. */
function shapeOf(columns: readonly BunSqlColumn[], flavour: Flavour): RowShape {
  const names = columns.map((column) => column.name);
  const reads = columns.map((column) => readOf(column, flavour));
  const converted: [string, ColumnConverter][] = [];
  names.forEach((name, i) => {
    const read = reads[i];
    if (read !== undefined && names.lastIndexOf(name) === i) converted.push([name, read]);
  });
  return { names, reads, converted };
}

/**
 * A Roost row of a Bun.SQL row, the values its shape reads set in place.
 * Bun.SQL makes a new object for every row of every result, a plain object
 * (Object.prototype) whose columns, `__proto__` too, are own keys, the last
 * of repeated names holding the value: that object is the row, uncopied
 * (a copy was most of what Roost cost over Bun.SQL on many rows). One of
 * another prototype is copied with a spread.
 */
function rowOf(row: Row, shape: RowShape): Row {
  const out: Row = Object.getPrototypeOf(row) === Object.prototype ? row : { ...row };
  const converted = shape.converted;
  for (let i = 0; i < converted.length; i++) {
    const [name, read] = converted[i];
    setColumn(out, name, read(row[name]));
  }
  return out;
}

/** Each columns array's shape (Bun.SQL reuses a prepared statement's array). */
const shapes = new WeakMap<readonly BunSqlColumn[], RowShape>();

/** True when two columns arrays describe the same columns: names, types, lengths and flags, in order. */
function sameColumns(a: readonly BunSqlColumn[], b: readonly BunSqlColumn[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const y = b[i];
    if (x.name !== y.name || x.type !== y.type || x.length !== y.length || x.flags !== y.flags) return false;
  }
  return true;
}

/** A row of a result without column metadata: every value looked at. */
function plainRowOf(row: Row): Row {
  const out: Row = {};
  for (const key in row) setColumn(out, key, plainValue(row[key]));
  return out;
}

/** An array row of Bun.SQL values as Roost values, read by `shape` (a new array). */
function plainValues(row: readonly unknown[], shape: RowShape): unknown[] {
  const reads = shape.reads;
  const out = new Array<unknown>(row.length);
  for (let i = 0; i < row.length; i++) {
    const read = reads[i];
    out[i] = read === undefined ? row[i] : read(row[i]);
  }
  return out;
}

/** What a statement's caller gets of its result: the rows as Roost values, its counts, or the result itself. */
type Read<T> = (result: BunSqlResult) => T;

/** The result itself (for batches and streams, which read it their own way). */
const asIs: Read<BunSqlResult> = (result) => result;

class BunSqlConnection implements DriverConnection {
  readonly #sql: BunSqlClient;
  readonly #flavour: Flavour;
  readonly #typing: ParamTyping | undefined;
  /** Sends a simple-protocol query (what `#typing` asks the server with). */
  readonly #simple = (query: string): Promise<unknown> => this.#sql.unsafe(query).simple();
  /**
   * While the server is asked about a statement's parameters, the
   * statements sent after it wait their turn behind it (settles once the
   * last of them is sent), so they reach the server in the order given.
   */
  #waiting: Promise<unknown> | undefined;
  #lost: Error | undefined;
  /**
   * The last shape worked out on this connection, with its columns: for a
   * statement Bun.SQL does not prepare (`prepare=false`, behind a
   * transaction pooler, or without parameters) it makes a new columns array
   * each time, and the same statement run again finds its shape here.
   */
  #last: { columns: readonly BunSqlColumn[]; shape: RowShape } | undefined;
  /** The server's id of the session (Postgres backend pid, MySQL connection id), read when it opens. */
  backendId?: number;
  /** What the flavour's batches and streams run through. */
  readonly #calls: FlavourCalls = {
    execute: (text, params) => this.execute(text, params),
    send: (text, params) => this.#run(text, params, asIs),
    run: (text, params = []) => this.#run(text, params, this.#allRows),
    arrays: (text, params = []) =>
      this.#run(text, params, this.#arrayRows).then((result) => result.rows as unknown as Row[]),
    translate: (error, text) => translateError(this.#flavour.errors, error, text),
    pipelines: true,
  };
  /** A result's rows as Roost values. */
  readonly #allRows: Read<Row[]> = (result) => this.#rows(result);
  /** A result's first row as Roost values, if any. */
  readonly #firstRow: Read<Row | undefined> = (result) => {
    if (result.length === 0) return undefined;
    const shape = this.#shape(result);
    return shape === undefined ? plainRowOf(result[0]) : rowOf(result[0], shape);
  };

  /** A result's rows as arrays of Roost values, with the column names (sent with `.values()`: see `#send`). */
  readonly #arrayRows: Read<Rows> = (result) => {
    const shape = this.#shape(result);
    const arrays = result as unknown as unknown[][];
    const rows: unknown[][] = [];
    if (shape === undefined) {
      for (let i = 0; i < arrays.length; i++) rows.push(arrays[i].map(plainValue));
      return { columns: [], rows };
    }
    for (let i = 0; i < arrays.length; i++) rows.push(plainValues(arrays[i], shape));
    return { columns: [...shape.names], rows };
  };

  constructor(sql: BunSqlClient, flavour: Flavour, pipelines = true) {
    this.#sql = sql;
    this.#flavour = flavour;
    this.#calls.pipelines = pipelines;
    this.#typing = flavour.paramTyping?.();
  }

  /**
   * Called when the socket closes. Bun.SQL would reconnect silently, losing
   * session state and any open transaction: Roost treats the connection as
   * broken instead, and the pool replaces it.
   */
  lose(error: Error): void {
    if (this.#lost) return;
    this.#lost = error;
    // Statements still queued (a pipelined executeMany) must not run on a new
    // connection, outside their transaction: closing the client rejects them.
    this.#sql.close({ timeout: 0 }).catch(() => {});
  }

  get broken(): boolean {
    return this.#lost !== undefined;
  }

  #params(params: readonly unknown[]): unknown[] {
    // A loop rather than `map`, and strings and numbers (which every flavour binds as they are) without a call:
    // a statement's parameters are few, and the calls per value showed in profiles.
    const param = this.#flavour.param;
    const values: unknown[] = [];
    for (let i = 0; i < params.length; i++) {
      const value = params[i];
      values.push(typeof value === "string" || typeof value === "number" ? value : param(value, i));
    }
    return values;
  }

  /**
   * Sends a statement and resolves to what `read` makes of its result; its
   * errors translated. No async frame of its own, and reading the result
   * and translating an error share one `.then` (one promise per statement
   * above Bun.SQL's): a parameter Bun.SQL cannot take still rejects, never
   * throws.
   */
  #run<T>(text: string, params: readonly unknown[], read: Read<T>): Promise<T> {
    if (this.#lost) return Promise.reject(translateError(this.#flavour.errors, this.#lost, text));
    let values: unknown[];
    try {
      values = this.#params(params);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#waiting !== undefined) return this.#inTurn(text, values, read);
    const typing = this.#typing;
    if (typing === undefined || values.length === 0) return this.#send(text, text, values, read);
    const sent = typing.ready(text, values);
    return sent === undefined ? this.#inTurn(text, values, read) : this.#send(text, sent, values, read);
  }

  /**
   * Sends a statement once those before it are sent, first asking the
   * server about its parameters if it must (a failed question sends it as
   * it is: it then fails, or runs, on its own).
   */
  #inTurn<T>(text: string, values: unknown[], read: Read<T>): Promise<T> {
    const typing = this.#typing;
    const simple = this.#simple;
    const turn = (this.#waiting ?? Promise.resolve()).then(async () => {
      let sent = typing === undefined || values.length === 0 ? text : typing.ready(text, values);
      if (sent === undefined && this.#lost === undefined) {
        await typing?.learn(text, simple).catch(() => {});
        sent = typing?.ready(text, values);
      }
      return { result: this.#send(text, sent ?? text, values, read) };
    });
    this.#waiting = turn;
    turn.then(() => {
      if (this.#waiting === turn) this.#waiting = undefined;
    });
    return turn.then((sent) => sent.result);
  }

  /**
   * Sends `sent` (the statement `text`, readied) with its values, and
   * resolves to what `read` makes of its result. When it
   * fails as sent unchanged with an error that may come from a schema
   * change, the server is asked again, and the statement resent once if it
   * must now be sent otherwise (in an aborted transaction the question
   * fails, and the first error stands).
   */
  #send<T>(text: string, sent: string, values: unknown[], read: Read<T>, again = true): Promise<T> {
    if (this.#lost) return Promise.reject(translateError(this.#flavour.errors, this.#lost, text));
    try {
      const query = this.#sql.unsafe(sent, values);
      return (read === this.#arrayRows ? query.values() : query).then(read, (error: unknown) => {
        const translated = this.#failed(text, sent, error);
        const typing = this.#typing;
        const stale = typing?.failed(text, translated) ?? false;
        if (typing === undefined || !stale || !again || sent !== text || this.#lost) throw translated;
        return this.#again(typing, text, values, translated, read);
      });
    } catch (error) {
      return Promise.reject(this.#failed(text, sent, error));
    }
  }

  /** The error of the statement `text`, sent as `sent`, translated. */
  #failed(text: string, sent: string, error: unknown): Error {
    const translated = translateError(this.#flavour.errors, this.#lost ?? error, text);
    // The server's position is in the readied text, not the caller's.
    if (sent !== text && translated.cause instanceof Error) {
      delete (translated.cause as { position?: unknown }).position;
    }
    return translated;
  }

  /** Resends a failed statement if the server now says it must be sent otherwise; else rejects with `error`. */
  async #again<T>(typing: ParamTyping, text: string, values: unknown[], error: Error, read: Read<T>): Promise<T> {
    try {
      await typing.learn(text, this.#simple);
    } catch {
      throw error;
    }
    const sent = typing.ready(text, values);
    if (sent === undefined || sent === text) throw error;
    return this.#send(text, sent, values, read, false);
  }

  /** The shape of a result's rows, worked out once per columns array; undefined without column metadata. */
  #shape(result: BunSqlResult): RowShape | undefined {
    const columns = result.columns;
    if (columns === undefined) return undefined;
    const known = shapes.get(columns);
    if (known !== undefined) return known;
    const last = this.#last;
    if (last !== undefined && sameColumns(columns, last.columns)) return last.shape;
    const shape = shapeOf(columns, this.#flavour);
    shapes.set(columns, shape);
    this.#last = { columns, shape };
    return shape;
  }

  #rows(result: BunSqlResult): Row[] {
    const shape = this.#shape(result);
    const rows: Row[] = [];
    if (shape === undefined) {
      for (let i = 0; i < result.length; i++) rows.push(plainRowOf(result[i]));
    } else {
      for (let i = 0; i < result.length; i++) rows.push(rowOf(result[i], shape));
    }
    return rows;
  }

  execute(text: string, params: readonly unknown[]): Promise<ExecuteResult> {
    return this.#run(text, params, this.#flavour.outcome);
  }

  executeMany(text: string, paramSets: readonly (readonly unknown[])[]): Promise<ExecuteResult> {
    return this.#flavour.executeMany(this.#calls, text, paramSets);
  }

  fetchAll(text: string, params: readonly unknown[]): Promise<Row[]> {
    return this.#run(text, params, this.#allRows);
  }

  fetchOne(text: string, params: readonly unknown[]): Promise<Row | undefined> {
    return this.#run(text, params, this.#firstRow);
  }

  fetchRows(text: string, params: readonly unknown[]): Promise<Rows> {
    return this.#run(text, params, this.#arrayRows);
  }

  stream(
    text: string,
    params: readonly unknown[],
    batchSize: number,
    placement: StreamPlacement,
    arrays?: boolean,
  ): AsyncIterableIterator<Row[]> {
    return this.#flavour.stream(this.#calls, text, params, batchSize, placement, arrays);
  }

  async ping(): Promise<void> {
    await this.#run("SELECT 1", [], asIs);
  }

  async close(): Promise<void> {
    await this.#sql.close({ timeout: 0 }).catch(() => {});
  }
}

/**
 * The URL's TLS settings as Bun.SQL's `tls` option: libpq's mode names, or
 * `node:tls`-style options where certificates are given (an object with
 * CAs makes Bun verify; verify-ca then skips the host-name check).
 */
function tlsOption(url: DatabaseUrl): string | boolean | NodeTlsOptions {
  const request = tlsRequest(url);
  if (request.mode === "disable") return false;
  if (withoutFiles(request)) return request.mode;
  return nodeTlsOptions(request, url.host);
}

/** A Bun.SQL driver speaking the flavour's dialect. */
export function bunSqlDriver(flavour: Flavour): Driver {
  return {
    name: "bun-sql",
    dialect: flavour.dialect,
    interleavedStreams: false,
    // Bun.SQL pipelines statements on a connection (a prepared one on MySQL, once prepared), each with its own
    // outcome: one that fails leaves the others standing. So the pool may share a busy connection, as with postgres.js.
    pipelines: true,
    async connect(url, signal) {
      const SQL = bunSql();
      const connection = flavour.session(url);
      // The socket may close before the connection object exists (a failed connect): then there is nothing to mark.
      const opened: { connection?: BunSqlConnection } = {};
      const sql = new SQL({
        adapter: flavour.dialect,
        hostname: url.host,
        port: url.port,
        username: url.user || undefined,
        password: url.password() || undefined,
        database: url.database || undefined,
        max: 1,
        // Roost's pool decides when connections idle out or retire.
        idleTimeout: 0,
        maxLifetime: 0,
        connectionTimeout: connectTimeoutSeconds(url),
        bigint: true,
        // Named prepared statements, unless a Postgres URL turns them off (src/pooler.ts).
        prepare: flavour.dialect !== "postgres" || namedStatements(url),
        tls: tlsOption(url),
        ...(Object.keys(connection).length > 0 ? { connection } : {}),
        onclose: (error) => opened.connection?.lose(error ?? new Error("connection closed")),
      });
      const wrapped = opened.connection = new BunSqlConnection(sql, flavour, !transactionPooled(url));
      // Given up (the pool closed): closing the client ends its connect and fails the first query.
      let givingUp: Promise<unknown> | undefined;
      const stopListening = onAbort(signal, () => givingUp = sql.close({ timeout: 0 }).catch(() => {}));
      try {
        if (signal?.aborted) throw signal.reason;
        // The first round trip also learns the session's id, so a cut-off session can be ended on the server.
        wrapped.backendId = Number((await wrapped.fetchOne(`SELECT ${flavour.backendId} AS id`, []))?.id);
      } catch (error) {
        await (givingUp ?? sql.close({ timeout: 0 }).catch(() => {}));
        const own = error instanceof QueryError || error instanceof ConnectionError ? error.code : undefined;
        const code = signal?.aborted || !flavour.connectCode ? own : await flavour.connectCode(url, own);
        throw connectFailed(flavour.dialect, url, error, error instanceof Error ? error.cause ?? error : error, code);
      } finally {
        stopListening();
      }
      await flavour.setUp?.(wrapped);
      return wrapped;
    },
  };
}
