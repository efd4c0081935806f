/**
 * The Worker the workerd suite runs: one module-scope named `Database` per
 * dialect, built from `env` at module scope (no I/O happens there), serving
 * every request. Each route answers JSON; an error is answered as
 * `{ error, name, code }` with status 500, so the suite sees it.
 *
 * @module
 */
import {
  type AcquiredConnection,
  asyncContextAvailable,
  Database,
  type Driver,
  type RoutedScope,
  sql,
} from "@roost/db";
import { RoostDialect } from "@roost/db/kysely";
import { Migrator } from "@roost/db/migrate";
import { column, defineTable } from "@roost/db/model";
import { Kysely, sql as ksql } from "kysely";

/** The Worker's bindings. */
export interface Env {
  POSTGRES_URL?: string;
  MYSQL_URL?: string;
}

type Dialect = "postgres" | "mysql";

function connectionsQuery(dialect: Dialect) {
  // Connections to this run's database, this one included.
  return dialect === "postgres"
    ? sql`select count(*)::int as n, pg_sleep(0.05)::text as s from pg_stat_activity where datname = current_database()`
    : sql`select count(*) as n, sleep(0.05) as s from information_schema.processlist where db = database()`;
}

function readOnlyQuery(dialect: Dialect) {
  return dialect === "postgres"
    ? sql`select current_setting('transaction_read_only') as v`
    : sql`select @@tx_read_only as v`;
}

function connectionIdQuery(dialect: Dialect) {
  return dialect === "postgres" ? sql`select pg_backend_pid() as id` : sql`select connection_id() as id`;
}

/** Ids of `/hold` requests holding their context open, and of those told to let go. */
const holding = new Set<number>();
const released = new Set<number>();

/** Waits (polling, so no promise crosses requests) until another request releases `id`. */
async function heldUntilReleased(id: number): Promise<void> {
  holding.add(id);
  while (!released.has(id)) await new Promise((resolve) => setTimeout(resolve, 5));
  holding.delete(id);
}

/** A route's answer or its error, as the suite compares them. */
async function outcome(run: () => Promise<unknown>): Promise<unknown> {
  try {
    return { ok: await run() };
  } catch (error) {
    const { name, code } = error as { name: string; code?: string };
    return { name, code };
  }
}

/** A table the Worker creates at its first request (`/models`), from its definition. */
const notes = defineTable("wd_notes", {
  id: column.integer().primaryKey(),
  text: column.text().notNull(),
});

/** A handle `/forget` took and never released: `/forgotten`, a later request, tries it. */
let forgottenHandle: AcquiredConnection | undefined;

/** The rows of `items` with this id, on `on`. */
function countOf(on: { fetchVal<T>(query: ReturnType<typeof sql>): Promise<T | undefined> }, id: number) {
  return on.fetchVal(sql`select count(*) from items where id = ${id}`).then(Number);
}

const isReadOnly = (value: unknown) => value === "on" || value === 1 || value === "1" || value === true;

/** One request's work: queries, 10 concurrent ones, a transaction, a replica read. */
async function work(scope: RoutedScope, dialect: Dialect, id: number) {
  await scope.transaction(async (tx) => {
    await tx.execute(sql`insert into items (id, note) values (${id}, ${"first"})`);
    await tx.execute(sql`update items set note = ${"done"} where id = ${id}`);
  });
  const note = await scope.fetchVal<string>(sql`select note from items where id = ${id}`);
  const counts = await Promise.all(
    Array.from({ length: 10 }, () => scope.fetchOne<{ n: number | string }>(connectionsQuery(dialect))),
  );
  const peak = Math.max(...counts.map((row) => Number(row!.n)));
  const onReplica = isReadOnly(await scope.replica((replica) => replica.fetchVal(readOnlyQuery(dialect))));
  const onPrimary = isReadOnly(await scope.fetchVal(readOnlyQuery(dialect)));
  return { id, note, peak, onReplica, onPrimary };
}

