/**
 * Kysely and Drizzle compiled queries on every target: real Kysely
 * `CompiledQuery` objects (`builder.compile()`, with its own query compiler
 * for the dialect and no Kysely driver) and real Drizzle `toSQL()` results
 * (from the dialect's `QueryBuilder` and its proxy driver, which never sends
 * anything) run through every query method: `execute`, `executeMany`,
 * `fetchAll`, `fetchOne`, `fetchVal`, `iterate` and `paginate`, on the
 * instance, on a transaction handle and on a connection handle. A parameters
 * array passed with a compiled query, or a compiled query without a
 * parameters array, is refused before anything is sent.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { count, eq, gt, like, type Query as DrizzleSql } from "drizzle-orm";
import { drizzle as mysqlProxy } from "drizzle-orm/mysql-proxy";
import { drizzle as pgProxy } from "drizzle-orm/pg-proxy";
import { drizzle as sqliteProxy } from "drizzle-orm/sqlite-proxy";
import { int, mysqlTable, QueryBuilder as MySqlQueryBuilder, varchar as mysqlVarchar } from "drizzle-orm/mysql-core";
import { integer as pgInteger, pgTable, QueryBuilder as PgQueryBuilder, serial, varchar } from "drizzle-orm/pg-core";
import {
  integer as sqliteInteger,
  QueryBuilder as SQLiteQueryBuilder,
  sqliteTable,
  text as sqliteText,
} from "drizzle-orm/sqlite-core";
import {
  type CompiledQuery as KyselyQuery,
  type DatabaseIntrospector,
  type DialectAdapter,
  DummyDriver,
  type Generated,
  Kysely,
  MysqlAdapter,
  MysqlIntrospector,
  MysqlQueryCompiler,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type QueryCompiler,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
} from "kysely";
import {
  type Database,
  type DialectName,
  KeysetPage,
  Page,
  type Query,
  type Queryable,
  QueryError,
  type QueryEvent,
  sql,
} from "../../mod.ts";
import { columnType, uniqueName } from "../support/support.ts";
import { targets } from "../support/targets.ts";

/** A row of the read-only `items` table. */
type Item = { id: number; grp: number; name: string };
/** A row of the `log` table the tests write to (its `id` is the database's). */
type LogRow = { label: string; n: number | null };

/** 20 items: ids 1…20, `grp` = id % 3, `name` = "n<id>". */
const ITEMS: Item[] = Array.from({ length: 20 }, (_, i) => ({ id: i + 1, grp: (i + 1) % 3, name: `n${i + 1}` }));

/** The queries the tests run, each built by one library for one dialect. */
interface Builders<Q extends Query> {
  /** Which library built them. */
  readonly library: "Kysely" | "Drizzle";
  /** `insert into log (label, n) values (?, ?)` */
  insertLog(label: string, n: number): Q;
  /** `insert into log (label, n) values (?, ?) returning id, label`; not built for MySQL, which has no RETURNING. */
  insertLogReturning: ((label: string, n: number) => Q) | undefined;
  /** `update log set label = ?to where label = ?from` (the new label is the first parameter). */
  relabel(from: string, to: string): Q;
  /** `delete from log where label = ?` */
  deleteLog(label: string): Q;
  /** `select id from log where label = ?` */
  logId(label: string): Q;
  /** `select label, n from log where label like ?prefix% order by id` */
  logRows(prefix: string): Q;
  /** `select id, grp, name from items where id = ?` */
  item(id: number): Q;
  /** `select id, grp, name from items where grp = ? order by id` */
  group(grp: number): Q;
  /** `select id, grp, name from items where id > ?`, in id order or in none. */
  itemsAfter(id: number, ordered: boolean): Q;
  /** `select count(*) from items where grp = ?` */
  countGroup(grp: number): Q;
}

/** The parameters a compiled query carries. */
const paramsOf = (query: KyselyQuery | DrizzleSql): readonly unknown[] =>
  "parameters" in query ? query.parameters : query.params;

// --- Kysely -------------------------------------------------------------------------------------------------------

interface KyselyItems {
  id: number;
  grp: number;
  name: string;
}

interface KyselyLog {
  id: Generated<number>;
  label: string;
  n: number | null;
}

