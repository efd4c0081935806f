/**
 * Roost on its default driver for the runtime, written the way its README
 * shows: `sql` templates with the table named in the text, so the compiled
 * text of each template is cached as it is for a literal template.
 *
 * @module
 */
import { Database, type Sql, sql } from "../../mod.ts";
import type { BenchSetup, Contender, UserRow } from "./contender.ts";

/**
 * A template like the one `sql\`…\`` receives for `text`, split at each `?`.
 * A literal template keeps the same strings array on every call, which is
 * what lets Roost cache its compiled text; this keeps one too.
 */
function template(text: string): (...values: unknown[]) => Sql {
  const strings = Object.freeze(Object.assign(text.split("?"), { raw: text.split("?") })) as TemplateStringsArray;
  return (...values) => sql(strings, ...values);
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
export async function openRoost(setup: BenchSetup): Promise<{ db: Database; driver: string }> {
  const db = new Database(setup.url, { pool: { max: setup.poolSize } });
  await db.connect();
  return { db, driver: defaultDrivers[setup.dialect] };
}

/** Roost with a pool of `setup.poolSize` on the runtime's default driver. */
export async function roostContender(setup: BenchSetup): Promise<Contender> {
  const { db, driver } = await openRoost(setup);
  const point = template(`select id, name, email, score from ${setup.users} where id = ?`);
  const range = template(`select id, name, email, score from ${setup.users} where id > ? order by id limit 100`);
  const insert = template(`insert into ${setup.log} (n, label) values (?, ?)`);
  const million = sql.unsafe(setup.millionRows);
  return {
    name: "roost",
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
