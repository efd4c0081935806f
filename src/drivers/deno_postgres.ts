/**
 * The `@db/postgres` driver (JSR, denodrivers/postgres): PostgreSQL on Deno.
 * Opt-in with `driver: "deno-postgres"`; the default Postgres driver on Deno
 * stays `postgres-js`. Each Roost connection is one deno-postgres `Client`
 * (Roost's pool does the pooling) and behaves like the postgres-js driver:
 * int8 as a number when exact and a bigint otherwise, numeric as a string,
 * bytea as `Uint8Array`, json parsed, errors as `QueryError` with the
 * SQLSTATE, and streams through a server-side cursor.
 *
 * The package is imported at the first connection (`jsr:@db/postgres@^0.19`),
 * never at type-check time; when it cannot be loaded, connecting throws a
 * `ConfigError` with code `ROOST_DRIVER_UNAVAILABLE`. It reads the `PG*`
 * environment variables, so it needs `--allow-env` besides `--allow-net`.
 *
 * @example Passing the driver object
 * ```ts
 * import { Database } from "@roost/db";
 * import { denoPostgres } from "@roost/db/drivers/deno-postgres";
 * const db = new Database("postgres://app@localhost/app", { driver: denoPostgres });
 * ```
 *
 * @module
 */
import type { Driver, DriverConnection, ExecuteResult, Row, StreamPlacement } from "../driver.ts";
import { ConfigError, ConnectionError, QueryError, queryError } from "../errors.ts";
import { backgroundTimeout } from "../runtime.ts";
import type { DatabaseUrl } from "../url.ts";
import { fatalPostgresState, postgresErrorFields, sanitizedCause } from "./cause.ts";
import { inBatches, insertInChunks, multiRowInsert } from "./batch.ts";
import { importJsr } from "./jsr.ts";
import { cursorBatches, NotACursor } from "./pg_cursor.ts";
import { parseArray, parseTimestamp, postgresParam, postgresSessionParameters, serializeArray } from "./pg_values.ts";
import { tlsRequest } from "./tls.ts";
import { integerFromText } from "./values.ts";

/** The package and versions this driver is written against. */
const specifier = "jsr:@db/postgres@^0.19";

/** A parameter as deno-postgres sends it: text, binary (a Uint8Array, for bytea) or SQL NULL. */
type EncodedParam = string | Uint8Array | null;

/** The options of deno-postgres's `Client` this driver sets. */
interface PgClientOptions {
  hostname: string;
  port: number;
  host_type: "tcp";
  user?: string;
  password?: string;
  database?: string;
  applicationName?: string;
  /** Server settings sent at startup (`--name=value`). */
  options?: Record<string, string>;
  tls: { enabled: boolean; enforce: boolean; caCertificates: string[] };
  /** `attempts: 0`: connect once, and never reconnect behind Roost's back. */
  connection: { attempts: number };
  /** `debug: false`: deno-postgres logs neither queries nor the server's notices. */
  controls: { debug: boolean; decoders: Record<number, (text: string) => unknown> };
}

/** What `queryArray` returns: rows as arrays, the command's row count, the columns. */
interface PgArrayResult {
  rows: unknown[][];
  rowCount?: number;
  readonly rowDescription?: { columns: readonly { name: string }[] };
}

/** The part of deno-postgres's `Client` this driver uses. */
interface PgClient {
  readonly connected: boolean;
  readonly session?: { readonly pid?: number };
  connect(): Promise<void>;
  queryArray(query: {
    text: string;
    args?: unknown[];
    encoder?: (value: unknown, index: number) => EncodedParam;
  }): Promise<PgArrayResult>;
  end(): Promise<void>;
}

/** The `@db/postgres` module, typed by the part this driver uses. */
interface PostgresModule {
  Client: new (options: PgClientOptions) => PgClient;
}

/** How one array element's text becomes its value (undefined: the text itself). */
type ElementDecoder = ((text: string) => unknown) | undefined;

