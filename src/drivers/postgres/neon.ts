/**
 * The Neon serverless driver (npm `@neondatabase/serverless`): PostgreSQL
 * over a WebSocket, for runtimes that cannot open a TCP socket (Vercel Edge,
 * Workers, Deno Deploy) and anywhere else a WebSocket reaches the database:
 * Neon's own endpoints, or any Postgres behind a WebSocket-to-TCP proxy.
 * Opt-in with `driver: "neon"` (or the `neon` object); the dialect is
 * Postgres and URLs are ordinary `postgres://` ones.
 *
 * Each Roost connection is one Neon `Client`, that is one WebSocket and one
 * server session: Roost's pool does the pooling (limits, acquire timeout,
 * idle and lifetime), as with every other driver. Where the WebSocket goes:
 * - without `wsproxy`, to Neon's proxy for the URL's host
 *   (`wss://<host>/v2`), which is what Neon databases need;
 * - with `?wsproxy=ws://proxy.example:8080/v1` (or `wss://…`), to that proxy,
 *   which is asked for `<path>?address=<host>:<port>` (the convention of
 *   Neon's wsproxy). TLS is the WebSocket's: `wss://` is encrypted up to
 *   the proxy; `sslmode=require` and stricter need a `wss://` proxy.
 *
 * Neon's HTTP query path (`neon()`, one `fetch` per statement) needs Neon's
 * SQL-over-HTTP endpoint and holds no session, so Roost does not use it.
 *
 * @example Neon on an edge runtime
 * ```ts
 * import { Database } from "@roost/db";
 * import { neon } from "@roost/db/drivers/neon";
 * const db = new Database("postgres://app:secret@ep-example-123.eu-central-1.aws.neon.tech/app", { driver: neon });
 * ```
 *
 * @example Any Postgres behind a WebSocket proxy
 * ```ts
 * import { Database } from "@roost/db";
 * const db = new Database("postgres://app@db.internal:5432/app?wsproxy=wss://ws.example.com/v1", { driver: "neon" });
 * ```
 *
 * @module
 */
import { Client } from "@neondatabase/serverless";
import type { Driver, DriverConnection, ExecuteResult, Row, Rows, StreamPlacement } from "../../driver.ts";
import { ConfigError, ConnectionError } from "../../errors.ts";
import { tooManyParameters } from "../../query.ts";
import { connectTimeoutSeconds, type DatabaseUrl } from "../../url.ts";
import { executeBatched } from "../shared/batch.ts";
import { onAbort } from "../shared/abort.ts";
import { connectFailed, type ErrorRules, ownCode, sanitizedCause, translateError } from "../shared/errors.ts";
import { setColumn } from "../shared/values.ts";
import { ArrayParam, parameterTypesProbe, preparable } from "./array_params.ts";
import { cursorStream } from "./cursor.ts";
import { camelCaseServerCause, fatalPostgresState } from "./errors.ts";
import { postgresSessionParameters } from "./session.ts";
import { parameterOids, parseArray, postgresParam, textParsers } from "./values.ts";

/** A column's text to its value. */
type Parser = (text: string) => unknown;

/** How node-postgres (inside Neon's package) asks for a column's parser. */
interface TypeParsing {
  getTypeParser(oid: number, format?: string): Parser;
}

/** One column of a result. */
interface PgField {
  name: string;
  dataTypeID: number;
}

/** A node-postgres result in array mode. */
interface PgResult {
  rows: unknown[][];
  fields: PgField[];
  rowCount: number | null;
}

/** The per-client settings of Neon's WebSocket (its `neonConfig`) this driver sets, from the URL. */
export interface SocketSettings {
  /** The proxy's address (without `ws://`/`wss://`) for a server's host and port; unset: Neon's own. */
  wsProxy?: (host: string, port: number | string) => string;
  /** `wss://` (true) or `ws://` (false); unset: Neon's default, `wss://`. */
  useSecureWebSocket?: boolean;
  /** `"password"`: the password goes with the start-up message (Neon's proxy); false: when the server asks. */
  pipelineConnect?: "password" | false;
}

/**
 * The part of Neon's `Client` (node-postgres's, over a WebSocket) this driver
 * uses, typed here: a query's `types` is both its parameters' type OIDs
 * (an array) and its columns' parsers (`getTypeParser`).
 */
