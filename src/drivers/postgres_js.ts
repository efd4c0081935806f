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
import type { Driver, DriverConnection, ExecuteResult, Row, StreamPlacement } from "../driver.ts";
import { ConnectionError, QueryError } from "../errors.ts";
import type { DatabaseUrl } from "../url.ts";
import { fatalPostgresState, postgresErrorFields, sanitizedCause } from "./cause.ts";
import { cursorBatches } from "./pg_cursor.ts";
import { integerFromText } from "./values.ts";

type Client = ReturnType<typeof postgres>;
type Params = Parameters<Client["unsafe"]>[1];

/** int8 as a number when exact, else as a bigint: never rounded, and `count(*)` stays a number. */
const int8 = {
  to: 20,
  from: [20],
  serialize: (value: bigint | number | string) => String(value),
  parse: integerFromText,
};

/** bytea as a plain Uint8Array on every runtime (postgres.js returns a Buffer). */
const bytea = {
  to: 17,
  from: [17],
  serialize: (value: Uint8Array) => `\\x${Array.from(value, (b) => b.toString(16).padStart(2, "0")).join("")}`,
  parse: (text: string): Uint8Array => {
    const bytes = new Uint8Array((text.length - 2) / 2);
    for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(text.slice(2 + 2 * i, 4 + 2 * i), 16);
    return bytes;
  },
};

const socketErrors = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
]);

/** postgres.js attaches the query's parameters to its errors (and does not let them be deleted). */
const sanitized = (error: unknown) => sanitizedCause(error, postgresErrorFields);

/** Translates a postgres.js error into a Roost error. */
function translate(error: unknown, text: string): Error {
  if (error instanceof QueryError || error instanceof ConnectionError) return error;
  const raw = error as { code?: unknown; message?: unknown };
  const code = typeof raw?.code === "string" ? raw.code : undefined;
  const message = typeof raw?.message === "string" ? raw.message : String(error);
  const cause = sanitized(error);
  if (code !== undefined && (socketErrors.has(code) || (/^[0-9A-Z]{5}$/.test(code) && fatalPostgresState(code)))) {
    return new ConnectionError(`postgres connection lost: ${message}`, { cause, code });
  }
  if (code === "UNDEFINED_VALUE") {
    return new QueryError("a parameter is undefined; pass null for SQL NULL", {
      cause,
      code: "ROOST_INVALID_PARAMETER",
      sql: text,
    });
  }
  return new QueryError(message, { cause, code, sql: text });
}

function sslOption(url: DatabaseUrl): postgres.Options<Record<string, never>>["ssl"] {
  switch (url.options.sslmode) {
    case undefined:
    case "disable":
      return false;
    case "allow":
    case "prefer":
      return "prefer";
    case "require":
      return "require";
    default:
      // verify-ca and verify-full: the certificate chain is checked; verify-full also checks the host name.
      return url.options.sslmode === "verify-ca"
        ? { rejectUnauthorized: true, checkServerIdentity: () => undefined }
        : "verify-full";
  }
}

class PostgresJsConnection implements DriverConnection {
  readonly #sql: Client;

  constructor(sql: Client) {
    this.#sql = sql;
  }

  async execute(text: string, params: readonly unknown[]): Promise<ExecuteResult> {
    try {
      const result = await this.#sql.unsafe(text, params as Params, { prepare: true });
      return { rowCount: result.count ?? 0 };
    } catch (error) {
      throw translate(error, text);
    }
  }

  /** Pipelines every set on the connection: one round trip's latency, not one per row. */
  async executeMany(text: string, paramSets: readonly (readonly unknown[])[]): Promise<ExecuteResult> {
    const settled = await Promise.allSettled(
      paramSets.map((params) => this.#sql.unsafe(text, params as Params, { prepare: true })),
    );
    let rowCount = 0;
    for (const outcome of settled) {
      if (outcome.status === "rejected") throw translate(outcome.reason, text);
      rowCount += outcome.value.count ?? 0;
    }
    return { rowCount };
  }

  async fetchAll(text: string, params: readonly unknown[]): Promise<Row[]> {
    try {
      return Array.from(await this.#sql.unsafe(text, params as Params, { prepare: true }));
    } catch (error) {
      throw translate(error, text);
    }
  }

  async fetchOne(text: string, params: readonly unknown[]): Promise<Row | undefined> {
    try {
      return (await this.#sql.unsafe(text, params as Params, { prepare: true }))[0];
    } catch (error) {
      throw translate(error, text);
    }
  }

  async *stream(
    text: string,
    params: readonly unknown[],
    batchSize: number,
    placement: StreamPlacement,
  ): AsyncIterableIterator<Row[]> {
    if (placement === "own") {
      try {
        for await (const batch of this.#sql.unsafe(text, params as Params, { prepare: true }).cursor(batchSize)) {
          yield Array.from(batch);
        }
      } catch (error) {
        throw translate(error, text);
      }
      return;
    }
    // On a shared connection a native cursor would hold the socket until it
    // ends, so a query inside the loop would wait forever: the server keeps
    // the cursor instead, and each batch is an ordinary FETCH.
    const run = (statement: string, values: readonly unknown[] = []) =>
      this.#sql.unsafe(statement, values as Params).then((rows) => Array.from(rows));
    try {
      yield* cursorBatches(run, text, params, batchSize, placement === "shared" ? "hold" : "in-transaction");
    } catch (error) {
      throw translate(error, text);
    }
  }

  async ping(): Promise<void> {
    await this.execute("SELECT 1", []);
  }

  async close(): Promise<void> {
    await this.#sql.end({ timeout: 1 }).catch(() => {});
  }
}

/** The postgres.js driver. */
export const postgresJs: Driver = {
  name: "postgres-js",
  dialect: "postgres",
  interleavedStreams: false,
  async connect(url) {
    const { connect_timeout, application_name, statement_timeout } = url.options;
    const connection: Record<string, string | number> = {};
    if (application_name !== undefined) connection.application_name = String(application_name);
    if (statement_timeout !== undefined) connection.statement_timeout = Number(statement_timeout);
    const sql = postgres({
      host: url.host,
      port: url.port,
      user: url.user || undefined,
      pass: url.password() || undefined,
      database: url.database || undefined,
      max: 1,
      // Roost's pool decides when connections idle out or retire.
      idle_timeout: 0,
      max_lifetime: null,
      connect_timeout: connect_timeout === undefined ? 30 : Number(connect_timeout),
      ssl: sslOption(url),
      connection,
      onnotice: () => {},
      types: { int8, bytea },
    });
    try {
      await sql.unsafe("SELECT 1");
    } catch (error) {
      await sql.end({ timeout: 0 }).catch(() => {});
      const reason = error instanceof Error ? error.message : String(error);
      throw new ConnectionError(`could not connect to postgres at ${url.host}:${url.port}: ${reason}`, {
        cause: sanitized(error),
        code: typeof (error as { code?: unknown }).code === "string" ? (error as { code: string }).code : undefined,
      });
    }
    return new PostgresJsConnection(sql);
  },
};
