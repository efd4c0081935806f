/**
 * The postgres.js driver (npm `postgres`): PostgreSQL on Deno, Bun, Node and
 * Workers. Each Roost connection is one postgres.js connection (`max: 1`);
 * Roost's pool does the pooling, so every query gets an acquire timeout.
 *
 * @example Passing the driver object (for bundlers that drop lazy imports)
 * ```ts
 * import { Database } from "@roost/db";
 * import { postgresJs } from "@roost/db/drivers/postgres-js";
 * const db = new Database("postgres://app@localhost/app", { driver: postgresJs });
 * ```
 *
 * @module
 */
import postgres from "postgres";
import type { Driver, DriverConnection, ExecuteResult, Row, Rows, StreamPlacement } from "../../driver.ts";
import { ConfigError, ConnectionError } from "../../errors.ts";
import { tooManyParameters } from "../../query.ts";
import { namedStatements, transactionPooled } from "../../pooler.ts";
import { builtinModule, runtime } from "../../runtime.ts";
import { connectTimeoutSeconds, type DatabaseUrl } from "../../url.ts";
import { executePipelined, inBatches } from "../shared/batch.ts";
import { onAbort } from "../shared/abort.ts";
import { connectFailed, type ErrorRules, ownCode, sanitizedCause, translateError } from "../shared/errors.ts";
import { quietEnv, requireNet } from "../shared/permissions.ts";
import { nodeTlsOptions, tlsRequest, withoutFiles } from "../shared/tls.ts";
import { integerFromText } from "../shared/values.ts";
import { cursorBatches, NotACursor } from "./cursor.ts";
import { type CallbackCursor, callbackCursor } from "./postgres_js_cursor.ts";
import { postgresErrorFields, postgresFailure } from "./errors.ts";
import { postgresSessionParameters } from "./session.ts";
import {
  byteaFromText,
  byteaText,
  parseArray,
  parseTimestamp,
  postgresParam,
  serializeArray,
  serializeDateTime,
  serializeJson,
} from "./values.ts";

type Client = ReturnType<typeof postgres>;
/** Bound values as `sql.unsafe` takes them (postgres.js 4 overloads `unsafe`, so it is named, not inferred). */
type Params = postgres.ParameterOrJSON<never>[];

/**
 * Options only postgres.js 4 reads; 3.4 ignores them and already behaves so.
 * `infer`: parameters typed by their JavaScript values (a boolean as bool, a
 * bigint as int8, bytes as bytea), not left to the server, which would read
 * `${true}` in `select ${true}` as the text 'true'. No client-side timeouts, which
 * `PGQUERY_TIMEOUT` / `PGQUEUE_TIMEOUT` in the environment would turn on:
 * Roost's pool and `statementTimeout` bound waits and statements.
 */
const version4Options = { infer: true, query_timeout: 0, queue_timeout: 0 };

/**
 * postgres.js's defaults for the options Roost does not set otherwise,
 * given explicitly: for an option it is not given, postgres.js reads a
 * `PG<OPTION>` environment variable, which on Deno needs `--allow-env` for
 * each (and prompts at a terminal). With these, 3.4 still reads
 * `PGAPPNAME` and `PGTARGETSESSIONATTRS` whatever it is given: the
 * narrowest grant on Deno is `--allow-env=PGAPPNAME,PGTARGETSESSIONATTRS`
 * (docs/deno.md).
 */
const unreadEnvironment = {
  sslnegotiation: null,
  max_pipeline: 100,
  keep_alive: 60,
  prepare: true,
  debug: false,
  publications: "alltables",
  target_session_attrs: undefined,
};

/** int8 as a number when exact, else as a bigint: never rounded, and `count(*)` stays a number. */
const int8 = {
  to: 20,
  from: [20],
  serialize: (value: bigint | number | string) => String(value),
  parse: integerFromText,
};

/** bytea as a plain Uint8Array on every runtime (postgres.js returns a Buffer). */
const bytea = { to: 17, from: [17], serialize: byteaText, parse: byteaFromText };