interface NeonClient {
  readonly neonConfig: SocketSettings;
  readonly connection: { stream: { destroy(): unknown } };
  connect(): Promise<void>;
  query(config: {
    text: string;
    values?: unknown[];
    rowMode: "array";
    types?: TypeParsing;
  }): Promise<PgResult | PgResult[]>;
  end(): Promise<void>;
  on(event: "error" | "end", listener: (error?: unknown) => void): unknown;
}

const NeonClientClass = Client as unknown as new (config: Record<string, unknown>) => NeonClient;

/** A statement's parameters as sent: their text (bytes as they are) and, where needed, their type OIDs and parsers. */
interface Bound {
  values: unknown[];
  types?: TypeParsing;
}

const unbound: Bound = { values: [] };

/** A type with no parser of Roost's reads as its text. */
const asText: Parser = (text) => text;

/** A parameter after `postgresParam`, as node-postgres sends it: text, bytes (binary bytea) or null. */
function encode(value: unknown): unknown {
  if (value === null || value instanceof Uint8Array || typeof value === "string") return value;
  if (typeof value === "boolean") return value ? "t" : "f";
  return String(value);
}

/** The SQLSTATE when `error` is a server error (node-postgres's `DatabaseError`). */
function stateOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  return error instanceof Error && typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/**
 * The error as an `Error`: Neon's socket reports a failed WebSocket with the
 * WebSocket's error event itself, which is not one (its `message`, where
 * the runtime gives one, is kept).
 */
function plain(error: unknown): unknown {
  if (error instanceof Error || typeof error !== "object" || error === null) return error;
  const message = (error as { message?: unknown }).message;
  return new Error(`the WebSocket failed${typeof message === "string" && message !== "" ? `: ${message}` : ""}`);
}

/**
 * Neon's errors: the server's carry a SQLSTATE (their fields under
 * postgres.js's names, never `detail`, which quotes values); anything else
 * came from the WebSocket or the protocol, after which the connection is
 * not trusted.
 */
const errors: ErrorRules = {
  dialect: "postgres",
  cause(error) {
    if (stateOf(error) !== undefined) {
      return camelCaseServerCause(error as Error, error as unknown as Record<string, unknown>, "DatabaseError");
    }
    return error instanceof Error ? sanitizedCause(error, []) : error;
  },
  classify(error) {
    const state = stateOf(error);
    return state === undefined
      ? { code: ownCode(error) ?? "CONNECTION_CLOSED", fatal: true }
      : { code: state, fatal: fatalPostgresState(state) };
  },
};

/** The rows of an array-mode result as objects named by its columns (a later duplicate name wins). */
function rowsOf(result: PgResult): Row[] {
  const { fields, rows } = result;
  return rows.map((values) => {
    const row: Row = {};
    for (let i = 0; i < fields.length; i++) setColumn(row, fields[i].name, values[i]);
    return row;
  });
}

/** A simple-protocol query of several statements answers with one result each: the last is the statement's. */
function lastResult(result: PgResult | PgResult[]): PgResult {
  return Array.isArray(result) ? result[result.length - 1] : result;
}

const typeCacheSize = 100;

/** What the client's events told: its WebSocket closed (node-postgres's `end`). */
interface ClientState {
  ended: boolean;
}

/**
 * Ends the client's session and WebSocket, never waiting on one that has
 * closed already (node-postgres's `end()` would wait for an `end` event that
 * came before), nor for more than a second on one that does not answer.
 */
async function endClient(client: NeonClient, state: ClientState): Promise<void> {
  if (state.ended) return;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<void>((resolve) => timer = setTimeout(resolve, 1_000));
  try {
    await Promise.race([client.end().catch(() => {}), late]);
  } finally {
    clearTimeout(timer);
    if (!state.ended) cut(client);
  }
}

class NeonConnection implements DriverConnection {
  readonly #client: NeonClient;
  readonly #state: ClientState;
  readonly #parsing: TypeParsing;
  /** The server's parameter types per statement text, for array parameters. */
  readonly #types = new Map<string, readonly string[]>();
  #lost = false;
  /** The backend's pid, read when the connection opened. */
  readonly backendId: number;

