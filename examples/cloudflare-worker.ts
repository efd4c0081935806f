/**
 * The notes API (examples/notes.ts) as a Cloudflare Worker over a named Roost
 * database.
 *
 *   npm i -D wrangler                     # wrangler is not a dependency of Roost
 *   cd examples && npx wrangler dev      # uses examples/wrangler.toml
 *   curl -X POST localhost:8787/notes -d '{"text":"hello"}'
 *   curl localhost:8787/notes
 *
 * The database: either a Hyperdrive binding `HYPERDRIVE` (wrangler.toml
 * [[hyperdrive]]), with an optional second one, `HYPERDRIVE_REPLICA`, in front
 * of a read replica; or the environment (wrangler.toml [vars],
 * `npx wrangler secret put`, or .dev.vars): DATABASE_URL (postgres://… or
 * mysql://…; a Worker has no SQLite files) and REPLICA_URLS
 * (comma-separated, optional). A binding wins over DATABASE_URL.
 *
 * A Postgres URL goes over TCP through postgres.js, except a Neon database
 * (a `*.neon.tech` host) or a URL that names a WebSocket proxy
 * (`?wsproxy=wss://…`): those go over a WebSocket through the neon driver
 * (`@neondatabase/serverless`, which needs no `nodejs_compat`).
 *
 * The Database is built by the first request and kept at module scope for the
 * others; constructing connects nothing. Each request runs in db.context():
 * on Workers its connections are its own and are closed before the response
 * leaves (a socket must not outlive its request). Behind Hyperdrive those
 * connections go to Hyperdrive near the Worker, whose pool holds the
 * connections to the database (see docs/edge.md, Hyperdrive).
 */
import { env } from "cloudflare:workers";
import { Database, type Driver } from "@roost/db";
import { mysql2 } from "@roost/db/drivers/mysql2";
import { neon } from "@roost/db/drivers/neon";
import { postgresJs } from "@roost/db/drivers/postgres-js";
import { type NotesEnv, notesHandler, openNotesDatabase } from "./notes.ts";

/** A bundle holds only the drivers it imports: pick one by the URL's scheme. */
function driverFor(url = ""): Driver {
  if (/^postgres(ql)?:/.test(url)) return /[?&]wsproxy=|@[^/?]*\.neon\.tech[:/?]/.test(url) ? neon : postgresJs;
  if (/^(mysql|mariadb):/.test(url)) return mysql2;
  throw new Error("set DATABASE_URL to a postgres:// or mysql:// URL (a Worker has no SQLite files)");
}

/** What the Worker reads of a Hyperdrive binding: the URL that reaches the database through it. */
interface Hyperdrive {
  readonly connectionString: string;
}

/** The Worker's bindings: Hyperdrive's, or the URLs of NotesEnv. */
interface WorkerEnv extends NotesEnv {
  HYPERDRIVE?: Hyperdrive;
  HYPERDRIVE_REPLICA?: Hyperdrive;
}

const bindings = env as WorkerEnv;

/**
 * Builds the named instance "main" at the first request, then keeps it for
 * the others. Not at module scope: workerd hands out a Hyperdrive binding's
 * connectionString only inside a handler ("Disallowed operation called
 * within global scope"). Constructing connects nothing either way.
 */
function openOnce(): void {
  if (Database.has("main")) return;
  const settings: NotesEnv = bindings.HYPERDRIVE === undefined ? bindings : {
    DATABASE_URL: bindings.HYPERDRIVE.connectionString,
    REPLICA_URLS: bindings.HYPERDRIVE_REPLICA?.connectionString,
  };
  openNotesDatabase(settings, { driver: driverFor(settings.DATABASE_URL) });
}

const handler = notesHandler("workerd");

export default {
  fetch(request: Request): Promise<Response> {
    openOnce();
    return handler(request);
  },
};
