/**
 * Deno's drivers for each dialect, side by side through Roost in one run:
 * postgres-js against deno-postgres (jsr:@db/postgres), node-sqlite against
 * deno-sqlite (jsr:@db/sqlite). For the question whether either JSR driver
 * should be Deno's default. Prints a table of medians (ms) over the rounds,
 * then, for each driver in a fresh process (`--million=<driver>`), the time
 * and peak memory rise of `iterate` over a million rows.
 *
 *   DENO_SQLITE_PATH=$(ls /usr/lib/*\/libsqlite3.so.0 | head -1) \
 *     ../shared/jsr/serve -- deno run -A --no-lock bench/deno_drivers.ts [--rounds=5]
 *
 * @module
 */
import { Database, type DriverName, sql } from "../mod.ts";
import { peakDuring } from "./measure.ts";

const rounds = Number(Deno.args.find((arg) => arg.startsWith("--rounds="))?.slice(9) ?? 5);
const postgresUrl = Deno.env.get("ROOST_TEST_POSTGRES_URL") ?? "postgres://postgres@127.0.0.1:5432/test";
const pairs: [string, string, DriverName[]][] = [
  ["postgres", postgresUrl, ["postgres-js", "deno-postgres"]],
  ["sqlite", `sqlite://${Deno.makeTempDirSync()}/bench.db`, ["node-sqlite", "deno-sqlite"]],
];

type Case = (db: Database, table: ReturnType<typeof sql.ident>) => Promise<void>;
const cases: [string, Case][] = [
  ["200 point queries, one at a time", async (db) => {
    for (let i = 0; i < 200; i++) await db.fetchVal(sql`select ${i} + 1 as v`);
  }],
  ["200 point queries in one connection()", async (db) => {
    await db.connection(async (held) => {
      for (let i = 0; i < 200; i++) await held.fetchVal(sql`select ${i} + 1 as v`);
    });
  }],
  ["200 point queries, 50 in flight", async (db) => {
    for (let batch = 0; batch < 4; batch++) {
      await Promise.all(Array.from({ length: 50 }, (_, i) => db.fetchVal(sql`select ${i} + 1 as v`)));
    }
  }],
  ["executeMany, 1,000 rows", async (db, table) => {
    const rows = Array.from({ length: 1000 }, (_, i) => [i, `name ${i}`]);
    await db.transaction(async (tx) => {
      await tx.execute(sql`delete from ${table}`);
      await tx.executeMany(sql`insert into ${table} (id, name) values (${0}, ${""})`, rows);
    });
  }],
  ["iterate 1,000 rows", async (db, table) => {
    let n = 0;
    for await (const _ of db.iterate(sql`select id, name from ${table}`)) n++;
    if (n !== 1000) throw new Error(`read ${n} rows`);
  }],
];

const median = (values: number[]) => values.toSorted((a, b) => a - b)[Math.floor(values.length / 2)];

/** A million rows, in each dialect of the pairs. */
const millionRows = {
  postgres: "select n, 'row ' || n as label from generate_series(1, 1000000) n",
  sqlite:
    "with recursive c(n) as (select 1 union all select n + 1 from c where n < 1000000) select n, 'row ' || n as label from c",
};

const million = Deno.args.find((arg) => arg.startsWith("--million="))?.slice(10);
if (million !== undefined) {
  // One driver's stream of a million rows in this (fresh) process: seconds and peak RSS rise.
  const [dialect, url] = pairs.find(([, , drivers]) => drivers.includes(million as DriverName))!;
  await using db = new Database(url, { driver: million as DriverName });
  await db.fetchVal("select 1");
  let rows = 0;
  const { ms, peakBytes } = await peakDuring(async () => {
    for await (const _ of db.iterate(millionRows[dialect as keyof typeof millionRows])) rows++;
  });
  if (rows !== 1_000_000) throw new Error(`read ${rows} rows`);
  console.log(`${(ms / 1000).toFixed(2)} s, +${Math.round(peakBytes / 2 ** 20)} MiB`);
  Deno.exit(0);
}

for (const [dialect, url, drivers] of pairs) {
  console.log(`\n${dialect}: median of ${rounds} rounds, ms (lower is better)`);
  console.log(`| case | ${drivers.join(" | ")} |\n| --- |${drivers.map(() => " --- |").join("")}`);
  const results = new Map<string, number[]>();
  for (const driver of drivers) {
    await using db = new Database(url, { driver, pool: { max: 10 } });
    const table = sql.ident(`roost_bench_${driver.replace("-", "_")}_${Date.now().toString(36)}`);
    await db.execute(sql`create table ${table} (id integer primary key, name varchar(40) not null)`);
    try {
      for (const [name, run] of cases) {
        await run(db, table); // warm-up
        const times: number[] = [];
        for (let round = 0; round < rounds; round++) {
          const started = performance.now();
          await run(db, table);
          times.push(performance.now() - started);
        }
        results.set(`${name}|${driver}`, times);
      }
    } finally {
      await db.execute(sql`drop table ${table}`);
    }
  }
  for (const [name] of cases) {
    const cells = drivers.map((driver) => median(results.get(`${name}|${driver}`)!).toFixed(1));
    console.log(`| ${name} | ${cells.join(" | ")} |`);
  }
}

console.log("\niterate 1,000,000 rows, each in a fresh process: seconds, peak RSS rise");
for (const [, , drivers] of pairs) {
  for (const driver of drivers) {
    const args = ["run", "-A", "--no-lock", new URL(import.meta.url).pathname, `--million=${driver}`];
    const { stdout, stderr, success } = await new Deno.Command(Deno.execPath(), { args }).output();
    const text = new TextDecoder().decode(success ? stdout : stderr).trim();
    console.log(`| ${driver} | ${success ? text : `failed: ${text.split("\n")[0]}`} |`);
  }
}
