/**
 * The notes API (examples/notes.ts) on Bun.serve over a named Roost database.
 *
 *   bun examples/bun-server.ts
 *   curl -X POST localhost:8000/notes -d '{"text":"hello"}'
 *   curl localhost:8000/notes
 *
 * Environment: DATABASE_URL (default sqlite:roost-example.db; postgres://… and
 * mysql://… work too), REPLICA_URLS (comma-separated, optional), PORT
 * (default 8000; 0 picks a free one).
 */
import process from "node:process";
import { notesHandler, openNotesDatabase } from "./notes.ts";

/** The part of Bun's API used here (with `@types/bun` installed, drop this). */
declare const Bun: {
  serve(options: {
    hostname: string;
    port: number;
    fetch(request: Request): Promise<Response>;
  }): { port: number; stop(): Promise<void> };
};

const db = openNotesDatabase(process.env, { url: "sqlite:roost-example.db" });

const server = Bun.serve({ hostname: "127.0.0.1", port: Number(process.env.PORT ?? 8000), fetch: notesHandler("bun") });
console.log(`listening on http://127.0.0.1:${server.port}`);

async function shutdown() {
  await server.stop();
  await db.close();
  process.exit(0);
}
process.on("SIGINT", shutdown);
process.on("SIGTERM", shutdown);