  constructor(client: NeonClient, state: ClientState, parsing: TypeParsing, backendId: number) {
    this.#client = client;
    this.#state = state;
    this.#parsing = parsing;
    this.backendId = backendId;
  }

  /** Called when the WebSocket fails or closes: the pool replaces the connection. */
  lose(): void {
    this.#lost = true;
  }

  get broken(): boolean {
    return this.#lost;
  }

  #translate(error: unknown, text: string): Error {
    const translated = translateError(errors, plain(error), text);
    if (translated instanceof ConnectionError) this.#lost = true;
    return translated;
  }

  /** Sends one statement (or, without parameters, several), untranslated. */
  #sendAll(text: string, bound: Bound): Promise<PgResult | PgResult[]> {
    if (this.#lost) {
      return Promise.reject(
        new ConnectionError("postgres connection lost: the WebSocket closed", { code: "CONNECTION_CLOSED" }),
      );
    }
    return this.#client.query({ text, values: bound.values, rowMode: "array", types: bound.types });
  }

  async #send(text: string, bound: Bound): Promise<PgResult> {
    return lastResult(await this.#sendAll(text, bound));
  }

  /**
   * The server's type names for the parameters of `text`, asked once per
   * text (see `parameterTypesProbe`); undefined for statements `PREPARE`
   * does not take.
   */
  async #parameterTypes(text: string): Promise<readonly string[] | undefined> {
    if (!preparable.test(text)) return undefined;
    let types = this.#types.get(text);
    if (types === undefined) {
      const results = await this.#sendAll(parameterTypesProbe(text), unbound);
      types = ((Array.isArray(results) ? results[1]?.rows[0]?.[0] : undefined) ?? []) as string[];
      if (this.#types.size >= typeCacheSize) this.#types.delete(this.#types.keys().next().value!);
      this.#types.set(text, types);
    }
    return types;
  }

  /**
   * The parameters the Roost way (`postgresParam`): booleans, bigints and
   * bytes typed by their JavaScript value (`parameterOids`), arrays as JSON
   * or Postgres arrays by the type the server gives their place, the rest as
   * text the server types.
   */
  async #bind(text: string, params: readonly unknown[]): Promise<Bound> {
    if (params.length === 0) return unbound;
    if (params.length > 65_535) throw tooManyParameters({ text, params }, 65_535, "Postgres");
    let arrays = false;
    const values = params.map((param, index) =>
      postgresParam(param, index, (array) => {
        arrays = true;
        return new ArrayParam(array, index);
      })
    );
    const types = arrays ? await this.#parameterTypes(text) : undefined;
    const oids = parameterOids(values);
    return {
      values: values.map((value, i) => value instanceof ArrayParam ? value.encode(types?.[i]) : encode(value)),
      // node-postgres reads a query's `types` for both its parameters' OIDs and its columns' parsers.
      types: oids && Object.assign(oids, this.#parsing),
    };
  }

  async #query(text: string, params: readonly unknown[]): Promise<PgResult> {
    try {
      return await this.#send(text, await this.#bind(text, params));
    } catch (error) {
      throw this.#translate(error, text);
    }
  }

  async execute(text: string, params: readonly unknown[]): Promise<ExecuteResult> {
    return { rowCount: (await this.#query(text, params)).rowCount ?? 0 };
  }

  /**
   * node-postgres sends a statement once the one before it has answered (no
   * pipelining), so a single-row insert becomes multi-row inserts; other
   * statements run once per set.
   */
  executeMany(text: string, paramSets: readonly (readonly unknown[])[]): Promise<ExecuteResult> {
    return executeBatched(text, paramSets, (statement, params) => this.execute(statement, params), true);
  }

  async fetchAll(text: string, params: readonly unknown[]): Promise<Row[]> {
    return rowsOf(await this.#query(text, params));
  }

  async fetchOne(text: string, params: readonly unknown[]): Promise<Row | undefined> {
    return (await this.fetchAll(text, params))[0];
  }

  async fetchRows(text: string, params: readonly unknown[]): Promise<Rows> {
    const { fields, rows } = await this.#query(text, params);
    return { columns: fields.map((field) => field.name), rows };
  }

  /**
   * node-postgres reads whole results, so every stream is a server-side
   * cursor fetched `batchSize` rows at a time (see `cursorBatches`); a
   * statement that cannot be a cursor (a write with RETURNING) is read whole.
   */
  async *stream(
    text: string,
    params: readonly unknown[],
    batchSize: number,
    placement: StreamPlacement,
    arrays?: boolean,
  ): AsyncIterableIterator<Row[]> {
    let bound: Bound;
    try {
      bound = await this.#bind(text, params);
    } catch (error) {
      throw this.#translate(error, text);
    }
    // Only the DECLARE carries the parameters (bound already); FETCH, CLOSE, BEGIN and COMMIT have none.
    const run = async (statement: string, values: readonly unknown[] = []) => {
      const result = await this.#send(statement, values.length === 0 ? unbound : bound);
      return arrays ? result.rows as unknown as Row[] : rowsOf(result);
    };
    yield* cursorStream(
      run,
      () =>
        arrays
          ? this.fetchRows(text, params).then((result) => result.rows as unknown as Row[])
          : this.fetchAll(text, params),
      (error) => this.#translate(error, text),
      text,
      bound.values,
      batchSize,
      placement,
    );
  }

  async ping(): Promise<void> {
    await this.execute("SELECT 1", []);
  }

  async close(): Promise<void> {
    this.#lost = true;
    await endClient(this.#client, this.#state);
  }

  /** Closes the WebSocket at once; the core then ends the session from another connection (`backendId`). */
  destroy(): Promise<void> {
    this.#lost = true;
    if (!this.#state.ended) cut(this.#client);
    return Promise.resolve();
  }
}

/** Closes the client's WebSocket at once (Neon's socket throws when it never opened one). */
function cut(client: NeonClient): void {
  try {
    client.connection.stream.destroy();
  } catch {
    // No WebSocket: nothing to close.
  }
}

/** A text option of a URL as a string. */
function option(url: DatabaseUrl, key: string): string | undefined {
  const value = url.options[key];
  return value === undefined ? undefined : String(value);
}

/**
 * Where the WebSocket goes, from the URL: Neon's proxy for the host (Neon's
 * defaults, the password sent with the start-up to save round trips), or
 * the `wsproxy` the URL names. Throws `ConfigError` for TLS settings a
 * WebSocket cannot honour.
 */
export function socketSettings(url: DatabaseUrl): SocketSettings {
  for (const key of ["sslrootcert", "sslcert", "sslkey"]) {
    if (url.options[key] !== undefined) {
      throw new ConfigError(
        `the neon driver cannot use the URL option "${key}": its TLS is the WebSocket's (wss:), which the runtime ` +
          `checks against its own certificate authorities`,
      );
    }
  }
  const proxy = option(url, "wsproxy");
  // Neon's proxy takes the password with the start-up message (cleartext over wss): one round trip less.
  if (proxy === undefined) return { pipelineConnect: url.password() === "" ? false : "password" };
  const [, scheme, rest] = /^(wss?):\/\/(.+)$/.exec(proxy) ?? [];
  if (scheme === undefined) throw new ConfigError('URL option "wsproxy" must be a ws:// or wss:// address');
  const mode = option(url, "sslmode");
  if (scheme === "ws" && (mode === "require" || mode === "verify-ca" || mode === "verify-full")) {
    throw new ConfigError(`sslmode=${mode} needs TLS, which a ws:// proxy does not give: use a wss:// wsproxy`);
  }
  const separator = rest.includes("?") ? "&" : "?";
  return {
    wsProxy: (host, port) => `${rest}${separator}address=${host}:${port}`,
    useSecureWebSocket: scheme === "wss",
    // Another proxy's server picks its own authentication (trust, SCRAM…): the start-up waits to be asked.
    pipelineConnect: false,
  };
}

/**
 * Sends `parameters` in the client's start-up message, with what
 * node-postgres sends there itself. Behind a pooler (`pooler=…`): PgBouncer
 * keeps a client's start-up TimeZone, DateStyle and application_name and
 * sets them on every server session it hands that client, in transaction
 * mode too, where a SET would land on a server session its other clients
 * share next (docs/poolers.md). node-postgres has no option for other
 * start-up parameters: its `getStartupConf` is wrapped on this one client.
 */
function withStartupParameters(client: NeonClient, parameters: readonly [string, string][]): void {
  const startup = client as unknown as { getStartupConf(): Record<string, string> };
  const own = startup.getStartupConf.bind(client);
  startup.getStartupConf = () => ({ ...own(), ...Object.fromEntries(parameters) });
}

/** A session parameter's value as a quoted literal. */
const literal = (value: string) => `'${value.replaceAll("'", "''")}'`;

/** The catalogue query that lists every array type: element OID, array OID, delimiter. */
const arrayTypesQuery = "SELECT oid, typarray, typdelim FROM pg_catalog.pg_type WHERE typarray <> 0";

/** The Neon serverless driver (WebSocket). */
export const neon: Driver = {
  name: "neon",
  dialect: "postgres",
  interleavedStreams: false,
  async connect(url, signal) {
    const settings = socketSettings(url);
    const parsers: Record<number, Parser> = { ...textParsers };
    const parsing: TypeParsing = { getTypeParser: (oid) => parsers[oid] ?? asText };
    const seconds = connectTimeoutSeconds(url);
    const client = new NeonClientClass({
      host: url.host,
      port: url.port,
      user: url.user || undefined,
      password: url.password() || undefined,
      database: url.database || undefined,
      // Roost's own deadline below ends the client first; the client's a second later is a backstop (0: none).
      connectionTimeoutMillis: seconds > 0 ? seconds * 1000 + 1000 : 0,
      ssl: false,
      types: parsing,
    });
    Object.assign(client.neonConfig, settings);
    const opened: { connection?: NeonConnection } = {};
    const state: ClientState = { ended: false };
    // Without a listener, an error while idle would be thrown by the client's event emitter.
    client.on("error", () => opened.connection?.lose());
    client.on("end", () => {
      state.ended = true;
      opened.connection?.lose();
    });
    const parameters = Object.entries(postgresSessionParameters(url));
    const pooled = url.options.pooler !== undefined;
    if (pooled) withStartupParameters(client, parameters);
    // One round trip (with Neon's proxy, sent along with the start-up): session parameters (behind a pooler, in
    // the start-up itself), pid, array types.
    const setUp = [
      ...(pooled ? [] : parameters.map(([name, value]) => `SET ${name} TO ${literal(value)}`)),
      "SELECT pg_backend_pid()",
      arrayTypesQuery,
    ];
    let backendId: number;
    // The client's own timeout reports itself as the WebSocket failing, like a refused connection: so Roost keeps
    // the deadline, and a silent server is ROOST_CONNECT_TIMEOUT as on every other driver.
    let deadline: ReturnType<typeof setTimeout> | undefined;
    const late = new Error(`no answer within connect_timeout (${seconds} s)`);
    // Given up (the pool closed): as past the deadline, the error is due now.
    let stopListening = () => {};
    const timedOut = new Promise<never>((_, reject) => {
      if (seconds > 0) deadline = setTimeout(() => reject(late), seconds * 1000);
      stopListening = onAbort(signal, () => reject(signal?.reason));
    });
    try {
      await Promise.race([client.connect(), timedOut]);
      const query = client.query({ text: setUp.join(";"), rowMode: "array" }) as Promise<PgResult[]>;
      const results = await Promise.race([query, timedOut]);
      backendId = Number(results[setUp.length - 2].rows[0][0]);
      for (const [element, array, delimiter] of results[setUp.length - 1].rows as [number, number, string][]) {
        const parseElement = textParsers[element];
        parsers[array] = (text) => parseArray(text, parseElement, delimiter);
      }
    } catch (error) {
      // Past the deadline the error is due now; the client ends (or is cut a second later) in the background.
      // Given up by a closing pool, it is cut at once: close() is not to wait for a silent server.
      if (signal?.aborted) cut(client);
      const ending = endClient(client, state);
      if (error === late) throw connectFailed("postgres", url, late, undefined, "ROOST_CONNECT_TIMEOUT");
      if (signal?.aborted) throw error;
      await ending;
      const failure = plain(error);
      throw connectFailed("postgres", url, failure, errors.cause(failure), stateOf(failure) ?? ownCode(failure));
    } finally {
      clearTimeout(deadline);
      stopListening();
    }
    return opened.connection = new NeonConnection(client, state, parsing, backendId);
  },
};
