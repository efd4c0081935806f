/**
 * The `d1` driver: Cloudflare D1 through its Worker binding (`env.DB`). D1
 * speaks SQLite, so the database's dialect is `sqlite`; its URL is `d1:`
 * (optionally naming the binding for messages, `d1:DB`), and the binding
 * comes with the driver object, which a Worker passes as the `driver` option.
 * The binding belongs to the isolate, not to a request, so a module-scope
 * named instance serves every request:
 *
 * @example A Worker serving each request in a context and its D1 session
 * ```ts
 * import { env } from "cloudflare:workers";
 * import { Database, sql } from "@roost/db";
 * import { continueD1Session, d1, d1Bookmark } from "@roost/db/drivers/d1";
 *
 * const db = new Database("d1:DB", { name: "main", driver: d1(env.DB) });
 *
 * export default {
 *   fetch: (request: Request) =>
 *     db.context(async (scope) => {
 *       await continueD1Session(scope, request.headers.get("x-d1-bookmark"));
 *       const notes = await scope.fetchAll(sql`select id, text from notes`);
 *       const response = Response.json(notes);
 *       response.headers.set("x-d1-bookmark", (await d1Bookmark(scope)) ?? "");
 *       return response;
 *     }),
 * };
 * ```
 *
 * What D1 cannot do, and what Roost does instead (docs/drivers.md, "d1"):
 * - **No interactive transactions.** `db.transaction()`, `db.begin()` and
 *   savepoints, and any BEGIN, COMMIT, ROLLBACK or SAVEPOINT sent as SQL, are
 *   a `TransactionError` with code `ROOST_D1_NO_TRANSACTIONS`, before D1 sees
 *   anything. `executeMany` runs as one D1 batch, which D1 runs atomically.
 * - **No cursors.** `iterate` reads the whole result, then hands it out in
 *   batches.
 * - **Numbers are doubles.** An integer beyond ±2^53 cannot be bound (a
 *   bigint there is refused with `ROOST_INVALID_PARAMETER`) nor read exactly.
 * - **Sessions, not replicas.** Each connection is one D1 session
 *   (`withSession`), so a context's reads see its writes, and a request can
 *   continue a client's session from its bookmark.
 *
 * @module
 */
import type { Driver, DriverConnection, ExecuteResult, Row, Rows, StreamPlacement } from "../../driver.ts";
import { ConfigError, TransactionError } from "../../errors.ts";
import type { Connection } from "../../connection.ts";
import { driverConnectionOf } from "../../internal.ts";
import type { DatabaseUrl } from "../../url.ts";
import { type BindRules, bindValue, invalidParameter } from "../shared/values.ts";
import { d1Error } from "./d1_errors.ts";
import { rowOf } from "./values.ts";

/** A prepared D1 statement, as the binding's `prepare` returns it (the members Roost uses). */
export interface D1PreparedStatement {
  /** Binds the statement's `?` parameters. */
  bind(...values: unknown[]): D1PreparedStatement;
  /** Runs it; `meta` holds `changes` and `last_row_id`. */
  run(): Promise<{ meta: { changes?: number; last_row_id?: number } }>;
  /** Runs it and returns its rows as arrays, the column names first with `columnNames`. */
  raw(options: { columnNames: true }): Promise<unknown[][]>;
}

/** What runs statements on D1: the binding itself, or one of its sessions. */
export interface D1Queryable {
  /** Prepares a statement. */
  prepare(text: string): D1PreparedStatement;
  /** Runs statements in one round trip, atomically. */
  batch(statements: D1PreparedStatement[]): Promise<{ meta: { changes?: number; last_row_id?: number } }[]>;
}

/** A D1 session (`binding.withSession()`): sequentially consistent reads and writes. */
export interface D1DatabaseSession extends D1Queryable {
  /** The latest bookmark the session has seen; null before its first query. */
  getBookmark(): string | null;
}

/** A D1 binding (`env.DB`), typed structurally: Roost needs no Workers type package. */
export interface D1Binding extends D1Queryable {
  /** Starts a session at a constraint or after a bookmark (D1's Sessions API, for read replication). */
  withSession?(constraintOrBookmark?: string | null): D1DatabaseSession;
}

/** Where a D1 session's first query may go: D1's session constraints, or `"off"` (no session: always the primary). */
export type D1SessionStart = "first-primary" | "first-unconstrained" | "off";

/** The options of {@linkcode d1}. */
export interface D1Options {
  /**
   * Where each connection's D1 session starts when no bookmark continues
   * one: `"first-primary"` (the default: the first query sees everything
   * committed before it, as without replication, and later ones may be
   * served by replicas that caught up), `"first-unconstrained"` (any
   * replica may serve the first query: faster, perhaps older data), or
   * `"off"` (no Sessions API: every query goes to the primary and there
   * are no bookmarks).
   */
  session?: D1SessionStart;
}

const starts: readonly D1SessionStart[] = ["first-primary", "first-unconstrained", "off"];

