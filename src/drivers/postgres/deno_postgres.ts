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
 * `ConfigError` with code `ROOST_DRIVER_UNAVAILABLE`. It runs with
 * `--allow-net=<host>:<port>` alone (docs/deno.md).
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
import type { Driver, DriverConnection, ExecuteResult, Row, Rows, StreamPlacement } from "../../driver.ts";
import { ConfigError, ConnectionError, QueryError } from "../../errors.ts";
import { connectTimeoutSeconds } from "../../url.ts";
import { executeBatched } from "../shared/batch.ts";
import { connectFailed, type ErrorRules, ownCode, translateError } from "../shared/errors.ts";
import { importJsr } from "../shared/jsr.ts";
import { cursorStream } from "./cursor.ts";
import {
  clientOptions,
  type EncodedParam,
  type PgArrayResult,
  type PgClient,
  type PgClientOptions,
  pooledSessionSetup,
  type PostgresModule,
  TlsFallbackClient,
} from "./deno_postgres_client.ts";
import { bomsUnrepaired, repairBoms } from "./deno_postgres_decoders.ts";
import { parameterTypesProbe, preparable } from "./array_params.ts";
import { bindParams } from "./deno_postgres_params.ts";
import { connectWithin } from "./deno_postgres_sockets.ts";
import { camelCaseServerCause, fatalPostgresState } from "./errors.ts";

/** The package and versions this driver is written against. */
const specifier = "jsr:@db/postgres@^0.19";

/** deno-postgres's encoder, for parameters encoded already. */
const asEncoded = (value: unknown): EncodedParam => value as EncodedParam;

const typeCacheSize = 100;

/** The server's error fields when `error` is a deno-postgres `PostgresError`. */
function serverFields(error: unknown): Record<string, unknown> & { code: string } | undefined {
  const fields = (error as { fields?: unknown } | undefined)?.fields;
  if (error instanceof Error && typeof fields === "object" && fields !== null) {
    const code = (fields as { code?: unknown }).code;
    if (typeof code === "string") return fields as Record<string, unknown> & { code: string };
  }
  return undefined;
}

/**
 * deno-postgres's errors: server errors are `QueryError`s (`ConnectionError`
 * for class 08 and shutdowns); anything else came from the socket or the
 * protocol, after which the connection is not trusted.
 */
const errors: ErrorRules = {
  dialect: "postgres",
  cause(error) {
    const fields = serverFields(error);
    return fields === undefined ? error : camelCaseServerCause(error as Error, fields, (error as Error).name);
  },
  classify(error) {
    const fields = serverFields(error);
    // The error's own code: a Deno network error's `ECONNREFUSED`…
    if (fields === undefined) return { code: ownCode(error), fatal: true };
    return { code: fields.code, fatal: fatalPostgresState(fields.code) };
  },
};

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

  /** A deno-postgres error as a Roost error (see `errors`); a `ConnectionError` marks the connection lost. */
  #translate(error: unknown, text: string): Error {
    const translated = translateError(errors, error, text);
    if (translated instanceof ConnectionError) this.#lost = true;
    return translated;
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
      const result = await this.#send(parameterTypesProbe(text), []);
      types = (result.rows[0]?.[0] ?? []) as string[];
      if (this.#types.size >= typeCacheSize) this.#types.delete(this.#types.keys().next().value!);
      this.#types.set(text, types);
    }
    return types;
  }

  /** The statement and its parameters as deno-postgres sends them (see `bindParams`). */
  #bind(text: string, params: readonly unknown[]): Promise<[string, EncodedParam[]]> {
    return bindParams(text, params, (typed) => this.#parameterTypes(typed));
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
  executeMany(text: string, paramSets: readonly (readonly unknown[])[]): Promise<ExecuteResult> {
    return executeBatched(text, paramSets, (statement, params) => this.execute(statement, params), true);
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

  async fetchRows(text: string, params: readonly unknown[]): Promise<Rows> {
    const result = await this.#query(text, params);
    return { columns: result.rowDescription?.columns.map((column) => column.name) ?? [], rows: result.rows };
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
    arrays?: boolean,
  ): AsyncIterableIterator<Row[]> {
    let bound: [string, EncodedParam[]];
    try {
      bound = await this.#bind(text, params);
    } catch (error) {
      throw this.#translate(error, text);
    }
    const run = async (statement: string, values: readonly unknown[] = []) => {
      const result = await this.#send(statement, values as EncodedParam[]);
      return arrays ? result.rows as unknown as Row[] : rowsOf(result);
    };
    yield* cursorStream(
      run,
      () =>
        arrays
          ? this.fetchRows(text, params).then((result) => result.rows as unknown as Row[])
          : this.fetchAll(text, params),
      (error) => this.#translate(error, text),
      bound[0],
      bound[1],
      batchSize,
      placement,
    );
  }

  async ping(): Promise<void> {
    await this.execute("SELECT 1", []);
  }

  async close(): Promise<void> {
    this.#lost = true;
    await this.#client.end().catch(() => {});
  }
}

/** The `@db/postgres` driver. */
export const denoPostgres: Driver = {
  name: "deno-postgres",
  dialect: "postgres",
  interleavedStreams: false,
  async connect(url, signal) {
    const { Client } = await importJsr<PostgresModule>(
      "deno-postgres",
      specifier,
      // The exact JSR specifier, by design: an optional Deno-only driver, not a dependency of the package.
      // deno-lint-ignore no-import-prefix
      () => import("jsr:@db/postgres@^0.19"),
    );
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
      throw connectFailed("postgres", url, error, error, ownCode(error), "deno-postgres");
    }
    try {
      await connectWithin(client, connectTimeoutSeconds(url), signal);
    } catch (error) {
      await client.end().catch(() => {});
      throw connectFailed(
        "postgres",
        url,
        error,
        errors.cause(error),
        serverFields(error)?.code ?? ownCode(error),
        "deno-postgres",
      );
    }
    try {
      for (const statement of pooledSessionSetup(url)) await client.queryArray({ text: statement });
    } catch (error) {
      await client.end().catch(() => {});
      throw connectFailed("postgres", url, error, errors.cause(error), serverFields(error)?.code, "deno-postgres");
    }
    // Until a first result has been seen, each new connection fetches one, so none reads text unrepaired.
    if (bomsUnrepaired()) {
      try {
        repairBoms(await client.queryArray({ text: "SELECT 1" }));
      } catch (error) {
        await client.end().catch(() => {});
        throw connectFailed("postgres", url, error, error, ownCode(error), "deno-postgres");
      }
    }
    return new DenoPostgresConnection(client);
  },
};
