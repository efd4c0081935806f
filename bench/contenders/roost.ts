/**
 * Roost on its default driver for the runtime (or a driver named by the
 * contender: "roost-bun-sql" runs the bun-sql driver on Bun's MySQL,
 * "roost-postgres-js" postgres.js on Bun's Postgres), written the way
 * its README shows: `sql` templates with the table named in the text, so the
 * compiled text of each template is cached as it is for a literal template.
 *
 * @module
 */
import { Database, type Sql, sql } from "../../mod.ts";
import { defaultDrivers, type DriverName } from "../../src/drivers/mod.ts";
import type { BenchSetup, Contender, UserRow } from "./contender.ts";

/** What the Roost contender needs of the package: this checkout's, or a baseline's (roost_baseline.ts). */
export interface RoostLibrary {
  /** The `Database` class. */
  Database: typeof Database;
  /** The `sql` tag. */
  sql: typeof sql;
}

/**
 * A template like the one `sql\`…\`` receives for `text`, split at each `?`.
 * A literal template keeps the same strings array on every call, which is
 * what lets Roost cache its compiled text; this keeps one too.
 */
function template(tag: typeof sql, text: string): (...values: unknown[]) => Sql {
  const strings = Object.freeze(Object.assign(text.split("?"), { raw: text.split("?") })) as TemplateStringsArray;
  // Called with its values as arguments, as a literal template is: no rest array and spread per call.
  switch (strings.length - 1) {
    case 1:
      return (a) => tag(strings, a);
    case 2:
      return (a, b) => tag(strings, a, b);
    default:
      return (...values) => tag(strings, ...values);
  }
}

/** Roost's driver names as the results name the driver (the raw contenders' `driver`). */
const driverLabels: Partial<Record<DriverName, string>> = {
  "postgres-js": "postgres.js",
  "mysql2": "mysql2",
  "bun-sql": "Bun.SQL",
  "bun-sqlite": "bun:sqlite",
  "node-sqlite": "node:sqlite",
};

const runtime = "Bun" in globalThis ? "bun" : "Deno" in globalThis ? "deno" : "node";

/** The name a Roost contender goes by in the results. */
export type RoostContenderName =
  | "roost"
  | "roost-baseline"
  | "roost-bun-sql"
  | "roost-postgres-js"
  | "roost-baseline-bun-sql";

/**
 * Opens the Roost database every Roost contender measures: a pool of
 * `setup.poolSize` on `driver` (the runtime's default when not given),
 * connected. Resolves to it and the driver's name as the results show it.
 */
export async function openRoost(
  setup: BenchSetup,
  library: RoostLibrary = { Database, sql },
  driver?: DriverName,
): Promise<{ db: Database; driver: string }> {
  const db = new library.Database(setup.url, { pool: { max: setup.poolSize }, ...(driver ? { driver } : {}) });
  await db.connect();
  const name = driver ?? defaultDrivers[runtime][setup.dialect];
  return { db, driver: name === undefined ? "?" : driverLabels[name] ?? name };
}

/**
 * Roost with a pool of `setup.poolSize` on the runtime's default driver, or
 * on `driver`; `library` and `name` measure another checkout of Roost the
 * same way.
 */
export async function roostContender(
  setup: BenchSetup,
  library: RoostLibrary = { Database, sql },
  name: RoostContenderName = "roost",
  driver?: DriverName,
): Promise<Contender> {
  const { db, driver: driverLabel } = await openRoost(setup, library, driver);
  const tag = library.sql;
  const point = template(tag, `select id, name, email, score from ${setup.users} where id = ?`);
  const range = template(tag, `select id, name, email, score from ${setup.users} where id > ? order by id limit 100`);
  const insert = template(tag, `insert into ${setup.log} (n, label) values (?, ?)`);
  const million = tag.unsafe(setup.millionRows);
  return {
    name,
    driver: driverLabel,
    pointSelect: (id) => db.fetchOne<UserRow>(point(id)),
    select100: (after) => db.fetchAll<UserRow>(range(after)),
    async insertOne(n, label) {
      await db.execute(insert(n, label));
    },
    async transaction10(n) {
      await db.transaction(async (tx) => {
        for (let i = 0; i < 10; i++) await tx.execute(insert(n + i, "tx"));
      });
    },
    async insertMany(rows) {
      await db.executeMany(insert(0, ""), rows);
    },
    async iterate() {
      let count = 0;
      for await (const _ of db.iterate(million, undefined, { batchSize: 1_000 })) count++;
      return count;
    },
    close: () => db.close(),
  };
}