/** Statements D1 refuses, since it has no interactive transactions. */
const transactionControl = /^\s*(begin|commit|end|rollback|savepoint|release)\b/i;
const insertPattern = /^\s*(insert|replace)\b/i;

/** The error of a transaction, savepoint or transaction statement on D1. */
function noTransactions(): TransactionError {
  return new TransactionError(
    "D1 has no interactive transactions, so Roost refuses db.transaction(), begin() and savepoints (and BEGIN, " +
      "COMMIT, ROLLBACK or SAVEPOINT sent as SQL) before D1 sees them: run the statements one by one, or as one " +
      "atomic batch with executeMany",
    { code: "ROOST_D1_NO_TRANSACTIONS" },
  );
}

const d1Rules: BindRules = {
  database: "D1",
  boolean: (value) => value ? 1 : 0,
  bigint: (value) => Number(value),
  date: (value) => value.toISOString(),
};

/** Parameters as D1 binds them: SQLite's rules, with bigints as exact numbers only and no infinities. */
function d1Params(params: readonly unknown[]): unknown[] {
  const out = new Array<unknown>(params.length);
  for (let i = 0; i < params.length; i++) {
    const value = params[i];
    if (typeof value === "bigint" && !Number.isSafeInteger(Number(value))) {
      throw invalidParameter(
        i,
        "is a bigint beyond ±2^53, which D1 cannot bind exactly (its numbers are doubles): bind it as text",
      );
    }
    if (value === Infinity || value === -Infinity) {
      throw invalidParameter(i, "is infinite, which D1 cannot bind (it sends values as JSON, which would store NULL)");
    }
    out[i] = bindValue(value, i, d1Rules);
  }
  return out;
}

/** A cell as Roost returns it: blobs (D1 sends them as arrays of bytes) as Uint8Array. */
function cell(value: unknown): unknown {
  if (Array.isArray(value)) return Uint8Array.from(value as number[]);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  return value;
}

/** Rows from `raw({ columnNames: true })`: the names first, then each row's cells. */
function rowsOf(raw: unknown[][]): Row[] {
  const [names = [], ...values] = raw;
  const rows = new Array<Row>(values.length);
  for (let i = 0; i < values.length; i++) rows[i] = rowOf(names as string[], values[i].map(cell));
  return rows;
}

/**
 * One D1 "connection": a D1 session, started at its first statement (from
 * a bookmark given before, or the driver's constraint). No socket: opening
 * and closing cost nothing.
 */
class D1Connection implements DriverConnection {
  readonly #binding: D1Binding;
  readonly #start: D1SessionStart;
  #bookmark: string | null = null;
  #session: D1Queryable | undefined;
  #closed = false;

  /** D1 runs a batch atomically: the core sends `executeMany` without a transaction around it. */
  readonly atomicBatches = true;

  /** A connection over `binding` whose session starts at `start`. */
  constructor(binding: D1Binding, start: D1SessionStart) {
    this.#binding = binding;
    this.#start = start;
  }

  /** The session statements run on, started at the first one. */
  #on(text: string): D1Queryable {
    if (transactionControl.test(text)) throw noTransactions();
    if (this.#session !== undefined) return this.#session;
    if (this.#start === "off" || this.#binding.withSession === undefined) return this.#session = this.#binding;
    return this.#session = this.#binding.withSession(this.#bookmark ?? this.#start);
  }

  /**
   * Starts this connection's session after `bookmark` (a client's, from a
   * previous response) instead of at the driver's constraint. Only before the
   * session's first statement: afterwards a `ConfigError`.
   */
  continueFrom(bookmark: string): void {
    if (this.#start === "off") {
      throw new ConfigError('this d1 driver uses no D1 sessions (session: "off"), so it takes no bookmark');
    }
    if (this.#session !== undefined) {
      throw new ConfigError(
        "this context's D1 session has already run a statement: continue from a bookmark before the first query",
        { code: "ROOST_D1_SESSION_STARTED" },
      );
    }
    this.#bookmark = bookmark;
  }

  /** The session's latest bookmark (or the one it will continue from); null when there is none yet. */
  bookmark(): string | null {
    const session = this.#session as Partial<D1DatabaseSession> | undefined;
    return session?.getBookmark?.() ?? this.#bookmark;
  }

  async execute(text: string, params: readonly unknown[]): Promise<ExecuteResult> {
    try {
      const { meta } = await this.#on(text).prepare(text).bind(...d1Params(params)).run();
      return this.#counts(text, meta.changes ?? 0, meta.last_row_id);
    } catch (error) {
      throw d1Error(error, text);
    }
  }

  #counts(text: string, rowCount: number, lastRowId: number | undefined): ExecuteResult {
    return insertPattern.test(text) && rowCount > 0 && lastRowId !== undefined
      ? { rowCount, lastInsertId: lastRowId }
      : { rowCount };
  }

