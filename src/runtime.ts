/**
 * Facts about the JavaScript runtime, read without importing any `node:`
 * module so the core loads on every platform.
 *
 * @module
 */

/** The runtimes Roost knows. */
export type RuntimeName = "deno" | "bun" | "node" | "workerd" | "unknown";

interface GlobalFacts {
  Deno?: { unrefTimer?(id: number): void };
  Bun?: unknown;
  navigator?: { userAgent?: string };
  process?: {
    versions?: { node?: string };
    getBuiltinModule?(id: string): unknown;
  };
}

const facts = globalThis as unknown as GlobalFacts;

/** The runtime this code runs on. */
export const runtime: RuntimeName = facts.Bun !== undefined
  ? "bun"
  : facts.Deno !== undefined
  ? "deno"
  : facts.navigator?.userAgent === "Cloudflare-Workers"
  ? "workerd"
  : facts.process?.versions?.node
  ? "node"
  : "unknown";

/** Loads a built-in module synchronously where the runtime offers `process.getBuiltinModule`. */
export function builtinModule<T>(id: string): T | undefined {
  try {
    return facts.process?.getBuiltinModule?.(id) as T | undefined;
  } catch {
    return undefined;
  }
}

type TimerHandle = ReturnType<typeof setTimeout>;

/** Lets the process exit even while this timer is pending. */
export function unrefTimer(handle: TimerHandle): TimerHandle {
  const timer = handle as unknown as { unref?(): void };
  if (typeof timer.unref === "function") timer.unref();
  else if (typeof handle === "number") facts.Deno?.unrefTimer?.(handle);
  return handle;
}

/** The longest delay a JavaScript timer takes (2^31 - 1 ms, about 24.8 days); a longer one fires at once. */
export const longestTimer = 2_147_483_647;

/**
 * `ms` as a timer can take it: a longer wait (an option of
 * `Number.MAX_SAFE_INTEGER` or `Infinity` meaning "as long as it takes")
 * becomes the longest a timer waits, where the runtime would fire it after
 * 1 ms and warn.
 */
export function timerDelay(ms: number): number {
  return ms > longestTimer ? longestTimer : ms;
}

/** `setTimeout` that never keeps the process alive. */
export function backgroundTimeout(fn: () => void, ms: number): TimerHandle {
  return unrefTimer(setTimeout(fn, timerDelay(ms)));
}