/** The parts of a Kysely dialect that compile queries, per Roost dialect. */
const kyselyParts: Record<DialectName, {
  adapter(): DialectAdapter;
  introspector(db: Kysely<unknown>): DatabaseIntrospector;
  compiler(): QueryCompiler;
}> = {
  postgres: {
    adapter: () => new PostgresAdapter(),
    introspector: (db) => new PostgresIntrospector(db),
    compiler: () => new PostgresQueryCompiler(),
  },
  mysql: {
    adapter: () => new MysqlAdapter(),
    introspector: (db) => new MysqlIntrospector(db),
    compiler: () => new MysqlQueryCompiler(),
  },
  sqlite: {
    adapter: () => new SqliteAdapter(),
    introspector: (db) => new SqliteIntrospector(db),
    compiler: () => new SqliteQueryCompiler(),
  },
};

/** A Kysely instance that only compiles: the dialect's compiler over Kysely's `DummyDriver`. */
function compilingKysely<DB>(dialect: DialectName): Kysely<DB> {
  const parts = kyselyParts[dialect];
  return new Kysely<DB>({
    dialect: {
      createAdapter: parts.adapter,
      createDriver: () => new DummyDriver(),
      createIntrospector: parts.introspector,
      createQueryCompiler: parts.compiler,
    },
  });
}

function kyselyBuilders(dialect: DialectName, items: string, log: string): Builders<KyselyQuery> {
  // The table names are only known at run time: each table gets a Kysely typed for it.
  const k = compilingKysely<Record<string, KyselyItems>>(dialect);
  const l = compilingKysely<Record<string, KyselyLog>>(dialect);
  return {
    library: "Kysely",
    insertLog: (label, n) => l.insertInto(log).values({ label, n }).compile(),
    insertLogReturning: dialect === "mysql"
      ? undefined
      : (label, n) => l.insertInto(log).values({ label, n }).returning(["id", "label"]).compile(),
    relabel: (from, to) => l.updateTable(log).set({ label: to }).where("label", "=", from).compile(),
    deleteLog: (label) => l.deleteFrom(log).where("label", "=", label).compile(),
    logId: (label) => l.selectFrom(log).select("id").where("label", "=", label).compile(),
    logRows: (prefix) =>
      l.selectFrom(log).select(["label", "n"]).where("label", "like", `${prefix}%`).orderBy("id").compile(),
    item: (id) => k.selectFrom(items).select(["id", "grp", "name"]).where("id", "=", id).compile(),
    group: (grp) => k.selectFrom(items).select(["id", "grp", "name"]).where("grp", "=", grp).orderBy("id").compile(),
    itemsAfter: (id, ordered) => {
      const query = k.selectFrom(items).select(["id", "grp", "name"]).where("id", ">", id);
      return (ordered ? query.orderBy("id") : query).compile();
    },
    countGroup: (grp) => k.selectFrom(items).select((eb) => eb.fn.countAll().as("n")).where("grp", "=", grp).compile(),
  };
}

// --- Drizzle ------------------------------------------------------------------------------------------------------

/** The proxy drivers' callback: never called, since only `toSQL()` is used and Roost runs the SQL. */
const notSent = (): Promise<{ rows: unknown[] }> => Promise.reject(new Error("Drizzle does not run queries here"));

function drizzlePostgres(itemsName: string, logName: string): Builders<DrizzleSql> {
  const items = pgTable(itemsName, {
    id: pgInteger("id").primaryKey(),
    grp: pgInteger("grp").notNull(),
    name: varchar("name", { length: 40 }).notNull(),
  });
  const log = pgTable(logName, {
    id: serial("id").primaryKey(),
    label: varchar("label", { length: 40 }).notNull(),
    n: pgInteger("n"),
  });
  const db = pgProxy(notSent);
  const qb = new PgQueryBuilder();
  const columns = { id: items.id, grp: items.grp, name: items.name };
  return {
    library: "Drizzle",
    insertLog: (label, n) => db.insert(log).values({ label, n }).toSQL(),
    insertLogReturning: (label, n) =>
      db.insert(log).values({ label, n }).returning({ id: log.id, label: log.label }).toSQL(),
    relabel: (from, to) => db.update(log).set({ label: to }).where(eq(log.label, from)).toSQL(),
    deleteLog: (label) => db.delete(log).where(eq(log.label, label)).toSQL(),
    logId: (label) => qb.select({ id: log.id }).from(log).where(eq(log.label, label)).toSQL(),
    logRows: (prefix) =>
      qb.select({ label: log.label, n: log.n }).from(log).where(like(log.label, `${prefix}%`)).orderBy(log.id).toSQL(),
    item: (id) => qb.select(columns).from(items).where(eq(items.id, id)).toSQL(),
    group: (grp) => qb.select(columns).from(items).where(eq(items.grp, grp)).orderBy(items.id).toSQL(),
    itemsAfter: (id, ordered) => {
      const query = qb.select(columns).from(items).where(gt(items.id, id));
      return (ordered ? query.orderBy(items.id) : query).toSQL();
    },
    countGroup: (grp) => qb.select({ n: count() }).from(items).where(eq(items.grp, grp)).toSQL(),
  };
}

