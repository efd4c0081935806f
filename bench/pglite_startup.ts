/**
 * How long a PGlite database takes to open through Roost, and what it costs
 * in memory: the process's first in-memory database (`initdb`, then dumped
 * as the template), the next ones (loaded from the template), a new data
 * directory (`initdb` on disk) and that directory opened again. Prints wall
 * and CPU milliseconds (CPU is the figure a busy machine moves least) and
 * the resident memory after each step.
 *
 *   node bench/pglite_startup.ts        bun bench/pglite_startup.ts        deno run -A bench/pglite_startup.ts
 *
 * @module
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { Database } from "../mod.ts";

const mib = (bytes: number) => `${Math.round(bytes / 2 ** 20)} MiB`;

/** Opens a database at `url` and runs one statement; returns wall and CPU time, and leaves it open. */
async function open(url: string): Promise<[Database, string]> {
  const cpu = process.cpuUsage();
  const start = performance.now();
  const db = new Database(url);
  await db.fetchVal("select 1");
  const used = process.cpuUsage(cpu);
  const figure = `wall ${Math.round(performance.now() - start)} ms, CPU ${
    Math.round((used.user + used.system) / 1000)
  } ms`;
  return [db, `${figure}, RSS after ${mib(process.memoryUsage().rss)}`];
}

const dir = mkdtempSync(join(tmpdir(), "roost-pglite-bench-"));
try {
  const [first, a] = await open("pglite::memory:");
  console.log(`first in-memory database (initdb, dumped as the template): ${a}`);
  for (let i = 2; i <= 4; i++) {
    const [db, figure] = await open("pglite::memory:");
    console.log(`in-memory database ${i} (from the template): ${figure}`);
    await db.close();
  }
  await first.close();
  const [fresh, b] = await open(`pglite:${dir}/data`);
  console.log(`new data directory (initdb on disk): ${b}`);
  await fresh.close();
  const [again, c] = await open(`pglite:${dir}/data`);
  console.log(`that data directory opened again: ${c}`);
  await again.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
