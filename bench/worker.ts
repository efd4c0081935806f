/**
 * Measures the contenders on one dialect in this process and runtime, and
 * prints the figures as one `RESULT {json}` line. bench/run.ts starts it on
 * each runtime; it also runs alone:
 *
 *   node bench/worker.ts --dialect=postgres [--cases=point-1,insert] [--contenders=raw,roost]
 *                        [--rounds=5] [--seconds=1]
 *   deno run -A bench/worker.ts --dialect=sqlite
 *   bun bench/worker.ts --dialect=mysql --contenders=raw,raw-bun-sql,roost,roost-bun-sql
 *
 * Each contender runs each case for `seconds` per round, after one warm-up of
 * half that; contenders take turns within a round (the order rotates), and
 * the figure is the median of the rounds. `iterate` is measured once per
 * round, with the peak resident memory it adds.
 *
 * @module
 */
import { Database, sql } from "../mod.ts";
import { availableDrivers, defaultDrivers, type DriverName } from "../src/drivers/mod.ts";
import type { BenchDialect, BenchRuntime, BenchSetup, Contender } from "./contenders/contender.ts";
import { collectGarbage, median, peakDuring, throughput } from "./measure.ts";

/** The workloads, in the order the results list them. */
export const caseNames = [
  "point-1",
  "point-50",
  "select-100",
  "insert",
  "transaction",
  "execute-many",
  "iterate",
] as const;

/** A workload's name. */
export type CaseName = typeof caseNames[number];

/** The contenders, the raw drivers first; the results tables and charts list them in this order. */
export const contenderNames = [
  "raw",
  "raw-bun-sql",
  "roost",
  "roost-bun-sql",
  "roost-postgres-js",
  "roost-baseline",
  "roost-baseline-bun-sql",
  "kysely",
  "roost-kysely",
  "drizzle",
] as const;

/** Whether a contender runs when none are named: the baseline ones only with `ROOST_BASELINE` set. */
export function runsByDefault(name: ContenderName, baseline: string | undefined): boolean {
  return !name.startsWith("roost-baseline") || baseline !== undefined;
}

/**
 * The driver a contender pins: "raw-bun-sql" is Bun.SQL itself,
 * "roost-bun-sql" (and its baseline) runs Roost's bun-sql driver,
 * "roost-postgres-js" postgres.js; the others run the runtime's default.
 */
const pinned: Partial<Record<string, DriverName>> = {
  "roost-bun-sql": "bun-sql",
  "roost-baseline-bun-sql": "bun-sql",
  "roost-postgres-js": "postgres-js",
  "raw-bun-sql": "bun-sql",
};

/**
 * Whether a contender can run on this runtime and dialect: the Bun.SQL ones
 * ("raw-bun-sql", "roost-bun-sql", "roost-baseline-bun-sql") only on Bun,
 * against Postgres or MySQL; a Roost contender pinned to a driver only where
 * that driver runs and is not the default (there it is "roost" itself:
 * "roost-bun-sql" on Bun's MySQL, "roost-postgres-js" on Bun's Postgres). A
 * worker leaves the others out without a word, so one list of contenders
 * serves every runtime and dialect of a run.
 */
export function appliesTo(name: ContenderName, runtime: BenchRuntime, dialect: BenchDialect): boolean {
  const driver = pinned[name];
  if (driver === undefined) return true;
  if (!availableDrivers(dialect, runtime).includes(driver)) return false;
  return name === "raw-bun-sql" || defaultDrivers[runtime][dialect] !== driver;
}

/** A contender's name. */
export type ContenderName = typeof contenderNames[number];

/** One contender's figure for one workload. */
export interface CaseResult {
  /** The workload. */
  case: CaseName;
  /** The library. */
  contender: ContenderName;
  /** The driver under it. */
  driver: string;
  /** Calls per second (median of rounds); for `iterate`, rows per second. */
  perSecond?: number;
  /** Every round's figure. */
  rounds?: number[];
  /** `iterate`: the most resident memory it added in a round, in bytes. */
  peakBytes?: number;
  /** Why there is no figure. */
  skipped?: string;
}

/** What a worker prints. */
export interface WorkerReport {
  /** The runtime the worker ran on. */
  runtime: BenchRuntime;
  /** Its version. */
  runtimeVersion: string;
  /** The dialect measured. */
  dialect: BenchDialect;
  /** Every contender's figure for every workload measured. */
  results: CaseResult[];
}

const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env ?? {};
const argv = (globalThis as { process?: { argv?: string[] } }).process?.argv ?? [];
const option = (name: string) => argv.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3);

