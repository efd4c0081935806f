/**
 * Streaming through a cursor the Postgres server keeps (DECLARE/FETCH): each
 * batch is an ordinary query, so the connection can run other statements
 * between batches and memory stays flat whatever the result's size.
 *
 * @module
 */
import type { Row, StreamPlacement } from "../../driver.ts";
import { beforeFirstKeyword } from "../../session_statements.ts";
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
 * What {@linkcode cursorBatches} throws, before anything of the query ran,
 * when the query cannot be a cursor: its text says so (`mayBeCursor`), or,
 * outside the caller's transaction (placed `own` or `shared`), the server
 * refused the DECLARE (42601 for what is not a query, 0A000 for a
 * data-modifying WITH or `FOR UPDATE` in a cursor `WITH HOLD`; its error is
 * the `cause`). The caller may run the query another way.
 */
export class NotACursor extends Error {
  /** Wraps the server's refusal. */
  constructor(cause: unknown) {
    super("the query cannot be a cursor", { cause });
    this.name = "NotACursor";
  }
}

const queryKeyword = new RegExp(`${beforeFirstKeyword}((?:select|values|table|with)\\b|\\()`, "i");
const writeKeyword = /\b(?:insert|update|delete|merge)\b/i;

/**
 * Whether a statement may be a cursor's query, read from its text: a
 * `SELECT`, `VALUES`, `TABLE`, a parenthesised query, or a `WITH` naming
 * no write (Postgres refuses a data-modifying `WITH` as a cursor). A write
 * with `RETURNING`, `SHOW` or `CALL` cannot be; declaring it a cursor inside
 * the caller's transaction would abort that transaction, so such statements
 * are read whole without asking the server.
 */
export function mayBeCursor(text: string): boolean {
  const first = queryKeyword.exec(text)?.[1].toLowerCase();
  return first !== undefined && (first !== "with" || !writeKeyword.test(text));
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
  if (!mayBeCursor(text)) throw new NotACursor(undefined);
  const name = `roost_cursor_${++cursorCount}`;
  const own = placement === "own";
  batchSize = Math.min(batchSize, mostRowsPerFetch);
  if (own) await run("BEGIN");
  let ok = false;
  try {
    const declare = `DECLARE ${name} NO SCROLL CURSOR${placement === "shared" ? " WITH HOLD" : ""} FOR ${text}`;
    await run(declare, params).catch((error) => {
      // Refused harmlessly only outside the caller's transaction: inside it, the refusal aborted it.
      throw placement !== "shared-transaction" && refusedAsCursor(error) ? new NotACursor(error) : error;
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
 * FETCH from a cursor the server keeps (see `cursorBatches`). A statement
 * that cannot be a cursor (a write with RETURNING, `SHOW`) is read whole by
 * `readWhole` instead, on the same connection. Errors go through `translate`.
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
