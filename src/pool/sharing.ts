/**
 * When single statements of a pipelining driver may share a busy
 * connection: only one that such statements alone hold, whose current
 * statement is young and whose pipeline is short.
 *
 * @module
 */
import type { PoolHooks } from "./options.ts";
import type { PooledConnection } from "./pooled_connection.ts";

/**
 * A busy connection of a pipelining driver takes one more single statement
 * only while the statement it runs began less than this many milliseconds
 * ago, so nothing queues behind a statement already known to be slow.
 */
export const shareWithin = 5;
/** At most this many single statements are in flight on one shared connection. */
export const shareDepth = 8;

/**
 * The least loaded of `items` a single statement may join now, with that
 * statement counted in: shared, not broken, fewer than {@linkcode shareDepth}
 * in flight, its statement younger than {@linkcode shareWithin} ms, and not
 * past its lifetime, both at `now`. Only the one chosen is asked whether
 * its driver knows it broken (one call per statement, not one per
 * candidate); one that is takes no more statements and is passed over.
 */
export function joinShared<C>(
  items: Iterable<PooledConnection<C>>,
  hooks: PoolHooks<C>,
  now: number,
): PooledConnection<C> | undefined {
  for (;;) {
    let least: PooledConnection<C> | undefined;
    for (const item of items) {
      if (
        !item.shared || item.broken || item.sessionChanged || item.holders >= shareDepth ||
        now - item.since >= shareWithin ||
        (least !== undefined && item.holders >= least.holders)
      ) continue;
      // A connection past its lifetime takes no more, so it drains and retires even under steady load.
      if (now >= item.expiresAt) continue;
      least = item;
      // One statement in flight is as little as a busy connection can have.
      if (item.holders === 1) break;
    }
    if (least === undefined) return undefined;
    if (hooks.broken?.(least.connection) !== true) {
      least.holders++;
      return least;
    }
    // The pool closes it when its last statement ends (as it would have: `broken` is asked again there).
    least.broken = true;
  }
}
