/**
 * Streams a million rows in a fresh process per figure, outside any scope and
 * inside `connection()` and `transaction()` (and, for Roost on Postgres, under
 * a `statementTimeout`, which streams by FETCH as the scopes do), through
 * Roost and through the raw driver the same way. Prints rows per second and
 * the peak rise of resident memory (issue 23: at most 64 MiB wherever a
 * driver can stream).
 *
 *   node bench/iterate_scoped.ts [--runtimes=node,deno,bun] [--drivers=postgres-js,mysql2,sqlite,deno-postgres]
 *                                [--drivers=pglite] (opt-in: PGlite in memory, the raw contender reading it whole)
 *                                [--scopes=plain,connection,transaction,timeout] [--contenders=raw,roost]
 *                                [--rounds=1] [--baseline=../roost-before]
 *
 * Also `node bench/run.ts --cases=iterate-scoped [--runtimes=…]`, which prints this table after its own.
 * `--baseline` adds the contender "roost-baseline": that checkout's Roost, same run. deno-postgres runs on Deno
 * only, and only with the JSR mirror (JSR_URL set): `../shared/jsr/serve -- node bench/iterate_scoped.ts …`.
 * `sqlite` is the runtime's default SQLite driver. A figure is the median of the rounds' speeds and the highest
 * rise. The machine's other load moves single figures: compare contenders of the same run.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Database as RoostDatabase, DriverName } from "../mod.ts";
import { median, peakDuring } from "./measure.ts";

type Runtime = "node" | "deno" | "bun";
type Driver = "postgres-js" | "mysql2" | "sqlite" | "deno-postgres" | "pglite";
type Scope = "plain" | "connection" | "transaction" | "timeout";
type ContenderName = "raw" | "roost" | "roost-baseline";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const argv = process.argv;
const option = (name: string) => argv.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3);
const list = <T extends string>(name: string, all: readonly T[]) => (option(name)?.split(",") ?? all) as T[];

const rowCount = 1_000_000;
const batchSize = 1_000;
const postgresUrl = process.env.ROOST_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const mysqlUrl = process.env.ROOST_TEST_MYSQL_URL ?? "mysql://root@127.0.0.1:3306/test";
const million = {
  postgres: `select n, 'row ' || n as label from generate_series(1, ${rowCount}) n`,
  mysql: `select seq as n, concat('row ', seq) as label from seq_1_to_${rowCount}`,
  sqlite:
    `with recursive c(n) as (select 1 union all select n + 1 from c where n < ${rowCount}) select n, 'row ' || n as label from c`,
};
const queryOf = (driver: Driver) =>
  driver === "mysql2" ? million.mysql : driver === "sqlite" ? million.sqlite : million.postgres;

/** One figure: a contender streaming through one driver in one scope. */
interface Figure {
  runtime: Runtime;
  driver: Driver;
  scope: Scope;
  contender: ContenderName;
  rowsPerSecond?: number;
  peakBytes?: number;
  skipped?: string;
}

/** Counts what an async iterable yields, a batch counting its length. */
async function count(rows: AsyncIterable<unknown>, batched = false): Promise<number> {
  let seen = 0;
  for await (const item of rows) seen += batched ? (item as unknown[]).length : 1;
  return seen;
}

