/**
 * The MySQL batch path: a single-row `INSERT … VALUES (…)` run for many
 * parameter sets becomes multi-row inserts, one round trip per chunk.
 *
 * @module
 */
import type { ExecuteResult } from "../driver.ts";

/** `insert … values (…)` ending the statement: its tuple can repeat for a multi-row insert. */
const singleTupleInsert = /^(\s*insert\s[\s\S]*?\svalues\s*)(\([^()]*\))\s*;?\s*$/i;
/** The most placeholders one MySQL prepared statement takes. */
const maxPlaceholders = 65_535;

/** Runs `text` once per parameter set, as multi-row inserts where the statement allows it. */
export async function executeBatched(
  text: string,
  paramSets: readonly (readonly unknown[])[],
  execute: (text: string, params: readonly unknown[]) => Promise<ExecuteResult>,
): Promise<ExecuteResult> {
  const insert = singleTupleInsert.exec(text);
  const width = paramSets[0]?.length ?? 0;
  if (!insert || width === 0) {
    let rowCount = 0;
    let lastInsertId: number | bigint | undefined;
    for (const params of paramSets) {
      const result = await execute(text, params);
      rowCount += result.rowCount;
      lastInsertId = result.lastInsertId ?? lastInsertId;
    }
    return lastInsertId === undefined ? { rowCount } : { rowCount, lastInsertId };
  }
  const [, head, tuple] = insert;
  const perChunk = Math.max(1, Math.min(1_000, Math.floor(maxPlaceholders / width)));
  let rowCount = 0;
  for (let start = 0; start < paramSets.length; start += perChunk) {
    const chunk = paramSets.slice(start, start + perChunk);
    const chunkText = head + Array.from({ length: chunk.length }, () => tuple).join(", ");
    rowCount += (await execute(chunkText, chunk.flat())).rowCount;
  }
  return { rowCount };
}