const runtime: BenchRuntime = "Bun" in globalThis ? "bun" : "Deno" in globalThis ? "deno" : "node";
const versions = (globalThis as { process?: { versions?: Record<string, string> } }).process?.versions ?? {};
const runtimeVersion = runtime === "bun" ? versions.bun : runtime === "deno" ? versions.deno : versions.node;

const millionRows: Record<BenchDialect, string> = {
  sqlite:
    "with recursive c(n) as (select 1 union all select n + 1 from c where n < 1000000) select n, 'row ' || n as label from c",
  postgres: "select n, 'row ' || n as label from generate_series(1, 1000000) n",
  mysql: "select seq as n, concat('row ', seq) as label from seq_1_to_1000000",
};

const logKey: Record<BenchDialect, string> = {
  sqlite: "id integer primary key autoincrement",
  postgres: "id serial primary key",
  mysql: "id int auto_increment primary key",
};

const loaders: Record<ContenderName, () => Promise<(setup: BenchSetup) => Promise<Contender>>> = {
  raw: async () => (await import("./contenders/raw.ts")).rawContender,
  "raw-bun-sql": async () => (await import("./contenders/raw_bun_sql.ts")).rawBunSqlContender,
  roost: async () => (await import("./contenders/roost.ts")).roostContender,
  "roost-bun-sql": async () => {
    const { roostContender } = await import("./contenders/roost.ts");
    return (setup) => roostContender(setup, undefined, "roost-bun-sql", "bun-sql");
  },
  "roost-postgres-js": async () => {
    const { roostContender } = await import("./contenders/roost.ts");
    return (setup) => roostContender(setup, undefined, "roost-postgres-js", "postgres-js");
  },
  "roost-baseline": async () => (await import("./contenders/roost_baseline.ts")).roostBaselineContender,
  "roost-baseline-bun-sql": async () => (await import("./contenders/roost_baseline.ts")).roostBaselineBunSqlContender,
  kysely: async () => (await import("./contenders/kysely.ts")).kyselyContender,
  "roost-kysely": async () => (await import("./contenders/roost_kysely.ts")).roostKyselyContender,
  drizzle: async () => (await import("./contenders/drizzle.ts")).drizzleContender,
};

const batch: [number, string][] = Array.from({ length: 1_000 }, (_, i) => [i, `label ${i}`]);
const userCount = 10_000;

/** How each throughput case calls a contender: the call for index `i`, and how many run at once. */
const throughputCases: Record<
  Exclude<CaseName, "iterate">,
  { inFlight: number; call(c: Contender, i: number): Promise<unknown> }
> = {
  "point-1": { inFlight: 1, call: (c, i) => c.pointSelect((i * 7_919) % userCount + 1) },
  "point-50": { inFlight: 50, call: (c, i) => c.pointSelect((i * 7_919) % userCount + 1) },
  "select-100": { inFlight: 1, call: (c, i) => c.select100((i * 97) % (userCount - 100)) },
  "insert": { inFlight: 1, call: (c, i) => c.insertOne(i, "label") },
  "transaction": { inFlight: 1, call: (c, i) => c.transaction10(i * 10) },
  "execute-many": { inFlight: 1, call: (c) => c.insertMany(batch) },
};

function urlFor(dialect: BenchDialect, sqlitePath: string): string {
  if (dialect === "postgres") return env.ROOST_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";
  if (dialect === "mysql") return env.ROOST_TEST_MYSQL_URL ?? "mysql://root@127.0.0.1:3306/test";
  return `sqlite://${sqlitePath}`;
}

/** Checks a contender answers what the workloads expect before it is timed. */
async function check(contender: Contender): Promise<void> {
  const row = await contender.pointSelect(5);
  const rows = await contender.select100(10);
  if (Number(row?.id) !== 5 || rows.length !== 100 || Number(rows[0].id) !== 11) {
    throw new Error(`${contender.name} answered wrongly: ${JSON.stringify(row)}, ${rows.length} rows`);
  }
}

/**
 * Runs point selects 50 at a time for a moment, so a pool that opens connections on demand has opened them all
 * (postgres.js and Bun.SQL open up to `max` while every connection is busy). How many connections a driver then
 * rotates through is its own behaviour; without this, it depended on whether a workload with calls in flight
 * (point-50) had run before (raw postgres.js reuses its one connection until then, and rotates over all ten after).
 */
async function openPool(contender: Contender): Promise<void> {
  await throughput((i) => contender.pointSelect((i * 7_919) % userCount + 1), 50, 0.25);
}

