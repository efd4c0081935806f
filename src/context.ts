/**
 * Per-instance async context: which scope (connection, transaction) the
 * current async call tree has entered. Uses `AsyncLocalStorage` where the
 * runtime has it; without it, scopes still work through their explicit
 * handles and `db.*` calls fail loudly while a scope is open instead of
 * silently running outside it.
 *
 * @module
 */
import { ConfigError } from "./errors.ts";
import { builtinModule } from "./runtime.ts";

interface AsyncLocalStorageLike<T> {
  getStore(): T | undefined;
  run<R>(store: T, fn: () => R): R;
}

type AsyncLocalStorageClass = new <T>() => AsyncLocalStorageLike<T>;

const AsyncLocalStorage = builtinModule<{ AsyncLocalStorage?: AsyncLocalStorageClass }>("node:async_hooks")
  ?.AsyncLocalStorage;

/** True when scopes propagate through async calls on this runtime. */
export const asyncContextAvailable: boolean = AsyncLocalStorage !== undefined;

/** One instance's current-scope slot. */
export class ScopeSlot<T> {
  #storage: AsyncLocalStorageLike<T> | undefined = AsyncLocalStorage ? new AsyncLocalStorage<T>() : undefined;
  #openWithoutContext = 0;

  /** The scope the caller is in, if any. */
  get(): T | undefined {
    if (this.#storage) return this.#storage.getStore();
    if (this.#openWithoutContext > 0) {
      throw new ConfigError(
        "this runtime has no AsyncLocalStorage, so Roost cannot tell whether this call is inside the open " +
          "scope: use the handle passed to the callback (conn, tx), or enable async context (nodejs_compat on Workers)",
        { code: "ROOST_NO_ASYNC_CONTEXT" },
      );
    }
    return undefined;
  }

  /**
   * The scope the caller is in where async context tells it; undefined
   * without async context (never throws: for entry points such as
   * `db.context()`, which start a scope of their own either way).
   */
  peek(): T | undefined {
    return this.#storage?.getStore();
  }

  /** Runs `fn` with `value` as the current scope of its async call tree. */
  async run<R>(value: T, fn: () => Promise<R> | R): Promise<R> {
    if (this.#storage) return await this.#storage.run(value, fn);
    this.#openWithoutContext++;
    try {
      return await fn();
    } finally {
      this.#openWithoutContext--;
    }
  }
}
