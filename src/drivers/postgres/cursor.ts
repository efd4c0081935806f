/**
 * Streaming through a cursor the Postgres server keeps (DECLARE/FETCH): each
 * batch is an ordinary query, so the connection can run other statements
 * between batches and memory stays flat whatever the result's size.
 *
 * @module
 */
import type { Row, StreamPlacement } from "../../driver.ts";
import { inBatches } from "../shared/batch.ts";

/** Runs one statement on the connection and returns its rows. */
export type RunStatement = (text: string, params?: readonly unknown[]) => Promise<Row[]>;

let cursorCount = 0;

/**
 * What {@linkcode cursorBatches} throws in `own-transaction` mode, with the
 * server's error as `cause`, when the server refuses to make the query a cursor (it is not a SELECT or
 * VALUES: 42601, or has a data-modifying WITH: 0A000). Nothing of the query
 * ran, so the caller may run it another way.
 */
export class NotACursor extends Error {
  /** Wraps the server's refusal. */
  constructor(cause: unknown) {
    super("the query cannot be a cursor", { cause });
    this.name = "NotACursor";
  }
}

/**
 * True for the server's refusals of a DECLARE for what its query is
 * (postgres.js's `code`, Bun.SQL's `errno`, deno-postgres's `fields.code`).
 */
function refusedAsCursor(error: unknown): boolean {
  const { code, errno, fields } = (error ?? {}) as { code?: unknown; errno?: unknown; fields?: { code?: unknown } };
  return [code, errno, fields?.code].some((value) => value === "42601" || value === "0A000");
}

/**
 * Yields a query's rows in batches from a server-side cursor.
 * `hold` declares it `WITH HOLD` (needed outside a transaction; Postgres then
 * computes the whole result before the first row). `transaction` wraps the
 * cursor in its own BEGIN/COMMIT instead, which streams without `WITH HOLD`;
 * use it on a connection nothing else touches until the stream ends.
 */
export async function* cursorBatches(
  run: RunStatement,
  text: string,
  params: readonly unknown[],
  batchSize: number,
  mode: "hold" | "in-transaction" | "own-transaction",
): AsyncIterableIterator<Row[]> {
  const name = `roost_cursor_${++cursorCount}`;
  if (mode === "own-transaction") await run("BEGIN");
  let ok = false;
  try {
    const declare = `DECLARE ${name} NO SCROLL CURSOR${mode === "hold" ? " WITH HOLD" : ""} FOR ${text}`;
    await run(declare, params).catch((error) => {
      // Only a cursor of its own transaction is refused harmlessly: in the caller's, the refusal aborted it.
      throw mode === "own-transaction" && refusedAsCursor(error) ? new NotACursor(error) : error;
    });
    try {
      for (;;) {
        const batch = await run(`FETCH ${batchSize} FROM ${name}`);
        if (batch.length > 0) yield batch;
        if (batch.length < batchSize) break;
      }
    } finally {
      if (mode !== "own-transaction") await run(`CLOSE ${name}`).catch(() => {});
    }
    ok = true;
  } finally {
    // Ending the transaction closes the cursor; a failed one must roll back.
    if (mode === "own-transaction") await run(ok ? "COMMIT" : "ROLLBACK").catch(() => {});
  }
}

/**
 * The cursor for a stream's placement: in a transaction of its own on a
 * connection of its own (rows stream without Postgres materialising the
 * result first), `WITH HOLD` on a scope's connection, plain inside a
 * transaction.
 */
export function cursorMode(placement: StreamPlacement): "hold" | "in-transaction" | "own-transaction" {
  return placement === "own" ? "own-transaction" : placement === "shared" ? "hold" : "in-transaction";
}

/**
 * A stream of a driver without a cursor API of its own: every batch is a
 * FETCH from a cursor the server keeps (see `cursorMode`). On a connection
 * of its own, a statement that cannot be a cursor (a write with RETURNING)
 * is read whole by `readWhole` instead. Errors go through `translate`.
 */
export async function* cursorStream(
  run: RunStatement,
  readWhole: () => Promise<Row[]>,
  translate: (error: unknown) => Error,
  text: string,
  params: readonly unknown[],
  batchSize: number,
  placement: StreamPlacement,
): AsyncIterableIterator<Row[]> {
  try {
    yield* cursorBatches(run, text, params, batchSize, cursorMode(placement));
    return;
  } catch (error) {
    if (!(error instanceof NotACursor)) throw translate(error);
  }
  yield* inBatches(readWhole(), batchSize);
}
