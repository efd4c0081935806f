/**
 * Roost on its default driver for the runtime, written the way its README
 * shows: `sql` templates with the table named in the text, so the compiled
 * text of each template is cached as it is for a literal template.
 *
 * @module
 */
import { Database, type Sql, sql } from "../../mod.ts";
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
  return (...values) => tag(strings, ...values);
}

/** The driver Roost uses by default on this runtime, by dialect, as the results name it. */
const defaultDrivers: Record<BenchSetup["dialect"], string> = {
  postgres: "postgres.js",
  mysql: "mysql2",
  sqlite: "Bun" in globalThis ? "bun:sqlite" : "node:sqlite",
};

/**
 * Opens the Roost database every Roost contender measures: a pool of
 * `setup.poolSize` on the runtime's default driver, connected. Resolves to
 * it and the driver's name as the results show it.
 */
export async function openRoost(
  setup: BenchSetup,
  library: RoostLibrary = { Database, sql },
): Promise<{ db: Database; driver: string }> {
  const db = new library.Database(setup.url, { pool: { max: setup.poolSize } });
  await db.connect();
  return { db, driver: defaultDrivers[setup.dialect] };
}

/**
 * Roost with a pool of `setup.poolSize` on the runtime's default driver;
 * `library` and `name` measure another checkout of Roost the same way.
 */
export async function roostContender(
  setup: BenchSetup,
  library: RoostLibrary = { Database, sql },
  name: "roost" | "roost-baseline" = "roost",
): Promise<Contender> {
  const { db, driver } = await openRoost(setup, library);
  const tag = library.sql;
  const point = template(tag, `select id, name, email, score from ${setup.users} where id = ?`);
  const range = template(tag, `select id, name, email, score from ${setup.users} where id > ? order by id limit 100`);
  const insert = template(tag, `insert into ${setup.log} (n, label) values (?, ?)`);
  const million = tag.unsafe(setup.millionRows);
  return {
    name,
    driver,
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
