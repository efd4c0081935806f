/**
 * The Worker the D1 suite runs (tests/behaviour/d1.test.ts): a module-scope
 * named `Database` over the `DB` binding (miniflare's local D1), serving
 * every request in a `db.context()` of its own. Each route answers JSON; an
 * error is answered as `{ error, name, code }` with status 500.
 *
 * @module
 */
import { env } from "cloudflare:workers";
import { type AcquiredConnection, asyncContextAvailable, Database, type RoutedScope, sql } from "@roost/db";
import { continueD1Session, d1, type D1Binding, d1Bookmark } from "@roost/db/drivers/d1";
import { RoostDialect } from "@roost/db/kysely";
import { Migrator } from "@roost/db/migrate";
import { column, defineTable } from "@roost/db/model";
import { Kysely } from "kysely";

const binding = (env as { DB: D1Binding }).DB;
// Module scope: constructing connects nothing.
const db = new Database("d1:DB", { name: "d1", driver: d1(binding) });
/** The handle `/forget` took and never released. */
let forgotten: AcquiredConnection | undefined;

/** A call's answer or its error's name and code, as the suite compares them. */
async function outcome(run: () => Promise<unknown>): Promise<unknown> {
  try {
    return { ok: await run() };
  } catch (error) {
    const { name, code } = error as { name: string; code?: string };
    return { name, code };
  }
}

/** Bytes as a plain array, so they survive JSON; anything else as it is. */
function plain(value: unknown): unknown {
  return value instanceof Uint8Array ? { bytes: Array.from(value) } : value;
}

/** A table a D1 Worker creates at a request, from its definition. */
const tags = defineTable("d1_tags", { id: column.integer().primaryKey(), name: column.text().notNull() });

