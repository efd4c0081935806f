/**
 * Transactions and savepoints. A transaction started inside another becomes
 * a savepoint whose failure rolls back only itself.
 *
 * @module
 */
import { type ConnectionOptions, savepointName, type TransactionOptions } from "./dialect.ts";
import type { ExecuteResult, Row } from "./driver.ts";
import { CommitUnknownError, ConfigError, ConnectionError, TransactionError } from "./errors.ts";
import { Queryable, type QueryKind } from "./queryable.ts";
import type { Session } from "./session.ts";
import type { CompiledQuery } from "./sql.ts";

type State = "active" | "committed" | "rolled back";

const isolationLevels = new Set(["read uncommitted", "read committed", "repeatable read", "serializable"]);

const transactionOptionNames = ["isolation", "readOnly", "fresh"];
const connectionOptionNames = ["fresh"];
const booleanOptionNames = ["readOnly", "fresh"] as const;

/** Validates transaction options (`kind` "connection": `db.connection()`'s); unknown keys and bad values are a {@linkcode ConfigError}. */
export function checkTransactionOptions(options: TransactionOptions, kind = "transaction"): TransactionOptions {
  const known = kind === "transaction" ? transactionOptionNames : connectionOptionNames;
  if (typeof options !== "object" || options === null) throw new ConfigError(`${kind} options must be an object`);
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) throw new ConfigError(`unknown ${kind} option "${key}" (known: ${known.join(", ")})`);
  }
  if (options.isolation !== undefined && !isolationLevels.has(options.isolation)) {
    throw new ConfigError(`isolation must be one of ${[...isolationLevels].join(", ")}`);
  }
  for (const flag of booleanOptionNames) {
    if (options[flag] !== undefined && typeof options[flag] !== "boolean") {
      throw new ConfigError(`${flag} must be a boolean`);
    }
  }
  return options;
}

/** Checks `db.connection()`'s options; true when a connection of its own is asked for. */
export function checkConnectionOptions(options: ConnectionOptions): boolean {
  return checkTransactionOptions(options, "connection").fresh === true;
}

/**
 * An open transaction (or savepoint) and the handle to run queries in it.
 * Get one from `db.transaction(fn)` (committed when `fn` returns, rolled back
 * when it throws) or from `db.begin()`, which you end yourself; with
 * `await using`, a transaction disposed uncommitted rolls back.
 *
 * @example
 * ```ts
 * import { Database, sql } from "@roost/db";
 * const db = new Database("sqlite::memory:");
 * await db.execute(sql`create table t (n integer)`);
 * {
 *   await using tx = await db.begin();
 *   await tx.execute(sql`insert into t values (1)`);
 *   await tx.commit(); // without this line, leaving the block rolls back
 * }
 * ```
 */
export class Transaction extends Queryable implements AsyncDisposable {
  readonly #session: Session;
  readonly #parent: Transaction | undefined;
  readonly #options: TransactionOptions;
  readonly #ownsSession: boolean;
  readonly #savepoint: string | undefined;
  #state: State = "active";
  #child: Transaction | undefined;

  private constructor(session: Session, parent: Transaction | undefined, options: TransactionOptions, owns: boolean) {
    super(session.dialect.name);
    this.#session = session;
    this.#parent = parent;
    this.#options = options;
    this.#ownsSession = owns;
    this.#savepoint = parent ? savepointName(parent.#depth + 1) : undefined;
  }