/** Builds the Worker for the given drivers. */
export function worker(drivers: Partial<Record<Dialect, Driver>>, env: Env) {
  const urls: Record<Dialect, string | undefined> = { postgres: env.POSTGRES_URL, mysql: env.MYSQL_URL };
  // Module scope: constructing connects nothing; the first query in a request does.
  for (const dialect of ["postgres", "mysql"] as const) {
    const url = urls[dialect];
    if (url === undefined || drivers[dialect] === undefined) continue;
    // The replica is the same database through read-only sessions, enough to see where a read went.
    new Database(url, { name: dialect, driver: drivers[dialect], replicas: [url] });
    // Without replicas a request may use all 6 of its sockets on the primary.
    new Database(url, { name: `${dialect}-solo`, driver: drivers[dialect] });
    // A pool of one per context: a query inside a loop over iterateRows must not wait for the loop's connection.
    new Database(url, { name: `${dialect}-one`, driver: drivers[dialect], pool: { max: 1, acquireTimeout: 5_000 } });
  }

  // Kysely on the registered instances, made on first use (the instances exist by then).
  const kyselies = new Map<Dialect, Kysely<{ items: { id: number; note: string } }>>();
  const kyselyFor = (dialect: Dialect) => {
    let kysely = kyselies.get(dialect);
    if (kysely === undefined) {
      kyselies.set(dialect, kysely = new Kysely({ dialect: new RoostDialect({ database: dialect }) }));
    }
    return kysely;
  };

  async function route(url: URL, dialect: Dialect): Promise<unknown> {
    const db = Database.get(dialect);
    const id = Number(url.searchParams.get("id") ?? 0);
    switch (url.pathname) {
      case "/setup":
        // In a context, as every route that should not be warned about connections outside one.
        await db.context((scope) =>
          scope.execute(sql`create table if not exists items (id int primary key, note varchar(20) not null)`)
        );
        return { created: true };
      case "/hold":
        // Holds a context and a transaction open until /release: the handles work with or without async context.
        return await db.context((scope) =>
          scope.transaction(async (tx) => {
            await tx.execute(sql`insert into items (id, note) values (${id}, ${"held"})`);
            // With async context db.* joins the transaction: it sees the uncommitted row.
            const joined = asyncContextAvailable
              ? await db.fetchVal(sql`select note from items where id = ${id}`)
              : "no async context";
            await heldUntilReleased(id);
            return { id, joined };
          })
        );
      case "/holding":
        return { holding: holding.has(id) };
      case "/release":
        released.add(id);
        return { released: id };
      case "/probe":
        // What each way of querying answers: db.* outside scopes, db.* inside them, and the handles.
        return {
          bare: await outcome(() => db.fetchVal(sql`select 1 as one`)),
          bareTransaction: await outcome(() => db.transaction((tx) => tx.fetchVal(sql`select 2 as two`))),
          inContext: await outcome(() => db.context(() => db.fetchVal(sql`select 3 as three`))),
          handle: await outcome(() => db.context((scope) => scope.fetchVal(sql`select 4 as four`))),
          visible: await outcome(() =>
            db.context((scope) => scope.fetchVal(sql`select count(*) from items where note = ${"held"}`))
          ),
        };
      case "/joins":
        // db.* inside db.transaction inside db.context runs on the transaction's connection.
        return await db.context(() =>
          db.transaction(async (tx) => {
            const own = await tx.fetchVal(connectionIdQuery(dialect));
            const viaDb = await db.fetchVal(connectionIdQuery(dialect));
            await db.execute(sql`insert into items (id, note) values (${id}, ${"joined"})`);
            return { same: own === viaDb, seen: await tx.fetchVal(sql`select note from items where id = ${id}`) };
          })
        );
      case "/explicit": {
        // An instance that chose connectionScope "context" itself, queried outside any context.
        const chosen = new Database(urls[dialect]!, { driver: drivers[dialect], connectionScope: "context" });
        try {
          return { one: Number(await chosen.fetchVal(sql`select 1 as one`)) };
        } finally {
          await chosen.close();
        }
      }
      case "/log":
        // A marker in the Worker's console: once the suite reads it, everything logged before has arrived.
        console.log(`marker ${id}`);
        return { logged: id };
      case "/context":
        // The request's own connections, closed before the response leaves.
        return await db.context((scope) => work(scope, dialect, id));
      case "/solo":
        return await Database.get(`${dialect}-solo`).context((scope) => work(scope, dialect, id));
      case "/bare": {
        // Outside any context: every statement opens and closes a connection of its own.
        await db.transaction(async (tx) => {
          await tx.execute(sql`insert into items (id, note) values (${id}, ${"bare"})`);
        });
        return { id, note: await db.fetchVal(sql`select note from items where id = ${id}`) };
      }
      case "/implicit":
        // db.* calls inside a context and a replica scope: needs async context (nodejs_compat).
        return await db.context(async () => {
          const onReplica = isReadOnly(await db.replica(() => db.fetchVal(readOnlyQuery(dialect))));
          const onPrimary = isReadOnly(await db.fetchVal(readOnlyQuery(dialect)));
          return { onReplica, onPrimary };
        });
      case "/kysely":
        // Kysely on Roost inside the request's context (needs async context): the request's own connections.
        return await db.context(async () => {
          const kysely = kyselyFor(dialect);
          await kysely.transaction().execute((trx) => trx.insertInto("items").values({ id, note: "kysely" }).execute());
          const { note } = await kysely.selectFrom("items").select("note").where("id", "=", id)
            .executeTakeFirstOrThrow();
          const probe = await db.replica(() =>
            (dialect === "postgres"
              ? ksql<{ v: unknown }>`select current_setting('transaction_read_only') as v`
              : ksql<{ v: unknown }>`select @@tx_read_only as v`).execute(kysely)
          );
          return { id, note, onReplica: isReadOnly(probe.rows[0].v) };
        });
      case "/acquire":
        // A handle of the request's own, released at the end of its block; a second one is another connection.
        return await db.context(async () => {
          let first: unknown;
          {
            await using conn = await db.acquire();
            await conn.execute(sql`insert into items (id, note) values (${id}, ${"acquired"})`);
            first = await conn.fetchVal(connectionIdQuery(dialect));
            const second = await db.acquire();
            try {
              const other = await second.fetchVal(connectionIdQuery(dialect));
              if (other === first) throw new Error("two handles on one connection");
            } finally {
              await second.release();
            }
          }
          return { id, note: await db.fetchVal(sql`select note from items where id = ${id}`) };
        });
      case "/forget":
        // Takes a handle, opens a transaction on it, writes, and never releases it.
        return await db.context(async () => {
          forgottenHandle = await db.acquire();
          await forgottenHandle.execute(sql`begin`);
          await forgottenHandle.execute(sql`insert into items (id, note) values (${id}, ${"forgotten"})`);
          return { id, released: forgottenHandle.released };
        });
      case "/forgotten":
        // A later request: the forgotten handle was closed with its request's context, and its write rolled back.
        return {
          released: forgottenHandle?.released,
          query: await outcome(() => forgottenHandle!.fetchVal(sql`select 1 as one`)),
          rows: await db.context((scope) => countOf(scope, id)),
        };
      case "/fresh":
        // Inside a transaction, a fresh connection and an acquired handle see only committed rows.
        return await db.context(() =>
          db.transaction(async (tx) => {
            await tx.execute(sql`insert into items (id, note) values (${id}, ${"fresh"})`);
            const inTransaction = await countOf(db, id);
            const fresh = await db.connection((conn) => countOf(conn, id), { fresh: true });
            const committed = await db.transaction(async () => {
              await db.execute(sql`insert into items (id, note) values (${id + 100_000}, ${"fresh-own"})`);
              return await countOf(db, id);
            }, { fresh: true });
            await using conn = await db.acquire();
            return { id, inTransaction, fresh, committed, acquired: await countOf(conn, id) };
          })
        );
      case "/models": {
        // A Worker creating its tables at its first request, from the definitions, and a migrator stamping them.
        const migrator = new Migrator(db, {
          table: "wd_migrations",
          migrations: [{
            revision: "0001",
            name: "notes",
            up: "create table wd_notes (id int primary key, text text)",
          }],
        });
        return await db.context(async () => {
          const before = await migrator.status();
          const created = await migrator.createTables([notes]);
          await notes.insert(db, { id, text: "from a model" });
          const rows = await notes.findAll(db, {});
          const unstamped = (await migrator.stamp("base")).unstamped;
          const stamped = (await migrator.stamp()).stamped;
          const status = await migrator.status();
          const dropped = await migrator.dropTables([notes]);
          await db.schema.createTables([notes]);
          await db.schema.dropTables([notes]);
          return { before, created, rows, unstamped, stamped, status, dropped, after: await migrator.status() };
        });
      }
      case "/rows":
        // Positional rows, fetched and iterated in batches, while other requests do the same.
        return await db.context(async (scope) => {
          const query = dialect === "postgres"
            ? sql`select n, ${id}::int as id from generate_series(1, 5) as n order by n`
            : sql`select n, ${id} as id from (select 1 as n union all select 2 union all select 3 union all select 4 union all select 5) as t order by n`;
          const fetched = await scope.fetchRows(query);
          const iterated: unknown[][] = [];
          for await (const row of db.iterateRows(query, undefined, { batchSize: 2 })) iterated.push(row.map(Number));
          return { columns: fetched.columns, rows: fetched.rows.map((row) => row.map(Number)), iterated };
        });
      case "/iterate-one": {
        // A pool of one: each row's query inside the loop runs beside the stream, without waiting for its connection.
        const one = Database.get(`${dialect}-one`);
        return await one.context(async () => {
          const ids = Array.from({ length: 10 }, (_, i) => [id + i, "iterated"]);
          await one.executeMany(sql`insert into items (id, note) values (${0}, ${1})`, ids);
          const seen: number[] = [];
          const query = sql`select id from items where id between ${id} and ${id + 9} order by id`;
          for await (const [rowId] of one.iterateRows<[number]>(query, undefined, { batchSize: 2 })) {
            seen.push(Number(await one.fetchVal(sql`select id from items where id = ${rowId}`)));
          }
          return { seen, stats: one.stats().primary };
        });
      }
      case "/close-connecting": {
        // A Database on a server that accepts and never answers (127.0.0.1:`port`, the suite's): a query starts
        // connecting; once the suite has seen the socket arrive (it releases `id`), this same request closes the
        // instance, then stays open until the suite releases `id + 1` (so what closed the socket was close(), not the
        // request's end).
        const silent = new URL(urls[dialect]!);
        silent.hostname = "127.0.0.1";
        silent.port = url.searchParams.get("port")!;
        silent.searchParams.set("connect_timeout", "60");
        const connecting = new Database(silent.toString(), { driver: drivers[dialect], connectionScope: "context" });
        let closeStarted = 0;
        const query = outcome(() => connecting.fetchVal(sql`select 1 as one`)).then((result) => ({
          ...result as object,
          afterClose: Date.now() - closeStarted,
        }));
        await heldUntilReleased(id);
        closeStarted = Date.now();
        const closing = await outcome(() => connecting.close({ timeout: 100 }));
        const answer = { query: await query, close: closing, stats: connecting.stats().primary };
        await heldUntilReleased(id + 1);
        return answer;
      }
      case "/nodriver":
        // A bundle holds only the drivers it imports: without the driver option, the error says which to import.
        return new Database(urls[dialect]!);
      case "/count":
        return { rows: Number(await db.fetchVal(sql`select count(*) from items`)) };
      case "/facts":
        return { asyncContextAvailable, names: Database.names(), stats: db.stats() };
      default:
        throw new Error(`no route ${url.pathname}`);
    }
  }

  return {
    async fetch(request: Request): Promise<Response> {
      const url = new URL(request.url);
      const dialect = (url.searchParams.get("dialect") ?? "postgres") as Dialect;
      try {
        return Response.json(await route(url, dialect));
      } catch (error) {
        const { name, message, code } = error as { name: string; message: string; code?: string };
        return Response.json({ error: message, name, code }, { status: 500 });
      }
    },
  };
}