  /** Runs every parameter set as one D1 batch: atomic, one round trip. */
  async executeMany(text: string, paramSets: readonly (readonly unknown[])[]): Promise<ExecuteResult> {
    if (paramSets.length === 0) return { rowCount: 0 };
    try {
      const on = this.#on(text);
      const statement = on.prepare(text);
      const results = await on.batch(paramSets.map((params) => statement.bind(...d1Params(params))));
      let rowCount = 0;
      for (const { meta } of results) rowCount += meta.changes ?? 0;
      return this.#counts(text, rowCount, results.at(-1)?.meta.last_row_id);
    } catch (error) {
      throw d1Error(error, text);
    }
  }

  async fetchAll(text: string, params: readonly unknown[]): Promise<Row[]> {
    try {
      return rowsOf(await this.#on(text).prepare(text).bind(...d1Params(params)).raw({ columnNames: true }));
    } catch (error) {
      throw d1Error(error, text);
    }
  }

  async fetchOne(text: string, params: readonly unknown[]): Promise<Row | undefined> {
    return (await this.fetchAll(text, params))[0];
  }

  async fetchRows(text: string, params: readonly unknown[]): Promise<Rows> {
    let raw: unknown[][];
    try {
      raw = await this.#on(text).prepare(text).bind(...d1Params(params)).raw({ columnNames: true });
    } catch (error) {
      throw d1Error(error, text);
    }
    const [columns = [], ...rows] = raw;
    for (let i = 0; i < rows.length; i++) rows[i] = rows[i].map(cell);
    return { columns: columns as string[], rows };
  }

  /** D1 has no cursors: the whole result is read, then handed out `batchSize` rows at a time. */
  async *stream(
    text: string,
    params: readonly unknown[],
    batchSize: number,
    _placement: StreamPlacement,
    arrays?: boolean,
  ): AsyncIterableIterator<Row[]> {
    const rows = arrays
      ? (await this.fetchRows(text, params)).rows as unknown as Row[]
      : await this.fetchAll(text, params);
    for (let i = 0; i < rows.length; i += batchSize) yield rows.slice(i, i + batchSize);
  }

  /** True once closed (the pool never reuses it then). */
  get broken(): boolean {
    return this.#closed;
  }

  /** Forgets the session; the binding stays the Worker's. */
  close(): Promise<void> {
    this.#closed = true;
    this.#session = undefined;
    return Promise.resolve();
  }
}

/**
 * The D1 driver for a binding: pass it as the `driver` option of a `d1:`
 * URL, as in `new Database("d1:DB", { driver: d1(env.DB) })`. Every
 * connection the pool opens is one D1 session over `binding`, started at
 * `options.session` (default `"first-primary"`).
 */
export function d1(binding: D1Binding, options: D1Options = {}): Driver {
  if (typeof binding !== "object" || binding === null || typeof binding.prepare !== "function") {
    throw new ConfigError("d1() takes a D1 binding (env.DB, as configured in wrangler.toml's [[d1_databases]])");
  }
  const start = options.session ?? "first-primary";
  if (!starts.includes(start)) throw new ConfigError(`d1() option session must be one of ${starts.join(", ")}`);
  return {
    name: "d1",
    dialect: "sqlite",
    // The rows are read whole before a stream starts, so other statements may run between its batches.
    interleavedStreams: true,
    // A session takes statements while others run, so single statements share a context's one connection.
    pipelines: true,
    noTransactions,
    connect(_url: DatabaseUrl): Promise<DriverConnection> {
      return Promise.resolve(new D1Connection(binding, start));
    },
  };
}

/** Anything with a `connection(fn)` scope: a `db.context()` handle, a `db.replica()` one, or the `Database`. */
export interface HoldsConnection {
  /** Holds one connection for `fn`. */
  connection<T>(fn: (conn: Connection) => Promise<T> | T): Promise<T>;
}

/**
 * The D1 connection of a scope (a context's one connection on Workers),
 * held for `fn`: not from inside a `connection()` scope of the same context,
 * which holds it already.
 */
async function sessionOf<T>(scope: HoldsConnection, fn: (connection: D1Connection) => T): Promise<T> {
  return await scope.connection((conn) => {
    const connection = driverConnectionOf(conn);
    if (!(connection instanceof D1Connection)) throw new ConfigError("this database does not run on the d1 driver");
    return fn(connection);
  });
}

/**
 * Continues a D1 session from a bookmark a client carried (say, in a
 * header), so this request's reads see at least what the client saw or
 * wrote before. Call it first in the request's `db.context()`, before any
 * query: the context's session starts there; later it is a `ConfigError`
 * (`ROOST_D1_SESSION_STARTED`). A null or empty bookmark changes nothing.
 */
export async function continueD1Session(scope: HoldsConnection, bookmark: string | null | undefined): Promise<void> {
  if (bookmark === null || bookmark === undefined || bookmark === "") return;
  await sessionOf(scope, (connection) => connection.continueFrom(bookmark));
}

/**
 * The bookmark of the scope's D1 session after its latest query: hand it to
 * the client, which sends it back with its next request. Null before the
 * session ran anything, or without sessions.
 */
export async function d1Bookmark(scope: HoldsConnection): Promise<string | null> {
  return await sessionOf(scope, (connection) => connection.bookmark());
}