/** The stream as the raw driver gives it in that scope, or why there is none. */
async function rawStream(driver: Driver, scope: Scope, path: string): Promise<(() => Promise<number>) | string> {
  if (scope === "timeout") return "no statement timeout of its own";
  const query = queryOf(driver);
  switch (driver) {
    case "postgres-js": {
      const { default: postgres } = await import("postgres");
      const sql = postgres(postgresUrl, { max: 1, onnotice: () => {} });
      await sql`select 1`;
      if (scope === "transaction") {
        return () => sql.begin((tx) => count(tx.unsafe(query).cursor(batchSize), true));
      }
      if (scope === "connection") {
        return async () => {
          const reserved = await sql.reserve();
          try {
            return await count(reserved.unsafe(query).cursor(batchSize), true);
          } finally {
            reserved.release();
          }
        };
      }
      return () => count(sql.unsafe(query).cursor(batchSize), true);
    }
    case "mysql2": {
      const mysql = await import("mysql2");
      const pool = mysql.createPool({ uri: mysqlUrl, connectionLimit: 1 });
      return () =>
        new Promise<number>((done, fail) =>
          pool.getConnection((error, connection) => {
            if (error) return fail(error);
            const begin = scope === "transaction" ? "begin" : "do 0";
            connection.query(begin, () => {
              const stream = connection.query(query).stream();
              // (A mysql2 callback query must not be returned into a promise: it refuses `then`.)
              count(stream).then((seen) => {
                connection.query("commit", () => done(seen));
              }, fail).finally(() => connection.release());
            });
          })
        );
    }
    case "sqlite": {
      const db = await openSqlite(path);
      return () => {
        if (scope === "transaction") db.exec("begin");
        let seen = 0;
        for (const _ of db.prepare(query).iterate()) seen++;
        if (scope === "transaction") db.exec("commit");
        return Promise.resolve(seen);
      };
    }
    case "pglite": {
      // PGlite has no cursor API: its own way is the whole result (Roost streams it by DECLARE/FETCH instead).
      const { PGlite } = await import("@electric-sql/pglite");
      const pg = await PGlite.create();
      if (scope !== "plain") return "a whole result whatever the scope";
      return async () => (await pg.query(query)).rows.length;
    }
    case "deno-postgres": {
      // What Roost does on deno-postgres, by hand: deno-postgres reads whole results, so a stream is FETCH batches.
      const specifier = "jsr:@db/postgres@^0.19";
      const { Client } = await import(specifier) as {
        Client: new (url: string) => {
          connect(): Promise<void>;
          queryObject(text: string): Promise<{ rows: unknown[] }>;
        };
      };
      const client = new Client(postgresUrl);
      await client.connect();
      return async () => {
        await client.queryObject("begin");
        await client.queryObject(`declare c no scroll cursor for ${query}`);
        let seen = 0;
        for (;;) {
          const { rows } = await client.queryObject(`fetch ${batchSize} from c`);
          seen += rows.length;
          if (rows.length < batchSize) break;
        }
        await client.queryObject("commit");
        return seen;
      };
    }
  }
}

interface SyncSqlite {
  exec(sql: string): void;
  prepare(sql: string): { iterate(): Iterable<unknown> };
}

async function openSqlite(path: string): Promise<SyncSqlite> {
  if ("Bun" in globalThis) {
    const bun = process.getBuiltinModule("bun:sqlite" as "node:fs") as unknown as {
      Database: new (path: string) => SyncSqlite;
    };
    return new bun.Database(path);
  }
  const { DatabaseSync } = await import("node:sqlite");
  return new DatabaseSync(path) as unknown as SyncSqlite;
}

/** The stream through Roost (this checkout's, or the one at `from`) in that scope. */
async function roostStream(driver: Driver, scope: Scope, path: string, from: string): Promise<() => Promise<number>> {
  const { Database } = await import(join(from, "mod.ts")) as { Database: typeof RoostDatabase };
  const url = driver === "mysql2"
    ? mysqlUrl
    : driver === "sqlite"
    ? `sqlite://${path}`
    : driver === "pglite"
    ? "pglite::memory:"
    : postgresUrl;
  const db = new Database(url, {
    ...(driver !== "sqlite" && { driver: driver as DriverName }),
    ...(scope === "timeout" && { statementTimeout: 600_000 }),
  });
  await db.fetchVal("select 1");
  const query = queryOf(driver);
  const options = { batchSize };
  if (scope === "connection") return () => db.connection((held) => count(held.iterate(query, undefined, options)));
  if (scope === "transaction") return () => db.transaction((tx) => count(tx.iterate(query, undefined, options)));
  return () => count(db.iterate(query, undefined, options));
}

/** Measures one figure in this process. */
async function child(): Promise<Figure> {
  const runtime: Runtime = "Bun" in globalThis ? "bun" : "Deno" in globalThis ? "deno" : "node";
  const figure: Figure = {
    runtime,
    driver: option("driver") as Driver,
    scope: option("scope") as Scope,
    contender: option("contender") as ContenderName,
  };
  const path = `/tmp/roost-iterate-scoped-${process.pid}.db`;
  try {
    const from = figure.contender === "roost-baseline" ? option("baseline")! : root;
    const stream = figure.contender === "raw"
      ? await rawStream(figure.driver, figure.scope, path)
      : await roostStream(figure.driver, figure.scope, path, from);
    if (typeof stream === "string") return { ...figure, skipped: stream };
    const speeds: number[] = [];
    let peak = 0;
    for (let round = 0; round < Number(option("rounds") ?? 1); round++) {
      let seen = 0;
      const { ms, peakBytes } = await peakDuring(async () => seen = await stream());
      if (seen !== rowCount) throw new Error(`streamed ${seen} rows, not ${rowCount}`);
      speeds.push(seen / (ms / 1_000));
      peak = Math.max(peak, peakBytes);
    }
    return { ...figure, rowsPerSecond: median(speeds), peakBytes: peak };
  } finally {
    for (const suffix of ["", "-wal", "-shm"]) rmSync(path + suffix, { force: true });
  }
}

