/**
 * Timing and memory helpers for the benchmark worker: throughput over a
 * fixed time, with a given number of calls in flight, and the peak resident
 * memory while some work runs. Runs on Deno, Bun and Node.
 *
 * @module
 */

import { readFileSync, writeFileSync } from "node:fs";

const processLike = (globalThis as unknown as { process: { memoryUsage(): { rss: number } } }).process;

/** Resident set size in bytes. */
export function rss(): number {
  return processLike.memoryUsage().rss;
}

/** Collects garbage where the runtime lets a script ask for it (Bun; Node and Deno with --expose-gc). */
export function collectGarbage(): void {
  const bun = (globalThis as { Bun?: { gc(force: boolean): void } }).Bun;
  if (bun) bun.gc(true);
  else (globalThis as { gc?: () => void }).gc?.();
}

/**
 * Calls `work(i)` with `inFlight` calls running at once for `seconds`, and
 * returns calls completed per second. Every call gets its own `i`.
 */
export async function throughput(
  work: (i: number) => Promise<unknown>,
  inFlight: number,
  seconds: number,
): Promise<number> {
  let next = 0;
  let done = 0;
  const started = performance.now();
  const deadline = started + seconds * 1_000;
  const lane = async () => {
    while (performance.now() < deadline) {
      await work(next++);
      done++;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  return done / ((performance.now() - started) / 1_000);
}

/** The median of some numbers. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/**
 * Sets the kernel's record of this process's peak resident size (Linux's
 * VmHWM) to its size now; false where there is none to reset.
 */
function resetKernelPeak(): boolean {
  try {
    writeFileSync("/proc/self/clear_refs", "5");
    return true;
  } catch {
    return false;
  }
}

/** The kernel's record of this process's peak resident size since the last reset, in bytes (Linux). */
function kernelPeak(): number {
  const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
  return match === null ? 0 : Number(match[1]) * 1024;
}

/**
 * Runs `work` and returns its duration (ms) and how far RSS rose above its
 * level before (bytes). On Linux the peak is the kernel's own record, which
 * also sees a loop that never yields to the event loop (a synchronous SQLite
 * stream), where a sampling timer cannot run; elsewhere RSS is sampled every
 * 5 ms.
 */
export async function peakDuring(work: () => Promise<unknown>): Promise<{ ms: number; peakBytes: number }> {
  collectGarbage();
  const before = rss();
  const kernel = resetKernelPeak();
  let peak = before;
  const timer = setInterval(() => peak = Math.max(peak, rss()), 5);
  const started = performance.now();
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  const ms = performance.now() - started;
  return { ms, peakBytes: Math.max(peak, rss(), kernel ? kernelPeak() : 0) - before };
}