  get #depth(): number {
    return this.#parent ? this.#parent.#depth + 1 : 0;
  }

  /**
   * Opens a transaction on a session: a savepoint of `parent` when given.
   * `ownsSession` hands the connection back to the pool when it ends.
   */
  static async open(
    session: Session,
    parent: Transaction | undefined,
    options: TransactionOptions,
    ownsSession: boolean,
  ): Promise<Transaction> {
    try {
      session.check();
      session.assertWritable(parent ? "a savepoint" : "a transaction");
      checkTransactionOptions(options);
      if (options.fresh === true && !ownsSession) {
        throw new ConfigError(
          "fresh is for db.transaction() and db.begin(): a handle's transactions use its connection",
        );
      }
      return parent
        ? await Transaction.#openSavepoint(session, parent, options)
        : await Transaction.#begin(session, options, ownsSession);
    } catch (error) {
      if (ownsSession && !session.current) session.end();
      throw error;
    }
  }

  static async #openSavepoint(
    session: Session,
    parent: Transaction,
    options: TransactionOptions,
  ): Promise<Transaction> {
    parent.#assertActive("open a savepoint in");
    if (options.isolation !== undefined || options.readOnly !== undefined) {
      throw new TransactionError("isolation and readOnly apply to the outermost transaction, not to a savepoint");
    }
    if (parent.#child) {
      throw new TransactionError(
        "this transaction already has an open savepoint: nested transactions of one transaction run one at a time",
      );
    }
    const tx = new Transaction(session, parent, parent.#options, false);
    parent.#child = tx;
    try {
      await session.control(`SAVEPOINT ${tx.#savepoint}`);
    } catch (error) {
      parent.#child = undefined;
      throw error;
    }
    session.current = tx;
    return tx;
  }

  static async #begin(session: Session, options: TransactionOptions, ownsSession: boolean): Promise<Transaction> {
    if (session.current) throw new TransactionError("this connection already has an open transaction");
    const tx = new Transaction(session, undefined, options, ownsSession);
    session.current = tx;
    try {
      for (const text of session.dialect.begin(options)) await session.control(text);
    } catch (error) {
      session.current = undefined;
      throw error;
    }
    return tx;
  }

  /** Rolls back whatever transaction is still open on a session (its outermost level). */
  static async rollbackOpen(session: Session): Promise<void> {
    let outermost = session.current;
    if (outermost === undefined) return;
    while (outermost.#parent) outermost = outermost.#parent;
    if (outermost.active) await outermost.rollback().catch(() => session.broken = true);
  }

  /** True until the transaction is committed or rolled back. */
  get active(): boolean {
    return this.#state === "active";
  }

  /** True for a savepoint (a transaction nested in another). */
  get nested(): boolean {
    return this.#parent !== undefined;
  }

  #assertActive(action: string): void {
    if (this.#state !== "active") {
      throw new TransactionError(
        `cannot ${action} a ${this.nested ? "savepoint" : "transaction"} already ${this.#state}`,
      );
    }
    this.#session.check();
  }

  /** Commits (a savepoint: releases it into its parent). */
  async commit(): Promise<void> {
    this.#assertActive("commit");
    if (this.#child) throw new TransactionError("a savepoint inside this transaction is still open: end it first");
    const aborted = this.#session.aborted;
    if (aborted?.at === this) {
      // The server would answer COMMIT (or RELEASE) with a rollback, or an error: say so plainly instead.
      await this.rollback();
      const level = this.nested ? "savepoint" : "transaction";
      throw new TransactionError(
        `the ${level} was rolled back, not committed: a statement in it failed, and ${this.dialect} aborts a ` +
          `${level} at its first error (to carry on after an error, run the statement in a nested transaction)`,
        { cause: aborted.error },
      );
    }
    if (!this.nested && (this.#session.broken || this.#session.item.connection.broken === true)) {
      // Lost before COMMIT went out: the server rolls the transaction back, so the outcome is known.
      this.#state = "rolled back";
      await this.#finish();
      throw new ConnectionError("the connection was lost before COMMIT: the transaction was not committed");
    }
    this.#state = "committed";
    try {
      await this.#session.control(this.#savepoint ? `RELEASE SAVEPOINT ${this.#savepoint}` : "COMMIT");
    } catch (error) {
      // A failed COMMIT (a deferred constraint, say) can leave the transaction open: end it.
      this.#state = "rolled back";
      await this.#undo().catch(() => {});
      await this.#finish();
      // A COMMIT cut off on its way may have committed; a RELEASE commits nothing by itself.
      throw !this.nested && error instanceof ConnectionError ? new CommitUnknownError(error) : error;
    }
    const finishing = this.#finish();
    if (finishing !== undefined) await finishing;
  }

  /** Rolls back (a savepoint: only its own work), including any open savepoint inside it. */
  async rollback(): Promise<void> {
    this.#assertActive("roll back");
    if (this.#child) this.#child.#abandon();
    this.#child = undefined;
    this.#state = "rolled back";
    try {
      await this.#undo();
    } finally {
      await this.#finish();
    }
  }

  async #undo(): Promise<void> {
    try {
      if (this.#savepoint) {
        await this.#session.control(`ROLLBACK TO SAVEPOINT ${this.#savepoint}`);
        // Rolled back to before the failure: the enclosing level works again.
        this.#session.aborted = undefined;
        await this.#session.control(`RELEASE SAVEPOINT ${this.#savepoint}`);
      } else {
        await this.#session.control("ROLLBACK");
        this.#session.aborted = undefined;
      }
    } catch (error) {
      // The connection's transaction state is unknown now: never reuse it.
      this.#session.broken = true;
      throw error;
    }
  }

  #abandon(): void {
    this.#state = "rolled back";
    if (this.#child) this.#child.#abandon();
    this.#child = undefined;
  }

  #finish(): Promise<void> | undefined {
    if (this.#parent) {
      this.#parent.#child = undefined;
      this.#session.current = this.#parent;
      return;
    }
    this.#session.current = undefined;
    const after = this.#session.dialect.afterEnd(this.#options);
    // Nothing to run after most transactions: then no async frame, and the connection goes back at once.
    if (after.length > 0) return this.#finishWith(after);
    if (this.#ownsSession) this.#session.end();
  }

  /** `#finish` when statements run after the transaction (read-only SQLite's `PRAGMA query_only = OFF`). */
  async #finishWith(after: readonly string[]): Promise<void> {
    for (const text of after) {
      await this.#session.control(text).catch(() => this.#session.broken = true);
    }
    if (this.#ownsSession) this.#session.end();
  }

  /**
   * Runs `fn` in a savepoint: committed (released) when `fn` returns, rolled
   * back when it throws, leaving this transaction's own work intact.
   */
  async transaction<T>(fn: (tx: Transaction) => Promise<T> | T, options: TransactionOptions = {}): Promise<T> {
    return await runTransaction(this.#session, this, options, fn);
  }

  /** Opens a savepoint and returns its handle; end it with `commit` or `rollback`. */
  async begin(options: TransactionOptions = {}): Promise<Transaction> {
    return await Transaction.open(this.#session, this, options, false);
  }

  /** Rolls back if still active: what `await using` calls when the block ends. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.active) await this.rollback();
  }

  /** Runs one compiled query where this handle runs queries. */
  protected perform(kind: QueryKind, query: CompiledQuery): Promise<unknown> {
    this.#assertActive("query in");
    return this.#session.run(kind, query);
  }

  /** Runs one statement for many parameter sets, atomically. */
  protected performMany(text: string, paramSets: readonly (readonly unknown[])[]): Promise<ExecuteResult> {
    this.#assertActive("query in");
    return this.#session.runMany(text, paramSets);
  }

  /** Streams a compiled query's rows. */
  protected stream(query: CompiledQuery, batchSize: number, arrays?: boolean): AsyncIterableIterator<Row[]> {
    this.#assertActive("query in");
    return this.#session.stream(query, batchSize, arrays);
  }
}

/** Ends a held session: a transaction left open on it is rolled back first, so none leaks into the pool. */
export async function endSession(session: Session): Promise<void> {
  await Transaction.rollbackOpen(session);
  session.end();
}

/**
 * Opens a transaction on a session (a savepoint of `parent`, when given)
 * and runs `fn` in it, inside the instance's scope: commits when it
 * returns, rolls back and rethrows when it throws. `ownsSession` hands the
 * connection back when the transaction ends.
 */
export async function runTransaction<T>(
  session: Session,
  parent: Transaction | undefined,
  options: TransactionOptions,
  fn: (tx: Transaction) => Promise<T> | T,
  ownsSession = false,
): Promise<T> {
  const tx = await Transaction.open(session, parent, options, ownsSession);
  let result: T;
  try {
    result = await session.scope.run(session.state(tx), () => fn(tx));
  } catch (error) {
    // The callback's error is what the caller needs; a failed rollback marks the connection broken.
    if (tx.active) await tx.rollback().catch(() => {});
    throw error;
  }
  if (tx.active) await tx.commit();
  return result;
}

/** Runs `executeMany` atomically: inside the open transaction, or in one of its own. */
export async function executeManyAtomically(
  session: Session,
  text: string,
  paramSets: readonly (readonly unknown[])[],
): Promise<ExecuteResult> {
  if (session.current || session.item.connection.atomicBatches === true) return await session.runMany(text, paramSets);
  session.assertWritable("executeMany");
  return await runTransaction(session, undefined, {}, () => session.runMany(text, paramSets));
}
