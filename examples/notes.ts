/**
 * The notes API the server examples share: a web-standard
 * `(request: Request) => Promise<Response>` over a named Roost database, so
 * Deno.serve, Bun.serve and a Worker serve it as it is and Node through a
 * few lines of adapter.
 *
 * Routes: GET /health, POST /notes {"text": "…"}, GET /notes, GET /notes/:id.
 *
 * @module
 */
import { Database, type Driver, type Queryable, sql } from "@roost/db";

/** Where the examples read their settings. */
export interface NotesEnv {
  /** The database (a Worker needs a postgres:// or mysql:// URL). */
  DATABASE_URL?: string;
  /** Comma-separated replica URLs, optional: reads then go to the replicas, except right after a request's own writes. */
  REPLICA_URLS?: string;
}

interface Note {
  id: number;
  text: string;
}

/** Creates the named instance "main" from the environment; connects nothing yet. */
export function openNotesDatabase(env: NotesEnv, defaults: { url?: string; driver?: Driver } = {}): Database {
  const url = env.DATABASE_URL ?? defaults.url;
  if (url === undefined) throw new Error("set DATABASE_URL");
  const replicas = (env.REPLICA_URLS ?? "").split(",").map((replica) => replica.trim()).filter((r) => r !== "");
  return new Database(url, {
    name: "main",
    driver: defaults.driver,
    replicas,
    routing: replicas.length > 0 ? { reads: "replicas", readYourWrites: 2000 } : undefined,
  });
}

const idColumns = {
  sqlite: "integer primary key",
  postgres: "bigserial primary key",
  mysql: "bigint auto_increment primary key",
};

async function addNote(scope: Queryable, text: string): Promise<Note> {
  if (scope.dialect === "postgres") {
    return (await scope.fetchOne<Note>(sql`insert into notes (text) values (${text}) returning id, text`))!;
  }
  const { lastInsertId } = await scope.execute(sql`insert into notes (text) values (${text})`);
  return { id: Number(lastInsertId), text };
}

/** The note text of a request body, or undefined when the body is not JSON with a non-empty `text`. */
async function noteText(request: Request): Promise<string | undefined> {
  const body: unknown = await request.json().catch(() => undefined);
  const text = (body as { text?: unknown } | null | undefined)?.text;
  return typeof text === "string" && text.trim() !== "" ? text : undefined;
}

const json = (body: unknown, status = 200) => Response.json(body, { status });

/** The API's request handler over `Database.get("main")`; `runtime` is what /health reports. */
export function notesHandler(runtime: string): (request: Request) => Promise<Response> {
  // Created on the first request that needs it, not at start-up (a Worker may do no I/O at module scope).
  let table: Promise<unknown> | undefined;
  const ensureTable = (scope: Queryable) =>
    table ??= scope.execute(
      sql`create table if not exists notes (id ${sql.unsafe(idColumns[scope.dialect])}, text text not null)`,
    ).catch((error) => {
      table = undefined;
      throw error;
    });

  async function route(scope: Queryable, request: Request): Promise<Response> {
    const { pathname } = new URL(request.url);
    const get = request.method === "GET";
    if (get && pathname === "/health") return json({ ok: true, runtime });
    await ensureTable(scope);
    if (get && pathname === "/notes") {
      return json(await scope.fetchAll<Note>(sql`select id, text from notes order by id desc limit 50`));
    }
    if (request.method === "POST" && pathname === "/notes") {
      const text = await noteText(request);
      if (text === undefined) return json({ error: 'expected a JSON body like {"text": "…"}' }, 400);
      return json(await addNote(scope, text), 201);
    }
    const id = Number(pathname.match(/^\/notes\/(\d+)$/)?.[1]);
    if (get && Number.isSafeInteger(id)) {
      const note = await scope.fetchOne<Note>(sql`select id, text from notes where id = ${id}`);
      return note ? json(note) : json({ error: `no note ${id}` }, 404);
    }
    return json({ error: "not found" }, 404);
  }

  return async (request) => {
    try {
      // One context per request: its read-your-writes window, and on Workers its connections, are its own.
      return await Database.get("main").context((scope) => route(scope, request));
    } catch (error) {
      console.error(error);
      return json({ error: "internal error" }, 500);
    }
  };
}
