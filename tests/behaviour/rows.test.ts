/**
 * Rows as arrays (`fetchRows`, `fetchRow`, `iterateRows`) on every target:
 * what objects lose (a repeated column name, the order of integer-like
 * names) is kept, every value reads exactly as the object path reads it
 * (the types of docs/values.md, per dialect), and the array forms cross
 * scopes, transactions and savepoints, replica routing, streaming on a pool
 * of one, `acquire()` handles, compiled queries and Kysely like the object
 * forms. docs/queries.md, "Rows as arrays".
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Kysely, sql as ksql } from "kysely";
import {
  ClosedError,
  ConfigError,
  type Database,
  type DialectName,
  QueryError,
  type QueryEvent,
  type Rows,
  sql,
} from "../../mod.ts";
import { RoostDialect } from "../../src/kysely.ts";
import { skipUnless, uniqueName } from "../support/support.ts";
import { notTransactionPooled, type Target, targets, transactionPooled } from "../support/targets.ts";

type Table = ReturnType<typeof sql.ident>;

/** One column of the value table: its type, and the values its rows hold (the last row holds NULL everywhere). */
interface Column {
  name: string;
  type: string;
  values: unknown[];
}

const bytes = Uint8Array.from([0, 1, 127, 128, 255]);
const when = new Date("2024-03-10T02:30:00.123Z");

/** The columns whose values both paths must read alike: every type docs/values.md lists for the dialect. */
function columnsOf(dialect: DialectName): Column[] {
  const common: Column[] = [
    { name: "i", type: "integer", values: [0, -7, 2_147_483_647] },
    { name: "t", type: "text", values: ["", "Ada", "\u00e9\u{1F600}"] },
  ];
  if (dialect === "sqlite") {
    return [
      ...common,
      { name: "big", type: "integer", values: [9_007_199_254_740_993n, -9_007_199_254_740_993n, 2 ** 53 - 1] },
      { name: "r", type: "real", values: [1.5, -0, 1e300] },
      { name: "b", type: "blob", values: [bytes, new Uint8Array(0), bytes] },
      { name: "bo", type: "boolean", values: [true, false, true] },
      { name: "d", type: "text", values: [when, when, when] },
      { name: "j", type: "text", values: [{ a: [1, "x"] }, [1, 2], { n: null }] },
    ];
  }
  if (dialect === "postgres") {
    return [
      ...common,
      { name: "big", type: "bigint", values: [9_007_199_254_740_993n, -9_007_199_254_740_993n, 2 ** 53 - 1] },
      { name: "num", type: "numeric(30,2)", values: ["12345678901234567890.12", "-0.50", "0.00"] },
      { name: "r", type: "double precision", values: [1.5, -0.25, 1e300] },
      { name: "re", type: "real", values: [1.5, -0.25, 3] },
      { name: "b", type: "bytea", values: [bytes, new Uint8Array(0), bytes] },
      { name: "bo", type: "boolean", values: [true, false, true] },
      { name: "d", type: "date", values: ["2024-03-10", "1999-12-31", "infinity"] },
      { name: "ts", type: "timestamptz", values: [when, when, "infinity"] },
      { name: "tsn", type: "timestamp", values: [when, when, "-infinity"] },
      { name: "j", type: "jsonb", values: [{ a: [1, "x"] }, [1, 2], { n: null }] },
      { name: "js", type: "json", values: [{ a: 1 }, [true], { b: "s" }] },
      { name: "ia", type: "integer[]", values: [[1, null, 3], [], [[1, 2], [3, 4]]] },
      { name: "ta", type: "text[]", values: [["a", "b,c", null, ""], [], ['q"']] },
      {
        name: "u",
        type: "uuid",
        values: [
          "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
          "00000000-0000-0000-0000-000000000000",
          "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12",
        ],
      },
      { name: "iv", type: "interval", values: ["1 day 02:03:04", "00:00:00", "-1 mons"] },
      { name: "ti", type: "time", values: ["12:34:56", "00:00:00", "23:59:59.5"] },
    ];
  }
  return [
    ...common,
    { name: "big", type: "bigint", values: [9_007_199_254_740_993n, -9_007_199_254_740_993n, 2 ** 53 - 1] },
    { name: "num", type: "decimal(30,2)", values: ["12345678901234567890.12", "-0.50", "0.00"] },
    { name: "r", type: "double", values: [1.5, -0.25, 1e300] },
    { name: "b", type: "blob", values: [bytes, new Uint8Array(0), bytes] },
    { name: "vb", type: "varbinary(10)", values: [bytes, new Uint8Array(0), bytes] },
    { name: "bo", type: "boolean", values: [true, false, true] },
    { name: "tiny", type: "tinyint", values: [1, -128, 127] },
    { name: "d", type: "date", values: ["2024-03-10", "1999-12-31", "2000-01-01"] },
    { name: "dt", type: "datetime(3)", values: [when, when, when] },
    { name: "ts", type: "timestamp(3) null", values: [when, when, when] },
    { name: "j", type: "json", values: [{ a: [1, "x"] }, [1, 2], { n: null }] },
    { name: "bits", type: "bit(8)", values: [5, 0, 255] },
    { name: "ti", type: "time", values: ["12:34:56", "00:00:00", "23:59:59"] },
  ];
}