async function main(): Promise<void> {
  const dialect = (option("dialect") ?? "sqlite") as BenchDialect;
  const cases = (option("cases")?.split(",") ?? caseNames) as CaseName[];
  const wanted = (option("contenders")?.split(",") ??
    contenderNames.filter((name) => runsByDefault(name, env.ROOST_BASELINE))) as ContenderName[];
  const rounds = Number(option("rounds") ?? 3);
  const seconds = Number(option("seconds") ?? 1);
  const unknown = [
    ...cases.filter((name) => !caseNames.includes(name)),
    ...wanted.filter((name) => !Object.hasOwn(loaders, name)),
  ];
  if (unknown.length > 0) {
    throw new Error(
      `unknown cases or contenders: ${unknown.join(", ")} (known: ${[...caseNames, ...contenderNames].join(", ")})`,
    );
  }
  const tag = `${runtime}_${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const sqlitePath = `/tmp/roost-bench-${tag}.db`;
  const setup: BenchSetup = {
    dialect,
    runtime,
    url: urlFor(dialect, sqlitePath),
    sqlitePath,
    users: `bench_users_${tag}`,
    log: `bench_log_${tag}`,
    poolSize: 10,
    millionRows: millionRows[dialect],
  };

  const admin = new Database(setup.url);
  const results: CaseResult[] = [];
  const contenders: Contender[] = [];
  try {
    await admin.execute(
      sql`create table ${
        sql.ident(setup.users)
      } (id integer primary key, name varchar(40), email varchar(80), score integer)`,
    );
    await admin.execute(
      sql`create table ${sql.ident(setup.log)} (${sql.unsafe(logKey[dialect])}, n integer, label varchar(40))`,
    );
    const users = Array.from(
      { length: userCount },
      (_, i) => [i + 1, `user ${i + 1}`, `user${i + 1}@example.com`, i % 100],
    );
    await admin.executeMany(
      sql`insert into ${sql.ident(setup.users)} (id, name, email, score) values (${0}, ${""}, ${""}, ${0})`,
      users,
    );
    for (const name of wanted) {
      if (!appliesTo(name, runtime, dialect)) continue;
      const contender = await (await loaders[name]())(setup);
      await check(contender);
      contenders.push(contender);
    }
    // Every pool opens its connections before anything is timed, whatever workload comes first: see "Pools open
    // before timing" in bench/README.md.
    for (const contender of contenders) await openPool(contender);

    for (const caseName of cases) {
      if (caseName === "iterate") {
        for (const contender of contenders) results.push(await measureIterate(contender, rounds));
        continue;
      }
      const { inFlight, call } = throughputCases[caseName];
      const figures = contenders.map(() => [] as number[]);
      for (let round = 0; round < rounds; round++) {
        for (let turn = 0; turn < contenders.length; turn++) {
          const index = (turn + round) % contenders.length;
          const contender = contenders[index];
          const work = (i: number) => call(contender, i);
          if (round === 0) await throughput(work, inFlight, seconds / 2);
          // Each timed turn starts on a collected heap, so no contender pays for the garbage of the one before it
          // (or of the workload before): see "Garbage between turns" in bench/README.md.
          collectGarbage();
          figures[index].push(await throughput(work, inFlight, seconds));
          await admin.execute(sql`delete from ${sql.ident(setup.log)}`);
        }
      }
      contenders.forEach((contender, index) =>
        results.push({
          case: caseName,
          contender: contender.name as ContenderName,
          driver: contender.driver,
          perSecond: median(figures[index]),
          rounds: figures[index],
        })
      );
    }
  } finally {
    for (const contender of contenders) await contender.close();
    await admin.execute(sql`drop table if exists ${sql.ident(setup.users)}`).catch(() => {});
    await admin.execute(sql`drop table if exists ${sql.ident(setup.log)}`).catch(() => {});
    await admin.close();
    if (dialect === "sqlite") {
      const { rmSync } = await import("node:fs");
      for (const suffix of ["", "-wal", "-shm"]) rmSync(sqlitePath + suffix, { force: true });
    }
  }
  const report: WorkerReport = { runtime, runtimeVersion, dialect, results };
  console.log(`RESULT ${JSON.stringify(report)}`);
}

async function measureIterate(contender: Contender, rounds: number): Promise<CaseResult> {
  const base = { case: "iterate" as const, contender: contender.name as ContenderName, driver: contender.driver };
  if (!contender.iterate) return { ...base, skipped: contender.skipped?.iterate ?? "no row stream" };
  const figures: number[] = [];
  let peakBytes = 0;
  for (let round = 0; round < rounds; round++) {
    let count = 0;
    const { ms, peakBytes: peak } = await peakDuring(async () => count = await contender.iterate!());
    if (count !== 1_000_000) throw new Error(`${contender.name} streamed ${count} rows, not 1,000,000`);
    figures.push(count / (ms / 1_000));
    peakBytes = Math.max(peakBytes, peak);
  }
  return { ...base, perSecond: median(figures), rounds: figures, peakBytes };
}

// Imported by run.ts and report.ts for its names and types: it measures only when run itself.
if (import.meta.main) await main();
