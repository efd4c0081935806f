/** Every query method, every parameter type, every query shape, on every target. */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { inspect } from "node:util";
import { Database, QueryError, sql } from "../../mod.ts";
import { columnType, skipUnless, uniqueTable } from "../support/support.ts";
import { matches, serverDialects, sessionParametersUnset, targets, transactionPooled } from "../support/targets.ts";

for (const target of targets()) {
  describe(`queries on ${target.label}`, () => {
    let db: Database;
    const users = uniqueTable("users");

    before(async () => {
      db = target.open();
      const id = sql.unsafe(columnType(target.dialect, "autoId"));
      await db.execute(sql`create table ${users} (id ${id}, name varchar(100) not null unique, age integer)`);
    });
    after(async () => {
      await db.execute(sql`drop table ${users}`);
      await db.close();
    });

    if (target.place === "pglite") {
      // A pglite: URL takes no options (no application name; PGlite cannot time a statement).
      test("sessions start in UTC with ISO dates, with no statement timeout", async () => {
        const row = await db.fetchOne(sql`select current_setting('TimeZone') as tz,
          current_setting('DateStyle') as style, current_setting('statement_timeout') as timeout`);
        assert.deepEqual(row, { tz: "UTC", style: "ISO, MDY", timeout: "0" });
      });
    } else if (target.dialect === "postgres") {
      test(
        "sessions start in UTC with ISO dates and the URL's application_name and statement_timeout",
        skipUnless(sessionParametersUnset(target) === undefined, sessionParametersUnset(target) ?? ""),
        async () => {
          const url = new URL(target.url);
          url.searchParams.set("application_name", "roost_probe");
          // Behind a transaction pooler a statement timeout is refused (tests/behaviour/pgbouncer.test.ts); the
          // start-up parameters, which PgBouncer sets on each server session it hands out, still hold.
          const pooled = transactionPooled(target);
          if (!pooled) url.searchParams.set("statement_timeout", "4321");
          const session = new Database(url.toString(), {
            driver: target.driver,
          });
          try {
            const row = await session.fetchOne(sql`select current_setting('TimeZone') as tz,
            current_setting('DateStyle') as style, current_setting('application_name') as app,
            current_setting('statement_timeout') as timeout`);
            assert.deepEqual(row, {
              tz: "UTC",
              style: "ISO, MDY",
              app: "roost_probe",
              timeout: pooled ? "0" : "4321ms",
            });
          } finally {
            await session.close();
          }
        },
      );
    }

    test("execute reports the row count and the inserted id", async () => {
      const inserted = await db.execute(sql`insert into ${users} (name, age) values (${"Ada"}, ${36})`);
      assert.equal(inserted.rowCount, 1);
      // Postgres reports no insert id: use `insert … returning id` there.
      assert.equal(typeof inserted.lastInsertId, target.dialect === "postgres" ? "undefined" : "number");
      const updated = await db.execute(sql`update ${users} set age = age + 1 where name = ${"Ada"}`);
      assert.deepEqual(updated, { rowCount: 1 });
      const deleted = await db.execute(sql`delete from ${users} where name = ${"Ada"}`);
      assert.equal(deleted.rowCount, 1);
    });

    test("fetchAll returns plain objects, fetchOne the first row or undefined, fetchVal the first column", async () => {
      await db.executeMany(sql`insert into ${users} (name, age) values (${""}, ${0})`, [["Bea", 30], ["Cy", 40]]);
      const rows = await db.fetchAll<{ name: string; age: number }>(
        sql`select name, age from ${users} where name in (${sql.join(["Bea", "Cy"])}) order by name`,
      );
      assert.deepEqual(rows, [{ name: "Bea", age: 30 }, { name: "Cy", age: 40 }]);
      assert.equal(Object.getPrototypeOf(rows[0]), Object.prototype);
      assert.deepEqual(await db.fetchOne(sql`select name from ${users} where name = ${"Cy"}`), { name: "Cy" });
      assert.equal(await db.fetchOne(sql`select name from ${users} where name = ${"nobody"}`), undefined);
      assert.equal(await db.fetchVal(sql`select age from ${users} where name = ${"Bea"}`), 30);
      assert.equal(await db.fetchVal(sql`select age from ${users} where name = ${"nobody"}`), undefined);
      await db.execute(sql`delete from ${users}`);
    });

    test("a statement run before sees a table's new columns after it is dropped and made again, also from another connection", async () => {
      const shape = uniqueTable("shape");
      await db.execute(sql`create table ${shape} (a integer, b integer)`);
      await db.execute(sql`insert into ${shape} (a, b) values (${1}, ${2})`);
      try {
        assert.deepEqual(await db.fetchOne(sql`select * from ${shape}`), { a: 1, b: 2 });
        assert.deepEqual(await db.fetchAll(sql`select * from ${shape}`), [{ a: 1, b: 2 }]);
        // Held here, so the statements inside run on another connection than the one the reads above may keep.
        await db.connection(async () => {
          await db.execute(sql`drop table ${shape}`);
          await db.execute(sql`create table ${shape} (x integer, y integer)`);
          await db.execute(sql`insert into ${shape} (x, y) values (${3}, ${4})`);
        });
        assert.deepEqual(await db.fetchOne(sql`select * from ${shape}`), { x: 3, y: 4 });
        assert.deepEqual(await db.fetchAll(sql`select * from ${shape}`), [{ x: 3, y: 4 }]);
      } finally {
        await db.execute(sql`drop table if exists ${shape}`);
      }
    });

    test("executeMany inserts every set in one statement and is all-or-nothing", async () => {
      const result = await db.executeMany(
        sql`insert into ${users} (name, age) values (${""}, ${0})`,
        Array.from({ length: 50 }, (_, i) => [`bulk${i}`, i]),
      );
      assert.equal(result.rowCount, 50);
      assert.equal(await db.fetchVal(sql`select count(*) from ${users}`), 50);
      // The duplicate in the middle fails the batch: none of its rows stay.
      await assert.rejects(
        db.executeMany(sql`insert into ${users} (name, age) values (${""}, ${0})`, [["new1", 1], ["bulk3", 3], [
          "new2",
          2,
        ]]),
        QueryError,
      );
      assert.equal(await db.fetchVal(sql`select count(*) from ${users}`), 50);
      assert.deepEqual(await db.executeMany(sql`insert into ${users} (name) values (${""})`, []), { rowCount: 0 });
      await assert.rejects(
        db.executeMany(sql`insert into ${users} (name, age) values (${""}, ${0})`, [["only one value"]]),
        (error: QueryError) => error instanceof QueryError && error.code === "ROOST_PARAMETER_COUNT",
      );
      await db.execute(sql`delete from ${users}`);
    });

    test("executeMany over chunk boundaries keeps every row and value in order; other statements run per set", async () => {
      const rows = Array.from(
        { length: 2_345 },
        (_, i) => [i, `name ${i}`, i % 3 === 0 ? null : BigInt(i) * 2n ** 40n],
      );
      const table = uniqueTable("chunks");
      await db.execute(sql`create table ${table} (k integer, label varchar(20), big bigint)`);
      try {
        const result = await db.executeMany(
          sql`insert into ${table} (k, label, big) values (${0}, ${""}, ${0n})`,
          rows,
        );
        assert.equal(result.rowCount, rows.length);
        const back = await db.fetchAll<{ k: number; label: string; big: number | bigint | null }>(
          sql`select k, label, big from ${table} order by k`,
        );
        assert.deepEqual(back.map((row) => [row.k, row.label, row.big === null ? null : BigInt(row.big)]), rows);
        // An UPDATE (no VALUES tuple to repeat) runs once per set and still counts every row.
        const updated = await db.executeMany(
          sql`update ${table} set label = ${""} where k = ${0}`,
          [["first", 0], ["last", rows.length - 1]],
        );
        assert.equal(updated.rowCount, 2);
        assert.deepEqual(
          await db.fetchAll(sql`select label from ${table} where k in (${0}, ${rows.length - 1}) order by k`),
          [{ label: "first" }, { label: "last" }],
        );
      } finally {
        await db.execute(sql`drop table ${table}`);
      }
    });

    test("iterate streams rows before the query has produced them all", async () => {
      // An endless query: only a stream can return its first rows.
      const endless = sql`with recursive c(n) as (select 1 union all select n + 1 from c) select n from c`;
      const seen: number[] = [];
      for await (const row of db.iterate<{ n: number }>(endless, undefined, { batchSize: 10 })) {
        seen.push(row.n);
        if (seen.length === 25) break;
      }
      assert.deepEqual(seen, Array.from({ length: 25 }, (_, i) => i + 1));
      assert.equal(db.stats().primary.busy, 0, "leaving the loop early frees the connection");
    });

    test("iterate: next() called again before the last answer still yields every row once, in order", async () => {
      const rows = sql`with recursive c(n) as (select 1 union all select n + 1 from c where n < 25) select n from c`;
      const iterator = db.iterate<{ n: number }>(rows, undefined, { batchSize: 4 });
      const results = await Promise.all(Array.from({ length: 27 }, () => iterator.next()));
      assert.deepEqual(
        results.slice(0, 25).map((result) => result.value?.n),
        Array.from({ length: 25 }, (_, i) => i + 1),
      );
      assert.ok(results.slice(25).every((result) => result.done));
      assert.equal(db.stats().primary.busy, 0, "the finished stream freed its connection");
    });

    test("iterate and iterateRows with a batchSize past what a fetch can ask for read every row", async () => {
      // The Postgres protocol counts a fetch's rows in 32 bits: a larger batch must not reach the wire as it is.
      const rows = sql`with recursive c(n) as (select 1 union all select n + 1 from c where n < 5) select n from c`;
      for (const batchSize of [2 ** 31, 2 ** 32, Number.MAX_SAFE_INTEGER]) {
        const seen: number[] = [];
        for await (const row of db.iterate<{ n: number }>(rows, undefined, { batchSize })) seen.push(Number(row.n));
        for await (const [n] of db.iterateRows<[number]>(rows, undefined, { batchSize })) seen.push(Number(n));
        assert.deepEqual(seen, [1, 2, 3, 4, 5, 1, 2, 3, 4, 5], `batchSize ${batchSize}`);
      }
      assert.equal(db.stats().primary.busy, 0);
    });

    test("a query inside for await of iterate completes", async () => {
      await db.executeMany(sql`insert into ${users} (name, age) values (${""}, ${0})`, [["i1", 1], ["i2", 2], [
        "i3",
        3,
      ]]);
      const names: string[] = [];
      for await (const row of db.iterate<{ name: string }>(sql`select name from ${users} order by name`)) {
        await db.execute(sql`update ${users} set age = age * 10 where name = ${row.name}`);
        names.push(String(await db.fetchVal(sql`select name from ${users} where name = ${row.name}`)));
      }
      assert.deepEqual(names, ["i1", "i2", "i3"]);
      // MySQL's sum() of integers is DECIMAL, which comes back as exact text.
      assert.equal(Number(await db.fetchVal(sql`select sum(age) from ${users}`)), 60);
      await db.execute(sql`delete from ${users}`);
    });

    test("concurrent transactions and queries inside for await of iterate all complete", async () => {
      const log = uniqueTable("log");
      await db.execute(sql`create table ${log} (n integer)`);
      let rows = 0;
      for await (const row of db.iterate<{ n: number }>(sql`select 1 as n union all select 2 union all select 3`)) {
        rows++;
        await Promise.all([
          db.transaction(async (tx) => {
            await tx.execute(sql`insert into ${log} values (${row.n})`);
          }),
          db.fetchVal(sql`select count(*) from ${log}`),
          db.executeMany(sql`insert into ${log} values (${0})`, [[row.n * 10]]),
        ]);
      }
      assert.equal(rows, 3);
      assert.equal(await db.fetchVal(sql`select count(*) from ${log}`), 6);
      assert.equal(db.stats().primary.busy, 0);
      await db.execute(sql`drop table ${log}`);
    });

    test(
      "parameters of every JavaScript type are stored and read back",
      skipUnless(
        matches(target, { dialects: ["sqlite"] }),
        "SQLite's untyped columns (the servers' typed ones: the next test)",
      ),
      async () => {
        const values = uniqueTable("values");
        await db.execute(sql`create table ${values} (k text primary key, v blob)`);
        const cases: [string, unknown, unknown][] = [
          ["string", "héllo 'quoted' \"double\" ; -- ", "héllo 'quoted' \"double\" ; -- "],
          ["empty string", "", ""],
          ["integer", 42, 42],
          ["float", 3.25, 3.25],
          ["negative", -7, -7],
          ["small bigint", 12n, 12],
          ["huge bigint", 2n ** 62n + 1n, 2n ** 62n + 1n],
          ["true", true, 1],
          ["false", false, 0],
          ["null", null, null],
          ["date", new Date("2024-02-29T12:34:56.789Z"), "2024-02-29T12:34:56.789Z"],
          ["bytes", new Uint8Array([0, 1, 254, 255]), new Uint8Array([0, 1, 254, 255])],
          ["object", { a: 1, nested: { b: [true, null] } }, '{"a":1,"nested":{"b":[true,null]}}'],
          ["array", [1, "two", 3], '[1,"two",3]'],
        ];
        for (const [key, value] of cases) await db.execute(sql`insert into ${values} (k, v) values (${key}, ${value})`);
        for (const [key, , expected] of cases) {
          const stored = await db.fetchVal(sql`select v from ${values} where k = ${key}`);
          assert.deepEqual(stored, expected, key);
        }
        await assert.rejects(
          db.execute(sql`insert into ${values} (k, v) values (${"undefined"}, ${undefined})`),
          (error: QueryError) => error instanceof QueryError && error.code === "ROOST_INVALID_PARAMETER",
        );
        await assert.rejects(
          db.execute(sql`insert into ${values} (k, v) values (${"map"}, ${new Map()})`),
          (error: QueryError) => error instanceof QueryError && error.code === "ROOST_INVALID_PARAMETER",
        );
        await db.execute(sql`drop table ${values}`);
      },
    );

    test(
      "parameters of every JavaScript type bind to typed columns and read back",
      skipUnless(
        matches(target, { dialects: serverDialects }),
        "the servers' typed columns (SQLite's untyped ones: the previous test)",
      ),
      async () => {
        const postgresCases: [string, unknown, string, unknown][] = [
          ["string", "héllo 'quoted' ; --", "text", "héllo 'quoted' ; --"],
          ["integer", 42, "int4", 42],
          ["float", 3.25, "float8", 3.25],
          ["small bigint", 12n, "int8", 12],
          ["huge bigint", 2n ** 62n + 1n, "int8", 2n ** 62n + 1n],
          ["numeric keeps every digit", "12345678901234567890.123456789", "numeric", "12345678901234567890.123456789"],
          ["true", true, "bool", true],
          ["false", false, "bool", false],
          ["null", null, "text", null],
          ["timestamptz", new Date("2024-02-29T12:34:56.789Z"), "timestamptz", new Date("2024-02-29T12:34:56.789Z")],
          ["bytes", new Uint8Array([0, 1, 254, 255]), "bytea", new Uint8Array([0, 1, 254, 255])],
          ["object", { a: 1, nested: { b: [true, null] } }, "jsonb", { a: 1, nested: { b: [true, null] } }],
          ["array", [1, 2, 3], "int4[]", [1, 2, 3]],
        ];
        const mysqlCases: [string, unknown, string, unknown][] = [
          ["string", "héllo 'quoted' ; --", "varchar(100)", "héllo 'quoted' ; --"],
          ["integer", 42, "int", 42],
          ["float", 3.25, "double", 3.25],
          ["small bigint", 12n, "bigint", 12],
          ["huge bigint", 2n ** 62n + 1n, "bigint", 2n ** 62n + 1n],
          [
            "decimal keeps every digit",
            "12345678901234567890.123456789",
            "decimal(30,9)",
            "12345678901234567890.123456789",
          ],
          ["true", true, "boolean", true],
          ["false", false, "boolean", false],
          ["null", null, "varchar(10)", null],
          ["datetime", new Date("2024-02-29T12:34:56.789Z"), "datetime(3)", new Date("2024-02-29T12:34:56.789Z")],
          ["bytes", new Uint8Array([0, 1, 254, 255]), "longblob", new Uint8Array([0, 1, 254, 255])],
          ["object", { a: 1, nested: { b: [true, null] } }, "json", { a: 1, nested: { b: [true, null] } }],
          ["array", [1, "two", 3], "json", [1, "two", 3]],
        ];
        const cases = target.dialect === "postgres" ? postgresCases : mysqlCases;
        const values = uniqueTable("values");
        await db.execute(
          sql`create table ${values} (k varchar(50) primary key, ${
            sql.join(cases.map(([, , type], i) => sql`${sql.ident(`c${i}`)} ${sql.unsafe(type)}`))
          })`,
        );
        for (const [i, [key, value]] of cases.entries()) {
          await db.execute(sql`insert into ${values} (k, ${sql.ident(`c${i}`)}) values (${key}, ${value})`);
        }
        for (const [i, [key, , , expected]] of cases.entries()) {
          assert.deepEqual(
            await db.fetchVal(sql`select ${sql.ident(`c${i}`)} from ${values} where k = ${key}`),
            expected,
            key,
          );
        }
        await assert.rejects(
          db.execute(sql`insert into ${values} (k) values (${undefined})`),
          (error: QueryError) => error instanceof QueryError && error.code === "ROOST_INVALID_PARAMETER",
        );
        await db.execute(sql`drop table ${values}`);
      },
    );

    test("strings with native placeholders, Kysely and Drizzle compiled queries are accepted", async () => {
      const placeholder = target.dialect === "postgres" ? "$1::text" : "?";
      assert.equal(await db.fetchVal(`select ${placeholder} as v`, ["plain"]), "plain");
      assert.equal(await db.fetchVal({ sql: `select ${placeholder} as v`, parameters: ["kysely"] }), "kysely");
      assert.equal(await db.fetchVal({ sql: `select ${placeholder} as v`, params: ["drizzle"] }), "drizzle");
      await assert.rejects(db.fetchVal(sql`select 1`, [1]), QueryError);
      // @ts-expect-error: not a query
      await assert.rejects(db.fetchVal(42), QueryError);
    });

    test("sql.ident quotes identifiers with embedded quotes, sql.unsafe inserts trusted text", async () => {
      const odd = uniqueTable(`we"ird \`name`);
      await db.execute(sql`create table ${odd} (${sql.ident('col "x"')} integer)`);
      await db.execute(sql`insert into ${odd} values (${7})`);
      const row = await db.fetchOne(sql`select * from ${odd} order by 1 ${sql.unsafe("desc")}`);
      assert.deepEqual(row, { 'col "x"': 7 });
      await db.execute(sql`drop table ${odd}`);
    });

    test("a failing query is a QueryError with the dialect's code and the SQL, without the parameters", async () => {
      const secret = "Zq9-parameter-value";
      await db.execute(sql`insert into ${users} (name) values (${secret})`);
      const error = await db.execute(sql`insert into ${users} (name) values (${secret})`).catch((e) => e);
      assert.ok(error instanceof QueryError);
      const uniqueViolation = { sqlite: /^SQLITE_CONSTRAINT/, postgres: /^23505$/, mysql: /^(ER_DUP_ENTRY|23000)$/ };
      assert.match(String(error.code), uniqueViolation[target.dialect]);
      assert.match(String(error.sql), /insert into/);
      for (const text of [error.message, error.stack, inspect(error, { depth: 5 }), inspect(error.cause)]) {
        assert.ok(!String(text).includes(secret), `the parameter leaked: ${text}`);
      }
      const missing = await db.fetchAll(sql`select * from roost_no_such_table`).catch((e) => e);
      assert.ok(missing instanceof QueryError);
      await db.execute(sql`delete from ${users}`);
    });

    test(
      "SQLite: a duplicate primary key is SQLITE_CONSTRAINT_PRIMARYKEY, a duplicate unique column SQLITE_CONSTRAINT_UNIQUE, on every driver",
      skipUnless(matches(target, { dialects: ["sqlite"] }), "SQLite's extended result codes"),
      async () => {
        const codeOf = (statement: Promise<unknown>) =>
          statement.then(() => "no error", (error) => error instanceof QueryError ? error.code : String(error));
        const rowid = uniqueTable("pk_rowid");
        const composite = uniqueTable("pk.dotted");
        await db.execute(sql`create table ${rowid} (id integer primary key, u text unique)`);
        await db.execute(sql`create table ${composite} (a text, b integer, u integer unique, primary key (a, b))`);
        try {
          await db.execute(sql`insert into ${rowid} (id, u) values (${1}, ${"x"})`);
          await db.execute(sql`insert into ${composite} (a, b, u) values (${"k"}, ${1}, ${1})`);
          assert.deepEqual(
            {
              rowid: await codeOf(db.execute(sql`insert into ${rowid} (id, u) values (${1}, ${"y"})`)),
              unique: await codeOf(db.execute(sql`insert into ${rowid} (id, u) values (${2}, ${"x"})`)),
              composite: await codeOf(db.execute(sql`insert into ${composite} (a, b, u) values (${"k"}, ${1}, ${2})`)),
              compositeUnique: await codeOf(
                db.execute(sql`insert into ${composite} (a, b, u) values (${"k"}, ${2}, ${1})`),
              ),
            },
            {
              rowid: "SQLITE_CONSTRAINT_PRIMARYKEY",
              unique: "SQLITE_CONSTRAINT_UNIQUE",
              composite: "SQLITE_CONSTRAINT_PRIMARYKEY",
              compositeUnique: "SQLITE_CONSTRAINT_UNIQUE",
            },
          );
        } finally {
          await db.execute(sql`drop table ${rowid}`);
          await db.execute(sql`drop table ${composite}`);
        }
      },
    );
  });
}
