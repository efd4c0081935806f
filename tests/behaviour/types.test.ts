/**
 * Column types per dialect: what each value reads back as and what each
 * JavaScript value binds as (the tables in docs/values.md).
 * Run it also with `TZ=America/New_York`: nothing here may depend on the
 * process's time zone. Parameter round trips through untyped columns are in
 * query.test.ts.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { after, before, describe, test } from "node:test";
import { compile, type Database, type DialectName, QueryError, sql } from "../../mod.ts";
import { resolveDriverName } from "../../src/drivers/mod.ts";
import { parseDatabaseUrl } from "../../src/url.ts";
import { skipUnless, uniqueTable } from "../support/support.ts";
import { matches, notPglite, sessionParametersUnset, targets } from "../support/targets.ts";

type Table = ReturnType<typeof sql.ident>;

/** Creates a table with `columns`, runs `body`, and drops the table whatever happens. */
async function withTable(db: Database, columns: string, body: (table: Table) => Promise<void>): Promise<void> {
  const table = uniqueTable("types");
  await db.execute(sql`create table ${table} (${sql.unsafe(columns)})`);
  try {
    await body(table);
  } finally {
    await db.execute(sql`drop table ${table}`);
  }
}

/** Inserts one row: `k` and the given columns, every value bound as a parameter. */
function insert(table: Table, k: number, row: Record<string, unknown>) {
  const names = Object.keys(row);
  if (names.length === 0) return sql`insert into ${table} (k) values (${k})`;
  return sql`insert into ${table} (k, ${sql.join(names.map((name) => sql.ident(name)))}) values (${k}, ${
    sql.join(names.map((name) => row[name]))
  })`;
}

const invalidParameter = (error: unknown) => error instanceof QueryError && error.code === "ROOST_INVALID_PARAMETER";

/** Instant whose UTC wall clock (02:30 on the day New York springs forward) does not exist in New York. */
const instant = new Date("2024-03-10T02:30:00.000Z");

const all256 = Uint8Array.from({ length: 256 }, (_, i) => i);

