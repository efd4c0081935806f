/** Pagination: numbered pages with their totals and keyset pages after a cursor, on every target. */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  ConfigError,
  type Database,
  type KeysetOptions,
  KeysetPage,
  Page,
  type PageOptions,
  type Query,
  type QueryEvent,
  RoostError,
  sql,
} from "../../mod.ts";
import { uniqueName } from "../support/support.ts";
import { targets } from "../support/targets.ts";

/** 23 rows: ids 1…23, `grp` = id % 3 (so `grp` ties), `name` = "n<id>". */
const ROWS = 23;
const all = Array.from({ length: ROWS }, (_, i) => ({ id: i + 1, grp: (i + 1) % 3, name: `n${i + 1}` }));

type Item = { id: number; grp: number; name: string };

/** The ids of some rows (read as numbers, whatever integer type the driver chose). */
const ids = (rows: readonly { id: unknown }[]) => rows.map((row) => Number(row.id));

/** Every page of a keyset walk, following nextCursor until it is null (at most 100 pages). */
async function walk<T>(
  db: Database,
  query: Query,
  options: Omit<KeysetOptions, "after">,
): Promise<KeysetPage<T>[]> {
  const pages: KeysetPage<T>[] = [];
  let after: string | null = null;
  do {
    const page: KeysetPage<T> = await db.paginate<T>(query, { ...options, after });
    assert.ok(page instanceof KeysetPage);
    pages.push(page);
    after = page.nextCursor;
    assert.ok(pages.length <= 100, "the walk does not end");
  } while (after !== null);
  return pages;
}

/** Checks the page shape of a walk: full pages with a cursor, a last one without. */
function checkWalk<T>(pages: KeysetPage<T>[], pageSize: number, rows: number): void {
  assert.equal(pages.length, Math.max(1, Math.ceil(rows / pageSize)));
  for (const [i, page] of pages.entries()) {
    const last = i === pages.length - 1;
    assert.equal(page.pageSize, pageSize);
    assert.equal(page.hasNext, !last);
    if (last) assert.equal(page.nextCursor, null);
    else {
      assert.equal(typeof page.nextCursor, "string");
      assert.equal(page.items.length, pageSize);
    }
  }
}