/** timestamp as UTC wall clock and timestamptz as the instant, never in the process's time zone; strings bind as written. */
const timestamp = { to: 1184, from: [1114, 1184], serialize: serializeDateTime, parse: parseTimestamp };

/** date as its `YYYY-MM-DD` text, which no time zone can shift. */
const date = { to: 1082, from: [1082], serialize: serializeDateTime, parse: (text: string) => text };

/** json/jsonb parsed; a string binds as JSON text, anything else is serialised. */
const json = {
  to: 3802,
  from: [114, 3802],
  serialize: serializeJson,
  parse: (text: string): unknown => JSON.parse(text),
};

/**
 * Installs Roost's array parser and serializer for every array type the
 * server has (postgres.js reads `NULL` elements as the string `"NULL"` or
 * `NaN`), with each element converted like a value of its own type.
 */
async function registerArrayTypes(sql: Client): Promise<void> {
  const rows = await sql.unsafe<{ oid: number; typarray: number; typdelim: string }[]>(
    "SELECT oid, typarray, typdelim FROM pg_catalog.pg_type WHERE typarray <> 0",
  );
  const { parsers, serializers } = sql.options;
  for (const { oid, typarray, typdelim } of rows) {
    const parseElement = parsers[oid];
    const serializeElement = serializers[oid];
    parsers[typarray] = (text: string) => parseArray(text, parseElement, typdelim);
    serializers[typarray] = (value: unknown) => serializeArray(value, serializeElement, typdelim);
  }
}

/** postgres.js attaches the query's parameters to its errors (and does not let them be deleted). */
const sanitized = (error: unknown) => sanitizedCause(error, postgresErrorFields);

/** postgres.js errors: `code` is the server's SQLSTATE, or postgres.js's own code. */
const errors: ErrorRules = {
  dialect: "postgres",
  cause: sanitized,
  classify(error) {
    const code = ownCode(error);
    return postgresFailure(code !== undefined && /^[0-9A-Z]{5}$/.test(code) ? code : undefined, code);
  },
};

/**
 * Translates a postgres.js error into a Roost error. (An undefined parameter
 * never reaches postgres.js: `postgresParam` refuses it, in arrays too.)
 */
function translate(error: unknown, text: string): Error {
  return translateError(errors, error, text);
}

/** The part of a `node:net` socket this driver uses. */
interface NetSocket {
  host?: string;
  connect(port: number, host: string): NetSocket;
  once(event: "close", listener: () => void): void;
  once(event: "data", listener: (chunk: Uint8Array) => void): void;
  destroy(): void;
}

/** What a client's sockets saw: `noTls` once the server answered postgres.js's SSLRequest with 'N'. */
interface SocketNews {
  noTls?: boolean;
}

type Ssl = postgres.Options<Record<string, never>>["ssl"];

/**
 * Opens the sockets of one postgres.js client as postgres.js itself would,
 * where `node:net` exists (Deno, Bun, Node), and returns the function that
 * destroys them: postgres.js's own ending only half-closes a socket, which
 * then stays open (and keeps the process alive) until the server finishes
 * the statement it runs. On Workers, whose postgres.js build brings its own
 * sockets, there is none. Where `ssl` demands TLS, the server's first byte
 * is its answer to postgres.js's SSLRequest: 'N' (no TLS) is noted in the
 * news, as postgres.js 3.4 answers it with a TLS handshake the server
 * closes, an `ECONNRESET` like any reset's.
 */