function binary(name: string): string {
  const local = join(root, "node_modules", ".bin", name);
  return existsSync(local) ? local : name;
}

const commands: Record<Runtime, string[]> = {
  node: [binary("node"), "--expose-gc"],
  deno: [binary("deno"), "run", "-A", "--no-lock", "--v8-flags=--expose-gc"],
  bun: [binary("bun")],
};

/**
 * Runs every chosen figure, each in a process of its own, and returns the
 * Markdown table (each row is also printed to stderr as it comes). The
 * options are read from the command line (see the module's doc); `runtimes`
 * overrides `--runtimes` (bench/run.ts passes its own).
 */
export function iterateScopedTable(runtimeList?: readonly Runtime[], dialects?: readonly string[]): string {
  const baseline = option("baseline");
  const runtimes = runtimeList ?? list<Runtime>("runtimes", ["node", "deno", "bun"]);
  const dialectOf: Record<Driver, string> = {
    "postgres-js": "postgres",
    "deno-postgres": "postgres",
    pglite: "postgres",
    mysql2: "mysql",
    sqlite: "sqlite",
  };
  const drivers = list<Driver>("drivers", ["postgres-js", "mysql2", "sqlite", "deno-postgres"])
    .filter((driver) => dialects?.includes(dialectOf[driver]) ?? true);
  const scopes = list<Scope>("scopes", ["plain", "connection", "transaction", "timeout"]);
  // bench/run.ts's other contenders (Kysely, Drizzle…) have no figure here.
  const contenders = list<ContenderName>("contenders", ["raw", "roost", "roost-baseline"])
    .filter((name) => ["raw", "roost", ...baseline ? ["roost-baseline"] : []].includes(name));
  const lines = [
    "| runtime | driver | scope | " + contenders.join(" | ") + " |",
    `|${" --- |".repeat(3 + contenders.length)}`,
  ];
  for (const runtime of runtimes) {
    for (const driver of drivers) {
      if (driver === "deno-postgres" && (runtime !== "deno" || !process.env.JSR_URL)) continue;
      for (const scope of scopes) {
        if (scope === "timeout" && driver !== "postgres-js" && driver !== "deno-postgres") continue;
        const cells = contenders.map((contender) => {
          const [command, ...prefix] = commands[runtime];
          const args = [
            `--driver=${driver}`,
            `--scope=${scope}`,
            `--contender=${contender}`,
            `--rounds=${option("rounds") ?? 1}`,
          ];
          if (baseline) args.push(`--baseline=${resolve(baseline)}`);
          const run = spawnSync(command, [...prefix, fileURLToPath(import.meta.url), "--child", ...args], {
            cwd: root,
            encoding: "utf8",
            env: { ...process.env, NO_COLOR: "1" },
          });
          const line = run.stdout?.split("\n").find((text) => text.startsWith("RESULT "));
          if (line === undefined) return `failed: ${(run.stderr ?? "").trim().split("\n").slice(-1)[0]}`;
          const figure = JSON.parse(line.slice(7)) as Figure;
          if (figure.skipped) return `— (${figure.skipped})`;
          return `${Math.round(figure.rowsPerSecond! / 1_000)}k rows/s, +${
            Math.round(figure.peakBytes! / 2 ** 20)
          } MiB`;
        });
        const row = `| ${runtime} | ${driver} | ${scope} | ${cells.join(" | ")} |`;
        console.error(row);
        lines.push(row);
      }
    }
  }
  return lines.join("\n");
}

if (argv.includes("--child")) {
  try {
    console.log(`RESULT ${JSON.stringify(await child())}`);
    process.exit(0);
  } catch (error) {
    console.error((error as Error).stack ?? error);
    process.exit(1);
  }
} else if (import.meta.main) {
  console.log(iterateScopedTable());
}