for (const target of targets()) {
  /** `$n` on Postgres, `?` elsewhere. */
  const mark = (n: number) => target.dialect === "postgres" ? `$${n}` : "?";

  describe(`numbered pages on ${target.label}`, () => {
    let db: Database;
    const events: QueryEvent[] = [];
    const name = uniqueName("nums"); // a plain identifier: usable unquoted in string queries
    const nums = sql.ident(name);
    /** The first `n` rows, in id order, as an sql`…` query with a parameter. */
    const firstRows = (n: number) => sql`select id, grp, name from ${nums} where id <= ${n} order by id`;

    before(async () => {
      db = target.open({ onQuery: (event) => events.push(event) });
      await db.execute(sql`create table ${nums} (id integer primary key, grp integer not null, name text not null)`);
      await db.executeMany(
        sql`insert into ${nums} (id, grp, name) values (${0}, ${0}, ${""})`,
        all.map((row) => [row.id, row.grp, row.name]),
      );
    });
    after(async () => {
      await db.execute(sql`drop table ${nums}`);
      await db.close();
    });

    test("a middle page of an sql`…` query with parameters: items, totals, neighbours, positions", async () => {
      const page = await db.paginate<Item>(sql`select id, grp, name from ${nums} where id > ${0} order by id`, {
        page: 2,
        pageSize: 5,
      });
      assert.ok(page instanceof Page);
      assert.deepEqual(page.items, all.slice(5, 10));
      assert.equal(page.page, 2);
      assert.equal(page.pageSize, 5);
      assert.equal(page.totalRows, 23);
      assert.equal(page.totalPages, 5);
      assert.equal(page.hasNext, true);
      assert.equal(page.hasPrevious, true);
      assert.equal(page.hasOther, true);
      assert.equal(page.nextPage, 3);
      assert.equal(page.previousPage, 1);
      assert.equal(page.startIndex, 6);
      assert.equal(page.endIndex, 10);
      // Iterable over its items, and its fields are plain data JSON shows.
      assert.deepEqual([...page], page.items);
      const json = JSON.parse(JSON.stringify(page));
      assert.deepEqual(json, {
        items: all.slice(5, 10),
        page: 2,
        pageSize: 5,
        totalRows: 23,
        totalPages: 5,
        hasNext: true,
        hasPrevious: true,
        hasOther: true,
        nextPage: 3,
        previousPage: 1,
        startIndex: 6,
        endIndex: 10,
      });
      // No helper column leaks into the rows.
      assert.deepEqual(Object.keys(page.items[0]).sort(), ["grp", "id", "name"]);
    });

    test("the first page is the default; the first and last pages have no previous and no next", async () => {
      const first = await db.paginate<Item>(firstRows(ROWS), { pageSize: 5 });
      assert.equal(first.page, 1);
      assert.deepEqual(ids(first.items), [1, 2, 3, 4, 5]);
      assert.equal(first.hasPrevious, false);
      assert.equal(first.previousPage, null);
      assert.equal(first.hasNext, true);
      assert.equal(first.nextPage, 2);
      assert.equal(first.hasOther, true);
      assert.equal(first.startIndex, 1);
      assert.equal(first.endIndex, 5);

      const last = await db.paginate<Item>(firstRows(ROWS), { page: 5, pageSize: 5 });
      assert.deepEqual(ids(last.items), [21, 22, 23]);
      assert.equal(last.hasNext, false);
      assert.equal(last.nextPage, null);
      assert.equal(last.hasPrevious, true);
      assert.equal(last.previousPage, 4);
      assert.equal(last.totalRows, 23);
      assert.equal(last.totalPages, 5);
      assert.equal(last.startIndex, 21);
      assert.equal(last.endIndex, 23);

      const only = await db.paginate<Item>(firstRows(3), { page: 1, pageSize: 5 });
      assert.deepEqual(ids(only.items), [1, 2, 3]);
      assert.equal(only.totalPages, 1);
      assert.equal(only.hasOther, false);
      assert.equal(only.nextPage, null);
      assert.equal(only.previousPage, null);
    });

    test("totals for 0, 1, 4, 5, 6 and 23 rows with pageSize 5, on every page", async () => {
      for (const rows of [0, 1, 4, 5, 6, 23]) {
        const totalPages = Math.ceil(rows / 5);
        for (let number = 1; number <= Math.max(1, totalPages); number++) {
          const page = await db.paginate<Item>(firstRows(rows), { page: number, pageSize: 5 });
          const what = `${rows} rows, page ${number}`;
          const expected = all.slice((number - 1) * 5, Math.min(number * 5, rows));
          assert.deepEqual(page.items, expected, what);
          assert.equal(page.page, number, what);
          assert.equal(page.totalRows, rows, what);
          assert.equal(page.totalPages, totalPages, what);
          assert.equal(page.hasNext, number < totalPages, what);
          assert.equal(page.nextPage, number < totalPages ? number + 1 : null, what);
          assert.equal(page.hasPrevious, number > 1, what);
          assert.equal(page.previousPage, number > 1 ? number - 1 : null, what);
          assert.equal(page.hasOther, totalPages > 1, what);
          assert.equal(page.startIndex, expected.length > 0 ? (number - 1) * 5 + 1 : 0, what);
          assert.equal(page.endIndex, expected.length > 0 ? (number - 1) * 5 + expected.length : 0, what);
        }
      }
    });

    test("an empty result is one empty page 1 with every total 0 and nothing around it", async () => {
      const empty = await db.paginate(sql`select id from ${nums} where id < ${0}`, { pageSize: 5 });
      assert.deepEqual(JSON.parse(JSON.stringify(empty)), {
        items: [],
        page: 1,
        pageSize: 5,
        totalRows: 0,
        totalPages: 0,
        hasNext: false,
        hasPrevious: false,
        hasOther: false,
        nextPage: null,
        previousPage: null,
        startIndex: 0,
        endIndex: 0,
      });
      assert.deepEqual([...empty], []);
      // Past the end of an empty result, no page has rows to point back to.
      const second = await db.paginate(sql`select id from ${nums} where id < ${0}`, { page: 2, pageSize: 5 });
      assert.deepEqual(second.items, []);
      assert.equal(second.page, 2);
      assert.equal(second.totalRows, 0);
      assert.equal(second.hasPrevious, false);
      assert.equal(second.previousPage, null);
    });

    test("a page past the end is empty, keeps its number and points back to the last page with rows", async () => {
      for (const number of [6, 9, 1000]) {
        const page = await db.paginate<Item>(firstRows(ROWS), { page: number, pageSize: 5 });
        assert.deepEqual(page.items, []);
        assert.equal(page.page, number);
        assert.equal(page.totalRows, 23);
        assert.equal(page.totalPages, 5);
        assert.equal(page.hasNext, false);
        assert.equal(page.nextPage, null);
        assert.equal(page.hasPrevious, true);
        assert.equal(page.hasOther, true);
        assert.equal(page.previousPage, 5);
        assert.equal(page.startIndex, 0);
        assert.equal(page.endIndex, 0);
      }
    });

    test("a string query with the dialect's own placeholders and params", async () => {
      const text = `select id, name from ${name} where id > ${mark(1)} and id <= ${mark(2)} order by id`;
      const page = await db.paginate<Item>(text, { page: 2, pageSize: 3, params: [2, 12] });
      assert.deepEqual(ids(page.items), [6, 7, 8]);
      assert.equal(page.totalRows, 10);
      assert.equal(page.totalPages, 4);
      const last = await db.paginate<Item>(text, { page: 4, pageSize: 3, params: [2, 12] });
      assert.deepEqual(ids(last.items), [12]);
      assert.equal(last.hasNext, false);
    });

    test("Kysely ({ sql, parameters }) and Drizzle ({ sql, params }) compiled queries", async () => {
      const text = `select id from ${name} where grp = ${mark(1)} order by id`;
      const zeros = all.filter((row) => row.grp === 0).map((row) => row.id); // 3, 6, …, 21
      const kysely = await db.paginate({ sql: text, parameters: [0] }, { page: 2, pageSize: 3 });
      assert.deepEqual(ids(kysely.items as { id: number }[]), zeros.slice(3, 6));
      assert.equal(kysely.totalRows, zeros.length);
      assert.equal(kysely.totalPages, 3);
      const drizzle = await db.paginate({ sql: text, params: [0] }, { page: 3, pageSize: 3 });
      assert.deepEqual(ids(drizzle.items as { id: number }[]), zeros.slice(6));
      assert.equal(drizzle.hasNext, false);
    });

    test("the inner query's ORDER BY is kept in the items (descending)", async () => {
      const query = sql`select id, name from ${nums} order by id desc`;
      const collected: number[] = [];
      for (let number = 1; number <= 5; number++) {
        const page = await db.paginate<Item>(query, { page: number, pageSize: 5 });
        assert.equal(page.totalRows, 23);
        collected.push(...ids(page.items));
      }
      assert.deepEqual(collected, all.map((row) => row.id).reverse());
      // Ordered by a non-unique column first, then a tiebreak.
      const mixed = await db.paginate<Item>(sql`select id, grp from ${nums} order by grp desc, id desc`, {
        page: 2,
        pageSize: 4,
      });
      const expected = [...all].sort((a, b) => b.grp - a.grp || b.id - a.id).slice(4, 8);
      assert.deepEqual(ids(mixed.items), ids(expected));
    });

    test("a trailing semicolon (and blanks) after the query is accepted", async () => {
      for (const tail of [";", " ;  ", ";\n", ";;"]) {
        const text = `select id from ${name} where id <= ${mark(1)} order by id${tail}`;
        const page = await db.paginate(text, { page: 2, pageSize: 4, params: [10] });
        assert.deepEqual(ids(page.items as { id: number }[]), [5, 6, 7, 8], JSON.stringify(tail));
        assert.equal(page.totalRows, 10);
        const keyset = await db.paginate(text, { pageSize: 4, orderBy: "id", params: [10] });
        assert.deepEqual(ids(keyset.items as { id: number }[]), [1, 2, 3, 4], JSON.stringify(tail));
      }
    });

    test("inside a transaction, paginate sees the transaction's uncommitted rows", async () => {
      await assert.rejects(
        db.transaction(async (tx) => {
          await tx.execute(
            sql`insert into ${nums} (id, grp, name) values (${100}, ${1}, ${"x"}), (${101}, ${2}, ${"y"})`,
          );
          const page = await tx.paginate<Item>(sql`select id from ${nums} order by id`, { page: 5, pageSize: 5 });
          assert.equal(page.totalRows, 25);
          assert.deepEqual(ids(page.items), [21, 22, 23, 100, 101]);
          const keyset = await tx.paginate<Item>(sql`select id from ${nums} where id > ${20}`, {
            pageSize: 10,
            orderBy: "id",
          });
          assert.deepEqual(ids(keyset.items), [21, 22, 23, 100, 101]);
          throw new Error("roll back");
        }),
        /roll back/,
      );
      const page = await db.paginate(sql`select id from ${nums}`, { pageSize: 5 });
      assert.equal(page.totalRows, 23, "the rolled-back rows are gone");
    });

    test("round trips: a middle page is one query on Postgres and SQLite, two on MySQL", async () => {
      const paged = async (options: PageOptions) => {
        events.length = 0;
        const page = await db.paginate(firstRows(ROWS), options);
        const sent = [...events];
        assert.ok(sent.every((event) => event.error === undefined));
        return { page, sent };
      };
      const middle = await paged({ page: 3, pageSize: 5 });
      assert.deepEqual(ids(middle.page.items as Item[]), [11, 12, 13, 14, 15]);
      assert.equal(middle.page.totalRows, 23);
      assert.equal(middle.sent.length, target.dialect === "mysql" ? 2 : 1, middle.sent.map((e) => e.sql).join("\n"));
      assert.ok(middle.sent.every((event) => event.method === "fetchAll"));
      // A partial last page shows where the result ends: no count needed anywhere.
      const last = await paged({ page: 5, pageSize: 5 });
      assert.equal(last.page.totalRows, 23);
      assert.equal(last.sent.length, 1);
      // So does a first page that holds the whole result.
      const whole = await paged({ page: 1, pageSize: 50 });
      assert.equal(whole.page.totalRows, 23);
      assert.equal(whole.sent.length, 1);
      // A keyset page is one query everywhere.
      events.length = 0;
      await db.paginate(firstRows(ROWS), { pageSize: 5, orderBy: "id" });
      assert.equal(events.length, 1);
    });

    test("page or pageSize below 1, not whole, NaN, missing, or an unknown option: ConfigError, no query", async () => {
      const bad: unknown[] = [
        { page: 0, pageSize: 5 },
        { page: -1, pageSize: 5 },
        { page: 1.5, pageSize: 5 },
        { page: Number.NaN, pageSize: 5 },
        { page: Infinity, pageSize: 5 },
        { page: "2", pageSize: 5 },
        { page: 1, pageSize: 0 },
        { page: 1, pageSize: -5 },
        { page: 1, pageSize: 2.5 },
        { page: 1, pageSize: Number.NaN },
        { page: 1, pageSize: Infinity },
        { page: 1 },
        { pageSize: 5, limit: 3 },
        { page: 1, pageSize: 5, offset: 10 },
        { pageSize: 5, orderBy: "id", page: 2 }, // keyset options take no page
        { pageSize: 0, orderBy: "id" },
        { pageSize: 1.5, orderBy: "id" },
        { pageSize: Number.NaN, orderBy: "id" },
        null,
      ];
      events.length = 0;
      for (const options of bad) {
        await assert.rejects(
          db.paginate(firstRows(ROWS), options as PageOptions),
          ConfigError,
          JSON.stringify(options),
        );
      }
      assert.equal(events.length, 0, "nothing was sent");
    });
  });

  describe(`keyset pages on ${target.label}`, () => {
    let db: Database;
    const name = uniqueName("keys");
    const keys = sql.ident(name);
    const big = sql.ident(uniqueName("big"));
    const byKey = (a: Item, b: Item) => a.grp - b.grp || a.id - b.id;

    before(async () => {
      db = target.open();
      await db.execute(sql`create table ${keys} (id integer primary key, grp integer not null, name text not null)`);
      await db.executeMany(
        sql`insert into ${keys} (id, grp, name) values (${0}, ${0}, ${""})`,
        all.map((row) => [row.id, row.grp, row.name]),
      );
      await db.execute(sql`create table ${big} (id bigint primary key)`);
    });
    after(async () => {
      await db.execute(sql`drop table ${keys}`);
      await db.execute(sql`drop table ${big}`);
      await db.close();
    });

    test("walking nextCursor by one key returns every row once, in order", async () => {
      const pages = await walk<Item>(db, sql`select id, grp, name from ${keys}`, { pageSize: 5, orderBy: "id" });
      checkWalk(pages, 5, 23);
      assert.deepEqual(pages.flatMap((page) => page.items), all);
      assert.deepEqual([...pages[0]], pages[0].items);
      // The first page is the same with after: null and without it.
      const first = await db.paginate<Item>(sql`select id, grp, name from ${keys}`, { pageSize: 5, orderBy: ["id"] });
      assert.deepEqual(first.items, pages[0].items);
      assert.equal(first.nextCursor, pages[0].nextCursor);
    });

    test("walking descending returns every row once, newest first", async () => {
      const pages = await walk<Item>(db, sql`select id from ${keys}`, { pageSize: 5, orderBy: "id", descending: true });
      checkWalk(pages, 5, 23);
      assert.deepEqual(ids(pages.flatMap((page) => page.items)), all.map((row) => row.id).reverse());
    });

    test("a two-column key with ties in the first column, ascending and descending", async () => {
      const query = sql`select id, grp, name from ${keys}`;
      for (const pageSize of [1, 4, 7, 23, 30]) {
        const up = await walk<Item>(db, query, { pageSize, orderBy: ["grp", "id"] });
        checkWalk(up, pageSize, 23);
        assert.deepEqual(up.flatMap((page) => page.items), [...all].sort(byKey), `ascending by ${pageSize}`);
        const down = await walk<Item>(db, query, { pageSize, orderBy: ["grp", "id"], descending: true });
        checkWalk(down, pageSize, 23);
        assert.deepEqual(
          down.flatMap((page) => page.items),
          [...all].sort(byKey).reverse(),
          `descending by ${pageSize}`,
        );
      }
    });

    test("the inner query's WHERE and parameters hold on every page", async () => {
      const expected = all.filter((row) => row.id > 4 && row.grp !== 1).sort(byKey);
      const query = sql`select id, grp, name from ${keys} where id > ${4} and grp <> ${1}`;
      const pages = await walk<Item>(db, query, { pageSize: 3, orderBy: ["grp", "id"] });
      checkWalk(pages, 3, expected.length);
      assert.deepEqual(pages.flatMap((page) => page.items), expected);
      const down = await walk<Item>(db, query, { pageSize: 4, orderBy: "id", descending: true });
      assert.deepEqual(
        ids(down.flatMap((page) => page.items)),
        ids(expected).sort((a, b) => b - a),
      );
    });

    test("a string query with params and a Kysely compiled query page by keyset", async () => {
      const text = `select id, grp from ${name} where id > ${mark(1)} and id <= ${mark(2)}`;
      const expected = all.filter((row) => row.id > 3 && row.id <= 19).sort(byKey);
      const pages = await walk<Item>(db, text, { pageSize: 4, orderBy: ["grp", "id"], params: [3, 19] });
      checkWalk(pages, 4, expected.length);
      assert.deepEqual(ids(pages.flatMap((page) => page.items)), ids(expected));
      const kysely = await walk<Item>(db, { sql: text, parameters: [3, 19] }, { pageSize: 6, orderBy: "id" });
      assert.deepEqual(ids(kysely.flatMap((page) => page.items)), ids(expected).sort((a, b) => a - b));
    });

    test("a garbage cursor or one with the wrong number of values is a ConfigError", async () => {
      const query = sql`select id, grp from ${keys}`;
      const one = await db.paginate(query, { pageSize: 5, orderBy: "id" });
      const two = await db.paginate(query, { pageSize: 5, orderBy: ["grp", "id"] });
      assert.equal(typeof one.nextCursor, "string");
      assert.equal(typeof two.nextCursor, "string");
      const garbage = [
        "not a cursor!",
        "",
        "%%%",
        "eyJhIjoxfQ", // base64url of {"a":1}: JSON, but not a list of values
        btoa("[1,").replaceAll("=", ""), // cut JSON
        one.nextCursor!.slice(0, -2) + "@@",
      ];
      for (const after of garbage) {
        await assert.rejects(db.paginate(query, { pageSize: 5, orderBy: "id", after }), ConfigError, after);
      }
      // A cursor from a one-column key on a two-column key, and the other way round.
      await assert.rejects(
        db.paginate(query, { pageSize: 5, orderBy: ["grp", "id"], after: one.nextCursor }),
        ConfigError,
      );
      await assert.rejects(db.paginate(query, { pageSize: 5, orderBy: "id", after: two.nextCursor }), ConfigError);
      // Options of the wrong type.
      const wrong: unknown[] = [
        { pageSize: 5, orderBy: "id", after: 42 },
        { pageSize: 5, orderBy: "id", descending: "yes" },
        { pageSize: 5, orderBy: [] },
        { pageSize: 5, orderBy: "" },
        { pageSize: 5, orderBy: ["id", 3] },
      ];
      for (const options of wrong) {
        await assert.rejects(db.paginate(query, options as KeysetOptions), ConfigError, JSON.stringify(options));
      }
    });

    // Keyset columns are qualified, so no SQLite build can read an unknown quoted name as a string literal.
    test("orderBy naming a column the query does not return rejects with a RoostError", async () => {
      // The query returns `id` and `grp`, not `name`.
      const query = sql`select id, grp from ${keys}`;
      const cases: [string, KeysetOptions][] = [
        ["rows on several pages", { pageSize: 5, orderBy: "name" }],
        ["every row on one page", { pageSize: 50, orderBy: "name" }],
        ["two columns, one unknown", { pageSize: 50, orderBy: ["grp", "nope"] }],
      ];
      for (const [what, options] of cases) {
        await assert.rejects(db.paginate(query, options), RoostError, what);
      }
    });

    test("bigint keys beyond 2^53 come back exact and cursors keep every digit", async () => {
      const values = [
        1n,
        2n,
        9007199254740990n,
        9007199254740991n, // Number.MAX_SAFE_INTEGER
        9007199254740992n,
        9007199254740993n,
        9007199254740994n,
        9223372036854775807n, // the largest int8
      ];
      await db.executeMany(sql`insert into ${big} (id) values (${0})`, values.map((value) => [value]));
      const read = (pages: KeysetPage<{ id: number | bigint }>[]) =>
        pages.flatMap((page) => page.items.map((row) => row.id));
      for (const pageSize of [1, 2, 3]) {
        const up = read(await walk(db, sql`select id from ${big}`, { pageSize, orderBy: "id" }));
        assert.deepEqual(up.map((id) => BigInt(id)), values, `ascending by ${pageSize}`);
        // Numbers while they are safe, bigint beyond.
        for (const id of up) assert.equal(typeof id, Number.isSafeInteger(Number(id)) ? "number" : "bigint");
        const down = read(await walk(db, sql`select id from ${big}`, { pageSize, orderBy: "id", descending: true }));
        assert.deepEqual(down.map((id) => BigInt(id)), [...values].reverse(), `descending by ${pageSize}`);
      }
      // The page after a cursor ending on 9007199254740993 starts exactly after it.
      const first = await db.paginate<{ id: bigint }>(sql`select id from ${big} where id > ${9007199254740992n}`, {
        pageSize: 1,
        orderBy: "id",
      });
      assert.equal(first.items[0].id, 9007199254740993n);
      const next = await db.paginate<{ id: bigint }>(sql`select id from ${big} where id > ${9007199254740992n}`, {
        pageSize: 1,
        orderBy: "id",
        after: first.nextCursor,
      });
      assert.equal(next.items[0].id, 9007199254740994n);
    });

    test("a timestamp key with ties: Date values travel in the cursor", async () => {
      const times = sql.ident(uniqueName("times"));
      const type = sql.unsafe({ sqlite: "text", postgres: "timestamptz", mysql: "datetime(3)" }[target.dialect]);
      await db.execute(sql`create table ${times} (id integer primary key, at ${type} not null)`);
      try {
        const base = Date.UTC(2024, 1, 29, 12, 0, 0, 125);
        const rows = Array.from({ length: 9 }, (_, i) => ({ id: i + 1, at: new Date(base + ((i * 7) % 3) * 1_000) }));
        await db.executeMany(
          sql`insert into ${times} (id, at) values (${0}, ${new Date(0)})`,
          rows.map((r) => [r.id, r.at]),
        );
        const expected = [...rows].sort((a, b) => a.at.getTime() - b.at.getTime() || a.id - b.id).map((r) => r.id);
        for (const descending of [false, true]) {
          const pages = await walk<{ id: number }>(db, sql`select id, at from ${times}`, {
            pageSize: 2,
            orderBy: ["at", "id"],
            descending,
          });
          checkWalk(pages, 2, 9);
          assert.deepEqual(
            ids(pages.flatMap((page) => page.items)),
            descending ? [...expected].reverse() : expected,
            descending ? "descending" : "ascending",
          );
        }
      } finally {
        await db.execute(sql`drop table ${times}`);
      }
    });

    test("a result with no rows is one keyset page without a cursor", async () => {
      const page = await db.paginate(sql`select id from ${keys} where id < ${0}`, { pageSize: 5, orderBy: "id" });
      assert.deepEqual(page.items, []);
      assert.equal(page.hasNext, false);
      assert.equal(page.nextCursor, null);
      assert.deepEqual(JSON.parse(JSON.stringify(page)), { items: [], pageSize: 5, hasNext: false, nextCursor: null });
      // Exactly a page of rows: the last page knows nothing follows.
      const exact = await db.paginate(sql`select id from ${keys} where id <= ${5}`, { pageSize: 5, orderBy: "id" });
      assert.equal(exact.items.length, 5);
      assert.equal(exact.hasNext, false);
      assert.equal(exact.nextCursor, null);
    });
  });
}