function ownSockets(url: DatabaseUrl, ssl: Ssl): [(() => NetSocket) | undefined, () => void, SocketNews] {
  const net = runtime === "workerd" ? undefined : builtinModule<{ Socket: new () => NetSocket }>("node:net");
  const sockets = new Set<NetSocket>();
  const news: SocketNews = {};
  const open = net && (() => {
    const socket = new net.Socket();
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    // Listening before postgres.js does is safe: the server says nothing until the SSLRequest.
    if (ssl && ssl !== "prefer") socket.once("data", (chunk) => news.noTls = chunk[0] === 78);
    socket.host = url.host; // the name postgres.js gives the TLS server, as on its own sockets
    return socket.connect(url.port, url.host);
  });
  return [open, () => sockets.forEach((socket) => socket.destroy()), news];
}

/**
 * The URL's TLS settings as postgres.js's `ssl` option: its mode names where
 * they suffice, `node:tls` options where a certificate is checked against
 * given CAs, skips the host name (verify-ca) or is presented (sslcert).
 */
function sslOption(url: DatabaseUrl): Ssl {
  const request = tlsRequest(url);
  switch (request.mode) {
    case "disable":
      return false;
    case "prefer":
    case "require":
      if (withoutFiles(request)) return request.mode;
  }
  return nodeTlsOptions(request, url.host);
}

class PostgresJsConnection implements DriverConnection {
  readonly #sql: Client;
  /** Destroys the client's sockets. */
  readonly #cut: () => void;
  #lost = false;
  /** The backend's pid, read when the connection opened. */
  readonly backendId: number;
  /** Set when a cursor failed mid-result: postgres.js then misnumbers the next result's rows (`[ <9 empty items>, row ]`). */
  #spoiled = false;

  /** Whether statements are named prepared statements (the URL's `prepare`: see src/pooler.ts). */
  readonly #prepared: { prepare: boolean };

  constructor(sql: Client, cut: () => void, backendId: number, prepare: boolean) {
    this.#sql = sql;
    this.#prepared = { prepare };
    this.#cut = cut;
    this.backendId = backendId;
  }

  /**
   * Called when the socket closes. postgres.js would reconnect silently at
   * the next query, so the rest of an open transaction would run in
   * autocommit on a new backend: Roost treats the connection as broken
   * instead, and the pool replaces it.
   */
  lose(): void {
    if (this.#lost) return;
    this.#lost = true;
    // postgres.js reconnects at once for statements still queued (a pipelined
    // executeMany), which would then run outside their transaction. Its next
    // socket is refused instead, and ending the client rejects what is queued.
    (this.#sql.options as { socket?: () => never }).socket = () => {
      throw new Error("connection lost: Roost does not reconnect inside a session");
    };
    this.#sql.end({ timeout: 0 }).catch(() => {});
  }

  /** Set once the core has set a statement timeout on the session (see `timeoutSet`). */
  #timed = false;

  timeoutSet(): void {
    this.#timed = true;
  }

  get broken(): boolean {
    return this.#lost || this.#spoiled;
  }

  /** The client, unless its connection was lost. */
  #live(): Client {
    if (this.#lost) {
      throw new ConnectionError("postgres connection lost: the connection closed", {
        code: "CONNECTION_CLOSED",
      });
    }
    return this.#sql;
  }

  /** Hands an array to postgres.js untyped (OID 0), so the server types it from where it is used. */
  readonly #serverTyped = (array: unknown[]) => this.#sql.typed(array, 0);

