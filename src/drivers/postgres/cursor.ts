/**
 * Streaming through a cursor the Postgres server keeps (DECLARE/FETCH): each
 * batch is an ordinary query, so the connection can run other statements
 * between batches and memory stays flat whatever the result's size.
 *
 * @module
 */
import type { Row, StreamPlacement } from "../../driver.ts";
import { inBatches } from "../shared/batch.ts";

/**
 * The most rows one fetch asks for: the protocol's row count is a 32-bit
 * signed integer (a larger `batchSize` does not fit its message, and would
 * be written `1e+21` in a `FETCH`), so a larger `batchSize` reads as this.
 */
export const mostRowsPerFetch = 2_147_483_647;

/** Runs one statement on the connection and returns its rows. */
export type RunStatement = (text: string, params?: readonly unknown[]) => Promise<Row[]>;

/**
 * Runs one statement on the connection, handing each row to `onRow` as it is
 * read, and settles when the statement ends. A driver gives it when its
 * finished queries stay reachable for a while (postgres.js: until V8's next
 * full collection): the rows of a batch are then collected outside the query,
 * in a holder emptied as soon as the batch is taken, so a query kept alive
 * does not keep its rows alive. Measured with postgres.js on a million rows,
 * its peak RSS rise went from about 140 MiB to about 25 MiB (Node) and from
 * about 78 MiB to about 20 MiB (Deno); a holder made in a helper of its own,
 * or rows returned through a promise of its own, kept them alive on Deno.
 */
export type RunEachRow = (text: string, params: readonly unknown[], onRow: (row: Row) => void) => PromiseLike<unknown>;

let cursorCount = 0;

/**
 * What {@linkcode cursorBatches} throws for a stream placed `own`, with the
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
 * Yields a query's rows in batches from a server-side cursor, placed as the
 * stream is: on a connection of its own (`own`), the cursor lives in a
 * transaction of its own (BEGIN/COMMIT), so rows stream without Postgres
 * materialising the result first; on a scope's connection outside a
 * transaction (`shared`) it is declared `WITH HOLD` (Postgres then computes
 * the whole result before the first row); inside a transaction
 * (`shared-transaction`) it is a plain cursor of that transaction.
 */
export async function* cursorBatches(
  run: RunStatement,
  text: string,
  params: readonly unknown[],
  batchSize: number,
  placement: StreamPlacement,
  each?: RunEachRow,
): AsyncIterableIterator<Row[]> {
  const name = `roost_cursor_${++cursorCount}`;
  const own = placement === "own";
  batchSize = Math.min(batchSize, mostRowsPerFetch);
  if (own) await run("BEGIN");
  let ok = false;
  try {
    const declare = `DECLARE ${name} NO SCROLL CURSOR${placement === "shared" ? " WITH HOLD" : ""} FOR ${text}`;
    await run(declare, params).catch((error) => {
      // Only a cursor of its own transaction is refused harmlessly: in the caller's, the refusal aborted it.
      throw own && refusedAsCursor(error) ? new NotACursor(error) : error;
    });
    try {
      const fetch = `FETCH ${batchSize} FROM ${name}`;
      for (;;) {
        let batch: Row[];
        if (each) {
          // Collected here, in a holder emptied once the batch is taken (see RunEachRow).
          const holder = { rows: [] as Row[] };
          await each(fetch, [], (row) => {
            holder.rows.push(row);
          });
          batch = holder.rows;
          holder.rows = [];
        } else {
          batch = await run(fetch);
        }
        if (batch.length > 0) yield batch;
        if (batch.length < batchSize) break;
      }
    } finally {
      if (!own) await run(`CLOSE ${name}`).catch(() => {});
    }
    ok = true;
  } finally {
    // Ending the transaction closes the cursor; a failed one must roll back.
    if (own) await run(ok ? "COMMIT" : "ROLLBACK").catch(() => {});
  }
}

/**
 * A stream of a driver without a cursor API of its own: every batch is a
 * FETCH from a cursor the server keeps (see `cursorBatches`). On a connection
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
    yield* cursorBatches(run, text, params, batchSize, placement);
    return;
  } catch (error) {
    if (!(error instanceof NotACursor)) throw translate(error);
  }
  yield* inBatches(readWhole(), batchSize);
}
