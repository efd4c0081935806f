/**
 * Streaming through a cursor the Postgres server keeps (DECLARE/FETCH): each
 * batch is an ordinary query, so the connection can run other statements
 * between batches and memory stays flat whatever the result's size.
 *
 * @module
 */
import type { Row } from "../driver.ts";

/** Runs one statement on the connection and returns its rows. */
export type RunStatement = (text: string, params?: readonly unknown[]) => Promise<Row[]>;

let cursorCount = 0;

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
    await run(`DECLARE ${name} NO SCROLL CURSOR${mode === "hold" ? " WITH HOLD" : ""} FOR ${text}`, params);
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