function byteaFromText(text: string): Uint8Array {
  const bytes = new Uint8Array((text.length - 2) / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(text.slice(2 + 2 * i, 4 + 2 * i), 16);
  return bytes;
}

/** Element decoders by type oid, as Roost reads each type (see README, Values). */
const elementDecoders: Record<number, ElementDecoder> = {
  16: (text) => text === "t",
  17: byteaFromText,
  20: integerFromText,
  21: Number,
  23: Number,
  26: Number,
  114: JSON.parse,
  700: Number,
  701: Number,
  1082: undefined, // date: its text, which no time zone can shift
  1114: parseTimestamp,
  1184: parseTimestamp,
  3802: JSON.parse,
};

/** Array type oids and their element types. */
const arrayTypes: Record<number, number> = {
  1000: 16,
  1001: 17,
  1002: 18,
  1003: 19,
  1005: 21,
  1007: 23,
  1009: 25,
  1014: 1042,
  1015: 1043,
  1016: 20,
  1021: 700,
  1022: 701,
  1028: 26,
  1040: 829,
  1041: 869,
  651: 650,
  1115: 1114,
  1182: 1082,
  1183: 1083,
  1185: 1184,
  1187: 1186,
  1231: 1700,
  1270: 1266,
  199: 114,
  2951: 2950,
  3807: 3802,
};

/**
 * Result decoding where deno-postgres's own differs from Roost's values: int8
 * exact (it gives bigints), float8 and oid as numbers (it gives strings),
 * `date` as text, timestamps independent of the process's time zone
 * (`infinity` as text), bytea as a plain Uint8Array, and arrays through
 * Roost's parser (NULL elements as null, quoted "NULL" as the string).
 */
const decoders: Record<number, (text: string) => unknown> = {
  17: byteaFromText,
  20: integerFromText,
  26: Number,
  701: Number,
  1082: (text) => text,
  1114: parseTimestamp,
  1184: parseTimestamp,
};
for (const [array, element] of Object.entries(arrayTypes)) {
  const parseElement = elementDecoders[element];
  decoders[Number(array)] = (text) => parseArray(text, parseElement);
}

/** The part of deno-postgres's array result (the prototype of what `queryArray` returns) the BOM repair wraps. */
interface RowInserter {
  rows: unknown[][];
  insertRow(row: (Uint8Array | null)[], controls?: { decoders?: unknown }): void;
}

/** Set once `repairBoms` has wrapped the result class (there is one per process). */
let bomsRepaired = false;

/**
 * deno-postgres decodes every value with a `TextDecoder` that drops a
 * leading U+FEFF before any decoder of Roost's sees the text, so `'\uFEFFa'`
 * would read back `'a'`. This wraps the result class's `insertRow` so that,
 * for results of Roost's clients only (told by their `decoders`), a string
 * value whose bytes began with the BOM gets it back. Other users of the
 * library in the process are unaffected.
 */
function repairBoms(result: object): void {
  const prototype = Object.getPrototypeOf(result) as RowInserter | null;
  if (bomsRepaired || prototype === null || typeof prototype.insertRow !== "function") return;
  bomsRepaired = true;
  const insertRow = prototype.insertRow;
  prototype.insertRow = function (this: RowInserter, row, controls) {
    insertRow.call(this, row, controls);
    if (controls?.decoders !== decoders) return;
    const values = this.rows[this.rows.length - 1];
    for (let i = 0; i < row.length; i++) {
      const bytes = row[i];
      if (
        bytes != null && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf && typeof values[i] === "string"
      ) {
        values[i] = `\uFEFF${values[i]}`;
      }
    }
  };
}

function hex(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) text += byte.toString(16).padStart(2, "0");
  return text;
}

/** An array parameter, serialised once the server has said which type its place has. */
class ArrayParam {
  readonly value: unknown[];
  readonly index: number;

  constructor(value: unknown[], index: number) {
    this.value = value;
    this.index = index;
  }