const routes: Record<string, (url: URL, request: Request) => Promise<unknown>> = {
  "/facts": () =>
    Promise.resolve({ names: Database.names(), asyncContextAvailable, url: db.url, stats: db.stats().primary }),

  "/setup": () =>
    db.context(async (scope) => {
      await scope.execute(sql`drop table if exists notes`);
      await scope.execute(sql`drop table if exists kinds`);
      await scope.execute(sql`create table notes (id integer primary key, text text not null unique, n integer)`);
      await scope.execute(sql`create table kinds (
        id integer primary key, flag integer, bytes blob, at text, doc text, big integer, real_n real, empty_text text
      )`);
      return "ready";
    }),

  "/rows": () =>
    db.context(async (scope) => {
      const query = sql`select * from kinds order by id`;
      const objects = await scope.fetchAll(query);
      const { columns, rows } = await scope.fetchRows(query);
      const iterated: unknown[][] = [];
      for await (const row of scope.iterateRows(query, undefined, { batchSize: 1 })) iterated.push(row.map(plain));
      return {
        columns,
        rows: rows.map((row) => row.map(plain)),
        objects: objects.map((row) => columns.map((column) => plain(row[column]))),
        iterated,
        repeated: await scope.fetchRows(sql`select 1 as a, 2 as a`),
        numbered: await scope.fetchRows(sql`select 1 as "2", 2 as "1"`),
        first: await scope.fetchRow(sql`select ${4} as n`),
        none: await scope.fetchRow(sql`select 1 as n from kinds where id = -1`) ?? "undefined",
        empty: await scope.fetchRows(sql`select id, flag from kinds where id = -1`),
        replica: await scope.replica((replica) => replica.fetchRow(sql`select 5 as n`)),
      };
    }),

  "/values": () =>
    db.context(async (scope) => {
      const bytes = new Uint8Array([0, 1, 2, 254, 255]);
      const at = new Date("2024-02-29T12:34:56.789Z");
      const inserted = await scope.execute(
        sql`insert into kinds (flag, bytes, at, doc, big, real_n, empty_text) values
            (${true}, ${bytes}, ${at}, ${{ a: [1, "two"] }}, ${2n ** 40n}, ${1.5}, ${null})`,
      );
      const buffer = await scope.execute(
        sql`insert into kinds (flag, bytes) values (${false}, ${new Uint8Array([9, 8]).buffer})`,
      );
      const row = await scope.fetchOne<Record<string, unknown>>(
        sql`select * from kinds where id = ${inserted.lastInsertId!}`,
      );
      const second = await scope.fetchOne<Record<string, unknown>>(
        sql`select flag, bytes from kinds where id = ${buffer.lastInsertId!}`,
      );
      const same = await scope.fetchAll(sql`select 1 as a, 2 as a`);
      const typeofs = await scope.fetchOne(
        sql`select typeof(bytes) as bytes, typeof(flag) as flag, typeof(big) as big from kinds where id = ${inserted
          .lastInsertId!}`,
      );
      return {
        inserted,
        row: Object.fromEntries(Object.entries(row!).map(([key, value]) => [key, plain(value)])),
        second: { flag: second!.flag, bytes: plain(second!.bytes) },
        bytesIsUint8Array: row!.bytes instanceof Uint8Array,
        same,
        typeofs,
        fetchVal: await scope.fetchVal(sql`select ${"text"} as v`),
        none: await scope.fetchOne(sql`select 1 from kinds where id = -1`) ?? "undefined",
      };
    }),

  /** Text and numbers through D1's JSON transport: each value bound, stored and read back. */
  "/roundtrip": () =>
    db.context(async (scope) => {
      const texts = [
        "",
        'it\'s "quoted" \\ -- not a comment; /* nor this */',
        "ünïcödé 漢字 🦉",
        "\u{feff}starts with a BOM",
        "nul \u0000 inside",
        "line\nbreaks\r\n\ttab",
        "x".repeat(100_000),
      ];
      const numbers = [0, -0, 1.5, -(2 ** 53) + 1, 2 ** 53 - 1, 1e308, 5e-324, NaN];
      await scope.execute(sql`drop table if exists roundtrip`);
      await scope.execute(sql`create table roundtrip (id integer primary key, t text, r real)`);
      await scope.executeMany(sql`insert into roundtrip (id, t) values (${0}, ${1})`, texts.map((t, i) => [i, t]));
      await scope.executeMany(
        sql`insert into roundtrip (id, r) values (${0}, ${1})`,
        numbers.map((n, i) => [100 + i, n]),
      );
      const rows = await scope.fetchAll<{ id: number; t: string | null; r: number | null }>(
        sql`select id, t, r from roundtrip order by id`,
      );
      const textsBack = rows.filter((row) => row.id < 100).map((row) => row.t);
      const numbersBack = rows.filter((row) => row.id >= 100).map((row) => row.r);
      return {
        textMismatches: texts.flatMap((t, i) => textsBack[i] === t ? [] : [i]),
        // JSON has no -0 or NaN: what D1 stores for them (String keeps -0 apart). SQLite stores NaN as NULL anyway.
        numbers: numbersBack.map((n) => Object.is(n, -0) ? "-0" : n === null ? null : String(n)),
        infinity: await outcome(() => scope.execute(sql`insert into roundtrip (r) values (${-Infinity})`)),
      };
    }),

  "/errors": () =>
    db.context(async (scope) => {
      await scope.execute(sql`insert into notes (id, text) values (${1000}, ${"unique-secret-9"})`);
      const unique = await outcome(() => scope.execute(sql`insert into notes (text) values (${"unique-secret-9"})`));
      let message = "";
      try {
        await scope.execute(sql`insert into notes (text) values (${"unique-secret-9"})`);
      } catch (error) {
        message = String((error as Error).message) + String((error as Error).stack);
      }
      return {
        unique,
        uniqueLeaksValue: message.includes("unique-secret-9"),
        notNull: await outcome(() => scope.execute(sql`insert into notes (text) values (${null})`)),
        syntax: await outcome(() => scope.execute(sql`selec 1`)),
        noTable: await outcome(() => scope.fetchAll(sql`select * from missing_table`)),
        bigint: await outcome(() => scope.execute(sql`insert into kinds (big) values (${2n ** 60n})`)),
        undefinedParam: await outcome(() => scope.execute(sql`insert into kinds (big) values (${undefined})`)),
        stillWorks: await scope.fetchVal(sql`select count(*) from notes where id = 1000`),
      };
    }),

  "/batch": () =>
    db.context(async (scope) => {
      await scope.execute(sql`delete from notes where id between 2000 and 2999`);
      const insert = sql`insert into notes (id, text) values (${0}, ${1})`;
      const many = await scope.executeMany(insert, [[2001, "b1"], [2002, "b2"], [2003, "b3"]]);
      // The third set collides with the first: D1 runs the batch atomically, so none of it stays.
      const failed = await outcome(() => scope.executeMany(insert, [[2004, "b4"], [2005, "b5"], [2001, "again"]]));
      const count = await scope.fetchVal(sql`select count(*) from notes where id between 2000 and 2999`);
      const empty = await scope.executeMany(insert, []);
      return { many, failed, count, empty };
    }),

  "/transactions": () =>
    db.context(async (scope) => {
      const before = await scope.fetchVal(sql`select count(*) from notes`);
      return {
        transaction: await outcome(() =>
          scope.transaction(async (tx) => {
            await tx.execute(sql`insert into notes (text) values (${"never"})`);
          })
        ),
        begin: await outcome(() => scope.begin()),
        rawBegin: await outcome(() => scope.execute(sql`begin`)),
        rawSavepoint: await outcome(() => scope.execute(sql`savepoint a`)),
        connection: await outcome(() =>
          scope.connection(async (conn) => {
            await conn.execute(sql`insert into notes (text) values (${"held"})`);
            const nested = await outcome(() => conn.transaction(() => 1));
            return { seen: await conn.fetchVal(sql`select count(*) from notes where text = ${"held"}`), nested };
          })
        ),
        unchanged: Number(await scope.fetchVal(sql`select count(*) from notes where text = ${"never"}`)),
        grew: Number(await scope.fetchVal(sql`select count(*) from notes`)) - Number(before),
        // forceRollback wraps everything in one transaction: its first statement is refused the same way.
        forceRollback: await outcome(async () => {
          const forced = new Database("d1:DB", {
            driver: d1(binding),
            connectionScope: "instance",
            forceRollback: true,
          });
          try {
            return await forced.context((forcedScope) => forcedScope.fetchVal(sql`select 1`));
          } finally {
            await forced.close();
          }
        }),
      };
    }),

  /** One request: a write, reads after it, concurrent queries, a stream and a replica scope, in one context. */
  "/context": (url) => {
    const id = Number(url.searchParams.get("id"));
    return db.context(async (scope: RoutedScope) => {
      await scope.execute(sql`insert into notes (id, text, n) values (${id}, ${`note ${id}`}, ${id})`);
      const text = await scope.fetchVal(sql`select text from notes where id = ${id}`);
      const concurrent = await Promise.all(
        Array.from({ length: 8 }, (_, i) => scope.fetchVal<number>(sql`select n + ${i} from notes where id = ${id}`)),
      );
      // No cursor on D1: the rows come whole, then in batches; a query inside the loop shares the one connection.
      const streamed: number[] = [];
      const series = sql`with recursive c(x) as (select 1 union all select x + 1 from c where x < 5) select x from c`;
      for await (const row of scope.iterate<{ x: number }>(series, undefined, { batchSize: 2 })) {
        streamed.push(row.x + Number(await scope.fetchVal(sql`select count(*) from notes where id = ${id}`)) - 1);
      }
      const replica = await scope.replica(async (r) => ({
        read: await r.fetchVal(sql`select text from notes where id = ${id}`),
        write: await outcome(() => r.execute(sql`delete from notes where id = ${id}`)),
      }));
      const implicit = asyncContextAvailable ? await db.fetchVal(sql`select count(*) from notes where id = ${id}`) : 1;
      return { id, text, concurrent, streamed, replica, implicit, bookmark: typeof await d1Bookmark(scope) };
    });
  },

  "/count": () => db.context((scope) => scope.fetchVal(sql`select count(*) from notes where id between 1 and 999`)),

  /** Writes a note and answers with the session's bookmark, as a response would carry it to the client. */
  "/write": (url) =>
    db.context(async (scope) => {
      await continueD1Session(scope, url.searchParams.get("bookmark"));
      const before = await d1Bookmark(scope);
      const id = Number(url.searchParams.get("id"));
      await scope.execute(sql`insert into notes (id, text) values (${id}, ${`written ${id}`})`);
      return { before, bookmark: await d1Bookmark(scope) };
    }),

  /** Continues the client's session from its bookmark, then reads. */
  "/read": (url) =>
    db.context(async (scope) => {
      const given = url.searchParams.get("bookmark");
      await continueD1Session(scope, given);
      const start = await d1Bookmark(scope);
      const text = await scope.fetchVal(sql`select text from notes where id = ${Number(url.searchParams.get("id"))}`);
      const late = await outcome(() => continueD1Session(scope, given ?? "x"));
      return { start, text: text ?? null, bookmark: await d1Bookmark(scope), late };
    }),

  "/misuse": async () => ({
    noBinding: await outcome(() => Promise.resolve(new Database("d1:DB"))),
    sqliteDriverOnD1: await outcome(() => Promise.resolve(new Database("sqlite::memory:", { driver: d1(binding) }))),
    replicas: await outcome(() => Promise.resolve(new Database("d1:DB", { driver: d1(binding), replicas: ["d1:DB"] }))),
    badBinding: await outcome(() => Promise.resolve(d1({} as D1Binding))),
    badUrl: await outcome(() => Promise.resolve(new Database("d1:no-such name", { driver: d1(binding) }))),
  }),

  /** Inside a connection() scope, the context's one connection is held: its handle works, the context's waits. */
  "/held": async () => {
    const own = new Database("d1:DB", { driver: d1(binding), pool: { acquireTimeout: 300 } });
    try {
      return await own.context((scope) =>
        scope.connection(async (conn) => ({
          conn: await conn.fetchVal(sql`select 1`),
          context: await outcome(() => scope.fetchVal(sql`select 1`)),
          bookmark: await outcome(() => d1Bookmark(scope)),
        }))
      );
    } finally {
      await own.close();
    }
  },

  /** acquire() and fresh on D1: a handle is the context's D1 session; a fresh transaction is refused at once. */
  "/acquire": async (url) => {
    const id = Number(url.searchParams.get("id"));
    const own = new Database("d1:DB", { driver: d1(binding), pool: { acquireTimeout: 5_000 } });
    try {
      return await own.context(async (scope) => {
        // db.acquire(), as every db.* call, needs async context (nodejs_compat).
        const handle = await outcome(async () => {
          await using conn = await own.acquire();
          await conn.execute(sql`insert into notes (id, text) values (${id}, ${`acquired ${id}`})`);
          return {
            seen: await conn.fetchVal(sql`select text from notes where id = ${id}`),
            transaction: await outcome(() => conn.transaction(() => conn.fetchVal(sql`select 1`))),
          };
        });
        const fresh = await outcome(() => scope.transaction(() => scope.fetchVal(sql`select 1`), { fresh: true }));
        const freshBegin = await outcome(() => scope.begin({ fresh: true }));
        // A fresh transaction inside a held connection (the pool's only one) is refused at once, not after a wait.
        const inside = await scope.connection(() =>
          outcome(() => own.transaction(() => own.fetchVal(sql`select 1`), { fresh: true }))
        );
        const insideBegin = await scope.connection(() => outcome(() => scope.begin({ fresh: true })));
        return {
          handle,
          fresh,
          freshBegin,
          inside,
          insideBegin,
          after: await scope.fetchVal(sql`select count(*) from notes where id = ${id}`),
        };
      });
    } finally {
      await own.close();
    }
  },

  /** A forgotten handle: the context's end reclaims its session, a later request finds it refused. */
  "/forget": () =>
    db.context(async () => {
      forgotten = await db.acquire();
      return { released: forgotten.released };
    }),
  "/forgotten": async () => ({
    released: forgotten?.released,
    query: await outcome(() => forgotten!.fetchVal(sql`select 1`)),
    next: await db.context((scope) => scope.fetchVal(sql`select 2`)),
  }),

  /** db.schema and the migrator on D1, at a request. */
  "/models": () =>
    db.context(async (scope) => {
      const migrator = new Migrator(db, {
        table: "d1_migrations",
        migrations: [{
          revision: "0001",
          name: "tags",
          up: "create table d1_tags (id integer primary key, name text)",
        }],
      });
      // The handle of the context, so it runs without async context too.
      const schema = await outcome(async () => {
        await db.schema.createTables([tags]);
        await scope.execute(sql`insert into d1_tags (id, name) values (${1}, ${"one"})`);
        const rows = await scope.fetchAll(sql`select * from d1_tags`);
        await db.schema.dropTables([tags]);
        return rows;
      });
      return {
        schema,
        status: await outcome(() => migrator.status()),
        createTables: await outcome(() => migrator.createTables([tags])),
        stamp: await outcome(() => migrator.stamp()),
        upgrade: await outcome(() => migrator.upgrade()),
        dropTables: await outcome(() => migrator.dropTables([tags])),
        // Refused before the history table was made.
        history: await scope.fetchVal(sql`select count(*) from sqlite_master where name = ${"d1_migrations"}`),
      };
    }),

  /** Kysely on Roost over D1, inside the request's context (needs async context): queries run, transactions refused. */
  "/kysely": (url) => {
    const id = Number(url.searchParams.get("id"));
    const kysely = new Kysely<{ notes: { id: number; text: string; n: number | null } }>({
      dialect: new RoostDialect({ database: "d1" }),
    });
    return db.context(async () => {
      await kysely.insertInto("notes").values({ id, text: `kysely ${id}`, n: null }).execute();
      const row = await kysely.selectFrom("notes").select(["id", "text"]).where("id", "=", id).executeTakeFirst();
      const transaction = await outcome(() =>
        kysely.transaction().execute((trx) => trx.deleteFrom("notes").where("id", "=", id).execute())
      );
      return { row, transaction, still: await db.fetchVal(sql`select count(*) from notes where id = ${id}`) };
    });
  },

  "/close": async () => {
    const own = new Database("d1:DB", { driver: d1(binding), connectionScope: "instance" });
    const before = await own.context((scope) => scope.fetchVal(sql`select 41 + 1`));
    await own.close();
    const after = await outcome(() => own.context((scope) => scope.fetchVal(sql`select 1`)));
    return { before, after, closed: own.closed };
  },
};

export default {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const route = routes[url.pathname];
    if (route === undefined) return Response.json({ error: "no such route" }, { status: 404 });
    try {
      return Response.json(await route(url, request) ?? null);
    } catch (error) {
      const { name, code, message } = error as { name: string; code?: string; message: string };
      return Response.json({ error: message, name, code }, { status: 500 });
    }
  },
};
