/**
 * The typed errors Roost throws. Every error extends {@linkcode RoostError},
 * carries the underlying driver error as `cause`, and never contains a password
 * or (unless a debug option asks for them) query parameters.
 *
 * @module
 */

/** Options shared by every Roost error. */
export interface RoostErrorOptions {
  /** The error that caused this one, usually the driver's. */
  cause?: unknown;
  /** A machine-readable code: SQLSTATE, driver code or a `ROOST_*` code. */
  code?: string;
}

/** Base class of every error Roost throws; catch it to catch them all. */
export class RoostError extends Error {
  /** A machine-readable code: SQLSTATE, driver code or a `ROOST_*` code. */
  readonly code?: string;

  /** Creates an error with a message and optional cause and code. */
  constructor(message: string, options: RoostErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    if (options.code !== undefined) this.code = options.code;
  }
}

/**
 * Invalid configuration: a malformed URL, an unknown or mistyped option.
 *
 * @example
 * ```ts
 * import { ConfigError, Database } from "@roost/db";
 * try {
 *   new Database("sqlite::memory:?colour=blue");
 * } catch (error) {
 *   console.log(error instanceof ConfigError); // true
 * }
 * ```
 */
export class ConfigError extends RoostError {}

/** A connection could not be opened, or was lost while in use. */
export class ConnectionError extends RoostError {}

/**
 * The connection was lost after COMMIT was sent and before its answer came:
 * the server may have committed the transaction or rolled it back, and
 * nothing on this side can tell which. It is a {@linkcode ConnectionError}
 * (code `ROOST_COMMIT_UNKNOWN`, the lost connection's error as `cause`), so
 * code that catches those still catches it. Before retrying, find out whether
 * the work took effect: look the rows up, or make the work idempotent (a
 * unique key the retry would collide with). A connection known lost before
 * COMMIT was due is a plain `ConnectionError`: COMMIT is not sent, and the
 * transaction was not committed.
 *
 * @example
 * ```ts
 * import { CommitUnknownError, Database, sql } from "@roost/db";
 * const db = new Database("sqlite::memory:");
 * await db.execute(sql`create table payments (key text primary key, cents integer)`);
 * const pay = () =>
 *   db.transaction(async (tx) => {
 *     await tx.execute(sql`insert into payments values (${"order-17"}, ${500})`);
 *   });
 * try {
 *   await pay();
 * } catch (error) {
 *   if (!(error instanceof CommitUnknownError)) throw error;
 *   // Retry only if the first attempt did not commit.
 *   if (await db.fetchOne(sql`select 1 from payments where key = ${"order-17"}`) === undefined) await pay();
 * }
 * ```
 */
export class CommitUnknownError extends ConnectionError {
  /** Wraps the error the COMMIT failed with. */
  constructor(lost: unknown) {
    super(
      `the connection was lost during COMMIT, so whether the transaction committed is unknown: check whether its ` +
        `work took effect before retrying (${messageOf(lost)})`,
      { cause: lost, code: "ROOST_COMMIT_UNKNOWN" },
    );
  }
}

/** An error's message, or the thrown value as text: for messages that quote a cause. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The options of a {@linkcode QueryError}. */
export interface QueryErrorOptions extends RoostErrorOptions {
  /** The SQL text that failed (never its parameters). */
  sql?: string;
}

/** The codes of a statement the server cancelled: Postgres, MariaDB, MySQL. */
const canceledCodes = ["57014", "ER_STATEMENT_TIMEOUT", "ER_QUERY_TIMEOUT", "ER_QUERY_INTERRUPTED"];

/**
 * The database rejected a query. `code` holds the SQLSTATE on Postgres
 * (`23505`), the server's error name on MySQL and MariaDB (`ER_DUP_ENTRY`;
 * the SQLSTATE where a driver knows no name), and the result code name on
 * SQLite (`SQLITE_CONSTRAINT_UNIQUE`); invalid input that Roost rejects
 * before the database sees it has a `ROOST_*` code.
 */
export class QueryError extends RoostError {
  /** The SQL text that failed; parameters are never included. */
  readonly sql?: string;
  /** The query's parameters, only with the `debugParameters` option. */
  parameters?: readonly unknown[];

  /** Creates a query error. */
  constructor(message: string, options: QueryErrorOptions = {}) {
    super(message, options);
    if (options.sql !== undefined) this.sql = options.sql;
  }
}

/**
 * The server cancelled the statement: it ran longer than the
 * `statementTimeout` option (or the server's own limit) allows, or an
 * administrator cancelled it. The connection stays usable.
 */
export class QueryCanceledError extends QueryError {}

/** A {@linkcode QueryError}, or a {@linkcode QueryCanceledError} when the code says the server cancelled it. */
export function queryError(message: string, options: QueryErrorOptions): QueryError {
  return canceledCodes.includes(options.code!)
    ? new QueryCanceledError(message, options)
    : new QueryError(message, options);
}

/** No connection became free within the pool's `acquireTimeout`. */
export class PoolTimeoutError extends RoostError {}

/** A write was attempted where only reads are allowed (a replica scope). */
export class ReadOnlyError extends RoostError {}

/**
 * A transaction was misused (used after it ended, ended out of order) or
 * could not commit: on Postgres, a transaction in which a statement failed is
 * rolled back, and its commit throws this error with the failure as `cause`.
 */
export class TransactionError extends RoostError {}

/** A query that had to return a row returned none. */
export class NoResultError extends RoostError {}

/** A query that had to return one row returned several. */
export class TooManyResultsError extends RoostError {}

/** A named instance is missing, or a name is already taken. */
export class RegistryError extends RoostError {}

/** The database (or the scope, or the pool) has been closed. */
export class ClosedError extends RoostError {}

/** Replaces each quoted (and each long bare) occurrence of a parameter's value in `text` by `…`. */
function redact(text: string, values: readonly string[]): string {
  for (const value of values) {
    text = text.replaceAll(`"${value}"`, '"…"').replaceAll(`'${value}'`, "'…'");
    if (value.length >= 6) text = text.replaceAll(value, "…");
  }
  return text;
}

/**
 * A failed query's error as its caller sees it. With `debug` (the
 * `debugParameters` option) a `QueryError` gets the parameters; without it,
 * any parameter value the server quoted in the message is replaced by `…`,
 * in the error and the causes it carries.
 */
export function withParameters(error: unknown, params: readonly unknown[], debug: boolean): unknown {
  if (!(error instanceof QueryError) || params.length === 0) return error;
  if (debug) {
    error.parameters = params;
    return error;
  }
  const values: string[] = [];
  for (const value of params) {
    if (typeof value === "string" ? value !== "" : typeof value === "number" || typeof value === "bigint") {
      values.push(String(value));
    }
  }
  for (let item: unknown = error, depth = 0; item instanceof Error && depth < 4; item = item.cause, depth++) {
    item.message = redact(item.message, values);
    if (typeof item.stack === "string") item.stack = redact(item.stack, values);
  }
  return error;
}