  /** JSON for json/jsonb places, Postgres's array text anywhere else. */
  encode(type: string | undefined): string {
    if (type === "json" || type === "jsonb") return JSON.stringify(this.value);
    return String(serializeArray(this.value, (item: unknown) => {
      const value = postgresParam(item, this.index, (array) => array);
      return value instanceof Uint8Array ? `\\x${hex(value)}` : String(value);
    }));
  }
}

/** deno-postgres's encoder, for parameters encoded already. */
const asEncoded = (value: unknown): EncodedParam => value as EncodedParam;

let probeCount = 0;
const typeCacheSize = 100;

/** Statements `PREPARE` accepts, so the server can be asked for their parameters' types. */
const preparable =
  /^\s*(?:(?:--[^\n]*\n|\/\*[\s\S]*?\*\/)\s*)*(?:select|insert|update|delete|with|values|merge|table)\b/i;

const identifierChar = /[\p{L}\p{N}_$]/u;
const placeholder = /\$(\d+)/y;
const dollarTag = /\$([A-Za-z_\u0080-\uffff][\w\u0080-\uffff]*)?\$/y;

/**
 * The SQL text with the listed placeholders cast (`$2` becomes `($2::bool)`),
 * skipping string literals, quoted identifiers, comments and dollar-quoted
 * bodies. deno-postgres sends every parameter untyped; postgres.js gives
 * booleans, bigints and bytes their type, and so does this.
 */
function castPlaceholders(text: string, casts: ReadonlyMap<number, string>): string {
  let out = "";
  let copied = 0;
  let i = 0;
  while (i < text.length) {
    const char = text[i];
    if (char === "'") {
      const escapes = /[eE]/.test(text[i - 1] ?? "") && !identifierChar.test(text[i - 2] ?? "");
      for (i++; i < text.length; i++) {
        if (escapes && text[i] === "\\") i++;
        else if (text[i] === "'") {
          if (text[i + 1] !== "'") break;
          i++;
        }
      }
      i++;
    } else if (char === '"') {
      const end = text.indexOf('"', i + 1);
      i = end < 0 ? text.length : end + 1;
    } else if (char === "-" && text[i + 1] === "-") {
      const end = text.indexOf("\n", i);
      i = end < 0 ? text.length : end + 1;
    } else if (char === "/" && text[i + 1] === "*") {
      let depth = 1;
      for (i += 2; i < text.length && depth > 0; i++) {
        if (text[i] === "/" && text[i + 1] === "*") {
          depth++;
          i++;
        } else if (text[i] === "*" && text[i + 1] === "/") {
          depth--;
          i++;
        }
      }
    } else if (char === "$" && !identifierChar.test(text[i - 1] ?? "")) {
      placeholder.lastIndex = i;
      dollarTag.lastIndex = i;
      const number = placeholder.exec(text);
      const tag = number === null ? dollarTag.exec(text) : null;
      if (number !== null) {
        const type = casts.get(Number(number[1]));
        if (type !== undefined) {
          out += `${text.slice(copied, i)}(${number[0]}::${type})`;
          copied = i + number[0].length;
        }
        i += number[0].length;
      } else if (tag !== null) {
        const end = text.indexOf(tag[0], i + tag[0].length);
        i = end < 0 ? text.length : end + tag[0].length;
      } else {
        i++;
      }
    } else {
      i++;
    }
  }
  return out + text.slice(copied);
}

/** deno-postgres's names for the server's error fields, and postgres.js's names Roost's causes use. */
const serverFieldNames: Record<string, string> = {
  code: "code",
  severity: "severity",
  hint: "hint",
  position: "position",
  where: "where",
  schema: "schema_name",
  table: "table_name",
  column: "column_name",
  dataType: "data_type_name",
  constraint: "constraint_name",
  routine: "routine",
  // Not `detail` (the server quotes values there) nor `internalQuery` (it may hold interpolated values).
};

