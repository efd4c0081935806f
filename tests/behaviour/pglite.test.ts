/**
 * What is particular to PGlite (Postgres compiled to WebAssembly, in this
 * process), beyond the Postgres behaviour the rest of the suite checks on the
 * `[pglite · pglite]` target: a data directory kept across instances and held
 * by one at a time, the pool of one that statements, scopes and transactions
 * take turns on, and a statement timeout that cannot interrupt a statement.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { ConnectionError, Database, QueryError, sql } from "../../mod.ts";
import { statSync, writeFileSync } from "node:fs";
import { runScript, tempDatabasePath, uniqueTable } from "../support/support.ts";
import { targets } from "../support/targets.ts";

for (const target of targets({ places: ["pglite"] })) {
  describe(`PGlite's own rules on ${target.label}`, () => {
    const instances: Database[] = [];
    const open = (url: string, options = {}) => {
      const db = new Database(url, options);
      instances.push(db);
      return db;
    };
    after(async () => {
      await Promise.all(instances.map((db) => db.close()));
    });

    // Two starts of a data directory (initdb on disk, then opening it again) take seconds of CPU each.
    test("a data directory keeps its rows across instances and is held by one at a time; close releases it", {
      timeout: 300_000,
    }, async () => {
      // A directory of its own under the suite's scratch directory (removed when the process exits).
      const url = `pglite:${tempDatabasePath().replace(/\.db$/, "")}`;
      const first = open(url);
      const table = uniqueTable("pglite_dir");
      await first.execute(sql`create table ${table} (v int)`);
      await first.execute(sql`insert into ${table} values (${1})`);
      const second = open(url);
      const refused = await second.fetchAll(sql`select 1`).then(() => undefined, (error: unknown) => error);
      assert.ok(refused instanceof ConnectionError, String(refused));
      assert.equal(refused.code, "ROOST_PGLITE_DIRECTORY_IN_USE");
      await first.close();
      // The refused connection was never kept: the next statement opens the directory anew.
      assert.deepEqual(await second.fetchAll(sql`select v from ${table}`), [{ v: 1 }]);
    });

    // Two child processes each start a database (initdb in the first): seconds of CPU each.
    test(
      "ROOST_PGLITE_TEMPLATE: a file that is no template is replaced by one, which the next process loads as it is",
      {
        timeout: 300_000,
      },
      async () => {
        const file = tempDatabasePath().replace(/\.db$/, ".tar");
        writeFileSync(file, "not a PGlite cluster");
        const fixture = "tests/support/fixtures/forgotten_pglite.ts";
        const first = await runScript(fixture, [], { ROOST_PGLITE_TEMPLATE: file });
        assert.equal(first.code, 0, first.stdout + first.stderr);
        assert.match(first.stdout, /first\s+second\s+done/);
        const written = statSync(file);
        assert.ok(written.size > 1_000_000, `a cluster of ${written.size} bytes`);
        const second = await runScript(fixture, [], { ROOST_PGLITE_TEMPLATE: file });
        assert.equal(second.code, 0, second.stdout + second.stderr);
        assert.match(second.stdout, /first\s+second\s+done/);
        // Loaded, not written again.
        const after = statSync(file);
        assert.deepEqual([after.ino, after.mtimeMs, after.size], [written.ino, written.mtimeMs, written.size]);
      },
    );

    test("one connection: concurrent statements, scopes and transactions take turns on it", async () => {
      const db = open(target.url, { pool: { max: 10 } });
      const table = uniqueTable("pglite_turns");
      await db.execute(sql`create table ${table} (k int, v int)`);
      const work = Array.from({ length: 20 }, (_, k) =>
        k % 2 === 0
          ? db.transaction(async (tx) => {
            await tx.execute(sql`insert into ${table} values (${k}, ${1})`);
            await tx.execute(sql`update ${table} set v = v + 1 where k = ${k}`);
          })
          : db.execute(sql`insert into ${table} values (${k}, ${2})`));
      await Promise.all(work);
      assert.equal(await db.fetchVal(sql`select sum(v)::int from ${table}`), 40);
      assert.equal(db.stats().primary.size, 1);
      // A transaction's failure leaves the others alone, and the connection serves.
      await assert.rejects(db.transaction(async (tx) => {
        await tx.execute(sql`insert into ${table} values (${100}, ${1})`);
        await tx.execute(sql`select 1/0`);
      }));
      assert.equal(await db.fetchVal(sql`select count(*)::int from ${table} where k = 100`), 0);
    });

    test("isolation and read-only: each transaction runs at its level; a read-only one refuses a write (25006)", async () => {
      const db = open(target.url);
      const table = uniqueTable("pglite_ro");
      await db.execute(sql`create table ${table} (v int)`);
      for (const isolation of ["read committed", "repeatable read", "serializable"] as const) {
        const seen = await db.transaction(
          (tx) => tx.fetchVal(sql`select current_setting('transaction_isolation')`),
          { isolation },
        );
        assert.equal(seen, isolation);
      }
      const refused = await db.transaction((tx) => tx.execute(sql`insert into ${table} values (${1})`), {
        readOnly: true,
      }).then(() => undefined, (error: unknown) => error);
      assert.ok(refused instanceof QueryError, String(refused));
      assert.equal(refused.code, "25006");
      // The next transaction has the defaults again.
      await db.transaction((tx) => tx.execute(sql`insert into ${table} values (${2})`));
      assert.deepEqual(await db.fetchAll(sql`select v from ${table}`), [{ v: 2 }]);
    });

    test("an extension PGlite was not given is a QueryError 0A000; plpgsql is there", async () => {
      const db = open(target.url);
      const refused = await db.execute(sql`create extension if not exists hstore`).then(
        () => undefined,
        (error: unknown) => error,
      );
      assert.ok(refused instanceof QueryError, String(refused));
      assert.equal(refused.code, "0A000");
      await db.execute(sql`create extension if not exists plpgsql`);
    });

    test("statementTimeout cannot interrupt a statement: it runs to its end, as on SQLite", async () => {
      const db = open(target.url, { statementTimeout: 20 });
      assert.equal(await db.fetchVal(sql`select pg_sleep(0.2) is not null as slept`), true);
      assert.equal(await db.fetchVal(sql`show statement_timeout`), "0");
    });

    test("iterate on the pool of one: a query inside the loop runs (the stream reads its rest first)", async () => {
      const db = open(target.url);
      let seen = 0;
      for await (const row of db.iterate<{ n: number }>(sql`select n from generate_series(1, 2500) n`)) {
        seen++;
        if (row.n % 1000 === 0) assert.equal(await db.fetchVal(sql`select ${row.n}::int`), row.n);
      }
      assert.equal(seen, 2500);
      assert.equal(db.stats().primary.size, 1);
    });
  });
}
