/**
 * Tables defined with `defineTable`: their DDL through `db.schema`, the row
 * helpers and their race safety, on every target; and the row types
 * inferred from the columns (checked by `deno check`).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  ConfigError,
  type Database,
  KeysetPage,
  NoResultError,
  Page,
  type Queryable,
  QueryError,
  sql,
  TooManyResultsError,
} from "../../mod.ts";
import { column, defineTable, type TableInsert, type TableRow } from "../../src/model/mod.ts";
import { uniqueName } from "../support/support.ts";
import { targets } from "../support/targets.ts";

/** True when `A` and `B` are the same type. */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false;

/** Whether a table exists, asked of the dialect's catalog. */
async function tableExists(db: Queryable, name: string): Promise<boolean> {
  const query = db.dialect === "sqlite"
    ? sql`select count(*) from sqlite_master where type = 'table' and name = ${name}`
    : db.dialect === "postgres"
    ? sql`select count(*) from pg_tables where tablename = ${name}`
    : sql`select count(*) from information_schema.tables where table_schema = database() and table_name = ${name}`;
  return Number(await db.fetchVal(query)) === 1;
}

/** The columns of each index of a table (unique ones included), as comma-joined lists. */
async function indexedColumns(db: Queryable, name: string): Promise<string[]> {
  if (db.dialect === "sqlite") {
    const indexes = await db.fetchAll<{ name: string }>(
      sql`select name from sqlite_master where type = 'index' and tbl_name = ${name}`,
    );
    const lists: string[] = [];
    for (const index of indexes) {
      const columns = await db.fetchAll<{ name: string }>(sql`select name from pragma_index_info(${index.name})`);
      lists.push(columns.map((c) => c.name).join(","));
    }
    return lists.sort();
  }
  const rows = db.dialect === "postgres"
    ? await db.fetchAll<{ cols: string }>(sql`
        select string_agg(a.attname, ',' order by k.n) as cols
        from pg_index i
        join pg_class t on t.oid = i.indrelid
        cross join lateral unnest(i.indkey) with ordinality as k(attnum, n)
        join pg_attribute a on a.attrelid = t.oid and a.attnum = k.attnum
        where t.relname = ${name}
        group by i.indexrelid`)
    : await db.fetchAll<{ cols: string }>(sql`
        select group_concat(column_name order by seq_in_index separator ',') as cols
        from information_schema.statistics
        where table_schema = database() and table_name = ${name}
        group by index_name`);
  return rows.map((row) => row.cols).sort();
}

const near = (date: unknown, ms = 10_000) => date instanceof Date && Math.abs(date.getTime() - Date.now()) < ms;

