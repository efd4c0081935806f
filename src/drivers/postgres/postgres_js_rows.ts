/**
 * A postgres.js query's rows, collected outside the query. postgres.js keeps
 * each finished query reachable from its later ones until V8's next full
 * collection, so whatever a query holds (its result, its row callback) lives
 * on past every young-generation collection: a stream that runs one FETCH per
 * batch then promoted every row it read, V8 grew its young generation to the
 * maximum, and resident memory rose by about 140 MiB over a million rows
 * (Node 24). Rows collected here are handed on by a holder the query stops
 * reaching once it ends, so the rise stays at about 20 MiB, at the same speed.
 *
 * @module
 */
import type { Row } from "../../driver.ts";

/** The part of a postgres.js query this needs: its row callback. */
export interface RowCallbackQuery {
  forEach(fn: (row: Row) => void): PromiseLike<unknown>;
}

/** Runs `query` and returns its rows, which the query itself does not keep (see the module's doc). */
export async function detachedRows(query: RowCallbackQuery): Promise<Row[]> {
  const holder: { rows: Row[] } = { rows: [] };
  try {
    await query.forEach((row) => {
      holder.rows.push(row);
    });
    return holder.rows;
  } finally {
    holder.rows = [];
  }
}
