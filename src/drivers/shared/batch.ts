/**
 * Batches every driver shares: `executeMany` (a single-row
 * `INSERT … VALUES (…)` run for many parameter sets becomes multi-row
 * inserts, one statement and one round trip per chunk of rows; any other
 * statement runs once per set, in order or pipelined), and a result read
 * whole, handed out as a stream's batches where a driver cannot stream it.
 *
 * @module
 */
import type { ExecuteResult, Row } from "../../driver.ts";

/** Hands out `rows`, read whole, in batches of `size`, as a stream of the driver would. */
export async function* inBatches(rows: Promise<readonly Row[]>, size: number): AsyncGenerator<Row[]> {
  const all = await rows;
  for (let i = 0; i < all.length; i += size) yield all.slice(i, i + size);
}

/** Runs a statement with one parameter set. */
export type Execute = (text: string, params: readonly unknown[]) => Promise<ExecuteResult>;

/** `insert … values (…)` ending the statement: its tuple can repeat for a multi-row insert. */
const singleTupleInsert = /^(\s*insert\s[\s\S]*?\svalues\s*)(\([^()]*\))\s*;?\s*$/i;
/** A tuple of numbered placeholders only (`($1, $2::int8)`), which can be renumbered safely. */
const numberedTuple = /^\(\s*\$\d+(?:::[\w ]+)?(?:\s*,\s*\$\d+(?:::[\w ]+)?)*\s*\)$/;
/** The most parameters one statement takes (16-bit counts, and postgres.js refuses 65 534 and more). */
const maxPlaceholders = 65_533;
/** The most rows per statement: larger ones gain nothing and cost memory. */
const maxRows = 1_000;

/** Builds the text of a multi-row insert of `rows` rows. */
export type MultiRowInsert = (rows: number) => string;

/**
 * The multi-row form of `text` when it is a single-row insert whose tuple
 * can repeat: `?` placeholders as they are, `$n` ones renumbered per row.
 * Undefined for any other statement.
 */
export function multiRowInsert(text: string, width: number, numbered: boolean): MultiRowInsert | undefined {
  const insert = singleTupleInsert.exec(text);
  if (!insert || width === 0) return undefined;
  const [, head, tuple] = insert;
  if (!numbered) return (rows) => head + Array.from({ length: rows }, () => tuple).join(", ");
  if (!numberedTuple.test(tuple) || head.includes("$")) return undefined;
  // Renumbering row by row is right only when the tuple uses exactly $1 … $width.
  const used = new Set(Array.from(tuple.matchAll(/\$(\d+)/g), (match) => Number(match[1])));
  if (used.size !== width || [...used].some((n) => n < 1 || n > width)) return undefined;
  return (rows) =>
    head +
    Array.from({ length: rows }, (_, row) => tuple.replace(/\$(\d+)/g, (_, n: string) => `$${Number(n) + row * width}`))
      .join(", ");
}

/** Runs the insert for every parameter set in chunks of up to 1,000 rows (and 65,535 parameters). */
export async function insertInChunks(
  build: MultiRowInsert,
  paramSets: readonly (readonly unknown[])[],
  execute: Execute,
): Promise<ExecuteResult> {
  const width = paramSets[0]?.length ?? 1;
  const perChunk = Math.max(1, Math.min(maxRows, Math.floor(maxPlaceholders / width)));
  let rowCount = 0;
  for (let start = 0; start < paramSets.length; start += perChunk) {
    const chunk = paramSets.slice(start, start + perChunk);
    rowCount += (await execute(build(chunk.length), chunk.flat())).rowCount;
  }
  return { rowCount };
}

/**
 * Runs `text` once per parameter set, one after the other, as multi-row
 * inserts where the statement allows it: `numbered` for `$n` placeholders
 * (Postgres), else `?`.
 */
export async function executeBatched(
  text: string,
  paramSets: readonly (readonly unknown[])[],
  execute: Execute,
  numbered = false,
): Promise<ExecuteResult> {
  const build = multiRowInsert(text, paramSets[0]?.length ?? 0, numbered);
  if (build) return insertInChunks(build, paramSets, execute);
  let rowCount = 0;
  let lastInsertId: number | bigint | undefined;
  for (const params of paramSets) {
    const result = await execute(text, params);
    rowCount += result.rowCount;
    lastInsertId = result.lastInsertId ?? lastInsertId;
  }
  return lastInsertId === undefined ? { rowCount } : { rowCount, lastInsertId };
}

/**
 * Postgres's `executeMany` on a connection that pipelines: a single-row
 * insert becomes multi-row inserts; anything else is sent for every set at
 * once (`send` may throw at once, for a parameter it refuses), one round
 * trip's latency instead of one per set (unless not `pipelined`: then one
 * after another). The first failure, in set order, is thrown through `translate`.
 */
export async function executePipelined(
  text: string,
  paramSets: readonly (readonly unknown[])[],
  execute: Execute,
  send: (params: readonly unknown[]) => PromiseLike<{ count: number | null }>,
  translate: (error: unknown) => Error,
  pipelined = true,
): Promise<ExecuteResult> {
  const insert = multiRowInsert(text, paramSets[0]?.length ?? 0, true);
  if (insert) return await insertInChunks(insert, paramSets, execute);
  if (!pipelined) {
    // Behind a transaction pooler that cannot follow pipelined statements (PgBouncer before 1.21): one at a time.
    let rowCount = 0;
    for (const params of paramSets) {
      try {
        rowCount += (await send(params)).count ?? 0;
      } catch (error) {
        throw translate(error);
      }
    }
    return { rowCount };
  }
  const settled = await Promise.allSettled(paramSets.map((params) => send(params)));
  let rowCount = 0;
  for (const outcome of settled) {
    if (outcome.status === "rejected") throw translate(outcome.reason);
    rowCount += outcome.value.count ?? 0;
  }
  return { rowCount };
}