describe("table definitions", () => {
  test("a serial column that is not the sole primary key is a ConfigError at defineTable", () => {
    assert.throws(
      () => defineTable(uniqueName("bad"), { id: column.serial(), name: column.text() }),
      ConfigError,
    );
    assert.throws(
      () =>
        defineTable(uniqueName("bad"), { id: column.serial(), other: column.integer() }, {
          primaryKey: ["id", "other"],
        }),
      ConfigError,
    );
    assert.throws(
      () => defineTable(uniqueName("bad"), { id: column.integer().primaryKey(), n: column.bigserial() }),
      ConfigError,
    );
    // As the sole key, given either way, it is fine.
    defineTable(uniqueName("ok"), { id: column.serial() }, { primaryKey: ["id"] });
    defineTable(uniqueName("ok"), { id: column.bigserial().primaryKey() });
  });

  test("other bad definitions are ConfigErrors", () => {
    const bad: [string, () => unknown][] = [
      ["no columns", () => defineTable(uniqueName("bad"), {})],
      ["empty name", () => defineTable("", { id: column.integer() })],
      [
        "key on a column and in options",
        () => defineTable(uniqueName("bad"), { a: column.integer().primaryKey() }, { primaryKey: ["a"] }),
      ],
      [
        "two columns flagged as key",
        () => defineTable(uniqueName("bad"), { a: column.integer().primaryKey(), b: column.integer().primaryKey() }),
      ],
      // @ts-expect-error: not a column of the table
      ["unknown key column", () => defineTable(uniqueName("bad"), { a: column.integer() }, { primaryKey: ["b"] })],
      // @ts-expect-error: not a column of the table
      ["unknown unique column", () => defineTable(uniqueName("bad"), { a: column.integer() }, { unique: [["b"]] })],
      // @ts-expect-error: not a column of the table
      ["unknown index column", () => defineTable(uniqueName("bad"), { a: column.integer() }, { indexes: [["b"]] })],
      ["empty unique set", () => defineTable(uniqueName("bad"), { a: column.integer() }, { unique: [[]] })],
      ["varchar length 0", () => column.varchar(0)],
      ["numeric precision 0", () => column.numeric(0)],
      ["a default with parameters", () => column.integer().default(sql`${1} + 1`)],
    ];
    for (const [what, define] of bad) assert.throws(define, ConfigError, what);
  });

  test("references() without a column uses the referenced table's primary key, in both forms", () => {
    const parents = defineTable(uniqueName("parents"), { id: column.serial().primaryKey() });
    const direct = column.integer().references(parents);
    assert.equal(direct.spec.references?.column, "id");
    assert.equal(direct.spec.references?.table().name, parents.name);
    // The function form is for tables defined later: the column is not known yet when
    // references() runs, so it has to be resolved from the table when it is used.
    const lazy = column.integer().references(() => parents);
    assert.equal(lazy.spec.references?.table().name, parents.name);
    assert.equal(lazy.spec.references?.column ?? parents.primaryKey[0], "id");
    const kids = defineTable(uniqueName("kids"), { id: column.serial().primaryKey(), parent: lazy });
    assert.match(kids.createStatements("sqlite").join("\n"), new RegExp(`references "${parents.name}" \\("id"\\)`));
  });

  test("row and insert types follow the columns (compile-time checks; deno check runs them)", () => {
    const people = defineTable(uniqueName("people"), {
      id: column.serial().primaryKey(),
      email: column.text().notNull().unique(),
      name: column.text(),
      score: column.integer().notNull().default(0),
      big: column.bigint(),
      doc: column.json<{ tags: string[] }>(),
      joined: column.timestamp().notNull().defaultNow(),
    });
    type Person = TableRow<typeof people>;
    type NewPerson = TableInsert<typeof people>;
    const rowType: Equal<Person, {
      id: number;
      email: string;
      name: string | null;
      score: number;
      big: bigint | null;
      doc: { tags: string[] } | null;
      joined: Date;
    }> = true;
    const insertType: Equal<NewPerson, {
      email: string;
      id?: number;
      name?: string | null;
      score?: number;
      big?: bigint | null;
      doc?: { tags: string[] } | null;
      joined?: Date;
    }> = true;
    const person: Person = {
      id: 1,
      email: "a@example.org",
      name: null,
      score: 0,
      big: 1n,
      doc: { tags: ["x"] },
      joined: new Date(),
    };
    const minimal: NewPerson = { email: "a@example.org" };
    // @ts-expect-error: email is required in an insert
    const missing: NewPerson = { name: "no email" };
    // @ts-expect-error: score holds a number, not a string
    const wrongType: NewPerson = { email: "a@example.org", score: "7" };
    // @ts-expect-error: big holds a bigint, not a number
    const wrongBig: NewPerson = { email: "a@example.org", big: 7 };
    // @ts-expect-error: a row has every column, nullable ones included
    const partialRow: Person = { id: 1, email: "a@example.org", score: 0, big: null, doc: null, joined: new Date() };
    // @ts-expect-error: email is not nullable
    const nullEmail: NewPerson = { email: null };
    // @ts-expect-error: the json column's document type is checked
    const wrongDoc: NewPerson = { email: "a@example.org", doc: { tags: [1] } };
    // The helpers' results are typed too.
    const helpers = async (db: Queryable) => {
      const found: Person | undefined = await people.getByPk(db, 1);
      const [row, created]: [Person, boolean] = await people.getOrCreate(db, { email: "x" }, { name: "X" });
      const inserted: Person = await people.insert(db, { email: "y" });
      const n: number = await people.update(db, { id: 1 }, { score: 2 });
      // @ts-expect-error: not a column
      await people.findAll(db, { nope: 1 });
      // @ts-expect-error: a where value of the wrong type
      await people.findOne(db, { score: "high" });
      // @ts-expect-error: orderBy names a column
      await people.findAll(db, {}, { orderBy: "nope" });
      return [found, row, created, inserted, n];
    };
    assert.ok([rowType, insertType, person, minimal, missing, wrongType, wrongBig, partialRow, nullEmail, wrongDoc]);
    assert.equal(typeof helpers, "function");
  });
});

describe("row helpers' errors", () => {
  test("every helper reports bad input as a rejected promise, never a synchronous throw", async () => {
    const db = targets()[0].open(); // SQLite in memory; nothing here reaches the database
    try {
      const pairs = defineTable(uniqueName("pairs"), { a: column.integer(), b: column.integer() }, {
        primaryKey: ["a", "b"],
      });
      const calls: [string, () => Promise<unknown>][] = [
        ["getByPk with one value for a two-column key", () => pairs.getByPk(db, 1)],
        ["getByPk with part of the key", () => pairs.getByPk(db, { a: 1 })],
        ["getByPk with null", () => pairs.getByPk(db, null as unknown as number)],
        ["getOne with an unknown column", () => pairs.getOne(db, { c: 1 } as never)],
        ["findOne with undefined", () => pairs.findOne(db, { a: undefined })],
        ["findAll with a bad limit", () => pairs.findAll(db, {}, { limit: -1 })],
        ["count with an unknown column", () => pairs.count(db, { c: 1 } as never)],
        ["insert with an unknown column", () => pairs.insert(db, { a: 1, b: 1, c: 1 } as never)],
        ["update with an empty where", () => pairs.update(db, {}, { a: 1 })],
        ["delete with an empty where", () => pairs.delete(db, {})],
        ["getOrCreate with an unknown column", () => pairs.getOrCreate(db, { c: 1 } as never)],
        ["updateOrCreate with an empty where", () => pairs.updateOrCreate(db, {}, { a: 1 })],
      ];
      for (const [what, call] of calls) {
        let promise: Promise<unknown> | undefined;
        assert.doesNotThrow(() => {
          promise = call();
        }, what);
        await assert.rejects(promise!, ConfigError, what);
      }
    } finally {
      await db.close();
    }
  });
});

