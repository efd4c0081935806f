/**
 * Roost from another checkout (`ROOST_BASELINE`, e.g. a `git worktree` of
 * the commit before a change), measured exactly as the "roost" contender in
 * the same run: next to it, the ratio says what the change did to speed
 * with the machine's noise shared by both. `node bench/run.ts
 * --baseline=<dir>` sets the variable and adds this contender (and, on Bun,
 * "roost-baseline-bun-sql": the baseline on the bun-sql driver).
 *
 * @module
 */
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { BenchSetup, Contender } from "./contender.ts";
import { roostContender, type RoostLibrary } from "./roost.ts";
import { defaultDrivers } from "../../src/drivers/mod.ts";

const runtime = "Bun" in globalThis ? "bun" : "Deno" in globalThis ? "deno" : "node";

/**
 * The roost contender's workloads on the baseline checkout's `mod.ts`, on
 * this checkout's default driver (the baseline's default may be another:
 * postgres-js on Bun's Postgres before bun-sql became it), so the two
 * differ only by Roost.
 */
export async function roostBaselineContender(setup: BenchSetup): Promise<Contender> {
  const driver = defaultDrivers[runtime][setup.dialect];
  return await roostContender(setup, await baselineLibrary(), "roost-baseline", driver);
}

/** The roost-bun-sql contender's workloads (the bun-sql driver, on Bun) on the baseline checkout's `mod.ts`. */
export async function roostBaselineBunSqlContender(setup: BenchSetup): Promise<Contender> {
  return await roostContender(setup, await baselineLibrary(), "roost-baseline-bun-sql", "bun-sql");
}

/** The baseline checkout's `Database` and `sql`. */
async function baselineLibrary(): Promise<RoostLibrary> {
  const directory = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env
    ?.ROOST_BASELINE;
  if (directory === undefined) throw new Error("roost-baseline needs ROOST_BASELINE: a checkout of Roost to compare");
  return await import(pathToFileURL(join(directory, "mod.ts")).href) as RoostLibrary;
}
