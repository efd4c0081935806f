/**
 * The notes API (examples/notes.ts) on Deno.serve over a named Roost database.
 *
 *   deno run -A examples/deno-server.ts
 *   curl -X POST localhost:8000/notes -d '{"text":"hello"}'
 *   curl localhost:8000/notes
 *
 * Environment: DATABASE_URL (default sqlite:roost-example.db; postgres://… and
 * mysql://… work too), REPLICA_URLS (comma-separated, optional), PORT
 * (default 8000; 0 picks a free one).
 */
import { notesHandler, openNotesDatabase } from "./notes.ts";

const db = openNotesDatabase(Deno.env.toObject(), { url: "sqlite:roost-example.db" });

const server = Deno.serve({
  hostname: "127.0.0.1",
  port: Number(Deno.env.get("PORT") ?? 8000),
  onListen: ({ port }) => console.log(`listening on http://127.0.0.1:${port}`),
}, notesHandler("deno"));

async function shutdown() {
  await server.shutdown();
  await db.close();
  Deno.exit(0);
}
Deno.addSignalListener("SIGINT", shutdown);
Deno.addSignalListener("SIGTERM", shutdown);
