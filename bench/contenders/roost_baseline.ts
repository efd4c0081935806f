/**
 * Roost from another checkout (`ROOST_BASELINE`, e.g. a `git worktree` of
 * the commit before a change), measured exactly as the "roost" contender in
 * the same run: next to it, the ratio says what the change did to speed
 * with the machine's noise shared by both. `node bench/run.ts
 * --baseline=<dir>` sets the variable and adds this contender.
 *
 * @module
 */
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { BenchSetup, Contender } from "./contender.ts";
import { roostContender, type RoostLibrary } from "./roost.ts";

/** The roost contender's workloads on the baseline checkout's `mod.ts`. */
export async function roostBaselineContender(setup: BenchSetup): Promise<Contender> {
  const directory = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env
    ?.ROOST_BASELINE;
  if (directory === undefined) throw new Error("roost-baseline needs ROOST_BASELINE: a checkout of Roost to compare");
  const library = await import(pathToFileURL(join(directory, "mod.ts")).href) as RoostLibrary;
  return await roostContender(setup, library, "roost-baseline");
}
