/**
 * Deno only, with Deno's own test API and jsr:@std/assert (the assertion
 * library the product lists): the JSR drivers on the real @db/postgres and
 * @db/sqlite, served by the JSR registry tests/run.ts points Deno at (the
 * local mirror in CI). tests/run.ts adds this file to the Deno runner only
 * when a registry is served; the cross-runtime suite keeps node:assert.
 *
 *   ../shared/jsr/serve -- deno test -A --no-lock tests/deno/jsr_drivers.deno.ts
 *
 * @module
 */
import { assertEquals, assertInstanceOf, assertRejects } from "@std/assert";
import { ConfigError, Database, sql } from "../../mod.ts";
import { denoPostgres } from "../../src/drivers/postgres/deno_postgres.ts";
import { denoSqlite } from "../../src/drivers/sqlite/deno_sqlite.ts";

const postgresUrl = Deno.env.get("ROOST_TEST_POSTGRES_URL") ?? "postgres://postgres@127.0.0.1:5432/test";

const targets = [
  { label: "postgres · deno-postgres", url: postgresUrl, driver: denoPostgres },
  { label: "sqlite memory · deno-sqlite", url: "sqlite::memory:", driver: denoSqlite },
] as const;

Deno.test("JSR drivers on Deno's own test runner", async (t) => {
  for (const { label, url, driver } of targets) {
    await t.step(`[${label}] a query, a transaction and a stream on the real library`, async () => {
      await using db = new Database(url, { driver, pool: { max: 2 } });
      const table = sql.ident(`roost_deno_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 6)}`);
      await db.execute(sql`create table ${table} (id integer primary key, name varchar(40) not null)`);
      try {
        await db.transaction(async (tx) => {
          await tx.executeMany(sql`insert into ${table} (id, name) values (${0}, ${""})`, [[1, "owl"], [2, "wren"]]);
        });
        const names: string[] = [];
        for await (const row of db.iterate(sql`select name from ${table} order by id`)) names.push(String(row.name));
        assertEquals(names, ["owl", "wren"]);
        assertEquals(await db.fetchVal(sql`select cast(${2n ** 62n + 1n} as bigint) as v`), 2n ** 62n + 1n);
      } finally {
        await db.execute(sql`drop table ${table}`);
      }
    });

    await t.step(`[${label}] a bad statement is a typed error and the pool goes on`, async () => {
      await using db = new Database(url, { driver, pool: { max: 1 } });
      await assertRejects(() => db.execute(sql`select * from roost_no_such_table_here`));
      assertEquals(await db.fetchVal(sql`select 1 + 1 as two`), 2);
    });
  }

  await t.step("a JSR driver off its dialect is a ConfigError at construction", () => {
    try {
      new Database("sqlite::memory:", { driver: denoPostgres });
      throw new Error("expected a ConfigError");
    } catch (error) {
      assertInstanceOf(error, ConfigError);
    }
  });
});