for (const target of targets()) {
  describe(`tables and row helpers on ${target.label}`, () => {
    let db: Database;

    const kinds = defineTable(uniqueName("kinds"), {
      id: column.serial().primaryKey(),
      big: column.bigint(),
      n: column.integer(),
      r: column.real(),
      price: column.numeric(6, 2),
      t: column.text(),
      v: column.varchar(40),
      u: column.uuid(),
      flag: column.boolean(),
      at: column.timestamp(),
      doc: column.json<unknown>(),
      bytes: column.blob(),
      created: column.timestamp().notNull().defaultNow(),
      status: column.varchar(20).notNull().default("new"),
      score: column.integer().notNull().default(7),
      active: column.boolean().notNull().default(true),
      answer: column.integer().notNull().default(sql`40 + 2`),
    });

    const members = defineTable(uniqueName("members"), {
      org: column.integer().notNull(),
      user: column.varchar(40).notNull(), // a reserved word in Postgres
      role: column.text(),
    }, { primaryKey: ["org", "user"] });

    const parents = defineTable(uniqueName("parents"), {
      id: column.serial().primaryKey(),
      name: column.text().notNull(),
    });
    const children = defineTable(uniqueName("children"), {
      id: column.serial().primaryKey(),
      parent: column.integer().notNull().references(parents, "id", { onDelete: "cascade" }),
      name: column.text(),
    });
    const pets = defineTable(uniqueName("pets"), {
      id: column.serial().primaryKey(),
      owner: column.integer().references(parents), // no action: the parent cannot go while it has pets
    });

    const accounts = defineTable(uniqueName("accounts"), {
      id: column.serial().primaryKey(),
      email: column.text().notNull().unique(),
      org: column.integer(),
      handle: column.text(),
      label: column.text(),
      hits: column.integer().notNull().default(0),
    }, { unique: [["org", "handle"]], indexes: [["label"], ["org", "hits"]] });

    const weird = defineTable(uniqueName(`we"ird t`), {
      "i d": column.serial().primaryKey(),
      "na me": column.text().unique(),
      'qu"ote': column.text(),
      "ba`ck": column.integer(),
      "order": column.text(),
    }, { indexes: [['qu"ote', "ba`ck"]] });

    const all = [kinds, members, children, pets, parents, accounts, weird];
    /** Empties `accounts`, which several tests share: each starts from an empty table whatever the last one left. */
    const clear = () => db.execute(sql`delete from ${sql.ident(accounts.name)}`);

    before(async () => {
      db = target.open({ pool: { max: 10 } });
      await db.schema.createTables(all);
    });
    after(async () => {
      await db.schema.dropTables(all);
      await db.close();
    });

    test("createTables orders referenced tables first, is idempotent; dropTables goes in reverse", async () => {
      const parentsB = defineTable(uniqueName("parents_b"), { id: column.serial().primaryKey() });
      const childrenB = defineTable(uniqueName("children_b"), {
        id: column.serial().primaryKey(),
        parent: column.integer().references(parentsB, "id"),
      });
      const grandB = defineTable(uniqueName("grand_b"), {
        id: column.serial().primaryKey(),
        parent: column.integer().references(childrenB, "id", { onDelete: "set null" }),
      });
      const given = [grandB, childrenB, parentsB];
      const order = [parentsB.name, childrenB.name, grandB.name];
      try {
        assert.deepEqual(await db.schema.createTables(given), order);
        for (const table of given) assert.equal(await tableExists(db, table.name), true, table.name);
        // Twice is fine, and keeps the rows.
        const parent = await parentsB.insert(db, {});
        await childrenB.insert(db, { parent: parent.id });
        assert.deepEqual(await db.schema.createTables(given), order);
        assert.equal(await childrenB.count(db), 1);
        assert.deepEqual(await db.schema.dropTables([parentsB, childrenB, grandB]), [...order].reverse());
        for (const table of given) assert.equal(await tableExists(db, table.name), false, table.name);
        // Dropping what is gone is fine too.
        assert.deepEqual(await db.schema.dropTables(given), [...order].reverse());
      } finally {
        await db.schema.dropTables(given);
      }
    });

    test("every column kind round-trips with its documented read type", async () => {
      const at = new Date("2024-02-29T12:34:56.789Z");
      const bytes = new Uint8Array([0, 1, 2, 127, 128, 254, 255]);
      const started = Date.now();
      for (const flag of [true, false, true, false]) {
        const values = {
          big: 9007199254740993n,
          n: -42,
          r: 3.25,
          price: "12.50",
          t: "some text",
          v: "a varchar",
          u: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
          flag,
          at,
          bytes,
        };
        const inserted = await kinds.insert(db, values);
        const read = await kinds.getByPk(db, inserted.id);
        for (const [what, row] of [["insert", inserted], ["getByPk", read]] as const) {
          assert.ok(row !== undefined);
          assert.equal(typeof row.id, "number", what);
          assert.equal(row.big, 9007199254740993n, what);
          assert.equal(row.n, -42, what);
          assert.equal(row.r, 3.25, what);
          assert.equal(row.price, "12.50", what);
          assert.equal(row.t, "some text", what);
          assert.equal(row.v, "a varchar", what);
          assert.equal(row.u, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", what);
          assert.equal(row.flag, flag, what);
          assert.ok(row.at instanceof Date, `${what}: at is a Date`);
          assert.equal(row.at.getTime(), at.getTime(), what);
          assert.ok(row.bytes instanceof Uint8Array, `${what}: bytes are a Uint8Array`);
          assert.deepEqual([...row.bytes], [...bytes], what);
          // Defaults.
          assert.ok(row.created instanceof Date, `${what}: created is a Date`);
          assert.ok(
            row.created.getTime() >= started - 5_000 && row.created.getTime() <= Date.now() + 5_000,
            `${what}: created ${row.created.toISOString()} is now`,
          );
          assert.equal(row.status, "new", what);
          assert.equal(row.score, 7, what);
          assert.equal(row.active, true, what);
          assert.equal(row.answer, 42, what);
        }
      }
      // A small bigint is a bigint too; false and explicit values beat the defaults.
      const small = await kinds.insert(db, { big: 5n, active: false, score: 0, status: "set" });
      assert.equal(small.big, 5n);
      assert.equal(small.active, false);
      assert.equal(small.score, 0);
      assert.equal(small.status, "set");
      // Nullable columns hold null.
      const empty = await kinds.insert(db, {});
      const stored = await kinds.getByPk(db, empty.id);
      for (const row of [empty, stored!]) {
        for (const name of ["big", "n", "r", "price", "t", "v", "u", "flag", "at", "doc", "bytes"] as const) {
          assert.equal(row[name], null, name);
        }
        assert.ok(near(row.created), "defaultNow fills the instant of the insert");
      }
      // Each helper decodes the same way, and where values match what was stored.
      const viaFind = await kinds.findAll(db, { id: empty.id });
      assert.deepEqual(viaFind, [stored]);
      assert.deepEqual(await kinds.getOne(db, { id: small.id }), await kinds.getByPk(db, small.id));
      const flagged = await kinds.findAll(db, { flag: true }, { orderBy: "id" });
      assert.equal(flagged.length, 2);
      assert.ok(flagged.every((row) => row.flag === true && row.big === 9007199254740993n));
      assert.equal(await kinds.count(db, { flag: false }), 2);
      assert.equal(await kinds.count(db, { flag: null }), 2);
      assert.equal(await kinds.count(db, { at }), 4, "a Date matches the stored instant");
      assert.equal(await kinds.count(db, { big: 9007199254740993n }), 4);
      assert.equal(await kinds.count(db, { price: "12.50" }), 4);
      assert.equal(await kinds.count(db, { u: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11" }), 4);
    });

    // The model casts JSON text to jsonb on Postgres, so Bun.SQL (which types a bound string as a JSON string) parses it too.
    test("json documents (objects, arrays, strings, numbers) are written and read as the values", async () => {
      const docs: unknown[] = [
        { a: 1, nested: { b: [true, null, "x"] }, quote: 'it\'s "here"' },
        [1, "two", { three: 3 }],
        "just text",
        42,
        true,
      ];
      for (const doc of docs) {
        const inserted = await kinds.insert(db, { doc });
        const read = await kinds.getByPk(db, inserted.id);
        assert.deepEqual(inserted.doc, doc, `insert: ${JSON.stringify(doc)}`);
        assert.deepEqual(read?.doc, doc, `getByPk: ${JSON.stringify(doc)}`);
      }
      // Stored as JSON documents, not as JSON text inside a JSON string.
      const type = sql.unsafe(target.dialect === "postgres" ? "jsonb_typeof" : "json_type");
      const kind = sql`select ${type}(doc) from ${sql.ident(kinds.name)} where doc is not null order by id limit 1`;
      assert.equal(String(await db.fetchVal(kind)).toLowerCase(), "object");
    });

    test("a composite primary key: getByPk with an object, duplicates refused", async () => {
      await members.insert(db, { org: 1, user: "ada", role: "owner" });
      await members.insert(db, { org: 1, user: "alan", role: null });
      await members.insert(db, { org: 2, user: "ada" });
      assert.deepEqual(await members.getByPk(db, { org: 2, user: "ada" }), { org: 2, user: "ada", role: null });
      assert.deepEqual(await members.getByPk(db, { org: 1, user: "ada" }), { org: 1, user: "ada", role: "owner" });
      assert.equal(await members.getByPk(db, { org: 3, user: "ada" }), undefined);
      await assert.rejects(async () => await members.getByPk(db, 1), ConfigError, "one value for a two-column key");
      await assert.rejects(
        async () => await members.getByPk(db, { org: 1 }),
        ConfigError,
        "a key without every column",
      );
      await assert.rejects(members.insert(db, { org: 1, user: "ada" }), QueryError);
      assert.equal(await members.update(db, { org: 1, user: "alan" }, { role: "admin" }), 1);
      assert.equal((await members.getByPk(db, { org: 1, user: "alan" }))?.role, "admin");
      assert.equal(await members.delete(db, { org: 1 }), 2);
      assert.deepEqual(await members.findAll(db), [{ org: 2, user: "ada", role: null }]);
    });

    test("foreign keys are enforced and onDelete cascade deletes the children", async () => {
      const mum = await parents.insert(db, { name: "mum" });
      const dad = await parents.insert(db, { name: "dad" });
      await children.insert(db, { parent: mum.id, name: "a" });
      await children.insert(db, { parent: mum.id, name: "b" });
      await children.insert(db, { parent: dad.id, name: "c" });
      await assert.rejects(children.insert(db, { parent: dad.id + 1000, name: "orphan" }), QueryError);
      assert.equal(await parents.delete(db, { id: mum.id }), 1);
      assert.equal(await children.count(db, { parent: mum.id }), 0, "cascade deleted mum's children");
      assert.deepEqual((await children.findAll(db)).map((row) => row.name), ["c"]);
      // Without an action the referenced row cannot go.
      await pets.insert(db, { owner: dad.id });
      await assert.rejects(parents.delete(db, { id: dad.id }), QueryError);
      assert.equal(await parents.count(db, { id: dad.id }), 1);
      await pets.delete(db, { owner: dad.id });
      assert.equal(await parents.delete(db, { id: dad.id }), 1);
      assert.equal(await children.count(db), 0);
    });

    test("unique and indexes options create the constraints and indexes", async () => {
      await clear();
      await accounts.insert(db, { email: "ada@example.org", org: 1, handle: "ada" });
      await assert.rejects(accounts.insert(db, { email: "ada@example.org", org: 2, handle: "x" }), QueryError);
      await assert.rejects(accounts.insert(db, { email: "other@example.org", org: 1, handle: "ada" }), QueryError);
      await accounts.insert(db, { email: "other@example.org", org: 2, handle: "ada" }); // another org
      assert.equal(await accounts.count(db), 2);
      const indexes = await indexedColumns(db, accounts.name);
      for (const set of ["email", "org,handle", "label", "org,hits"]) {
        assert.ok(indexes.includes(set), `an index on ${set} in ${JSON.stringify(indexes)}`);
      }
    });

    test("names with quotes, spaces and backticks work in every helper and in the DDL", async () => {
      const row = await weird.insert(db, { "na me": "x", 'qu"ote': `it's "q"`, "ba`ck": 1, "order": "first" });
      assert.equal(typeof row["i d"], "number");
      assert.deepEqual(await weird.getByPk(db, row["i d"]), row);
      assert.deepEqual(await weird.findOne(db, { 'qu"ote': `it's "q"` }), row);
      assert.equal(await weird.update(db, { "ba`ck": 1 }, { "order": "second" }), 1);
      const [again, created] = await weird.getOrCreate(db, { "na me": "x" });
      assert.equal(created, false);
      assert.equal(again.order, "second");
      const [made, made2] = await weird.updateOrCreate(db, { "na me": "y" }, { "ba`ck": 2 });
      assert.equal(made2, true);
      assert.equal(made["ba`ck"], 2);
      assert.deepEqual(
        (await weird.findAll(db, {}, { orderBy: ["ba`ck", "i d"], descending: true })).map((r) => r["na me"]),
        ["y", "x"],
      );
      await assert.rejects(weird.insert(db, { "na me": "x" }), QueryError, "the unique constraint holds");
      assert.ok((await indexedColumns(db, weird.name)).includes('qu"ote,ba`ck'));
      assert.equal(await weird.delete(db, { "na me": "y" }), 1);
      assert.equal(await weird.count(db), 1);
    });

    test("values with SQL metacharacters are stored and matched verbatim", async () => {
      await clear();
      const nasty = [
        "'; drop table users; --",
        "back\\slash \\' \\\\",
        `"double" and 'single' and \`back\``,
        "$1 ? :name %s %% _ *",
        "line\nbreak\ttab\r",
        "/* comment */ -- comment",
        "héllo ☃ 😀",
      ];
      for (const [i, text] of nasty.entries()) {
        const row = await accounts.insert(db, { email: text, handle: text, label: text, org: i });
        assert.equal(row.email, text);
        const found = await accounts.getOne(db, { email: text });
        assert.equal(found.handle, text);
        assert.equal(found.label, text);
        const [same, created] = await accounts.getOrCreate(db, { email: text });
        assert.equal(created, false);
        assert.equal(same.id, row.id);
      }
      assert.equal(await accounts.count(db), nasty.length);
    });

    test("reads: getOne, findOne, findAll with order and limit, count, null matches", async () => {
      await clear();
      for (let i = 1; i <= 5; i++) {
        await accounts.insert(db, { email: `r${i}@example.org`, org: i % 2, label: i === 5 ? null : "l" });
      }
      assert.equal((await accounts.getOne(db, { email: "r3@example.org" })).org, 1);
      await assert.rejects(accounts.getOne(db, { email: "none" }), NoResultError);
      await assert.rejects(accounts.getOne(db, { org: 1 }), TooManyResultsError);
      assert.equal(await accounts.findOne(db, { email: "none" }), undefined);
      assert.equal((await accounts.findOne(db, { label: null }))?.email, "r5@example.org");
      const odd = await accounts.findAll(db, { org: 1 }, { orderBy: "email", descending: true });
      assert.deepEqual(odd.map((row) => row.email), ["r5@example.org", "r3@example.org", "r1@example.org"]);
      const two = await accounts.findAll(db, {}, { orderBy: ["org", "email"], limit: 2 });
      assert.deepEqual(two.map((row) => row.email), ["r2@example.org", "r4@example.org"]);
      assert.deepEqual(await accounts.findAll(db, {}, { limit: 0 }), []);
      assert.equal(await accounts.count(db), 5);
      assert.equal(await accounts.count(db, { org: 0 }), 2);
      assert.equal(await accounts.count(db, { label: null }), 1);
    });

    test("paginate: numbered and keyset pages of decoded rows, filtered, ordered, ties broken by the key", async () => {
      const notes = defineTable(uniqueName("notes"), {
        id: column.serial().primaryKey(),
        done: column.boolean().notNull(),
        due: column.timestamp().notNull(),
        rank: column.integer().notNull(),
      });
      await db.schema.createTables([notes]);
      try {
        for (let i = 1; i <= 7; i++) {
          // Ranks repeat, so only the primary key tells some rows apart.
          await notes.insert(db, { done: i % 2 === 0, due: new Date(Date.UTC(2026, 0, i)), rank: i % 3 });
        }
        const second = await notes.paginate(db, {}, { page: 2, pageSize: 3 });
        assert.ok(second instanceof Page);
        assert.deepEqual(second.items.map((row) => row.id), [4, 5, 6], "ordered by the primary key by default");
        assert.deepEqual([second.totalRows, second.totalPages, second.hasNext, second.hasPrevious], [7, 3, true, true]);
        for (const row of second) {
          assert.equal(typeof row.done, "boolean", "decoded as findAll decodes");
          assert.ok(row.due instanceof Date);
        }
        assert.deepEqual(second.items, await notes.findAll(db, {}, { orderBy: "id" }).then((rows) => rows.slice(3, 6)));

        const open = await notes.paginate(db, { done: false }, {
          page: 1,
          pageSize: 10,
          orderBy: "rank",
          descending: true,
        });
        assert.deepEqual(open.items.map((row) => [row.rank, row.id]), [[2, 5], [1, 7], [1, 1], [0, 3]]);
        assert.equal(open.totalRows, 4);
        const past = await notes.paginate(db, {}, { page: 9, pageSize: 3 });
        assert.deepEqual([past.items.length, past.totalRows, past.previousPage], [0, 7, 3]);

        // Keyset: every row exactly once, in order, through the cursors.
        for (const descending of [false, true]) {
          const seen: number[] = [];
          let after: string | null = null;
          do {
            const page: KeysetPage<TableRow<typeof notes>> = await notes.paginate(db, {}, {
              pageSize: 2,
              after,
              orderBy: "rank",
              descending,
            });
            assert.ok(page instanceof KeysetPage);
            for (const row of page) {
              assert.equal(typeof row.done, "boolean");
              seen.push(row.id);
            }
            after = page.nextCursor;
          } while (after !== null);
          const expected = (await notes.findAll(db, {}, { orderBy: ["rank", "id"], descending })).map((row) => row.id);
          assert.deepEqual(seen, expected, `descending: ${descending}`);
        }
        const done = await notes.paginate(db, { done: true }, { pageSize: 10, after: null });
        assert.deepEqual(done.items.map((row) => row.id), [2, 4, 6]);
        assert.equal(done.nextCursor, null);

        for (
          const bad of [
            { pageSize: 0 },
            { page: 0, pageSize: 2 },
            { pageSize: 2, limit: 3 },
            { pageSize: 2, after: null, page: 2 },
            { pageSize: 2, orderBy: "nope" },
            null,
          ]
        ) {
          await assert.rejects(
            notes.paginate(db, {}, bad as unknown as { pageSize: number }),
            ConfigError,
            JSON.stringify(bad),
          );
        }
        await assert.rejects(notes.paginate(db, { nope: 1 } as never, { pageSize: 2 }), ConfigError);
        const keyless = defineTable(uniqueName("keyless"), { n: column.integer() });
        await assert.rejects(keyless.paginate(db, {}, { pageSize: 2 }), /has no primary key: paginate it with orderBy/);
        await assert.rejects(notes.paginate(db, {}, { pageSize: 2, after: "not a cursor" }), ConfigError);
      } finally {
        await db.schema.dropTables([notes]);
      }
    });

    test("update and delete return how many rows matched", async () => {
      await clear();
      for (let i = 1; i <= 4; i++) await accounts.insert(db, { email: `u${i}@example.org`, org: 7, label: "same" });
      assert.equal(await accounts.update(db, { org: 7 }, { label: "changed" }), 4);
      assert.equal(await accounts.update(db, { org: 8 }, { label: "x" }), 0);
      assert.equal(await accounts.count(db, { label: "changed" }), 4);
      assert.equal(await accounts.delete(db, { email: "u1@example.org" }), 1);
      assert.equal(await accounts.delete(db, { email: "u1@example.org" }), 0);
      assert.equal(await accounts.delete(db, { org: 7 }), 3);
      assert.equal(await accounts.count(db), 0);
    });

    // Bun.SQL does not ask MySQL for matched rows (CLIENT_FOUND_ROWS, oven-sh/bun#30843), so there an update
    // that changes nothing counts 0, as README says; updateOrCreate does not depend on the count.
    test("an update that changes nothing still counts its matched rows; updateOrCreate finds the row", async () => {
      await clear();
      for (let i = 1; i <= 3; i++) await accounts.insert(db, { email: `s${i}@example.org`, org: 7, label: "same" });
      const changedRowsOnly = target.driver === "bun-sql" && target.dialect === "mysql";
      assert.equal(await accounts.update(db, { org: 7 }, { label: "same" }), changedRowsOnly ? 0 : 3);
      const [row, created] = await accounts.updateOrCreate(db, { email: "s1@example.org" }, { label: "same" });
      assert.equal(created, false);
      assert.equal(row.email, "s1@example.org");
      assert.equal(row.label, "same");
      assert.equal(await accounts.count(db), 3);
    });

    test("unknown columns, undefined in where and an empty where for update/delete are ConfigErrors", async () => {
      await clear();
      await accounts.insert(db, { email: "keep@example.org" });
      const bad: [string, () => Promise<unknown>][] = [
        // @ts-expect-error: not a column
        ["findAll where", () => accounts.findAll(db, { nope: 1 })],
        // @ts-expect-error: not a column
        ["findOne where", () => accounts.findOne(db, { nope: 1 })],
        // @ts-expect-error: not a column
        ["count where", () => accounts.count(db, { nope: 1 })],
        // @ts-expect-error: not a column
        ["insert values", () => accounts.insert(db, { email: "a", nope: 1 })],
        // @ts-expect-error: not a column
        ["update values", () => accounts.update(db, { email: "keep@example.org" }, { nope: 1 })],
        // @ts-expect-error: not a column
        ["update where", () => accounts.update(db, { nope: 1 }, { label: "x" })],
        // @ts-expect-error: not a column
        ["delete where", () => accounts.delete(db, { nope: 1 })],
        // @ts-expect-error: not a column
        ["getOrCreate where", () => accounts.getOrCreate(db, { nope: 1 })],
        // @ts-expect-error: not a column
        ["getOrCreate defaults", () => accounts.getOrCreate(db, { email: "new" }, { nope: 1 })],
        // @ts-expect-error: not a column
        ["updateOrCreate values", () => accounts.updateOrCreate(db, { email: "new" }, { nope: 1 })],
        // @ts-expect-error: not a column
        ["findAll orderBy", () => accounts.findAll(db, {}, { orderBy: "nope" })],
        ["undefined in findOne where", () => accounts.findOne(db, { email: undefined })],
        ["undefined in getOne where", () => accounts.getOne(db, { email: undefined })],
        ["undefined in update where", () => accounts.update(db, { email: undefined }, { label: "x" })],
        ["undefined in delete where", () => accounts.delete(db, { email: undefined })],
        ["undefined in getOrCreate where", () => accounts.getOrCreate(db, { email: undefined })],
        ["empty where in update", () => accounts.update(db, {}, { label: "all" })],
        ["empty where in delete", () => accounts.delete(db, {})],
        ["empty where in updateOrCreate", () => accounts.updateOrCreate(db, {}, { label: "all" })],
        ["no values in update", () => accounts.update(db, { email: "keep@example.org" }, {})],
        ["getByPk without a key", async () => await accounts.getByPk(db, undefined as unknown as number)],
      ];
      for (const [what, call] of bad) await assert.rejects(call(), ConfigError, what);
      // Nothing changed or went.
      assert.deepEqual((await accounts.findAll(db)).map((row) => [row.email, row.label]), [["keep@example.org", null]]);
    });

    test("getOrCreate and updateOrCreate: created once, then found; defaults only on create", async () => {
      await clear();
      const [made, created] = await accounts.getOrCreate(db, { email: "g@example.org" }, { label: "first", org: 3 });
      assert.equal(created, true);
      assert.equal(made.label, "first");
      assert.equal(made.org, 3);
      assert.equal(made.hits, 0, "the column default is filled in");
      const [found, again] = await accounts.getOrCreate(db, { email: "g@example.org" }, { label: "second" });
      assert.equal(again, false);
      assert.deepEqual(found, made);
      const [updated, createdNow] = await accounts.updateOrCreate(db, { email: "g@example.org" }, { hits: 5 });
      assert.equal(createdNow, false);
      assert.equal(updated.id, made.id);
      assert.equal(updated.hits, 5);
      assert.equal(updated.label, "first");
      const [fresh, freshCreated] = await accounts.updateOrCreate(db, { email: "h@example.org" }, { hits: 9 });
      assert.equal(freshCreated, true);
      assert.equal(fresh.hits, 9);
      assert.equal(fresh.email, "h@example.org");
      assert.equal(await accounts.count(db), 2);
    });

    test("20 concurrent getOrCreate calls on a fresh key create exactly one row", async () => {
      await clear();
      // On SQLite a statement outside any scope runs synchronously on an idle connection, which it gives back
      // before the next caller runs, so the callers' statements interleave on one connection (and the in-memory
      // target keeps one connection: its database lives in it); every other target runs them on several at once.
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => accounts.getOrCreate(db, { email: "race@example.org" }, { hits: i })),
      );
      const created = results.filter(([, wasCreated]) => wasCreated);
      assert.equal(created.length, 1, "exactly one caller created the row");
      assert.equal(await accounts.count(db, { email: "race@example.org" }), 1);
      const ids = new Set(results.map(([row]) => row.id));
      assert.equal(ids.size, 1, "every caller has the same row");
      assert.deepEqual(results.map(([row]) => row.hits), results.map(() => created[0][0].hits));
      // PGlite keeps one connection (its database lives in it): there the callers take turns on it.
      if (db.dialect !== "sqlite" && target.place !== "pglite") {
        assert.ok(db.stats().primary.size > 1, `the race ran on ${db.stats().primary.size} connection(s)`);
      }
    });

    // On MySQL the row is found first and read back by its key, so a caller overtaken by another's update still gets it.
    test("20 concurrent updateOrCreate calls on a fresh key create exactly one row", async () => {
      await clear();
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => accounts.updateOrCreate(db, { email: "race2@example.org" }, { hits: i })),
      );
      assert.equal(results.filter(([, wasCreated]) => wasCreated).length, 1, "exactly one caller created the row");
      assert.equal(await accounts.count(db, { email: "race2@example.org" }), 1);
      assert.equal(new Set(results.map(([row]) => row.id)).size, 1);
      const final = await accounts.getOne(db, { email: "race2@example.org" });
      assert.ok(results.some(([row]) => row.hits === final.hits), "the stored value is one a caller wrote");
    });

    test("20 concurrent updateOrCreate calls writing the same values create exactly one row", async () => {
      await clear();
      const same = await Promise.all(
        Array.from({ length: 20 }, () => accounts.updateOrCreate(db, { email: "race3@example.org" }, { hits: 1 })),
      );
      assert.equal(same.filter(([, wasCreated]) => wasCreated).length, 1);
      assert.equal(await accounts.count(db, { email: "race3@example.org" }), 1);
      assert.equal(new Set(same.map(([row]) => row.id)).size, 1);
      assert.ok(same.every(([row]) => row.hits === 1));
    });

    test("getOrCreate inside a transaction that rolls back leaves no row", async () => {
      await clear();
      await assert.rejects(
        db.transaction(async (tx) => {
          const [row, created] = await accounts.getOrCreate(tx, { email: "tx@example.org" }, { label: "tx" });
          assert.equal(created, true);
          assert.equal((await accounts.getByPk(tx, row.id))?.label, "tx");
          const [, createdAgain] = await accounts.getOrCreate(tx, { email: "tx@example.org" });
          assert.equal(createdAgain, false);
          throw new Error("roll back");
        }),
        /roll back/,
      );
      assert.equal(await accounts.count(db, { email: "tx@example.org" }), 0);
      // And committed work stays.
      await db.transaction(async (tx) => {
        await accounts.updateOrCreate(tx, { email: "tx2@example.org" }, { label: "kept" });
      });
      assert.equal((await accounts.getOne(db, { email: "tx2@example.org" })).label, "kept");
    });

    test("a conflict on another unique key is a QueryError, never another row", async () => {
      await clear();
      const taken = await accounts.insert(db, { email: "taken@example.org", org: 1, handle: "taken" });
      await assert.rejects(
        accounts.getOrCreate(db, { email: "new@example.org" }, { org: 1, handle: "taken" }),
        QueryError,
      );
      await assert.rejects(
        accounts.updateOrCreate(db, { email: "new@example.org" }, { org: 1, handle: "taken" }),
        QueryError,
      );
      assert.equal(await accounts.count(db), 1);
      assert.deepEqual(await accounts.findAll(db), [taken]);
    });
  });
}
