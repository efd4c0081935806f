/**
 * The benchmark: Roost, Kysely, Kysely on Roost and Drizzle against the raw
 * driver under them, on every runtime and dialect, in one run. Writes
 * bench/results/latest.json and one SVG chart per runtime, and puts the
 * tables in bench/README.md (a full run only, unless --readme). The README
 * at the root links the charts and bench/README.md; its short summary is
 * written by hand.
 *
 *   npm run bench
 *   node bench/run.ts --runtimes=node,bun --dialects=postgres --cases=point-1,point-50
 *                     --contenders=raw,roost --rounds=5 --seconds=1 [--readme | --no-write]
 *   node bench/run.ts --baseline=../roost-before ...   adds "roost-baseline": that checkout's Roost, same run
 *                                  # (on this checkout's default driver; on Bun's MySQL also
 *                                  # "roost-baseline-bun-sql": it on the bun-sql driver)
 *   node bench/run.ts --render     # measures nothing: re-renders the tables and
 *                                  # charts from bench/results/latest.json
 *   node bench/run.ts --order=shuffle[:seed] | reverse ...
 *                                  # the workloads in another order than given (a seed
 *                                  # repeats a shuffle; each runtime and dialect gets its own)
 *
 * Each runtime and dialect is one worker process (bench/worker.ts) for the
 * throughput cases; `iterate` runs in a fresh process per contender, so its
 * memory figure is its own.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, release, totalmem, type } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Database } from "../mod.ts";
import type { BenchDialect, BenchRuntime } from "./contenders/contender.ts";
import { type Machine, machineLine, markdownTables, type RunResults, svgChart } from "./report.ts";
import { caseNames, contenderNames, runsByDefault, type WorkerReport } from "./worker.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const option = (name: string) => process.argv.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3);
const flag = (name: string) => process.argv.includes(`--${name}`);

const allRuntimes: BenchRuntime[] = ["node", "deno", "bun"];
const allDialects: BenchDialect[] = ["sqlite", "postgres", "mysql"];
const runtimes = (option("runtimes")?.split(",") ?? allRuntimes) as BenchRuntime[];
const dialects = (option("dialects")?.split(",") ?? allDialects) as BenchDialect[];
const cases = option("cases")?.split(",") ?? [...caseNames];
const baseline = option("baseline");
if (baseline !== undefined) process.env.ROOST_BASELINE = resolve(baseline);
const contenders = option("contenders")?.split(",") ??
  contenderNames.filter((name) => runsByDefault(name, process.env.ROOST_BASELINE));
const rounds = Number(option("rounds") ?? 3);
const seconds = Number(option("seconds") ?? 1);
const order = workloadOrder(option("order") ?? "given");
const choices = [
  ["runtimes", runtimes, allRuntimes],
  ["dialects", dialects, allDialects],
  ["cases", cases, [...caseNames, "iterate-scoped"]],
  ["contenders", contenders, contenderNames],
] as const;
for (const [what, given, known] of choices) {
  const unknown = given.filter((name) => !(known as readonly string[]).includes(name));
  if (unknown.length > 0) {
    console.error(`unknown ${what}: ${unknown.join(", ")} (known: ${known.join(", ")})`);
    process.exit(2);
  }
}
const full = !option("runtimes") && !option("dialects") && !option("cases") && !option("contenders") &&
  baseline === undefined && order.name === "given";

/**
 * The order the throughput workloads run in, per runtime and dialect: as
 * given, reversed, or shuffled by a seeded generator (a seed of its own
 * when none is given, printed with the results so the run can be repeated).
 * One workload can leave the machine or the servers warmer or busier for the
 * next, so a ratio that holds in any order is one that does not depend on it.
 */
function workloadOrder(spec: string): { name: string; arrange: (names: string[], pair: string) => string[] } {
  if (spec === "given") return { name: "given", arrange: (names) => names };
  if (spec === "reverse") return { name: "reverse", arrange: (names) => [...names].reverse() };
  const shuffle = /^shuffle(?::(\d+))?$/.exec(spec);
  if (shuffle === null) {
    console.error(`unknown --order=${spec} (given, reverse, shuffle or shuffle:<seed>)`);
    process.exit(2);
  }
  const seed = Number(shuffle[1] ?? Math.floor(Math.random() * 1e6));
  return {
    name: `shuffle:${seed}`,
    arrange(names, pair) {
      // mulberry32 over the seed and the runtime/dialect pair: repeatable, and different per pair.
      let state = seed;
      for (const char of pair) state = Math.imul(state ^ char.charCodeAt(0), 0x9e3779b1) >>> 0;
      const next = () => {
        state = (state + 0x6d2b79f5) >>> 0;
        let t = Math.imul(state ^ (state >>> 15), 1 | state);
        t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
        return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
      };
      const shuffled = [...names];
      for (let i = shuffled.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
      }
      return shuffled;
    },
  };
}

function binary(name: string): string {
  const local = join(root, "node_modules", ".bin", name);
  return existsSync(local) ? local : name;
}

const commands: Record<BenchRuntime, string[]> = {
  node: [binary("node"), "--expose-gc"],
  deno: [binary("deno"), "run", "-A", "--v8-flags=--expose-gc"],
  bun: [binary("bun")],
};

