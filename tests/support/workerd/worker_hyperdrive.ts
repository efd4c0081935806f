/**
 * The Hyperdrive suite's Worker (`nodejs_compat`): two named Databases built
 * from two Hyperdrive bindings, `HYPERDRIVE` (the primary)
 * and `HYPERDRIVE_REPLICA` (its read replica), through postgres.js. "hd"
 * reads from the primary unless a scope asks for the replica; "hd-routed"
 * sends reads to the replica, except right after the request's own writes.
 * Every route runs in `db.context()` and answers JSON; an error is answered
 * as `{ error, name, code }` with status 500.
 *
 * @module
 */
import { env } from "cloudflare:workers";
import { Database, type Queryable, type RoutedScope, sql } from "@roost/db";
import { postgresJs } from "@roost/db/drivers/postgres-js";

/** What the Worker reads of a Hyperdrive binding. */
interface Hyperdrive {
  readonly connectionString: string;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly database: string;
}

/** The Worker's bindings. */
interface Env {
  HYPERDRIVE: Hyperdrive;
  HYPERDRIVE_REPLICA: Hyperdrive;
}

const bindings = env as unknown as Env;

/**
 * The two named instances, built by the first request and kept at module
 * scope for the rest: workerd refuses to hand out a binding's
 * `connectionString` at module scope ("Disallowed operation called within
 * global scope"). Constructing connects nothing; the first query does.
 */
function open(): void {
  if (Database.has("hd")) return;
  const primaryUrl = bindings.HYPERDRIVE.connectionString;
  const replicaUrl = bindings.HYPERDRIVE_REPLICA.connectionString;
  new Database(primaryUrl, { name: "hd", driver: postgresJs, replicas: [replicaUrl] });
  new Database(primaryUrl, {
    name: "hd-routed",
    driver: postgresJs,
    replicas: [replicaUrl],
    routing: { reads: "replicas", readYourWrites: 60_000 },
  });
  firstSeen = primaryUrl;
}

/** The primary binding's connectionString as the first request read it. */
let firstSeen = "";

/** Which server a statement ran on: the standby is in recovery, and each listens on its own port. */
const whereQuery = sql`select pg_is_in_recovery() as standby, inet_server_port() as port`;

async function where(on: Queryable): Promise<{ standby: boolean; port: number }> {
  const row = await on.fetchOne<{ standby: boolean; port: number }>(whereQuery);
  return { standby: row!.standby, port: Number(row!.port) };
}

/** One request's work: a transaction, a rolled-back one, prepared statements, 10 concurrent reads, both servers. */
async function work(scope: RoutedScope, id: number) {
  await scope.transaction(async (tx) => {
    await tx.execute(sql`insert into items (id, note) values (${id}, ${"first"})`);
    await tx.execute(sql`update items set note = ${"done"} where id = ${id}`);
  });
  const undone = -id;
  await scope.transaction(async (tx) => {
    await tx.execute(sql`insert into items (id, note) values (${undone}, ${"undone"})`);
    throw new Error("roll it back");
  }).catch(() => {});
  const rolledBack = Number(await scope.fetchVal(sql`select count(*) from items where id = ${undone}`)) === 0;
  // The same statement five times on one connection: postgres.js prepares it once, by name, on that session.
  const prepared = await scope.connection(async (conn) => {
    for (let i = 0; i < 5; i++) await conn.fetchVal(sql`select note from items where id = ${id}`);
    return Number(
      await conn.fetchVal(
        sql`select count(*) from pg_prepared_statements where statement = ${"select note from items where id = $1"}`,
      ),
    );
  });
  const note = await scope.fetchVal<string>(sql`select note from items where id = ${id}`);
  // Connections to this database on the primary, this one included.
  const counts = await Promise.all(
    Array.from({ length: 10 }, () =>
      scope.fetchVal(
        sql`select count(*)::int as n, pg_sleep(0.05)::text as s from pg_stat_activity where datname = current_database()`,
      )),
  );
  const peak = Math.max(...counts.map(Number));
  return { id, note, rolledBack, prepared, peak, primary: await where(scope), replica: await scope.replica(where) };
}

async function route(url: URL): Promise<unknown> {
  open();
  const db = Database.get("hd");
  const id = Number(url.searchParams.get("id") ?? 0);
  switch (url.pathname) {
    case "/binding": {
      // What the binding gives the Worker (never its password).
      const parsed = new URL(bindings.HYPERDRIVE.connectionString);
      const replica = new URL(bindings.HYPERDRIVE_REPLICA.connectionString);
      return {
        protocol: parsed.protocol,
        host: parsed.hostname,
        port: parsed.port,
        search: parsed.search,
        user: decodeURIComponent(parsed.username),
        database: parsed.pathname.slice(1),
        fields: [bindings.HYPERDRIVE.host, bindings.HYPERDRIVE.port, bindings.HYPERDRIVE.user],
        unchanged: bindings.HYPERDRIVE.connectionString === firstSeen,
        replicaHost: replica.hostname,
      };
    }
    case "/setup":
      return await db.context(async (scope) => {
        await scope.execute(sql`create table if not exists items (id int primary key, note varchar(20) not null)`);
        return { created: true };
      });
    case "/work":
      return await db.context((scope) => work(scope, id));
    case "/routed": {
      // Reads go to the replica until the request writes; then they stay on the primary (read-your-writes).
      const routed = Database.get("hd-routed");
      return await routed.context(async (scope) => {
        const before = await where(scope);
        await scope.execute(sql`insert into items (id, note) values (${id}, ${"routed"})`);
        const after = await where(scope);
        const seen = await scope.fetchVal(sql`select note from items where id = ${id}`);
        return { before, after, seen };
      });
    }
    case "/replicated":
      // Read on the replica alone: whether a row has reached it yet.
      return await db.context((scope) =>
        scope.replica(async (replica) => ({
          note: (await replica.fetchVal(sql`select note from items where id = ${id}`)) ?? null,
        }))
      );
    case "/session":
      // A session setting made on one connection, read back on it by the next statement; the start-up parameters.
      return await db.context((scope) =>
        scope.connection(async (conn) => {
          await conn.execute(sql`select set_config('application_name', ${"roost-hyperdrive"}, false)`);
          return {
            setting: await conn.fetchVal(sql`select current_setting('application_name')`),
            // The session parameters Roost sends in the start-up message.
            startup: await conn.fetchVal(
              sql`select current_setting('TimeZone') || ' ' || current_setting('DateStyle')`,
            ),
          };
        })
      );
    case "/fresh":
      // The same read before and after a write, outside transactions: a cache in between would answer the first.
      return await db.context(async (scope) => {
        await scope.execute(sql`insert into items (id, note) values (${id}, ${"before"})`);
        const before = await scope.fetchVal(sql`select note from items where id = ${id}`);
        await scope.execute(sql`update items set note = ${"after"} where id = ${id}`);
        return { reads: [before, await scope.fetchVal(sql`select note from items where id = ${id}`)] };
      });
    case "/count":
      return await db.context(async (scope) => ({
        rows: Number(await scope.fetchVal(sql`select count(*) from items`)),
      }));
    default:
      throw new Error(`no route ${url.pathname}`);
  }
}

export default {
  async fetch(request: Request): Promise<Response> {
    try {
      return Response.json(await route(new URL(request.url)));
    } catch (error) {
      const { name, message, code } = error as { name: string; message: string; code?: string };
      return Response.json({ error: message, name, code }, { status: 500 });
    }
  },
};