function drizzleMysql(itemsName: string, logName: string): Builders<DrizzleSql> {
  const items = mysqlTable(itemsName, {
    id: int("id").primaryKey(),
    grp: int("grp").notNull(),
    name: mysqlVarchar("name", { length: 40 }).notNull(),
  });
  const log = mysqlTable(logName, {
    id: int("id").autoincrement().primaryKey(),
    label: mysqlVarchar("label", { length: 40 }).notNull(),
    n: int("n"),
  });
  const db = mysqlProxy(notSent);
  const qb = new MySqlQueryBuilder();
  const columns = { id: items.id, grp: items.grp, name: items.name };
  return {
    library: "Drizzle",
    insertLog: (label, n) => db.insert(log).values({ label, n }).toSQL(),
    insertLogReturning: undefined,
    relabel: (from, to) => db.update(log).set({ label: to }).where(eq(log.label, from)).toSQL(),
    deleteLog: (label) => db.delete(log).where(eq(log.label, label)).toSQL(),
    logId: (label) => qb.select({ id: log.id }).from(log).where(eq(log.label, label)).toSQL(),
    logRows: (prefix) =>
      qb.select({ label: log.label, n: log.n }).from(log).where(like(log.label, `${prefix}%`)).orderBy(log.id).toSQL(),
    item: (id) => qb.select(columns).from(items).where(eq(items.id, id)).toSQL(),
    group: (grp) => qb.select(columns).from(items).where(eq(items.grp, grp)).orderBy(items.id).toSQL(),
    itemsAfter: (id, ordered) => {
      const query = qb.select(columns).from(items).where(gt(items.id, id));
      return (ordered ? query.orderBy(items.id) : query).toSQL();
    },
    countGroup: (grp) => qb.select({ n: count() }).from(items).where(eq(items.grp, grp)).toSQL(),
  };
}

function drizzleSqlite(itemsName: string, logName: string): Builders<DrizzleSql> {
  const items = sqliteTable(itemsName, {
    id: sqliteInteger("id").primaryKey(),
    grp: sqliteInteger("grp").notNull(),
    name: sqliteText("name", { length: 40 }).notNull(),
  });
  const log = sqliteTable(logName, {
    id: sqliteInteger("id").primaryKey({ autoIncrement: true }),
    label: sqliteText("label", { length: 40 }).notNull(),
    n: sqliteInteger("n"),
  });
  const db = sqliteProxy(notSent);
  const qb = new SQLiteQueryBuilder();
  const columns = { id: items.id, grp: items.grp, name: items.name };
  return {
    library: "Drizzle",
    insertLog: (label, n) => db.insert(log).values({ label, n }).toSQL(),
    insertLogReturning: (label, n) =>
      db.insert(log).values({ label, n }).returning({ id: log.id, label: log.label }).toSQL(),
    relabel: (from, to) => db.update(log).set({ label: to }).where(eq(log.label, from)).toSQL(),
    deleteLog: (label) => db.delete(log).where(eq(log.label, label)).toSQL(),
    logId: (label) => qb.select({ id: log.id }).from(log).where(eq(log.label, label)).toSQL(),
    logRows: (prefix) =>
      qb.select({ label: log.label, n: log.n }).from(log).where(like(log.label, `${prefix}%`)).orderBy(log.id).toSQL(),
    item: (id) => qb.select(columns).from(items).where(eq(items.id, id)).toSQL(),
    group: (grp) => qb.select(columns).from(items).where(eq(items.grp, grp)).orderBy(items.id).toSQL(),
    itemsAfter: (id, ordered) => {
      const query = qb.select(columns).from(items).where(gt(items.id, id));
      return (ordered ? query.orderBy(items.id) : query).toSQL();
    },
    countGroup: (grp) => qb.select({ n: count() }).from(items).where(eq(items.grp, grp)).toSQL(),
  };
}

