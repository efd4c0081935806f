/**
 * What differs between the SQL dialects Roost speaks: placeholders,
 * identifier quoting and the statements that open and close transactions.
 *
 * @module
 */
import { mysqlChangesSession, postgresChangesSession } from "./session_statements.ts";

/** The SQL dialects Roost supports. */
export type DialectName = "postgres" | "mysql" | "sqlite";

/** Transaction isolation levels, as the SQL standard names them. */
export type IsolationLevel =
  | "read uncommitted"
  | "read committed"
  | "repeatable read"
  | "serializable";

/** How an outermost transaction starts. Savepoints inherit both settings. */
export interface TransactionOptions {
  /**
   * The isolation level; the server's default when omitted. SQLite always
   * runs serializable transactions, which satisfies every level.
   */
  isolation?: IsolationLevel;
  /** Reject writes inside the transaction (on SQLite via `PRAGMA query_only`). */
  readOnly?: boolean;
  /**
   * Open the transaction on a connection of its own, even inside a held
   * connection or transaction, where it would otherwise be a savepoint: it
   * sees only what other connections committed, commits or rolls back on
   * its own, and `db.*` calls inside it run on it. For `db.transaction()`
   * and `db.begin()` (and a scope handle's); a connection or transaction
   * handle's own transactions stay on its connection. Ignored with
   * `forceRollback`, where every call shares the one rolled-back connection.
   */
  fresh?: boolean;
}

/** The options of `db.connection()`. */
export interface ConnectionOptions {
  /**
   * Hold a connection of its own, even inside a held connection or
   * transaction, instead of joining it (see `TransactionOptions.fresh`).
   */
  fresh?: boolean;
}

/** The per-dialect rules the compiler and the transaction code follow. */
export interface Dialect {
  /** The dialect's name. */
  readonly name: DialectName;
  /** The placeholder of the `index`-th parameter (1-based). */
  placeholder(index: number): string;
  /** Quotes one identifier, doubling embedded quote characters. */
  quoteIdent(name: string): string;
  /** The statements that open an outermost transaction. */
  begin(options: TransactionOptions): readonly string[];
  /** The statements that restore the session after an outermost transaction ends. */
  afterEnd(options: TransactionOptions): readonly string[];
  /**
   * True when the server aborts a transaction at its first failed statement
   * (Postgres): it then answers COMMIT with a silent rollback.
   */
  readonly errorAbortsTransaction: boolean;
  /** The statement that makes every later statement of a session read-only (replica connections). */
  readonly readOnlySession: string;
  /**
   * The query that tells which kind of server a new connection reached, for
   * `target_session_attrs`: one row, `standby` (a server replaying another's
   * changes) and `read_only` (its sessions refuse writes), each true or false.
   */
  readonly sessionState?: string;
  /**
   * The statements that set a session's statement timeout to `ms`, tried in
   * order until one succeeds (the last one's error stands); empty where the
   * dialect has none.
   */
  statementTimeout(ms: number): readonly string[];
  /**
   * The statements that end the given server sessions (their running and
   * queued statements with them) from another connection, where a server
   * would otherwise run a cut-off connection's statements to their end.
   */
  terminateSessions?(ids: readonly number[]): readonly string[];
  /**
   * True for a statement that changes its session's settings for good (a
   * `SET` outside a transaction's scope): the pooled connection it ran on is
   * closed when given back rather than handed to the next caller with them.
   * Absent where a connection is the database itself (SQLite).
   */
  changesSession?(text: string): boolean;
  /** Compiled text of plain templates, keyed by the template's strings array. */
  readonly textCache: WeakMap<readonly string[], string>;
}

const isolationSql: Record<IsolationLevel, string> = {
  "read uncommitted": "READ UNCOMMITTED",
  "read committed": "READ COMMITTED",
  "repeatable read": "REPEATABLE READ",
  "serializable": "SERIALIZABLE",
};

const doubleQuoted = (name: string): string => `"${name.replaceAll('"', '""')}"`;
const none: readonly string[] = Object.freeze([]);

const postgres: Dialect = {
  name: "postgres",
  placeholder: (index) => `$${index}`,
  quoteIdent: doubleQuoted,
  errorAbortsTransaction: true,
  readOnlySession: "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
  // libpq's tests: a hot standby is in recovery; transaction_read_only is on there and under default_transaction_read_only.
  sessionState: "SELECT pg_is_in_recovery() AS standby, current_setting('transaction_read_only') = 'on' AS read_only",
  statementTimeout: (ms) => [`SET statement_timeout = ${ms}`],
  // A backend notices its client is gone only when it next writes: a cancelled
  // statement would let the ones queued behind it run. Ending the session stops them all.
  terminateSessions: (ids) => [`SELECT pg_terminate_backend(unnest(ARRAY[${ids.join()}]))`],
  changesSession: postgresChangesSession,
  begin({ isolation, readOnly }) {
    let text = "BEGIN";
    if (isolation) text += ` ISOLATION LEVEL ${isolationSql[isolation]}`;
    if (readOnly) text += " READ ONLY";
    return [text];
  },
  afterEnd: () => none,
  textCache: new WeakMap(),
};

const mysql: Dialect = {
  name: "mysql",
  placeholder: () => "?",
  quoteIdent: (name) => `\`${name.replaceAll("`", "``")}\``,
  errorAbortsTransaction: false,
  readOnlySession: "SET SESSION TRANSACTION READ ONLY",
  // A replica is one with read_only on, which is how replicas are set up; the server has no other mark of one.
  sessionState: "SELECT @@global.read_only AS standby, @@global.read_only AS read_only",
  // MariaDB counts seconds, MySQL milliseconds: set whichever this server knows.
  statementTimeout: (
    ms,
  ) => [`SET SESSION max_statement_time = ${ms / 1_000}`, `SET SESSION max_execution_time = ${ms}`],
  // MariaDB notices a client gone only every few seconds, and MySQL may run on to the statement's end.
  terminateSessions: (ids) => ids.map((id) => `KILL ${id}`),
  changesSession: mysqlChangesSession,
  begin({ isolation, readOnly }) {
    const start = readOnly ? "START TRANSACTION READ ONLY" : "START TRANSACTION";
    // SET TRANSACTION applies to the next transaction only, so it must come first.
    return isolation ? [`SET TRANSACTION ISOLATION LEVEL ${isolationSql[isolation]}`, start] : [start];
  },
  afterEnd: () => none,
  textCache: new WeakMap(),
};

const sqlite: Dialect = {
  name: "sqlite",
  placeholder: () => "?",
  quoteIdent: doubleQuoted,
  errorAbortsTransaction: false,
  readOnlySession: "PRAGMA query_only = ON",
  statementTimeout: () => none,
  // IMMEDIATE takes the write lock up front: a deferred transaction that reads
  // and then writes fails with SQLITE_BUSY at once when another connection
  // writes, without waiting for the busy timeout.
  begin: ({ readOnly }) => readOnly ? ["BEGIN DEFERRED", "PRAGMA query_only = ON"] : ["BEGIN IMMEDIATE"],
  afterEnd: ({ readOnly }) => readOnly ? ["PRAGMA query_only = OFF"] : none,
  textCache: new WeakMap(),
};

const dialects: Record<DialectName, Dialect> = { postgres, mysql, sqlite };

/** Returns the rules of a dialect. */
export function dialectOf(name: DialectName): Dialect {
  return dialects[name];
}

/** The savepoint name used at a nesting depth (1 = first savepoint). */
export function savepointName(depth: number): string {
  return `roost_sp_${depth}`;
}