/** The server's error fields when `error` is a deno-postgres `PostgresError`. */
function serverFields(error: unknown): Record<string, unknown> & { code: string } | undefined {
  const fields = (error as { fields?: unknown } | undefined)?.fields;
  if (error instanceof Error && typeof fields === "object" && fields !== null) {
    const code = (fields as { code?: unknown }).code;
    if (typeof code === "string") return fields as Record<string, unknown> & { code: string };
  }
  return undefined;
}

/** A server error as Roost's `cause`: message, stack and the fields above, never `detail` or a query. */
function serverCause(error: Error, fields: Record<string, unknown>): unknown {
  const flat = new Error(error.message);
  flat.name = error.name;
  flat.stack = error.stack;
  for (const [from, to] of Object.entries(serverFieldNames)) {
    if (fields[from] !== undefined) (flat as unknown as Record<string, unknown>)[to] = fields[from];
  }
  return sanitizedCause(flat, postgresErrorFields);
}

/** The error's own code (a Deno network error's `ECONNREFUSED`…), when it has one. */
function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === "string" ? code : undefined;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** A command's row count; deno-postgres gives NaN for commands that report none (CREATE, BEGIN…). */
function rowCountOf(result: PgArrayResult): number {
  return Number.isFinite(result.rowCount) ? result.rowCount! : 0;
}

/** The rows as plain objects named by the result's columns (a later duplicate name wins). */
function rowsOf(result: PgArrayResult): Row[] {
  if (result.rows.length === 0) return [];
  const columns = result.rowDescription?.columns;
  if (columns === undefined) {
    throw new QueryError("deno-postgres returned rows without their column names (unsupported @db/postgres version)");
  }
  return result.rows.map((values) => {
    const row: Row = {};
    for (let i = 0; i < columns.length; i++) row[columns[i].name] = values[i];
    return row;
  });
}

class DenoPostgresConnection implements DriverConnection {
  readonly #client: PgClient;
  /** The server's parameter types per statement text, for array parameters. */
  readonly #types = new Map<string, readonly string[]>();
  #lost = false;
  /** The backend's pid, as the server announced it at start-up. */
  readonly backendId?: number;
  /**
   * deno-postgres reads its socket only during a statement, so a connection
   * the server closed while it was idle looks alive until its next statement
   * fails ("Broken pipe"): the pool checks it before each reuse.
   */
  readonly unwatched = true;

  constructor(client: PgClient) {
    this.#client = client;
    this.backendId = client.session?.pid;
  }

  /** True once the socket failed or the server ended the session; the pool replaces the connection. */
  get broken(): boolean {
    return this.#lost || !this.#client.connected;
  }