for (const target of targets()) {
  const dialect: DialectName = target.dialect;
  /** Skips a test on the dialects it is not about (SQLite's values are in query.test.ts). */
  const on = (...dialects: DialectName[]) =>
    skipUnless(matches(target, { dialects }), `about ${dialects.join(" and ")} types (SQLite's: query.test.ts)`);

  describe(`value types on ${target.label}`, () => {
    let db: Database;

    before(() => {
      db = target.open();
    });
    after(async () => {
      await db.close();
    });

    test(
      "text starting with U+FEFF (a byte-order mark) reads back whole, as a parameter and from a column",
      skipUnless(
        !target.quirks.has("text-drops-leading-bom"),
        "PGlite's own TextDecoder drops a leading U+FEFF (docs/values.md)",
      ),
      async () => {
        // deno-postgres decodes values with a TextDecoder that drops a leading BOM; Roost puts it back.
        const texts = ["\uFEFF", "\uFEFFa", "\uFEFF\uFEFFb", "a\uFEFF", "\uFEFF 1"];
        for (const text of texts) {
          assert.equal(await db.fetchVal(sql`select ${text} as v`), text, JSON.stringify(text));
        }
        await withTable(db, "k int, v varchar(20), w text", async (table) => {
          for (const [k, text] of texts.entries()) await db.execute(insert(table, k, { v: text, w: text }));
          const rows = await db.fetchAll(sql`select v, w from ${table} order by k`);
          assert.deepEqual(rows, texts.map((text) => ({ v: text, w: text })));
        });
      },
    );

    test("integers: a number when exact, a bigint beyond 2^53, both ways, down to the int64 extremes", async () => {
      const type = { sqlite: "integer", postgres: "int8", mysql: "bigint" }[dialect];
      const cases: [bound: number | bigint, read: number | bigint][] = [
        [0, 0],
        [-1n, -1],
        [42n, 42],
        [Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
        [BigInt(Number.MIN_SAFE_INTEGER), Number.MIN_SAFE_INTEGER],
        [2n ** 53n, 2n ** 53n],
        [-(2n ** 53n) - 1n, -(2n ** 53n) - 1n],
        [9223372036854775807n, 9223372036854775807n],
        [-9223372036854775808n, -9223372036854775808n],
      ];
      await withTable(db, `k integer primary key, v ${type}`, async (table) => {
        for (const [k, [bound]] of cases.entries()) await db.execute(insert(table, k, { v: bound }));
        const query = sql`select v from ${table} order by k`;
        const rows = await db.fetchAll<{ v: number | bigint }>(query);
        const expected = cases.map(([, read]) => read);
        assert.deepEqual(rows.map((row) => row.v), expected);
        // Arrays and streams read the same values (mysql2 streams with its text protocol, which parses integers apart).
        assert.deepEqual((await db.fetchRows<[number | bigint]>(query)).rows.map(([v]) => v), expected);
        const streamed = [];
        for await (const row of db.iterate<{ v: number | bigint }>(query)) streamed.push(row.v);
        assert.deepEqual(streamed, expected);
        // A bound bigint compares exactly: the extremes find their own rows and no other.
        assert.equal(await db.fetchVal(sql`select k from ${table} where v = ${-9223372036854775808n}`), 8);
        assert.equal(await db.fetchVal(sql`select k from ${table} where v = ${9223372036854775807n}`), 7);
        assert.equal(await db.fetchVal(sql`select v - 1 from ${table} where k = ${7}`), 9223372036854775806n);
        assert.equal(await db.fetchVal(sql`select count(*) from ${table} where v > ${2n ** 53n}`), 1);
      });
      if (dialect === "mysql") {
        await withTable(db, "k integer primary key, v bigint unsigned", async (table) => {
          await db.execute(insert(table, 1, { v: 18446744073709551615n }));
          assert.equal(await db.fetchVal(sql`select v from ${table}`), 18446744073709551615n);
        });
      }
    });

    test(
      "numeric and decimal: text with every digit, bound from strings, numbers and bigints",
      on("postgres", "mysql"),
      async () => {
        // Postgres: an unconstrained numeric keeps the digits as written; a scaled one pads to its scale.
        const columns = dialect === "postgres"
          ? "k integer primary key, n numeric, s numeric(40,9)"
          : "k integer primary key, s decimal(40,9)";
        const cases: [bound: string | number | bigint, exact: string, scaled: string][] = [
          ["12345678901234567890.123456789", "12345678901234567890.123456789", "12345678901234567890.123456789"],
          ["-0.000000001", "-0.000000001", "-0.000000001"],
          [1.5, "1.5", "1.500000000"],
          [2n ** 62n, "4611686018427387904", "4611686018427387904.000000000"],
          [10n ** 25n, "10000000000000000000000000", "10000000000000000000000000.000000000"],
        ];
        await withTable(db, columns, async (table) => {
          for (const [k, [bound]] of cases.entries()) {
            await db.execute(insert(table, k, dialect === "postgres" ? { n: bound, s: bound } : { s: bound }));
          }
          const rows = await db.fetchAll<{ n?: string; s: string }>(sql`select * from ${table} order by k`);
          for (const [k, [, exact, scaled]] of cases.entries()) {
            const expected = dialect === "postgres" ? { k, n: exact, s: scaled } : { k, s: scaled };
            assert.deepEqual(rows[k], expected);
          }
        });
      },
    );

    test(
      "booleans: true and false (MySQL: TINYINT(1) columns, which is what BOOLEAN means)",
      on("postgres", "mysql"),
      async () => {
        const columns = dialect === "postgres"
          ? "k integer primary key, b boolean"
          : "k integer primary key, b boolean, t tinyint, tb tinyint(1) unsigned";
        await withTable(db, columns, async (table) => {
          await db.execute(insert(table, 1, { b: true }));
          await db.execute(insert(table, 2, { b: false }));
          await db.execute(insert(table, 3, { b: null }));
          assert.deepEqual(
            (await db.fetchAll<{ b: unknown }>(sql`select b from ${table} order by k`)).map((row) => row.b),
            [true, false, null],
          );
          assert.equal(await db.fetchVal(sql`select count(*) from ${table} where b = ${true}`), 1);
          if (dialect === "mysql") {
            // A plain TINYINT stays a number; a TINYINT(1) holding neither 0 nor 1 is never folded into true.
            await db.execute(sql`insert into ${table} (k, b, t, tb) values (4, 2, ${true}, 1)`);
            assert.deepEqual(await db.fetchOne(sql`select b, t, tb from ${table} where k = 4`), {
              b: 2,
              t: 1,
              tb: true,
            });
            // Expressions are integers in MySQL, not TINYINT(1): they stay 1 and 0.
            assert.deepEqual(await db.fetchOne(sql`select 1 < 2 as yes, ${true} as bound`), { yes: 1, bound: 1 });
          } else {
            assert.deepEqual(await db.fetchOne(sql`select 1 < 2 as yes, ${true} as bound`), { yes: true, bound: true });
          }
        });
      },
    );

    test(
      "timestamps: the exact instant, wall-clock types read as UTC, whatever the process's time zone",
      sessionParametersUnset(target) ? skipUnless(false, sessionParametersUnset(target)!) : on("postgres", "mysql"),
      async () => {
        const columns = dialect === "postgres"
          ? "k integer primary key, ts timestamp(3), tz timestamptz(3)"
          : "k integer primary key, ts datetime(3), tz timestamp(3) null";
        await withTable(db, columns, async (table) => {
          await db.execute(insert(table, 1, { ts: instant, tz: instant }));
          const offset = dialect === "postgres" ? "+00" : "";
          await db.execute(insert(table, 2, { ts: "2024-03-10 02:30:00", tz: `2024-03-10 02:30:00${offset}` }));
          const rows = await db.fetchAll(sql`select ts, tz from ${table} order by k`);
          assert.deepEqual(rows, [{ ts: instant, tz: instant }, { ts: instant, tz: instant }]);
          if (dialect === "postgres") {
            assert.deepEqual(await db.fetchOne(sql`select ts::text as ts, tz::text as tz from ${table} where k = 1`), {
              ts: "2024-03-10 02:30:00",
              tz: "2024-03-10 02:30:00+00",
            });
          } else {
            assert.deepEqual(
              await db.fetchOne(
                sql`select cast(ts as char) as ts, unix_timestamp(tz) as epoch from ${table} where k = 1`,
              ),
              { ts: "2024-03-10 02:30:00.000", epoch: "1710037800.000" },
            );
          }
        });
        // Sessions start in UTC, so the server's clock agrees with how wall-clock types are read.
        const now = dialect === "postgres" ? sql`select localtimestamp(3)` : sql`select now(3)`;
        const serverNow = await db.fetchVal<Date>(now);
        assert.ok(serverNow instanceof Date && Math.abs(serverNow.getTime() - Date.now()) < 60_000, String(serverNow));
        const zone = dialect === "postgres" ? sql`show timezone` : sql`select @@session.time_zone`;
        assert.equal(await db.fetchVal(zone), dialect === "postgres" ? "UTC" : "+00:00");
      },
    );

    test("Postgres timestamps do not depend on the session's time zone either", on("postgres"), async () => {
      // A Database of its own, so the changed session never reaches another test's connection.
      const ny = target.open({ pool: { max: 1 } });
      try {
        await withTable(ny, "k integer primary key, ts timestamp(3), tz timestamptz(3), d date", async (table) => {
          await ny.connection(async (conn) => {
            await conn.execute(sql`set time zone 'America/New_York'`);
            await conn.execute(insert(table, 1, { ts: instant, tz: instant, d: instant }));
            await conn.execute(insert(table, 2, { ts: "2024-03-10 02:30:00", tz: "2024-03-10 02:30:00+00" }));
            assert.deepEqual(await conn.fetchAll(sql`select ts, tz from ${table} order by k`), [
              { ts: instant, tz: instant },
              { ts: instant, tz: instant },
            ]);
            // The server shows the instant in New York; a bound Date still stored the UTC wall clock and date.
            assert.deepEqual(
              await conn.fetchOne(sql`select ts::text as ts, tz::text as tz, d from ${table} where k = 1`),
              { ts: "2024-03-10 02:30:00", tz: "2024-03-09 21:30:00-05", d: "2024-03-10" },
            );
            assert.deepEqual(await conn.fetchOne(sql`select ${instant}::timestamptz as v`), { v: instant });
          });
        });
      } finally {
        await ny.close();
      }
      const extremes = await db.fetchOne<Record<string, unknown>>(sql`select
        '2024-03-10 02:30:00.123456'::timestamp(6) as micro,
        '2024-03-10 04:30:00+02:00'::timestamptz as offset,
        'infinity'::timestamp as inf,
        '-infinity'::timestamptz as neg,
        '0044-03-15 12:00:00 BC'::timestamp as bc`);
      assert.deepEqual(extremes?.micro, new Date("2024-03-10T02:30:00.123Z"), "microseconds are truncated");
      assert.deepEqual(extremes?.offset, instant);
      assert.equal(extremes?.inf, "infinity");
      assert.equal(extremes?.neg, "-infinity");
      assert.equal((extremes?.bc as Date).getUTCFullYear(), -43);
      assert.equal((extremes?.bc as Date).toISOString(), "-000043-03-15T12:00:00.000Z");
      // Where nothing gives a Date parameter a type, it is its ISO text; a cast makes it a timestamp.
      assert.equal(await db.fetchVal(sql`select ${instant} as v`), "2024-03-10T02:30:00.000Z");
      assert.deepEqual(await db.fetchVal(sql`select ${instant}::timestamp as v`), instant);
    });

    test("dates and times: strings, never shifted by a time zone", on("postgres", "mysql"), async () => {
      await withTable(db, "k integer primary key, d date, t time", async (table) => {
        await db.execute(insert(table, 1, { d: "2024-03-10", t: "12:34:56" }));
        // A Date bound to a date column stores its UTC date (23:30 UTC is already the 11th east of UTC).
        await db.execute(insert(table, 2, { d: new Date("2024-03-10T23:30:00Z"), t: "00:00:00" }));
        await db.execute(insert(table, 3, { d: "0001-01-01", t: null }));
        await db.execute(insert(table, 4, { d: null, t: dialect === "postgres" ? "23:59:59.5" : "-12:00:00" }));
        assert.deepEqual(await db.fetchAll(sql`select d, t from ${table} order by k`), [
          { d: "2024-03-10", t: "12:34:56" },
          { d: "2024-03-10", t: "00:00:00" },
          { d: "0001-01-01", t: null },
          { d: null, t: dialect === "postgres" ? "23:59:59.5" : "-12:00:00" },
        ]);
        assert.equal(await db.fetchVal(sql`select k from ${table} where d = ${"0001-01-01"}`), 3);
      });
      if (dialect === "postgres") assert.equal(await db.fetchVal(sql`select 'infinity'::date`), "infinity");
    });

    test(
      "json: parsed on the way out; objects, arrays and JSON text bind as JSON",
      on("postgres", "mysql"),
      async () => {
        const columns = dialect === "postgres"
          ? "k integer primary key, j json, jb jsonb"
          : "k integer primary key, j json";
        const document = { a: 1, nested: { b: [true, null, "ü"] }, s: "x" };
        const cases: [bound: unknown, read: unknown][] = [
          [document, document],
          [[1, "two", null], [1, "two", null]],
          [[true, false], [true, false]],
          [[], []],
          ['{"from":"text"}', { from: "text" }],
          [JSON.stringify("a string"), "a string"],
          [42, 42],
        ];
        await withTable(db, columns, async (table) => {
          for (const [k, [bound]] of cases.entries()) {
            await db.execute(insert(table, k, dialect === "postgres" ? { j: bound, jb: bound } : { j: bound }));
          }
          const rows = await db.fetchAll<{ j: unknown; jb?: unknown }>(sql`select * from ${table} order by k`);
          for (const [k, [, read]] of cases.entries()) {
            assert.deepEqual(rows[k], dialect === "postgres" ? { k, j: read, jb: read } : { k, j: read }, `case ${k}`);
          }
          if (dialect === "postgres") {
            assert.deepEqual(
              await db.fetchOne(sql`select jb->'nested' as nested, jb->>'a' as text from ${table} where k = 0`),
              { nested: document.nested, text: "1" },
            );
          } else {
            // MariaDB's JSON is LONGTEXT, but it marks JSON in its column metadata: parsed all the same.
            assert.deepEqual(
              await db.fetchOne(
                sql`select json_extract(j, '$.nested') as nested, json_unquote(json_extract(j, '$.s')) as text from ${table} where k = 0`,
              ),
              { nested: document.nested, text: "x" },
            );
          }
        });
      },
    );

    test(
      "MySQL string columns read as strings and binary ones as bytes, also computed, also with a _bin collation",
      on("mysql"),
      async () => {
        const columns = "k integer primary key, c char(3), v varchar(10), e enum('a','b'), st set('x','y'), " +
          "vb varchar(10) collate utf8mb4_bin, bi binary(2), vbi varbinary(5)";
        await withTable(db, columns, async (table) => {
          await db.execute(
            sql`insert into ${table} values (1, 'ab', 'cd', 'b', 'x,y', 'Ef', ${new Uint8Array([
              1,
              2,
            ])}, ${new Uint8Array([3])})`,
          );
          const expected = {
            c: "ab",
            v: "cd",
            e: "b",
            st: "x,y",
            vb: "Ef",
            bi: new Uint8Array([1, 2]),
            vbi: new Uint8Array([3]),
            cast: new Uint8Array([104, 105]),
            text: "hi",
          };
          const list = sql.unsafe(
            "c, v, e, st, vb, bi, vbi, cast('hi' as binary) as `cast`, concat('h', 'i') as `text`",
          );
          // Without parameters (the text protocol) and with one (a prepared statement).
          for (const query of [sql`select ${list} from ${table}`, sql`select ${list} from ${table} where k = ${1}`]) {
            const row = await db.fetchOne<Record<string, unknown>>(query);
            assert.deepEqual(row, expected);
            assert.equal((row?.bi as Uint8Array).constructor, Uint8Array, "a plain Uint8Array, not a Buffer");
          }
        });
      },
    );

    test("bytes: Uint8Array with every byte value, from any byte view", on("postgres", "mysql"), async () => {
      const columns = dialect === "postgres"
        ? "k integer primary key, b bytea"
        : "k integer primary key, b longblob, vb varbinary(300), fixed binary(4), bits bit(8)";
      const cases: [bound: unknown, read: Uint8Array][] = [
        [all256, all256],
        [new Uint8Array(0), new Uint8Array(0)],
        [Buffer.from([0, 255, 0]), new Uint8Array([0, 255, 0])],
        [new Uint8Array([9, 8, 7]).buffer, new Uint8Array([9, 8, 7])],
        [new DataView(new Uint8Array([1, 2, 3, 4]).buffer, 1, 2), new Uint8Array([2, 3])],
      ];
      await withTable(db, columns, async (table) => {
        for (const [k, [bound]] of cases.entries()) {
          await db.execute(insert(table, k, dialect === "postgres" ? { b: bound } : { b: bound, vb: bound }));
        }
        const rows = await db.fetchAll<{ b: Uint8Array; vb?: Uint8Array }>(sql`select * from ${table} order by k`);
        for (const [k, [, read]] of cases.entries()) {
          assert.equal(rows[k].b.constructor, Uint8Array, "a plain Uint8Array, not a Buffer");
          assert.deepEqual(rows[k].b, read, `case ${k}`);
          if (dialect === "mysql") assert.deepEqual(rows[k].vb, read, `case ${k}`);
        }
        if (dialect === "mysql") {
          await db.execute(
            sql`insert into ${table} (k, fixed, bits) values (9, ${new Uint8Array([1, 2])}, b'10000001')`,
          );
          assert.deepEqual(await db.fetchOne(sql`select fixed, bits from ${table} where k = 9`), {
            fixed: new Uint8Array([1, 2, 0, 0]),
            bits: new Uint8Array([129]),
          });
        }
      });
    });

    test("null reads back as null from every type", async () => {
      const types = {
        sqlite: ["integer", "real", "text", "blob", "numeric"],
        postgres: [
          "int8",
          "numeric",
          "boolean",
          "timestamp",
          "timestamptz",
          "date",
          "time",
          "json",
          "jsonb",
          "bytea",
          "int4[]",
          "text[]",
        ],
        mysql: ["bigint", "decimal(10,2)", "boolean", "datetime", "timestamp null", "date", "time", "json", "longblob"],
      }[dialect];
      const columns = types.map((type, i) => `c${i} ${type}`).join(", ");
      await withTable(db, `k integer primary key, ${columns}`, async (table) => {
        await db.execute(insert(table, 1, Object.fromEntries(types.map((_, i) => [`c${i}`, null]))));
        const expected = Object.fromEntries(types.map((_, i) => [`c${i}`, null]));
        assert.deepEqual(await db.fetchOne(sql`select * from ${table}`), { k: 1, ...expected });
      });
    });

    test("Postgres arrays: exact elements, NULL elements, and JS arrays bound as arrays", on("postgres"), async () => {
      const texts = ["a,b", 'q"uote', null, "", "NULL", "null", "back\\slash", " spaced ", "{brace}", "ünï", "x'y"];
      const columns = "k integer primary key, i4 int4[], i8 int8[], t text[], b bool[], tz timestamptz[], " +
        "d date[], n numeric[], bs bytea[], m int4[][], f float8[]";
      const row = {
        i4: [1, null, -3],
        i8: [9223372036854775807n, -9223372036854775808n, 1n, null],
        t: texts,
        b: [true, false, null],
        tz: [instant, null],
        d: ["2024-03-10", null],
        n: ["12345678901234567890.123456789", null],
        bs: [all256, new Uint8Array(0), null],
        m: [[1, 2], [3, 4]],
        f: [1.5, null, -0.25],
      };
      await withTable(db, columns, async (table) => {
        await db.execute(insert(table, 1, row));
        await db.execute(insert(table, 2, { i4: [], t: [], m: "{{5,6},{7,8}}" }));
        const rows = await db.fetchAll(sql`select * from ${table} order by k`);
        assert.deepEqual(rows[0], { k: 1, ...row, i8: [9223372036854775807n, -9223372036854775808n, 1, null] });
        assert.deepEqual(rows[1], {
          k: 2,
          i4: [],
          i8: null,
          t: [],
          b: null,
          tz: null,
          d: null,
          n: null,
          bs: null,
          m: [[5, 6], [7, 8]],
          f: null,
        });
        // Array parameters in comparisons: the server types them from where they are used.
        assert.equal(await db.fetchVal(sql`select count(*) from ${table} where k = any(${[1, 2, 3]})`), 2);
        assert.equal(await db.fetchVal(sql`select k from ${table} where ${-9223372036854775808n} = any(i8)`), 1);
        assert.equal(await db.fetchVal(sql`select k from ${table} where t @> ${["NULL", "a,b"]}`), 1);
      });
      assert.equal(await db.fetchVal(sql`select ${2n ** 62n}::int8 = any(${[1n, 2n ** 62n]})`), true);
      assert.deepEqual(await db.fetchVal(sql`select ${[1n, 2n ** 62n]}::int8[]`), [1, 2n ** 62n]);
      assert.deepEqual(
        await db.fetchAll(sql`select unnest(${["a,b", null, ""]}::text[]) as v`),
        [{ v: "a,b" }, { v: null }, { v: "" }],
      );
      assert.equal(await db.fetchVal(sql`select array_length(${["a", "b"]}::text[], 1)`), 2);
      await assert.rejects(db.fetchVal(sql`select ${[1, undefined]}::int4[]`), invalidParameter);
    });

    test(
      "JS arrays: JSON for json columns, Postgres arrays elsewhere (MySQL: always JSON text)",
      on("postgres", "mysql"),
      async () => {
        if (dialect === "postgres") {
          // Into json/jsonb the server asks for JSON; a JSON.stringify'd array works too.
          assert.deepEqual(await db.fetchVal(sql`select ${[1, "two", true]}::jsonb`), [1, "two", true]);
          assert.deepEqual(await db.fetchVal(sql`select ${JSON.stringify([1, 2])}::jsonb`), [1, 2]);
          assert.deepEqual(await db.fetchVal(sql`select ${{ a: [1] }}::jsonb`), { a: [1] });
          assert.deepEqual(await db.fetchVal(sql`select ${[1, 2]}::int4[]`), [1, 2]);
        } else {
          // MySQL has no arrays: arrays and objects are JSON text.
          assert.equal(await db.fetchVal(sql`select json_length(${[1, 2, 3]})`), 3);
          assert.equal(await db.fetchVal(sql`select ${[1, "a"]} as v`), '[1,"a"]');
          assert.equal(await db.fetchVal(sql`select ${{ a: 1 }} as v`), '{"a":1}');
        }
      },
    );

    test(
      "json parameters keep Roost's rule on every path: transactions, pipelines, batches, cursors, any placeholder",
      target.place === "pglite"
        ? skipUnless(false, `pipelines statements on a second connection to the database: ${notPglite}`)
        : on("postgres"),
      async () => {
        const rows = (table: Table) => db.fetchAll(sql`select k, j, jb from ${table} order by k`);
        await withTable(db, "k integer primary key, j json, jb jsonb", async (table) => {
          // Inside a transaction: the first run of a text (bun-sql asks the server about it then) works, and a
          // failing one fails as itself, leaving the transaction aborted as any failed statement does.
          await db.transaction(async (tx) => {
            await tx.execute(insert(table, 1, { j: '{"a":1}', jb: '"s"' }));
          });
          const aborted = await db.transaction(async (tx) => {
            const missing = uniqueTable("types_missing");
            await assert.rejects(
              tx.execute(sql`insert into ${missing} (j) values (${'{"a":1}'})`),
              (error) => error instanceof QueryError && error.code === "42P01",
            );
            await assert.rejects(
              tx.execute(sql`select 1`),
              (error) => error instanceof QueryError && error.code === "25P02",
            );
          }).then(() => "committed", (error) => error.constructor.name);
          assert.equal(aborted, "TransactionError");
          // Statements pipelined on one connection (sent before the first answers, as the pool shares a busy
          // one) run in the order given, also where the first has to wait for its parameters' types.
          const connection = await (await resolveDriverName("postgres", target.driver)()).connect(
            parseDatabaseUrl(target.url),
          );
          try {
            const sent = [
              insert(table, 2, { j: "[1,2]", jb: "[3]" }),
              sql`update ${table} set j = '{"after":true}' where k = 2`,
              sql`${insert(table, 3, { j: 7, jb: "true" })} -- again`,
            ].map((statement) => compile(statement, "postgres"));
            await Promise.all(sent.map(({ text, params }) => connection.execute(text, params)));
          } finally {
            await connection.close();
          }
          // executeMany: every row by the same rule, strings as JSON text.
          await db.executeMany(sql`insert into ${table} (k, j, jb) values (${0}, ${null}, ${null})`, [
            [4, '{"b":[1]}', "null"],
            [5, { c: 1 }, [1, "x"]],
            [6, null, '"t"'],
          ]);
          assert.deepEqual(await rows(table), [
            { k: 1, j: { a: 1 }, jb: "s" },
            { k: 2, j: { after: true }, jb: [3] },
            { k: 3, j: 7, jb: true },
            { k: 4, j: { b: [1] }, jb: null },
            { k: 5, j: { c: 1 }, jb: [1, "x"] },
            { k: 6, j: null, jb: "t" },
          ]);
          // iterate (a server-side cursor on Postgres) with a json parameter, alone and in a scope.
          const containing = sql`select k from ${table} where jb @> ${'"s"'} or jb @> ${"[3]"} order by k`;
          const streamed: unknown[] = [];
          for await (const row of db.iterate(containing)) streamed.push(row);
          await db.connection(async () => {
            for await (const row of db.iterate(containing)) streamed.push(row);
          });
          assert.deepEqual(streamed, [{ k: 1 }, { k: 2 }, { k: 1 }, { k: 2 }]);
          // A placeholder used twice, and `$1` in strings and comments, which are no placeholders.
          assert.deepEqual(
            await db.fetchOne(
              `select $1::jsonb as a, $1::json as b, '$1' as s, $q$ $1 $q$ as d /* $1 */ -- $1\n`,
              ['{"x":[1]}'],
            ),
            { a: { x: [1] }, b: { x: [1] }, s: "$1", d: " $1 " },
          );
        });
      },
    );

    test(
      "a column turned from text to jsonb, or a table created after a statement failed on it: JSON text binds as JSON",
      on("postgres"),
      async () => {
        const later = uniqueTable("types_later");
        await db.connection(async () => {
          const statement = sql`insert into ${later} (k, v) values (${1}, ${'{"c":3}'})`;
          await assert.rejects(db.execute(statement), (error) => error instanceof QueryError && error.code === "42P01");
          await db.execute(sql`create table ${later} (k integer primary key, v jsonb)`);
          try {
            await db.execute(statement);
            assert.deepEqual(await db.fetchVal(sql`select v from ${later}`), { c: 3 });
          } finally {
            await db.execute(sql`drop table ${later}`);
          }
        });
        await withTable(db, "k integer primary key, v text", async (table) => {
          await db.connection(async () => {
            const statement = (k: number, v: unknown) => sql`insert into ${table} (k, v) values (${k}, ${v})`;
            await db.execute(statement(1, '{"a":1}'));
            await db.execute(sql`alter table ${table} alter column v type jsonb using v::jsonb`);
            await db.execute(statement(2, '{"b":2}'));
            await db.execute(statement(3, 3));
            assert.deepEqual(await db.fetchAll(sql`select k, v from ${table} order by k`), [
              { k: 1, v: { a: 1 } },
              { k: 2, v: { b: 2 } },
              { k: 3, v: 3 },
            ]);
          });
        });
      },
    );

    test(
      "bun-sql: asking the server about a statement's parameters never aborts a transaction nor leaves a prepared statement",
      skipUnless(
        matches(target, { dialects: ["postgres"], drivers: ["bun-sql"] }),
        "only bun-sql on Postgres asks the server about parameters",
      ),
      async () => {
        await db.transaction(async (tx) => {
          // The server cannot type `$1 + $2` on its own (42725): the question fails inside its own subtransaction,
          // and the statement runs with the types Bun.SQL gives numbers.
          assert.equal(await tx.fetchVal("select $1 + $2 as v", [1, 2]), 3);
          assert.deepEqual(await tx.fetchVal("select $1::jsonb as v -- in a transaction", ['{"t":1}']), { t: 1 });
          assert.equal(
            await tx.fetchVal("select count(*) from pg_prepared_statements where name like 'roost\\_probe\\_%'"),
            0,
          );
        });
      },
    );

    test("values Roost refuses before the server sees them", on("postgres", "mysql"), async () => {
      await assert.rejects(db.fetchVal(sql`select ${new Map()} as v`), invalidParameter);
      await assert.rejects(db.fetchVal(sql`select ${new Date(Number.NaN)} as v`), invalidParameter);
      await assert.rejects(db.fetchVal(sql`select ${() => 1} as v`), invalidParameter);
      assert.equal(await db.fetchVal(sql`select 1 as v`), 1, "the connection is fine afterwards");
    });

    test(
      "iterate returns the same values as fetchAll, on a connection of its own and in a scope",
      on("postgres", "mysql"),
      async () => {
        const columns = dialect === "postgres"
          ? "k integer primary key, i int8, n numeric, b boolean, ts timestamp(3), tz timestamptz(3), d date, " +
            "j jsonb, bs bytea, t text[]"
          : "k integer primary key, i bigint, n decimal(30,9), b boolean, ts datetime(3), tz timestamp(3) null, d date, " +
            "j json, bs longblob";
        const row: Record<string, unknown> = {
          i: -9223372036854775808n,
          n: "12345678901234567890.123456789",
          b: true,
          ts: instant,
          tz: instant,
          d: "2024-03-10",
          j: { a: [1, null] },
          bs: all256,
        };
        if (dialect === "postgres") row.t = ["x", null];
        await withTable(db, columns, async (table) => {
          await db.execute(insert(table, 1, row));
          await db.execute(insert(table, 2, {}));
          const query = sql`select * from ${table} where k > ${0} order by k`;
          const expected = await db.fetchAll(query);
          assert.deepEqual(expected[0], { k: 1, ...row });
          const streamed = [];
          for await (const value of db.iterate(query)) streamed.push(value);
          assert.deepEqual(streamed, expected);
          await db.connection(async (conn) => {
            const inScope = [];
            for await (const value of conn.iterate(query)) inScope.push(value);
            assert.deepEqual(inScope, expected);
          });
        });
      },
    );
  });
}
