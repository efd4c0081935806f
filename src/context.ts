/**
 * Per-instance async context: which scope (connection, transaction) the
 * current async call tree has entered. Uses `AsyncLocalStorage` wherever the
 * runtime offers it: `process.getBuiltinModule` (Deno, Bun, Node, Workers
 * with `nodejs_compat` from 2024-09-23), else an `import()` of
 * `node:async_hooks` (Workers with `nodejs_compat` before that date, or
 * `nodejs_als`). The import's specifier is computed, so no bundler follows
 * it, and it is only tried where the synchronous lookup failed. Until it
 * settles, scopes and `db.*` calls wait for it.
 *
 * Without async context Roost cannot tell whether a `db.*` call runs inside
 * a scope, so every call that would need to know fails with one error, inside
 * scopes and outside alike, whatever other requests do; the handles passed
 * to callbacks (`db.context((scope) => …)`, `conn`, `tx`) always work.
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
type AsyncHooks = { AsyncLocalStorage?: AsyncLocalStorageClass };

let found = builtinModule<AsyncHooks>("node:async_hooks")?.AsyncLocalStorage;

/**
 * True when scopes propagate through async calls on this runtime. Where
 * `AsyncLocalStorage` can only be imported (Workers with `nodejs_compat`
 * before 2024-09-23), it turns true once the import settles, before the
 * first scope opens.
 */
export let asyncContextAvailable: boolean = found !== undefined;

/** Set while the asynchronous lookup runs; cleared when it settles. */
let lookup: Promise<void> | undefined = found === undefined ? lookUp() : undefined;

async function lookUp(): Promise<void> {
  try {
    // Computed, so bundlers (esbuild, wrangler) leave it to the runtime, which may not have it.
    const specifier = ["node", "async_hooks"].join(":");
    found = ((await import(specifier)) as AsyncHooks).AsyncLocalStorage;
  } catch {
    // No such module here: no async context.
  }
  asyncContextAvailable = found !== undefined;
  lookup = undefined;
}

/** The running lookup of `AsyncLocalStorage` to wait for, if it has not settled yet. */
export function asyncContextLookup(): Promise<void> | undefined {
  return lookup;
}

/** The error of a `db.*` call on a runtime without async context. */
function noAsyncContext(): ConfigError {
  return new ConfigError(
    "this runtime has no AsyncLocalStorage, so Roost cannot tell whether a db.* call is inside a scope and runs " +
      "none: use the handle a scope passes, as in db.context((scope) => scope.fetchAll(...)), conn or tx, or " +
      "enable async context (nodejs_compat on Workers)",
    { code: "ROOST_NO_ASYNC_CONTEXT" },
  );
}

/** One instance's current-scope slot. */
export class ScopeSlot<T> {
  #storage: AsyncLocalStorageLike<T> | undefined;

  #store(): AsyncLocalStorageLike<T> | undefined {
    return this.#storage ??= found && new found<T>();
  }

  /**
   * The scope the caller is in, if any. Without async context it throws
   * `ROOST_NO_ASYNC_CONTEXT`, inside a scope or not: it cannot know which.
   */
  get(): T | undefined {
    const storage = this.#store();
    if (storage) return storage.getStore();
    // While the lookup runs no scope is open: `run` waits for it.
    if (lookup) return undefined;
    throw noAsyncContext();
  }

  /**
   * The scope the caller is in where async context tells it; undefined
   * without async context (never throws: for entry points such as
   * `db.context()`, which start a scope of their own either way).
   */
  peek(): T | undefined {
    return this.#store()?.getStore();
  }

  /** Runs `fn` with `value` as the current scope of its async call tree. */
  run<R>(value: T, fn: () => Promise<R> | R): Promise<R> {
    if (lookup) return lookup.then(() => this.run(value, fn));
    // No async frame of its own: every scope (transaction, connection, context) passes through here.
    try {
      const storage = this.#store();
      return Promise.resolve(storage ? storage.run(value, fn) : fn());
    } catch (error) {
      return Promise.reject(error);
    }
  }
}
