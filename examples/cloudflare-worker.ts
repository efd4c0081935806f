/**
 * The notes API (examples/notes.ts) as a Cloudflare Worker over a named Roost
 * database.
 *
 *   npm i -D wrangler                     # wrangler is not a dependency of Roost
 *   cd examples && npx wrangler dev      # uses examples/wrangler.toml
 *   curl -X POST localhost:8787/notes -d '{"text":"hello"}'
 *   curl localhost:8787/notes
 *
 * Environment (wrangler.toml [vars], `npx wrangler secret put`, or .dev.vars):
 * DATABASE_URL (required: postgres://… or mysql://…; a Worker has no SQLite
 * files) and REPLICA_URLS (comma-separated, optional).
 *
 * A Postgres URL goes over TCP through postgres.js, except a Neon database
 * (a `*.neon.tech` host) or a URL that names a WebSocket proxy
 * (`?wsproxy=wss://…`): those go over a WebSocket through the neon driver
 * (`@neondatabase/serverless`, which needs no `nodejs_compat`).
 *
 * The Database is built at module scope, which connects nothing. Each request
 * runs in db.context(): on Workers its connections are its own and are closed
 * before the response leaves (a socket must not outlive its request).
 */
import { env } from "cloudflare:workers";
import type { Driver } from "@roost/db";
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

const settings: NotesEnv = env;
openNotesDatabase(settings, { driver: driverFor(settings.DATABASE_URL) });

export default { fetch: notesHandler("workerd") };