/** Runs one worker and returns its report, or throws with the end of its output. */
function runWorker(runtime: BenchRuntime, args: string[]): WorkerReport {
  const [command, ...prefix] = commands[runtime];
  const child = spawnSync(command, [...prefix, join(root, "bench", "worker.ts"), ...args], {
    cwd: root,
    encoding: "utf8",
    maxBuffer: 64 * 2 ** 20,
    env: { ...process.env, NO_COLOR: "1" },
  });
  const line = child.stdout?.split("\n").find((text) => text.startsWith("RESULT "));
  if (child.status !== 0 || line === undefined) {
    const tail = `${child.stdout ?? ""}${child.stderr ?? ""}`.trim().split("\n").slice(-6).join(" | ");
    throw new Error(`exit ${child.status}: ${tail || child.error?.message}`);
  }
  return JSON.parse(line.slice(7)) as WorkerReport;
}

async function serverVersion(url: string): Promise<string> {
  const db = new Database(url);
  try {
    const version = String(await db.fetchVal("select version()"));
    return version.match(/^(PostgreSQL [\d.]+|[\d.]+-MariaDB)/)?.[1] ?? version.split(" ")[0];
  } catch {
    return "unreachable";
  } finally {
    await db.close();
  }
}

async function machine(): Promise<Machine> {
  const servers: Record<string, string> = {};
  if (dialects.includes("postgres")) {
    servers.postgres = await serverVersion(
      process.env.ROOST_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test",
    );
  }
  if (dialects.includes("mysql")) {
    servers.mysql = await serverVersion(process.env.ROOST_TEST_MYSQL_URL ?? "mysql://root@127.0.0.1:3306/test");
  }
  return {
    date: new Date().toISOString().slice(0, 10),
    cpu: cpus()[0]?.model.trim() ?? "unknown CPU",
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    os: `${type()} ${release()}`,
    servers,
  };
}

/** Runs every chosen runtime, dialect, workload and contender. */
async function measure(): Promise<RunResults> {
  const results: RunResults = {
    machine: await machine(),
    settings: { rounds, seconds, order: order.name },
    reports: [],
    failures: [],
  };
  const common = [`--rounds=${rounds}`, `--seconds=${seconds}`];
  const throughputCases = cases.filter((name) => name !== "iterate" && name !== "iterate-scoped");

  for (const runtime of runtimes) {
    for (const dialect of dialects) {
      const started = performance.now();
      const arranged = order.arrange(throughputCases, `${runtime}/${dialect}`);
      if (order.name !== "given") console.error(`${runtime} ${dialect}: ${arranged.join(", ")}`);
      try {
        const report = arranged.length === 0 ? undefined : runWorker(runtime, [
          `--dialect=${dialect}`,
          `--cases=${arranged.join(",")}`,
          `--contenders=${contenders.join(",")}`,
          ...common,
        ]);
        const merged: WorkerReport = report ?? { runtime, runtimeVersion: "", dialect, results: [] };
        if (cases.includes("iterate")) {
          for (const contender of contenders) {
            const alone = runWorker(runtime, [
              `--dialect=${dialect}`,
              "--cases=iterate",
              `--contenders=${contender}`,
              `--rounds=${Math.min(rounds, 3)}`,
            ]);
            merged.runtimeVersion = alone.runtimeVersion;
            merged.results.push(...alone.results);
          }
        }
        results.reports.push(merged);
        console.error(`${runtime} ${dialect}: done in ${((performance.now() - started) / 1_000).toFixed(0)} s`);
      } catch (error) {
        const message = (error as Error).message;
        results.failures.push({ runtime, dialect, error: message });
        console.error(`${runtime} ${dialect}: FAILED ${message}`);
      }
    }
  }
  return results;
}

const out = join(root, "bench", "results");
const render = flag("render");
/** `--render` re-renders the last full run; anything else measures. */
const results: RunResults = render
  ? JSON.parse(readFileSync(join(out, "latest.json"), "utf8")) as RunResults
  : await measure();

const tables = markdownTables(results);
const { rounds: ran, seconds: long, order: ranIn = "given" } = results.settings;
const settings = `Medians of ${ran} rounds of ${long} s per contender and workload (iterate: ${
  Math.min(ran, 3)
} runs in a fresh process per contender), the workloads in ${
  ranIn === "given" ? "the order of the tables" : `the order ${ranIn}`
}. A ratio is the contender's throughput over the raw driver's under it in the same run (a contender on Bun.SQL over raw Bun.SQL's): above 1 is faster.`;
console.log(`${tables}\n${machineLine(results.machine)}`);
// Streams inside scopes, in a process per figure; printed only (bench/iterate_scoped.ts).
if (cases.includes("iterate-scoped")) {
  console.log(`\n${(await import("./iterate_scoped.ts")).iterateScopedTable(runtimes, dialects)}`);
}

if (!flag("no-write")) {
  mkdirSync(out, { recursive: true });
  if (!render) writeFileSync(join(out, "latest.json"), JSON.stringify(results, null, 2) + "\n");
  for (const runtime of new Set(results.reports.map((report) => report.runtime))) {
    writeFileSync(join(out, `${runtime}.svg`), svgChart(results, runtime) + "\n");
  }
  if (full || render || flag("readme")) {
    // The one copy of the tables: between the markers in bench/README.md.
    const readmePath = join(root, "bench", "README.md");
    const readme = readFileSync(readmePath, "utf8");
    const start = "<!-- bench:start -->", end = "<!-- bench:end -->";
    const from = readme.indexOf(start), to = readme.indexOf(end);
    if (from < 0 || to < from) throw new Error(`${readmePath} has no ${start} … ${end} markers`);
    const body = `\n${machineLine(results.machine)}\n\n${settings}\n\n${tables}\n`;
    writeFileSync(readmePath, readme.slice(0, from + start.length) + body + readme.slice(to));
    // The tables as `deno fmt` lays them out, so the file stays fmt-clean.
    spawnSync(binary("deno"), ["fmt", readmePath], { cwd: root, stdio: "ignore" });
  }
}