const drizzleBuilders: Record<DialectName, (items: string, log: string) => Builders<DrizzleSql>> = {
  postgres: drizzlePostgres,
  mysql: drizzleMysql,
  sqlite: drizzleSqlite,
};

// --- Helpers ------------------------------------------------------------------------------------------------------

/** The ids of some rows (read as numbers, whatever integer type the driver chose). */
const ids = (rows: readonly { id: unknown }[]) => rows.map((row) => Number(row.id));

/** Every row of a stream. */
async function collect<T>(rows: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const row of rows) all.push(row);
  return all;
}

/** Every page of a keyset walk by `id`, following nextCursor until it is null (at most 50 pages). */
async function walk(handle: Queryable, query: Query, pageSize: number): Promise<KeysetPage<Item>[]> {
  const pages: KeysetPage<Item>[] = [];
  let after: string | null = null;
  do {
    const page: KeysetPage<Item> = await handle.paginate<Item>(query, { pageSize, orderBy: "id", after });
    assert.ok(page instanceof KeysetPage);
    pages.push(page);
    after = page.nextCursor;
    assert.ok(pages.length <= 50, "the walk does not end");
  } while (after !== null);
  return pages;
}

/** A `ROOST_INVALID_QUERY` QueryError. */
const invalidQuery = (error: unknown) => error instanceof QueryError && error.code === "ROOST_INVALID_QUERY";

/**
 * Runs every query method (both kinds of paginate) on `handle` with `query`
 * and `params`, expecting each to reject with `ROOST_INVALID_QUERY`.
 */
async function refusedEverywhere(
  handle: Queryable,
  query: Query,
  params: readonly unknown[] | undefined,
  what: string,
) {
  await assert.rejects(handle.execute(query, params), invalidQuery, `execute: ${what}`);
  await assert.rejects(handle.fetchAll(query, params), invalidQuery, `fetchAll: ${what}`);
  await assert.rejects(handle.fetchOne(query, params), invalidQuery, `fetchOne: ${what}`);
  await assert.rejects(handle.fetchVal(query, params), invalidQuery, `fetchVal: ${what}`);
  await assert.rejects(handle.iterate(query, params, { batchSize: 2 }).next(), invalidQuery, `iterate: ${what}`);
  await assert.rejects(
    handle.paginate(query, { page: 1, pageSize: 2, ...(params === undefined ? {} : { params }) }),
    invalidQuery,
    `paginate (numbered): ${what}`,
  );
  await assert.rejects(
    handle.paginate(query, { pageSize: 2, orderBy: "id", ...(params === undefined ? {} : { params }) }),
    invalidQuery,
    `paginate (keyset): ${what}`,
  );
}

// --- The tests ----------------------------------------------------------------------------------------------------

