/**
 * `forceRollback` (for tests): one connection held from the first call, one
 * transaction open on it that is rolled back when the database closes, and
 * every call outside a held connection run on it in turn.
 *
 * @module
 */
import type { ScopeState } from "./call_context.ts";
import type { Session } from "./session.ts";
import { runTransaction, Transaction } from "./transaction.ts";

/** The held connection and the transaction every call runs in. */
interface Held {
  readonly session: Session;
  readonly tx: Transaction;
}

/** The held connection of a `forceRollback` database, and the turns its calls take on it. */
export class ForcedRollback {
  readonly #open: () => Promise<Session>;
  readonly #assertOpen: () => void;
  /** The held connection and the outer transaction, once the first call opened them. */
  #held: Promise<Held> | undefined;
  /** The running top-level call: settles when it ends, and the next one waits for it. */
  #running: Promise<void> = Promise.resolve();

  /** `open` takes the primary's connection; `assertOpen` throws once the database is closing. */
  constructor(open: () => Promise<Session>, assertOpen: () => void) {
    this.#open = open;
    this.#assertOpen = assertOpen;
  }

  /** The held connection and its outer transaction, opened by the first call (a failed open is retried by the next). */
  #opened(): Promise<Held> {
    this.#assertOpen();
    if (this.#held === undefined) {
      const opening = (async () => {
        const session = await this.#open();
        try {
          return { session, tx: await Transaction.open(session, undefined, {}, false) };
        } catch (error) {
          session.end();
          throw error;
        }
      })();
      this.#held = opening;
      opening.catch(() => this.#held === opening && (this.#held = undefined));
    }
    return this.#held;
  }

  /** The scope state of a call on the held connection that takes no turn (a stream, whose loop may query). */
  async state(): Promise<ScopeState> {
    return (await this.#opened()).session.state(undefined);
  }

  /**
   * Runs `call` on the held connection once the running top-level call has
   * ended, with the scope state it runs in; with `isolate`, in a savepoint of
   * its own that its failure rolls back (so a failed statement cannot abort
   * the outer transaction on Postgres).
   */
  async run<T>(isolate: boolean, call: (state: ScopeState) => Promise<T>): Promise<T> {
    const held = await this.#opened();
    const previous = this.#running;
    let done!: () => void;
    this.#running = new Promise((resolve) => done = resolve);
    await previous;
    try {
      this.#assertOpen();
      const { session } = held;
      const parent = session.current ?? held.tx;
      if (!isolate) return await call(session.state(parent));
      return await runTransaction(session, parent, {}, (tx) => call(session.state(tx)));
    } finally {
      done();
    }
  }

  /** Rolls back and hands back the held connection, once the running call has ended. */
  async rollBack(): Promise<void> {
    const held = await this.#held?.catch(() => undefined);
    if (held === undefined) return;
    await this.#running;
    try {
      if (held.tx.active) await held.tx.rollback();
    } catch {
      held.session.broken = true;
    } finally {
      held.session.end();
    }
  }
}
