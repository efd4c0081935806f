/**
 * Two figures per dialect:
 * - executeMany of 1,000 rows against 1,000 execute calls (same rows, same table);
 * - peak memory while iterating 1,000,000 rows, against fetchAll of the same rows.
 *
 *   node bench/batch_and_stream.ts [sqlite|postgres|mysql ...]
 *   deno run -A bench/batch_and_stream.ts
 *   bun bench/batch_and_stream.ts
 *   BENCH_DRIVER=bun-sql BENCH_DIALECTS=postgres,mysql bun bench/batch_and_stream.ts
 */
import { Database, type DriverName, sql } from "../mod.ts";

const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env ?? {};
const urls: Record<string, string> = {
  sqlite: `sqlite:///tmp/roost-bench-${Date.now()}.db`,
  postgres: env.ROOST_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test",
  mysql: env.ROOST_TEST_MYSQL_URL ?? "mysql://root@127.0.0.1:3306/test",
};
const runtime = "Bun" in globalThis ? "bun" : "Deno" in globalThis ? "deno" : "node";
const rss = () => (globalThis as { process: { memoryUsage(): { rss: number } } }).process.memoryUsage().rss;
const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

const millionRows = {
  sqlite:
    sql`with recursive c(n) as (select 1 union all select n + 1 from c where n < 1000000) select n, 'row ' || n as label from c`,
  postgres: sql`select n, 'row ' || n as label from generate_series(1, 1000000) n`,
  mysql: sql`select seq as n, concat('row ', seq) as label from seq_1_to_1000000`,
};

async function peakWhile(work: () => Promise<unknown>): Promise<number> {
  (globalThis as { gc?: () => void }).gc?.();
  const before = rss();
  let peak = before;
  const timer = setInterval(() => peak = Math.max(peak, rss()), 5);
  await work();
  clearInterval(timer);
  return Math.max(peak, rss()) - before;
}

for (const dialect of (env.BENCH_DIALECTS?.split(",") ?? Object.keys(urls)) as (keyof typeof urls)[]) {
  const db = new Database(urls[dialect], env.BENCH_DRIVER ? { driver: env.BENCH_DRIVER as DriverName } : {});
  try {
    await db.connect();
  } catch (error) {
    console.log(`${runtime} ${dialect}: skipped (${(error as Error).message})`);
    continue;
  }
  const table = sql.ident(`bench_${runtime}_${Date.now().toString(36)}`);
  await db.execute(sql`create table ${table} (n integer, label varchar(40))`);
  const rows = Array.from({ length: 1_000 }, (_, i) => [i, `label ${i}`]);

  let started = performance.now();
  for (const [n, label] of rows) await db.execute(sql`insert into ${table} (n, label) values (${n}, ${label})`);
  const oneByOne = performance.now() - started;
  await db.execute(sql`delete from ${table}`);
  started = performance.now();
  await db.executeMany(sql`insert into ${table} (n, label) values (${0}, ${""})`, rows);
  const batched = performance.now() - started;
  const count = await db.fetchVal(sql`select count(*) from ${table}`);
  await db.execute(sql`drop table ${table}`);

  let streamed = 0;
  const iteratePeak = await peakWhile(async () => {
    for await (
      const _ of db.iterate(millionRows[dialect as keyof typeof millionRows], undefined, { batchSize: 1000 })
    ) {
      streamed++;
    }
  });
  let fetched = 0;
  const fetchAllPeak = await peakWhile(async () => {
    fetched = (await db.fetchAll(millionRows[dialect as keyof typeof millionRows])).length;
  });
  console.log(
    `${runtime} ${dialect} (${env.BENCH_DRIVER ?? "default driver"}): executeMany 1,000 rows ${
      batched.toFixed(1)
    } ms vs 1,000 execute ${oneByOne.toFixed(1)} ms ` +
      `(${(oneByOne / batched).toFixed(1)}x faster; ${count} rows); iterate ${streamed} rows: peak +${
        mib(iteratePeak)
      } RSS vs fetchAll ${fetched} rows: peak +${mib(fetchAllPeak)}`,
  );
  await db.close();
}