/** The query that reads the value table, its columns in order and twice the first (a repeated name). */
function readAll(table: Table, columns: readonly Column[]) {
  return sql`select ${sql.join(columns.map((column) => sql.ident(column.name)))} from ${table} order by k`;
}

/** The object path's rows in the order of `names`: what the array path must give. */
const asArrays = (rows: Record<string, unknown>[], names: readonly string[]) =>
  rows.map((row) => names.map((name) => row[name]));

/** Collects an async iterable. */
async function collect<T>(rows: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const row of rows) out.push(row);
  return out;
}

/** The target's database as a read-only replica of itself (none for in-memory SQLite and PGlite). */
function replicaUrlOf(target: Target): string | undefined {
  if (target.place === "pglite" || target.url.includes(":memory:")) return undefined;
  if (target.dialect !== "sqlite") return target.url;
  return `${target.url}${target.url.includes("?") ? "&" : "?"}mode=ro`;
}

for (const target of targets()) {
  describe(`rows as arrays on ${target.label}`, () => {
    const tableName = uniqueName("rows");
    const table = sql.ident(tableName);
    const columns = columnsOf(target.dialect);
    const names = columns.map((column) => column.name);
    let db: Database;

    before(async () => {
      db = target.open({ pool: { max: 1, acquireTimeout: 10_000 } });
      const defs = columns.map((column) => sql.unsafe(`${column.name} ${column.type}`));
      await db.execute(sql`create table ${table} (k integer primary key, ${sql.join(defs)})`);
      for (let k = 0; k < 3; k++) {
        const values = columns.map((column) => column.values[k]);
        const list = sql.join(names.map((name) => sql.ident(name)));
        await db.execute(sql`insert into ${table} (k, ${list}) values (${k}, ${sql.join(values)})`);
      }
      await db.execute(sql`insert into ${table} (k) values (${3})`);
    });
    after(async () => {
      await db.execute(sql`drop table ${table}`);
      await db.close();
    });

    test("a repeated column name keeps every value, integer-like names keep their order, __proto__ is data", async () => {
      const repeated: Rows<[number, number]> = await db.fetchRows<[number, number]>(sql`select 1 as a, 2 as a`);
      const [a1, a2]: [number, number] = repeated.rows[0];
      assert.equal(a1 + a2, 3);
      // @ts-expect-error: a row type is a tuple or array, not an object (the object forms take those)
      await db.fetchRows<{ a: number }>(sql`select 1 as a`);
      assert.deepEqual(repeated.columns, ["a", "a"]);
      assert.deepEqual(repeated.rows, [[1, 2]]);
      const numbered = await db.fetchRows(sql`select 1 as ${sql.ident("2")}, 2 as ${sql.ident("1")}`);
      assert.deepEqual(numbered.columns, ["2", "1"]);
      assert.deepEqual(numbered.rows, [[1, 2]]);
      // A column named like an Object.prototype member is data, on the drivers whose objects fall short too.
      const internal = await db.fetchRows(sql`select 1 as ${sql.ident("__proto__")}, 2 as ${sql.ident("constructor")}`);
      assert.deepEqual(internal, { columns: ["__proto__", "constructor"], rows: [[1, 2]] });
      assert.deepEqual(await db.fetchRow(sql`select 4 as n`), [4]);
      assert.equal(await db.fetchRow(sql`select 4 as n from ${table} where k < 0`), undefined);
      assert.deepEqual(await collect(db.iterateRows(sql`select 1 as a, 2 as a`)), [[1, 2]]);
      assert.ok(Array.isArray(repeated.rows[0]) && Object.getPrototypeOf(repeated.rows[0]) === Array.prototype);
    });

    test("every type reads as the object path reads it: fetchRows, fetchRow and iterateRows", async () => {
      const query = readAll(table, columns);
      const objects = await db.fetchAll(query);
      const expected = asArrays(objects, names);
      const { columns: got, rows } = await db.fetchRows(query);
      assert.deepEqual(got, names);
      assert.deepEqual(rows, expected);
      assert.deepEqual(await db.fetchRow(query), expected[0]);
      assert.deepEqual(await collect(db.iterateRows(query, undefined, { batchSize: 3 })), expected);
      assert.deepEqual(asArrays(await collect(db.iterate(query)), names), expected, "iterate reads alike too");
      // Parameters bind as on the object path.
      const param = await db.fetchRow(sql`select ${"x"} as s, ${7} as n`);
      assert.deepEqual(param, Object.values((await db.fetchOne(sql`select ${"x"} as s, ${7} as n`))!));
    });

    test("an empty result has no rows and still names its columns", async () => {
      const query = sql`select k, i from ${table} where k < 0`;
      const empty = await db.fetchRows(query);
      assert.deepEqual(empty.rows, []);
      assert.deepEqual(empty.columns, ["k", "i"]);
      assert.deepEqual(await collect(db.iterateRows(query)), []);
    });

    test("inside a transaction and a savepoint, db.* joining them", async () => {
      await db.transaction(async (tx) => {
        await tx.execute(sql`insert into ${table} (k, i) values (${10}, ${10})`);
        assert.deepEqual(await tx.fetchRow(sql`select i from ${table} where k = ${10}`), [10]);
        await tx.transaction(async (sp) => {
          await sp.execute(sql`update ${table} set i = ${11} where k = ${10}`);
          assert.deepEqual((await sp.fetchRows(sql`select k, i from ${table} where k >= ${10}`)).rows, [[10, 11]]);
          assert.deepEqual((await db.fetchRows(sql`select i from ${table} where k = ${10}`)).rows, [[11]]);
          assert.deepEqual(await collect(sp.iterateRows(sql`select i from ${table} where k = ${10}`)), [[11]]);
        });
        assert.deepEqual(await collect(db.iterateRows(sql`select i from ${table} where k = ${10}`)), [[11]]);
        throw new Error("roll back");
      }).catch((error: Error) => assert.equal(error.message, "roll back"));
      assert.equal(await db.fetchRow(sql`select i from ${table} where k = ${10}`), undefined);
      await db.connection(async (conn) => {
        assert.deepEqual(await conn.fetchRow(sql`select count(*) as n from ${table}`).then((r) => r?.map(Number)), [4]);
      });
    });

    test("iterateRows on a pool of one: a query inside the loop runs, leaving early frees the connection", async () => {
      const query = sql`select k from ${table} order by k`;
      const seen: unknown[] = [];
      for await (const [k] of db.iterateRows<[number]>(query, undefined, { batchSize: 1 })) {
        seen.push(k, (await db.fetchRow(sql`select i from ${table} where k = ${k}`))?.[0]);
      }
      assert.deepEqual(seen, [0, 0, 1, -7, 2, 2_147_483_647, 3, null]);
      for await (const [k] of db.iterateRows<[number]>(query, undefined, { batchSize: 1 })) {
        assert.equal(k, 0);
        break;
      }
      const stats = db.stats().primary;
      assert.equal(stats.busy, 0, "the stream's connection is back");
      assert.deepEqual((await db.fetchRows(sql`select k from ${table} where k = ${1}`)).rows, [[1]]);
    });

    const ownDatabase = target.place === "sqlite memory" || target.place === "pglite";
    test(
      "under a statement timeout, in a connection scope and a transaction (batches read another way)",
      skipUnless(
        !ownDatabase && !transactionPooled(target),
        ownDatabase
          ? "each in-memory SQLite or PGlite instance is a database of its own"
          : `${notTransactionPooled}: a statement timeout is refused there (docs/poolers.md)`,
      ),
      async () => {
        const timed = target.open({ statementTimeout: 30_000, pool: { max: 1 } });
        try {
          const query = sql`select k from ${table} order by k`;
          const expected = [[0], [1], [2], [3]];
          assert.deepEqual(await collect(timed.iterateRows(query, undefined, { batchSize: 2 })), expected);
          await timed.connection(async (conn) => {
            assert.deepEqual(await collect(conn.iterateRows(query, undefined, { batchSize: 3 })), expected);
            await conn.transaction(async (tx) => {
              assert.deepEqual(await collect(tx.iterateRows(query, undefined, { batchSize: 3 })), expected);
            });
          });
        } finally {
          await timed.close();
        }
      },
    );

    test("on an acquire() handle; a released handle refuses with ClosedError", async () => {
      const conn = await db.acquire();
      try {
        assert.deepEqual((await conn.fetchRows(sql`select k from ${table} where k = ${2}`)).rows, [[2]]);
        assert.deepEqual(await conn.fetchRow(sql`select k from ${table} where k = ${2}`), [2]);
        assert.deepEqual(await collect(conn.iterateRows(sql`select k from ${table} where k < ${2} order by k`)), [
          [0],
          [1],
        ]);
      } finally {
        await conn.release();
      }
      await assert.rejects(conn.fetchRows(sql`select 1 as n`), ClosedError);
      await assert.rejects(conn.fetchRow(sql`select 1 as n`), ClosedError);
      await assert.rejects(collect(conn.iterateRows(sql`select 1 as n`)), ClosedError);
    });

    test("misuse is refused as on the object path: typed errors, nothing sent for a bad query", async () => {
      const placeholder = target.dialect === "postgres" ? "$1" : "?";
      for (
        const run of [(q: string, p: unknown[]) => db.fetchRows(q, p), (q: string, p: unknown[]) => db.fetchRow(q, p)]
      ) {
        await assert.rejects(run(`select ${placeholder} as n`, []), {
          name: "QueryError",
          code: "ROOST_PARAMETER_COUNT",
        });
        await assert.rejects(run("select nonsense from", []), QueryError);
      }
      await assert.rejects(collect(db.iterateRows(sql`select 1 as n`, undefined, { batchSize: 0 })), ConfigError);
      await assert.rejects(collect(db.iterateRows("select nonsense from")), QueryError);
      await assert.rejects(db.fetchRows(sql`select ${undefined} as n`), { code: "ROOST_INVALID_PARAMETER" });
      assert.deepEqual(await db.fetchRow(sql`select 1 as n`), [1], "the connection is still good");
    });

    test("compiled queries and Kysely: the array forms take them; Kysely's rows stay objects", async () => {
      const text = `select k from ${target.dialect === "mysql" ? `\`${tableName}\`` : `"${tableName}"`} where k = ${
        target.dialect === "postgres" ? "$1" : "?"
      }`;
      assert.deepEqual((await db.fetchRows({ sql: text, parameters: [1] })).rows, [[1]]);
      assert.deepEqual(await db.fetchRow({ sql: text, params: [1] }), [1]);
      const kysely = new Kysely<Record<string, { k: number }>>({ dialect: new RoostDialect({ database: db }) });
      const rows = await kysely.selectFrom(tableName).select("k").where("k", "<", 2).orderBy("k").execute();
      assert.deepEqual(rows, [{ k: 0 }, { k: 1 }]);
      assert.deepEqual((await ksql<{ n: number }>`select 1 as n`.execute(kysely)).rows, [{ n: 1 }]);
    });

    const replicaUrl = replicaUrlOf(target);
    test(
      'replica routing: reads "replicas" and replica scopes send the array forms to a replica',
      skipUnless(replicaUrl !== undefined, "in-memory SQLite and PGlite have no replicas"),
      async () => {
        const events: QueryEvent[] = [];
        const routed = target.open({
          replicas: [replicaUrl!],
          routing: { reads: "replicas" },
          onQuery: (event) => events.push(event),
        });
        try {
          const query = sql`select k from ${table} where k = ${1}`;
          assert.deepEqual((await routed.fetchRows(query)).rows, [[1]]);
          assert.deepEqual(await routed.fetchRow(query), [1]);
          assert.deepEqual(await collect(routed.iterateRows(query)), [[1]]);
          assert.deepEqual(await routed.replica((r) => r.fetchRow(query)), [1]);
          await routed.primary(async (p) => assert.deepEqual(await p.fetchRow(query), [1]));
          assert.deepEqual(events.map((event) => [event.method, event.served]), [
            ["fetchRows", "replica"],
            ["fetchRows", "replica"],
            ["iterate", "replica"],
            ["fetchRows", "replica"],
            ["fetchRows", "primary"],
          ]);
        } finally {
          await routed.close();
        }
      },
    );
  });
}
