/**
 * Why the Postgres transaction figure of `run.ts` depended on the order of
 * the workloads (issue 23, point 4). Opens the contenders as the worker does
 * (pools of 10), then, for each contender alone, runs 100 sequential
 * 10-statement transactions and counts the server backends that served them;
 * then times the contenders' transactions against each other in fine
 * alternation (`--per` transactions per turn, turns rotating, `--turns`
 * rounds), so both share the machine's noise. It does both twice: with the
 * pools as the checks and `--warm-up` sequential transactions left them (one
 * connection each, as when `transaction` comes before any workload with
 * calls in flight), and again after 50 point selects in flight for a moment
 * (as after `point-50`).
 *
 *   node bench/transaction_order.ts [--contenders=raw,roost] [--turns=40] [--per=25] [--warm-up=500]
 *                                   [--synchronous-commit=off]   (set on the script's own database only)
 *   deno run -A bench/transaction_order.ts
 *   bun bench/transaction_order.ts --contenders=raw-bun-sql,roost
 *   bun bench/transaction_order.ts --contenders=raw,roost-postgres-js
 *
 * @module
 */
import { Database, sql } from "../mod.ts";
import type { BenchSetup, Contender } from "./contenders/contender.ts";
import { throughput } from "./measure.ts";

const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env ?? {};
const argv = (globalThis as { process?: { argv?: string[] } }).process?.argv ?? [];
const option = (name: string) => argv.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3);
const runtime = "Bun" in globalThis ? "bun" : "Deno" in globalThis ? "deno" : "node";
const names = (option("contenders") ?? "raw,roost").split(",");
const turns = Number(option("turns") ?? 40);
const per = Number(option("per") ?? 25);
const warmUp = Number(option("warm-up") ?? 500);
const synchronousCommit = option("synchronous-commit");
if (synchronousCommit !== undefined && synchronousCommit !== "on" && synchronousCommit !== "off") {
  throw new Error(`--synchronous-commit takes on or off, not ${synchronousCommit}`);
}
const userCount = 10_000;

const tag = `order_${runtime}_${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
/** A database of its own, so the backends counted are this script's only. */
const serverUrl = new URL(env.ROOST_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test");
const ownUrl = new URL(serverUrl);
ownUrl.pathname = `/${tag}`;
const setup: BenchSetup = {
  dialect: "postgres",
  runtime,
  url: ownUrl.href,
  sqlitePath: "",
  users: `bench_users_${tag}`,
  log: `bench_log_${tag}`,
  poolSize: 10,
  millionRows: "select 1",
};

async function open(name: string): Promise<Contender> {
  if (name === "raw") return await (await import("./contenders/raw.ts")).rawContender(setup);
  if (name === "raw-bun-sql") return await (await import("./contenders/raw_bun_sql.ts")).rawBunSqlContender(setup);
  const { roostContender } = await import("./contenders/roost.ts");
  if (name === "roost") return await roostContender(setup);
  if (name === "roost-postgres-js") return await roostContender(setup, undefined, name, "postgres-js");
  if (name === "roost-bun-sql") return await roostContender(setup, undefined, name, "bun-sql");
  throw new Error(`unknown contender ${name} (raw, raw-bun-sql, roost, roost-postgres-js, roost-bun-sql)`);
}

const server = new Database(serverUrl.href, { pool: { max: 1 } });
await server.execute(sql`create database ${sql.ident(tag)}`);
if (synchronousCommit !== undefined) {
  // Whether a commit's wait for its WAL flush is what makes the next transaction on the same backend slower.
  await server.execute(
    sql`alter database ${sql.ident(tag)} set synchronous_commit = ${sql.unsafe(synchronousCommit)}`,
  );
}
const admin = new Database(setup.url, { pool: { max: 1 } });
let next = 0;

/** How many server backends ran `contender`'s next 100 transactions (those whose last statement began meanwhile). */
async function backendsUsed(contender: Contender): Promise<number> {
  const [{ since }] = await admin.fetchAll<{ since: string }>(sql`select clock_timestamp()::text as since`);
  for (let i = 0; i < 100; i++) await contender.transaction10(next++ * 10);
  const row = await admin.fetchOne<{ n: number }>(
    sql`select count(*)::int as n from pg_stat_activity
        where datname = ${tag} and pid <> pg_backend_pid() and state_change >= ${since}::timestamptz`,
  );
  return row?.n ?? 0;
}

/** Transactions per second of each contender, timed in alternation. */
async function alternate(contenders: Contender[]): Promise<number[]> {
  const ms = contenders.map(() => 0);
  for (let turn = 0; turn < turns; turn++) {
    for (let k = 0; k < contenders.length; k++) {
      const index = (turn + k) % contenders.length;
      const started = performance.now();
      for (let i = 0; i < per; i++) await contenders[index].transaction10(next++ * 10);
      ms[index] += performance.now() - started;
    }
  }
  return ms.map((total) => turns * per / (total / 1_000));
}

const contenders: Contender[] = [];
try {
  await admin.execute(
    sql`create table ${
      sql.ident(setup.users)
    } (id integer primary key, name varchar(40), email varchar(80), score integer)`,
  );
  await admin.execute(sql`create table ${sql.ident(setup.log)} (id serial primary key, n integer, label varchar(40))`);
  await admin.execute(
    sql`insert into ${sql.ident(setup.users)} select i, 'user ' || i, 'user' || i || '@example.com', i % 100
        from generate_series(1, ${userCount}) i`,
  );
  for (const name of names) {
    const contender = await open(name);
    await contender.pointSelect(5);
    await contender.select100(10);
    contenders.push(contender);
  }
  // Warmed up one call at a time (which opens no connection), so neither state is timed on colder code than the other.
  for (const contender of contenders) {
    for (let i = 0; i < warmUp; i++) await contender.transaction10(next++ * 10);
  }
  for (const state of ["as the checks left them", "after 50 in flight"]) {
    if (state !== "as the checks left them") {
      for (const contender of contenders) {
        await throughput((i) => contender.pointSelect((i * 7_919) % userCount + 1), 50, 0.25);
      }
    }
    const used: number[] = [];
    for (const contender of contenders) used.push(await backendsUsed(contender));
    const rates = await alternate(contenders);
    const load = (await import("node:os")).loadavg()[0].toFixed(2);
    console.log(
      `${runtime}, pools ${state} (load ${load}): ${
        contenders.map((c, i) => `${c.name} ${rates[i].toFixed(0)}/s on ${used[i]} backend(s)`).join(", ")
      }; ${
        contenders.slice(1).map((c, i) => `${c.name}/${contenders[0].name} ${(rates[i + 1] / rates[0]).toFixed(2)}`)
      }`,
    );
  }
} finally {
  for (const contender of contenders) await contender.close();
  await admin.close();
  await server.execute(sql`drop database if exists ${sql.ident(tag)} with (force)`);
  await server.close();
}
