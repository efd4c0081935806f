/**
 * Streaming connections a pool lends out or asks back, so a caller that
 * finds the pool exhausted is not left waiting on a stream's connection
 * (see {@linkcode Pool.lend}).
 *
 * @module
 */
import type { PooledConnection } from "./pooled_connection.ts";

/** The streams of a pool whose connections may be borrowed, or given back when asked. */
export class Lending<C> {
  /** Streaming connections that callers may borrow, with how many streams run on each. */
  readonly #lenders = new Map<PooledConnection<C>, number>();
  /** Streams that give their connection back when asked, with how to ask them. */
  readonly #yielders = new Map<PooledConnection<C>, () => void>();
  /** Streams asked to give their connection back that have not yet done so. */
  readonly #asked = new Set<PooledConnection<C>>();

  /** True when some streaming connection may be borrowed. */
  get lends(): boolean {
    return this.#lenders.size > 0;
  }

  /** True when `item` streams and may be borrowed. */
  lent(item: PooledConnection<C>): boolean {
    return this.#lenders.has(item);
  }

  /** One more stream runs on `item`, which callers may borrow between its batches. */
  lend(item: PooledConnection<C>): void {
    this.#lenders.set(item, (this.#lenders.get(item) ?? 0) + 1);
  }

  /** The stream on `item` gives it back when `giveBack` is called. */
  yieldOnRequest(item: PooledConnection<C>, giveBack: () => void): void {
    this.#yielders.set(item, giveBack);
  }

  /** One stream on `item` ended. */
  end(item: PooledConnection<C>): void {
    const streams = this.#lenders.get(item);
    if (streams !== undefined && streams > 1) this.#lenders.set(item, streams - 1);
    else this.#lenders.delete(item);
    this.#yielders.delete(item);
    this.#asked.delete(item);
  }

  /** `item` came back to the pool: a stream asked to give it back did so. */
  released(item: PooledConnection<C>): void {
    if (this.#asked.delete(item)) this.#yielders.delete(item);
  }

  /** `item` is closed: nothing of it is kept. */
  forget(item: PooledConnection<C>): void {
    this.#lenders.delete(item);
    this.end(item);
  }

  /** A streaming connection that only streams hold, with its borrower counted in: one at a time, so scopes never mix. */
  borrow(): PooledConnection<C> | undefined {
    for (const [item, streams] of this.#lenders) {
      if (item.holders === streams) {
        item.holders++;
        return item;
      }
    }
    return undefined;
  }

  /** Asks streams to give their connection back, one per waiter not yet covered by an earlier ask. */
  ask(waiting: number): void {
    let wanted = waiting - this.#asked.size;
    for (const [item, giveBack] of this.#yielders) {
      if (wanted <= 0) return;
      if (this.#asked.has(item)) continue;
      this.#asked.add(item);
      wanted--;
      giveBack();
    }
  }
}
