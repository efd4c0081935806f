/**
 * A top-level stream on a connection that can run nothing else until the
 * stream ends (Postgres and MySQL drivers): it streams batch by batch as long
 * as nobody needs the connection, and when the pool asks for it (a caller
 * waits on an exhausted pool), it reads the rest of its result into memory,
 * gives the connection back, and hands out the rest from memory. That is what
 * keeps a query inside `for await` of `iterate` from deadlocking on a pool of
 * one.
 *
 * @module
 */
import type { Row } from "./driver.ts";

/**
 * Wraps a driver's stream. `release` gives the stream's connection back to
 * its pool, with the error that ended the stream if any; it is called
 * exactly once, when the rest has been read or the stream ends.
 */
export class ReleasableStream {
  readonly #source: AsyncIterator<Row[]>;
  readonly #release: (error: unknown) => void;
  /** True while the consumer holds a batch, so the source is free to read from. */
  #between = false;
  #wanted = false;
  #stopped = false;
  #released = false;
  /** The rest of the result, being read into memory once the connection is wanted, and the error that cut it short. */
  #rest: Promise<{ batches: Row[][]; failed: boolean; error: unknown }> | undefined;

  /** Wraps `source`, whose connection `release` gives back. */
  constructor(source: AsyncIterator<Row[]>, release: (error: unknown) => void) {
    this.#source = source;
    this.#release = release;
  }

  /** What the pool calls when a caller waits for a connection: the rest is read and the connection given back. */
  readonly giveBack = (): void => {
    this.#wanted = true;
    if (this.#between) this.#readRest();
  };

  /** The batches, from the connection until it is wanted, then from memory. */
  async *batches(): AsyncIterableIterator<Row[]> {
    let finished = false;
    try {
      for (;;) {
        if (this.#rest) {
          const rest = await this.#rest;
          finished = true;
          // The rows read before a failure are handed out first, as they would have been without the wait.
          yield* rest.batches;
          if (rest.failed) throw rest.error;
          return;
        }
        const next = await this.#source.next();
        if (next.done) {
          finished = true;
          return;
        }
        this.#between = true;
        if (this.#wanted) this.#readRest();
        yield next.value;
        this.#between = false;
      }
    } catch (error) {
      finished = true;
      this.#giveBackOnce(error);
      throw error;
    } finally {
      this.#between = false;
      this.#stopped = true;
      if (this.#rest) await this.#rest;
      else if (!finished) await this.#source.return?.();
      this.#giveBackOnce(undefined);
    }
  }

  #readRest(): void {
    if (this.#rest) return;
    this.#rest = (async () => {
      const batches: Row[][] = [];
      try {
        for (;;) {
          // The loop was left meanwhile: the rest is not needed.
          if (this.#stopped) {
            await this.#source.return?.();
            break;
          }
          const next = await this.#source.next();
          if (next.done) break;
          batches.push(next.value);
        }
      } catch (error) {
        // Thrown where the loop resumes, after the rows read before it.
        this.#giveBackOnce(error);
        return { batches, failed: true, error };
      }
      this.#giveBackOnce(undefined);
      return { batches, failed: false, error: undefined };
    })();
  }

  #giveBackOnce(error: unknown): void {
    if (this.#released) return;
    this.#released = true;
    this.#release(error);
  }
}