  /** Parameters the Roost way (see `postgresParam`); arrays are typed by the server. */
  #params(params: readonly unknown[], text = ""): Params {
    // postgres.js refuses 65 534 and more, and a second such statement has been seen to hang its connection.
    if (params.length > 65_533) throw tooManyParameters({ text, params }, 65_533, "postgres.js");
    return params.map((value, index) => postgresParam(value, index, this.#serverTyped)) as Params;
  }

  async execute(text: string, params: readonly unknown[]): Promise<ExecuteResult> {
    try {
      const result = await this.#live().unsafe(text, this.#params(params, text), this.#prepared);
      return { rowCount: result.count ?? 0 };
    } catch (error) {
      throw translate(error, text);
    }
  }

  /**
   * A single-row insert becomes multi-row inserts; anything else is pipelined:
   * one round trip's latency, not one per row.
   */
  executeMany(text: string, paramSets: readonly (readonly unknown[])[]): Promise<ExecuteResult> {
    return executePipelined(
      text,
      paramSets,
      (chunkText, params) => this.execute(chunkText, params),
      (params) => this.#live().unsafe(text, this.#params(params, text), this.#prepared),
      (error) => translate(error, text),
    );
  }

  async fetchAll(text: string, params: readonly unknown[]): Promise<Row[]> {
    try {
      return Array.from(await this.#live().unsafe(text, this.#params(params, text), this.#prepared));
    } catch (error) {
      throw translate(error, text);
    }
  }

  async fetchOne(text: string, params: readonly unknown[]): Promise<Row | undefined> {
    try {
      return (await this.#live().unsafe(text, this.#params(params, text), this.#prepared))[0];
    } catch (error) {
      throw translate(error, text);
    }
  }

  async fetchRows(text: string, params: readonly unknown[]): Promise<Rows> {
    try {
      const result = await this.#live().unsafe(text, this.#params(params, text), this.#prepared).values();
      return { columns: (result.columns ?? []).map((column) => column.name), rows: Array.from(result) };
    } catch (error) {
      throw translate(error, text);
    }
  }

  async *stream(
    text: string,
    params: readonly unknown[],
    batchSize: number,
    placement: StreamPlacement,
    arrays?: boolean,
  ): AsyncIterableIterator<Row[]> {
    if (placement !== "own" || this.#timed) {
      // On a shared connection a native cursor would hold the socket until it ends, so a query inside the loop
      // would wait forever; under a statement timeout a native cursor is one statement until its last row, so a
      // consumer slower than the timeout would be cancelled. The server keeps the cursor instead, and each batch
      // is an ordinary FETCH, timed on its own.
      const run = (statement: string, values: readonly unknown[] = []) =>
        this.#live().unsafe(statement, this.#params(values)).then((rows) => Array.from(rows));
      // Each batch's rows through postgres.js's row callback, outside its result (see RunEachRow).
      const each = (statement: string, values: readonly unknown[], onRow: (row: Row) => void) => {
        const query = this.#live().unsafe(statement, this.#params(values));
        return (arrays ? query.values() : query).forEach(onRow as (row: unknown) => void);
      };
      try {
        yield* cursorBatches(run, text, params, batchSize, placement, each);
        return;
      } catch (error) {
        if (!(error instanceof NotACursor)) throw translate(error, text);
      }
      // A statement that cannot be a cursor (a write with RETURNING): on a shared connection it is read whole, so
      // queries inside the loop can run; on a connection of its own it streams natively below.
      if (placement !== "own") {
        const rows = arrays
          ? this.fetchRows(text, params).then((read) => read.rows as unknown as Row[])
          : this.fetchAll(text, params);
        yield* inBatches(rows, batchSize);
        return;
      }
    }
    try {
      const query = this.#live().unsafe(text, this.#params(params, text), this.#prepared);
      if (arrays) query.values();
      for await (const batch of callbackCursor(query as CallbackCursor, batchSize, this.#sql.CLOSE)) {
        yield Array.from(batch);
      }
      // postgres.js ends a cursor whose connection was cut off between batches as if its result were complete.
      this.#live();
    } catch (error) {
      this.#spoiled = true;
      throw translate(error, text);
    }
  }

  async ping(): Promise<void> {
    await this.execute("SELECT 1", []);
  }

  async close(): Promise<void> {
    await this.#sql.end({ timeout: 1 }).catch(() => {});
    this.#cut();
  }

  async destroy(): Promise<void> {
    this.lose();
    this.#cut();
    await this.#sql.end({ timeout: 0 }).catch(() => {});
  }
}

/** The postgres.js driver. */
export const postgresJs: Driver = {
  name: "postgres-js",
  dialect: "postgres",
  interleavedStreams: false,
  pipelines: true,
  async connect(url, signal) {
    const connection = postgresSessionParameters(url);
    const opened: { connection?: PostgresJsConnection } = {};
    // Settings Roost refuses (an unreadable sslrootcert) are ConfigErrors.
    const ssl = sslOption(url);
    const [socket, cut, news] = ownSockets(url, ssl);
    const password = url.password();
    const prepare = namedStatements(url);
    let sql: Client;
    try {
      // Deno's refusal of the connect would be thrown where nothing can catch it.
      if (runtime === "deno") requireNet(url.host, url.port);
      sql = postgres({
        host: url.host,
        port: url.port,
        user: url.user || undefined,
        // A function, so postgres.js never reads PGPASSWORD itself: Roost reads it, for a URL without a password, only
        // where that asks for nothing (on Deno, where --allow-env already grants it).
        pass: () => password || (quietEnv("PGPASSWORD") ?? ""),
        database: url.database || undefined,
        ...unreadEnvironment,
        prepare,
        // Behind a transaction pooler, one statement at a time: PgBouncer before 1.21 hands the server session to
        // another client at the first statement's end, and the answers to the ones pipelined after it go astray.
        ...(transactionPooled(url) ? { max_pipeline: 0 } : {}),
        max: 1,
        // Roost's pool decides when connections idle out or retire.
        idle_timeout: 0,
        max_lifetime: null,
        connect_timeout: connectTimeoutSeconds(url),
        ssl,
        connection,
        onnotice: () => {},
        types: { int8, bytea, timestamp, date, json },
        // Roost registers every array type itself, with a parser that reads NULL elements right.
        fetch_types: false,
        // The socket may close before the connection object exists (a failed connect): then there is nothing to mark.
        onclose: () => opened.connection?.lose(),
        // Called after each failed attempt to connect (3.4: also as any socket closes). postgres.js 4 tries again
        // until connect_timeout has passed since the first failure when the server refused the connection as busy
        // (53300) or closed it; Roost's pool decides about retries, so no time is left after the first failure: its
        // queries fail at once with that failure's error, as on 3.4 (tests/behaviour/pool_server.test.ts). No wait either, as
        // no attempt follows (Roost never reconnects a connection: see `lose`).
        backoff: () => {
          if (!opened.connection) sql.options.connect_timeout = -1;
          return 0;
        },
        ...version4Options,
        // An option postgres.js 3.4's types do not list (4's list a narrower socket than the `node:net` one given here).
        ...(socket && { socket } as object),
      });
    } catch (error) {
      cut();
      // Roost's own refusals stay ConfigErrors.
      if (error instanceof ConfigError) throw error;
      // A Deno permission postgres.js needed while reading its options (see `unreadEnvironment`), or a bad option.
      throw connectFailed("postgres", url, error, sanitized(error), ownCode(error), "postgres-js");
    }
    let backendId: number;
    // Given up (the pool closed): postgres.js fails the queries below and stops connecting, then the sockets go.
    // Not before: a socket that closes while postgres.js connects makes it connect again, on a new socket.
    let givingUp: Promise<void> | undefined;
    const stopListening = onAbort(signal, () => givingUp = sql.end({ timeout: 0 }).catch(() => {}).then(cut));
    try {
      if (signal?.aborted) throw signal.reason;
      // Pipelined with the catalogue query: the pid lets a cut-off session be ended on the server.
      const [, [row]] = await Promise.all([registerArrayTypes(sql), sql.unsafe("SELECT pg_backend_pid() AS pid")]);
      backendId = Number(row.pid);
    } catch (error) {
      await (givingUp ?? sql.end({ timeout: 0 }).catch(() => {}).then(cut));
      const code = news.noTls ? "ROOST_TLS_NOT_OFFERED" : ownCode(error);
      throw connectFailed("postgres", url, error, sanitized(error), code, "postgres-js");
    } finally {
      stopListening();
    }
    return opened.connection = new PostgresJsConnection(sql, cut, backendId, prepare);
  },
};