for (const target of targets()) {
  describe(`Kysely and Drizzle compiled queries on ${target.label}`, () => {
    let db: Database;
    const events: QueryEvent[] = [];
    const itemsName = uniqueName("cq_items");
    const logName = uniqueName("cq_log");
    const items = sql.ident(itemsName);
    const log = sql.ident(logName);
    const libraries = [
      kyselyBuilders(target.dialect, itemsName, logName),
      drizzleBuilders[target.dialect](itemsName, logName),
    ] as const;

    before(async () => {
      db = target.open({ onQuery: (event) => events.push(event), debugParameters: true });
      await db.execute(
        sql`create table ${items} (id integer primary key, grp integer not null, name varchar(40) not null)`,
      );
      await db.executeMany(
        sql`insert into ${items} (id, grp, name) values (${0}, ${0}, ${""})`,
        ITEMS.map((row) => [row.id, row.grp, row.name]),
      );
      const id = sql.unsafe(columnType(target.dialect, "autoId"));
      await db.execute(sql`create table ${log} (id ${id}, label varchar(40) not null, n integer)`);
    });
    after(async () => {
      await db.execute(sql`drop table ${items}`);
      await db.execute(sql`drop table ${log}`);
      await db.close();
    });

    test("the compiled queries are the libraries' own objects, in the dialect's placeholders", () => {
      const [kysely, drizzle] = libraries;
      const compiled = kysely.item(7);
      // Kysely's CompiledQuery carries its operation tree and query id besides sql and parameters.
      assert.ok("query" in compiled && "queryId" in compiled);
      assert.deepEqual(compiled.parameters, [7]);
      assert.deepEqual(drizzle.item(7).params, [7]);
      const mark = target.dialect === "postgres" ? /\$1\b/ : /\?/;
      for (const lib of libraries) assert.match(lib.item(7).sql, mark, lib.library);
    });

    for (const lib of libraries) {
      const tag = (what: string) => `${lib.library}:${what}`;

      test(`${lib.library}: execute runs a compiled insert, update and delete: rowCount and lastInsertId`, async () => {
        const first = await db.execute(lib.insertLog(tag("exec1"), 1));
        const second = await db.execute(lib.insertLog(tag("exec2"), 2));
        assert.equal(first.rowCount, 1);
        assert.equal(second.rowCount, 1);
        const firstId = Number(await db.fetchVal(lib.logId(tag("exec1"))));
        const secondId = Number(await db.fetchVal(lib.logId(tag("exec2"))));
        assert.ok(secondId > firstId);
        if (target.dialect === "postgres") {
          // Postgres reports no insert id (use `returning` there).
          assert.equal(first.lastInsertId, undefined);
          assert.equal(second.lastInsertId, undefined);
        } else {
          assert.equal(Number(first.lastInsertId), firstId);
          assert.equal(Number(second.lastInsertId), secondId);
        }
        assert.deepEqual(await db.execute(lib.relabel(tag("exec1"), tag("exec3"))), { rowCount: 1 });
        assert.deepEqual(await db.fetchAll<LogRow>(lib.logRows(tag("exec"))), [
          { label: tag("exec3"), n: 1 },
          { label: tag("exec2"), n: 2 },
        ]);
        assert.deepEqual(await db.execute(lib.deleteLog(tag("exec2"))), { rowCount: 1 });
        assert.deepEqual(await db.execute(lib.deleteLog(tag("exec2"))), { rowCount: 0 });
        assert.deepEqual(await db.execute(lib.relabel(tag("nobody"), tag("x"))), { rowCount: 0 });
        assert.deepEqual(await db.fetchAll<LogRow>(lib.logRows(tag("exec"))), [{ label: tag("exec3"), n: 1 }]);
      });

      const returning = lib.insertLogReturning;
      if (returning !== undefined) {
        test(`${lib.library}: fetchOne and fetchAll read the rows of a compiled insert … returning`, async () => {
          const row = await db.fetchOne<{ id: number; label: string }>(returning(tag("ret1"), 1));
          assert.equal(row?.label, tag("ret1"));
          assert.equal(Number(row?.id), Number(await db.fetchVal(lib.logId(tag("ret1")))));
          const rows = await db.fetchAll<{ id: number; label: string }>(returning(tag("ret2"), 2));
          assert.equal(rows.length, 1);
          assert.equal(rows[0].label, tag("ret2"));
          assert.ok(Number(rows[0].id) > Number(row?.id));
          assert.equal(Number(await db.fetchVal(returning(tag("ret3"), 3))), Number(rows[0].id) + 1);
          assert.deepEqual(
            await db.fetchAll<LogRow>(lib.logRows(tag("ret"))),
            [1, 2, 3].map((n) => ({ label: tag(`ret${n}`), n })),
          );
        });
      }

      test(`${lib.library}: executeMany runs a compiled statement once per parameter set`, async () => {
        // The compiled query's own values only mark the parameter positions; each set supplies the real ones.
        const insert = lib.insertLog("", 0);
        assert.equal(paramsOf(insert).length, 2);
        const sets = Array.from({ length: 7 }, (_, i) => [tag(`many${i}`), i * 10]);
        const inserted = await db.executeMany(insert, sets);
        assert.equal(inserted.rowCount, 7);
        assert.deepEqual(
          await db.fetchAll<LogRow>(lib.logRows(tag("many"))),
          sets.map(([label, n]) => ({ label, n })),
        );
        // An update (no VALUES tuple to repeat) with [new label, old label] sets.
        const relabelled = await db.executeMany(lib.relabel("", ""), [[tag("many_a"), tag("many0")], [
          tag("many_b"),
          tag("many6"),
        ], [tag("many_c"), tag("nobody")]]);
        assert.equal(relabelled.rowCount, 2);
        assert.deepEqual(
          (await db.fetchAll<LogRow>(lib.logRows(tag("many")))).map((row) => row.label),
          [tag("many_a"), ...sets.slice(1, 6).map(([label]) => label), tag("many_b")],
        );
        // Each set must have as many values as the compiled query has parameters.
        await assert.rejects(
          db.executeMany(insert, [[tag("short")]]),
          (error: unknown) => error instanceof QueryError && error.code === "ROOST_PARAMETER_COUNT",
        );
        assert.deepEqual(await db.executeMany(insert, []), { rowCount: 0 });
        assert.equal(await db.fetchVal(lib.logId(tag("short"))), undefined);
      });

      test(`${lib.library}: fetchAll, fetchOne and fetchVal read rows and values`, async () => {
        const twos = ITEMS.filter((row) => row.grp === 2);
        const rows = await db.fetchAll<Item>(lib.group(2));
        assert.deepEqual(rows, twos);
        assert.equal(Object.getPrototypeOf(rows[0]), Object.prototype);
        assert.deepEqual(await db.fetchAll(lib.group(7)), []);
        assert.deepEqual(await db.fetchOne<Item>(lib.item(11)), { id: 11, grp: 2, name: "n11" });
        assert.equal(await db.fetchOne(lib.item(99)), undefined);
        // The first row of several: the ordered query's first.
        assert.deepEqual(await db.fetchOne<Item>(lib.itemsAfter(15, true)), { id: 16, grp: 1, name: "n16" });
        assert.equal(await db.fetchVal(lib.item(4)), 4);
        assert.equal(await db.fetchVal(lib.item(99)), undefined);
        for (const grp of [0, 1, 2]) {
          // count(*) is a bigint on Postgres: a string or bigint, depending on the driver.
          const n = await db.fetchVal(lib.countGroup(grp));
          assert.equal(Number(n), ITEMS.filter((row) => row.grp === grp).length, `group ${grp}`);
        }
        assert.equal(Number(await db.fetchVal(lib.countGroup(7))), 0);
      });

      test(`${lib.library}: iterate streams every row in batches, and leaving early frees the connection`, async () => {
        for (const batchSize of [1, 3, 20, 100]) {
          const rows = await collect(db.iterate<Item>(lib.itemsAfter(0, true), undefined, { batchSize }));
          assert.deepEqual(rows, ITEMS, `batchSize ${batchSize}`);
        }
        assert.deepEqual(await collect(db.iterate<Item>(lib.group(1), undefined, { batchSize: 2 })), [
          ...ITEMS.filter((row) => row.grp === 1),
        ]);
        assert.deepEqual(await collect(db.iterate(lib.group(7))), []);
        const seen: number[] = [];
        for await (const row of db.iterate<Item>(lib.itemsAfter(5, true), undefined, { batchSize: 4 })) {
          seen.push(row.id);
          if (seen.length === 6) break;
        }
        assert.deepEqual(seen, [6, 7, 8, 9, 10, 11]);
        assert.equal(db.stats().primary.busy, 0, "leaving the loop early frees the connection");
      });

      test(`${lib.library}: paginate reads numbered pages with totals and walks keyset pages`, async () => {
        // Numbered: no LIMIT of the query's own (on MySQL the page's LIMIT is appended to it).
        const ones = ITEMS.filter((row) => row.grp === 1); // 7 rows: ids 1, 4, …, 19
        const page = await db.paginate<Item>(lib.group(1), { page: 2, pageSize: 3 });
        assert.ok(page instanceof Page);
        assert.deepEqual(page.items, ones.slice(3, 6));
        assert.equal(page.totalRows, 7);
        assert.equal(page.totalPages, 3);
        assert.equal(page.nextPage, 3);
        assert.equal(page.previousPage, 1);
        const last = await db.paginate<Item>(lib.group(1), { page: 3, pageSize: 3 });
        assert.deepEqual(last.items, ones.slice(6));
        assert.equal(last.hasNext, false);
        assert.equal(last.totalRows, 7);
        const whole = await db.paginate<Item>(lib.itemsAfter(0, true), { page: 4, pageSize: 6 });
        assert.deepEqual(ids(whole.items), [19, 20]);
        assert.equal(whole.totalRows, 20);
        const empty = await db.paginate(lib.group(7), { pageSize: 5 });
        assert.deepEqual(empty.items, []);
        assert.equal(empty.totalRows, 0);
        // Keyset: the query without an order of its own, ordered by the page.
        const pages = await walk(db, lib.itemsAfter(8, false), 5);
        assert.deepEqual(pages.map((p) => p.items.length), [5, 5, 2]);
        assert.deepEqual(pages.flatMap((p) => p.items), ITEMS.slice(8));
        assert.equal(pages.at(-1)!.nextCursor, null);
        const down = await db.paginate<Item>(lib.itemsAfter(8, false), {
          pageSize: 4,
          orderBy: "id",
          descending: true,
        });
        assert.deepEqual(ids(down.items), [20, 19, 18, 17]);
        const next = await db.paginate<Item>(lib.itemsAfter(8, false), {
          pageSize: 4,
          orderBy: "id",
          descending: true,
          after: down.nextCursor,
        });
        assert.deepEqual(ids(next.items), [16, 15, 14, 13]);
        // A compiled query with an ORDER BY of its own pages by keyset too.
        assert.deepEqual(ids((await walk(db, lib.group(0), 4)).flatMap((p) => p.items)), [3, 6, 9, 12, 15, 18]);
      });

      test(`${lib.library}: the compiled SQL and parameters are sent as they are`, async () => {
        const cases: [string, KyselyQuery | DrizzleSql, () => Promise<unknown>][] = [];
        const item = lib.item(3);
        const insert = lib.insertLog(tag("sent"), 5);
        const group = lib.group(2);
        cases.push(
          ["fetchOne", item, () => db.fetchOne(item)],
          ["execute", insert, () => db.execute(insert)],
          ["fetchAll", group, () => db.fetchAll(group)],
          ["iterate", group, () => collect(db.iterate(group))],
        );
        for (const [method, query, run] of cases) {
          events.length = 0;
          await run();
          const sent = events.filter((event) => event.method === method);
          assert.equal(sent.length, 1, method);
          assert.equal(sent[0].sql, query.sql, method);
          assert.deepEqual(sent[0].parameters, paramsOf(query), method);
          assert.equal(sent[0].error, undefined, method);
        }
      });

      test(`${lib.library}: every method on a transaction handle sees its own writes and rolls back`, async () => {
        await assert.rejects(
          db.transaction(async (tx) => {
            const inserted = await tx.execute(lib.insertLog(tag("tx0"), 0));
            assert.equal(inserted.rowCount, 1);
            const many = await tx.executeMany(lib.insertLog("", 0), [[tag("tx1"), 1], [tag("tx2"), 2], [
              tag("tx3"),
              3,
            ]]);
            assert.equal(many.rowCount, 3);
            assert.deepEqual(
              await tx.fetchAll<LogRow>(lib.logRows(tag("tx"))),
              [0, 1, 2, 3].map((n) => ({ label: tag(`tx${n}`), n })),
            );
            assert.equal(typeof await tx.fetchVal(lib.logId(tag("tx2"))), "number");
            assert.deepEqual(await tx.execute(lib.deleteLog(tag("tx3"))), { rowCount: 1 });
            assert.deepEqual(await tx.fetchOne<Item>(lib.item(20)), { id: 20, grp: 2, name: "n20" });
            // Streaming on the transaction's connection, with other queries between its batches.
            const streamed: { id: number; count: number }[] = [];
            for await (const row of tx.iterate<Item>(lib.itemsAfter(14, true), undefined, { batchSize: 2 })) {
              streamed.push({ id: row.id, count: Number(await tx.fetchVal(lib.countGroup(row.grp))) });
            }
            assert.deepEqual(streamed, ITEMS.slice(14).map((row) => ({ id: row.id, count: row.grp === 0 ? 6 : 7 })));
            const page = await tx.paginate<LogRow>(lib.logRows(tag("tx")), { page: 2, pageSize: 2 });
            assert.deepEqual(page.items, [{ label: tag("tx2"), n: 2 }]);
            assert.equal(page.totalRows, 3);
            const keyset = await walk(tx, lib.itemsAfter(12, false), 3);
            assert.deepEqual(ids(keyset.flatMap((p) => p.items)), ids(ITEMS.slice(12)));
            throw new Error("roll back");
          }),
          /roll back/,
        );
        assert.deepEqual(await db.fetchAll(lib.logRows(tag("tx"))), [], "the rolled-back rows are gone");
        // And a committed one keeps them; the transaction returns what its callback returns.
        const rows = await db.transaction(async (tx) => {
          await tx.executeMany(lib.insertLog("", 0), [[tag("kept1"), 1], [tag("kept2"), 2]]);
          return await tx.fetchAll<LogRow>(lib.logRows(tag("kept")));
        });
        assert.deepEqual(rows, [{ label: tag("kept1"), n: 1 }, { label: tag("kept2"), n: 2 }]);
        assert.deepEqual(await db.fetchAll<LogRow>(lib.logRows(tag("kept"))), rows);
      });

      test(`${lib.library}: every method on a connection handle`, async () => {
        const seen = await db.connection(async (conn) => {
          const inserted = await conn.execute(lib.insertLog(tag("conn0"), 0));
          assert.equal(inserted.rowCount, 1);
          if (target.dialect !== "postgres") {
            assert.equal(Number(inserted.lastInsertId), Number(await conn.fetchVal(lib.logId(tag("conn0")))));
          }
          assert.equal(
            (await conn.executeMany(lib.insertLog("", 0), [[tag("conn1"), 1], [tag("conn2"), 2]])).rowCount,
            2,
          );
          assert.deepEqual(await conn.execute(lib.relabel(tag("conn2"), tag("conn9"))), { rowCount: 1 });
          assert.deepEqual(await conn.fetchOne<Item>(lib.item(1)), { id: 1, grp: 1, name: "n1" });
          assert.equal(Number(await conn.fetchVal(lib.countGroup(0))), 6);
          assert.deepEqual(await conn.fetchAll<Item>(lib.group(0)), ITEMS.filter((row) => row.grp === 0));
          const streamed = await collect(conn.iterate<Item>(lib.itemsAfter(10, true), undefined, { batchSize: 3 }));
          assert.deepEqual(streamed, ITEMS.slice(10));
          const page = await conn.paginate<Item>(lib.itemsAfter(0, true), { page: 3, pageSize: 8 });
          assert.deepEqual(ids(page.items), [17, 18, 19, 20]);
          assert.equal(page.totalRows, 20);
          const keyset = await walk(conn, lib.itemsAfter(0, false), 7);
          assert.deepEqual(keyset.flatMap((p) => p.items), ITEMS);
          return await conn.fetchAll<LogRow>(lib.logRows(tag("conn")));
        });
        const expected = [{ label: tag("conn0"), n: 0 }, { label: tag("conn1"), n: 1 }, { label: tag("conn9"), n: 2 }];
        assert.deepEqual(seen, expected);
        // No transaction: the writes stay after the scope ends.
        assert.deepEqual(await db.fetchAll<LogRow>(lib.logRows(tag("conn"))), expected);
      });
    }

    test("a parameters array with a compiled query is a ROOST_INVALID_QUERY QueryError, and nothing is sent", async () => {
      events.length = 0;
      for (const lib of libraries) {
        const query = lib.item(1);
        // Even the parameters the query carries, or none at all: the compiled query carries its own.
        for (const params of [[1], [], paramsOf(query)]) {
          await refusedEverywhere(db, query, params, `${lib.library} with ${JSON.stringify(params)}`);
        }
        await db.transaction((tx) => refusedEverywhere(tx, query, [1], `${lib.library} in a transaction`));
        await db.connection((conn) => refusedEverywhere(conn, query, [1], `${lib.library} on a connection`));
      }
      assert.deepEqual(events, [], "nothing was sent");
      // The handles still work afterwards.
      for (const lib of libraries) assert.equal(await db.fetchVal(lib.item(5)), 5);
    });

    test("a compiled query whose parameters (or params) is not an array is a ROOST_INVALID_QUERY QueryError", async () => {
      const [kysely, drizzle] = libraries;
      const k = kysely.item(1);
      const d = drizzle.item(1);
      const broken: [string, unknown][] = [
        ["Kysely, parameters a string", { ...k, parameters: "1" }],
        ["Kysely, parameters array-like", { ...k, parameters: { 0: 1, length: 1 } }],
        ["Kysely, parameters a Set", { ...k, parameters: new Set([1]) }],
        ["Kysely, parameters undefined (params beside it is not read)", { ...k, parameters: undefined, params: [1] }],
        ["Drizzle, params null", { ...d, params: null }],
        ["Drizzle, params a number", { ...d, params: 1 }],
        ["neither parameters nor params", { sql: d.sql }],
      ];
      events.length = 0;
      for (const [what, query] of broken) {
        await refusedEverywhere(db, query as Query, undefined, what);
        await assert.rejects(db.executeMany(query as Query, [[1]]), invalidQuery, `executeMany: ${what}`);
      }
      assert.deepEqual(events, [], "nothing was sent");
    });
  });
}