  /**
   * A deno-postgres error as a Roost error. Server errors are `QueryError`s
   * (`ConnectionError` for class 08 and shutdowns); anything else came from
   * the socket or the protocol, after which the connection is not trusted.
   */
  #translate(error: unknown, text: string): Error {
    if (error instanceof QueryError) return error;
    if (error instanceof ConnectionError) {
      this.#lost = true;
      return error;
    }
    const fields = serverFields(error);
    if (fields !== undefined) {
      const cause = serverCause(error as Error, fields);
      if (!fatalPostgresState(fields.code)) {
        return queryError(messageOf(error), { cause, code: fields.code, sql: text });
      }
      this.#lost = true;
      return new ConnectionError(`postgres connection lost: ${messageOf(error)}`, { cause, code: fields.code });
    }
    this.#lost = true;
    return new ConnectionError(`postgres connection lost: ${messageOf(error)}`, {
      cause: error,
      code: errorCode(error),
    });
  }

  /** Sends a statement whose parameters are already encoded, without translating its errors. */
  #send(text: string, args: readonly EncodedParam[]): Promise<PgArrayResult> {
    if (this.#lost) {
      return Promise.reject(new ConnectionError("postgres connection lost", { code: "CONNECTION_CLOSED" }));
    }
    return this.#client.queryArray({ text, args: args as EncodedParam[], encoder: asEncoded });
  }

  /**
   * The server's type names for the parameters of `text` (`integer[]`,
   * `jsonb`…), asked through `PREPARE` in one round trip and remembered per
   * text. Undefined for statements `PREPARE` does not take.
   */
  async #parameterTypes(text: string): Promise<readonly string[] | undefined> {
    if (!preparable.test(text)) return undefined;
    let types = this.#types.get(text);
    if (types === undefined) {
      const name = `roost_types_${++probeCount}`;
      const result = await this.#send(
        `PREPARE ${name} AS ${text}\n;SELECT parameter_types::text[] FROM pg_catalog.pg_prepared_statements ` +
          `WHERE name = '${name}';DEALLOCATE ${name}`,
        [],
      );
      types = (result.rows[0]?.[0] ?? []) as string[];
      if (this.#types.size >= typeCacheSize) this.#types.delete(this.#types.keys().next().value!);
      this.#types.set(text, types);
    }
    return types;
  }

  /**
   * The statement and its parameters as deno-postgres sends them (see
   * `postgresParam` for the rules): booleans, bigints and bytes get their
   * type by a cast, Dates and strings go as text for the server to type, and
   * arrays become JSON or Postgres arrays depending on the type the server
   * gives their place.
   */
  async #bind(text: string, params: readonly unknown[]): Promise<[string, EncodedParam[]]> {
    const casts = new Map<number, string>();
    let arrays = false;
    const values = params.map((param, index): EncodedParam | ArrayParam => {
      const value = postgresParam(param, index, (array) => new ArrayParam(array, index));
      switch (typeof value) {
        case "string":
          return value;
        case "number":
          return Object.is(value, -0) ? "0" : String(value);
        case "boolean":
          casts.set(index + 1, "bool");
          return value ? "t" : "f";
        case "bigint":
          casts.set(index + 1, "int8");
          return value.toString();
        default:
          if (value instanceof Uint8Array) {
            casts.set(index + 1, "bytea");
            return value;
          }
          if (value instanceof ArrayParam) {
            arrays = true;
            return value;
          }
          return value === null ? null : String(value);
      }
    });
    const typed = casts.size === 0 ? text : castPlaceholders(text, casts);
    const types = arrays ? await this.#parameterTypes(typed) : undefined;
    return [typed, values.map((value, i) => value instanceof ArrayParam ? value.encode(types?.[i]) : value)];
  }

  async #query(text: string, params: readonly unknown[]): Promise<PgArrayResult> {
    try {
      const [typed, args] = await this.#bind(text, params);
      return await this.#send(typed, args);
    } catch (error) {
      throw this.#translate(error, text);
    }
  }

  async execute(text: string, params: readonly unknown[]): Promise<ExecuteResult> {
    return { rowCount: rowCountOf(await this.#query(text, params)) };
  }

  /**
   * deno-postgres sends one statement and waits for its answer before the
   * next (no pipelining, no named statements), so a single-row insert
   * becomes multi-row inserts; other statements run once per set.
   */
  async executeMany(text: string, paramSets: readonly (readonly unknown[])[]): Promise<ExecuteResult> {
    const run = async (statement: string, params: readonly unknown[]): Promise<ExecuteResult> => ({
      rowCount: rowCountOf(await this.#query(statement, params)),
    });
    const insert = multiRowInsert(text, paramSets[0]?.length ?? 0, true);
    if (insert) return await insertInChunks(insert, paramSets, run);
    let rowCount = 0;
    for (const params of paramSets) rowCount += (await run(text, params)).rowCount;
    return { rowCount };
  }

  async fetchAll(text: string, params: readonly unknown[]): Promise<Row[]> {
    const result = await this.#query(text, params);
    try {
      return rowsOf(result);
    } catch (error) {
      throw this.#translate(error, text);
    }
  }

  async fetchOne(text: string, params: readonly unknown[]): Promise<Row | undefined> {
    return (await this.fetchAll(text, params))[0];
  }

  /**
   * deno-postgres reads whole results, so every stream is a server-side
   * cursor fetched `batchSize` rows at a time: in a transaction of its own on
   * a connection of its own, `WITH HOLD` on a scope's connection, and plain
   * inside a transaction.
   */
  async *stream(
    text: string,
    params: readonly unknown[],
    batchSize: number,
    placement: StreamPlacement,
  ): AsyncIterableIterator<Row[]> {
    const mode = placement === "own" ? "own-transaction" : placement === "shared" ? "hold" : "in-transaction";
    try {
      const [typed, args] = await this.#bind(text, params);
      const run = async (statement: string, values: readonly unknown[] = []) =>
        rowsOf(await this.#send(statement, values as EncodedParam[]));
      yield* cursorBatches(run, typed, args, batchSize, mode);
      return;
    } catch (error) {
      if (!(error instanceof NotACursor)) throw this.#translate(error, text);
    }
    // On a connection of its own, a statement that cannot be a cursor (a write with RETURNING) is read whole.
    yield* inBatches(await this.fetchAll(text, params), batchSize);
  }

  async ping(): Promise<void> {
    await this.execute("SELECT 1", []);
  }

  async close(): Promise<void> {
    this.#lost = true;
    await this.#client.end().catch(() => {});
  }
}

/** The TLS options of a client that connects in plain text. */
const plainText: PgClientOptions["tls"] = { enabled: false, enforce: false, caCertificates: [] };

/**
 * `sslmode` as deno-postgres's TLS options. Deno always verifies the
 * server's certificate chain and host name, so `require` and `verify-ca`
 * verify as much as `verify-full`; `sslrootcert` adds a CA certificate (an
 * unreadable file is a `ConfigError`). TLS is always enforced: the library's
 * own fall-back to plain text after a failed certificate check is never
 * used (see {@link TlsFallbackClient} for `prefer` and `allow`).
 */
function tlsOptions(url: DatabaseUrl): PgClientOptions["tls"] {
  if (url.options.sslmode === undefined || url.options.sslmode === "disable") return plainText;
  if (url.options.sslcert !== undefined || url.options.sslkey !== undefined) {
    throw new ConfigError("deno-postgres cannot present a client certificate (sslcert, sslkey): use postgres-js");
  }
  const request = tlsRequest(url);
  return { enabled: true, enforce: true, caCertificates: request.ca === undefined ? [] : [request.ca] };
}

/** The library's message when the server answers the TLS request with "no". */
const tlsRefusedByServer = /isn't accepting TLS/;

/** The library's message when the TLS handshake fails on the server's certificate. */
const certificateRejected = /certificate/i;

/**
 * A client for `sslmode=prefer` or `allow`: it asks for TLS, enforced, and
 * connects in plain text only when the server has no TLS at all. A server
 * that offers TLS with a certificate Deno cannot verify is a connection
 * error, never a silent fall-back to plain text (the library's own
 * fall-back also writes to stderr). Every mode's certificate failure names
 * what to change.
 */
class TlsFallbackClient implements PgClient {
  #client: PgClient;
  readonly #make: (tls: PgClientOptions["tls"]) => PgClient;
  readonly #prefer: boolean;

  constructor(make: (tls: PgClientOptions["tls"]) => PgClient, tls: PgClientOptions["tls"], prefer: boolean) {
    this.#make = make;
    this.#prefer = prefer && tls.enabled;
    this.#client = make(tls);
  }

  get connected(): boolean {
    return this.#client.connected;
  }

  get session(): PgClient["session"] {
    return this.#client.session;
  }

  async connect(): Promise<void> {
    try {
      await this.#client.connect();
    } catch (error) {
      const message = messageOf(error);
      if (this.#prefer && tlsRefusedByServer.test(message)) {
        await this.#client.end().catch(() => {});
        this.#client = this.#make(plainText);
        return await this.#client.connect();
      }
      if (certificateRejected.test(message) && !tlsRefusedByServer.test(message)) {
        throw new Error(
          `${message} (deno-postgres verifies the server's certificate and host name in every sslmode, ` +
            "and never falls back to plain text when the check fails: name the server's CA with sslrootcert " +
            "and connect by a host name its certificate lists, or use postgres-js)",
          { cause: error },
        );
      }
      throw error;
    }
  }

  queryArray(query: Parameters<PgClient["queryArray"]>[0]): Promise<PgArrayResult> {
    return this.#client.queryArray(query);
  }

  end(): Promise<void> {
    return this.#client.end();
  }
}

function clientOptions(url: DatabaseUrl): PgClientOptions {
  const { application_name, ...parameters } = postgresSessionParameters(url);
  const options: PgClientOptions = {
    hostname: url.host,
    port: url.port,
    host_type: "tcp",
    user: url.user || undefined,
    password: url.password() || undefined,
    // As libpq and postgres.js: no database named, the user's.
    database: url.database || url.user || undefined,
    tls: tlsOptions(url),
    connection: { attempts: 0 },
    controls: { debug: false, decoders },
    options: parameters,
  };
  if (application_name !== undefined) options.applicationName = application_name;
  return options;
}

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

/** Connects, giving up after `seconds` (0: no limit); a connection that arrives later is closed. */
async function connectWithin(client: PgClient, seconds: number): Promise<void> {
  const storage = await openingSockets();
  const opened: Opened = { sockets: [], abandoned: false };
  const connecting = storage === undefined ? client.connect() : storage.run(opened, () => client.connect());
  if (seconds <= 0) return await connecting;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = backgroundTimeout(
      () => reject(Object.assign(new Error(`timed out after ${seconds} s`), { code: "CONNECT_TIMEOUT" })),
      seconds * 1000,
    );
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
  }
}

/** The `@db/postgres` driver. */
export const denoPostgres: Driver = {
  name: "deno-postgres",
  dialect: "postgres",
  interleavedStreams: false,
  async connect(url) {
    const { Client } = await importJsr<PostgresModule>(
      "deno-postgres",
      specifier,
      // The exact JSR specifier, by design: an optional Deno-only driver, not a dependency of the package.
      // deno-lint-ignore no-import-prefix
      () => import("jsr:@db/postgres@^0.19"),
    );
    const where = `postgres at ${url.host}:${url.port}`;
    let client: PgClient;
    try {
      const options = clientOptions(url);
      const prefer = url.options.sslmode === "prefer" || url.options.sslmode === "allow";
      // A copy of the server settings for each client: the library escapes their spaces in place.
      const make = (tls: PgClientOptions["tls"]) => new Client({ ...options, options: { ...options.options }, tls });
      client = new TlsFallbackClient(make, options.tls, prefer);
    } catch (error) {
      // Settings Roost refuses (a client certificate, an unreadable sslrootcert) stay ConfigErrors.
      if (error instanceof ConfigError) throw error;
      // Invalid settings, a missing user or no --allow-env.
      throw new ConnectionError(`could not connect to ${where}: ${messageOf(error)}`, {
        cause: error,
        code: errorCode(error),
      });
    }
    try {
      await connectWithin(client, Number(url.options.connect_timeout ?? 30));
    } catch (error) {
      await client.end().catch(() => {});
      const fields = serverFields(error);
      throw new ConnectionError(`could not connect to ${where}: ${messageOf(error)}`, {
        cause: fields === undefined ? error : serverCause(error as Error, fields),
        code: fields?.code ?? errorCode(error),
      });
    }
    // Until a first result has been seen, each new connection fetches one, so none reads text unrepaired.
    if (!bomsRepaired) {
      try {
        repairBoms(await client.queryArray({ text: "SELECT 1" }));
      } catch (error) {
        await client.end().catch(() => {});
        throw new ConnectionError(`could not connect to ${where}: ${messageOf(error)}`, {
          cause: error,
          code: errorCode(error),
        });
      }
    }
    return new DenoPostgresConnection(client);
  },
};
