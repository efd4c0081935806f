/**
 * The notes API (examples/notes.ts) on node:http over a named Roost database.
 *
 *   node examples/node-server.ts
 *   curl -X POST localhost:8000/notes -d '{"text":"hello"}'
 *   curl localhost:8000/notes
 *
 * Environment: DATABASE_URL (default sqlite:roost-example.db; postgres://… and
 * mysql://… work too), REPLICA_URLS (comma-separated, optional), PORT
 * (default 8000; 0 picks a free one).
 */
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import process from "node:process";
import { Readable } from "node:stream";
import { notesHandler, openNotesDatabase } from "./notes.ts";

const db = openNotesDatabase(process.env, { url: "sqlite:roost-example.db" });
const handle = notesHandler("node");

/** Node's request as a web-standard one. */
function webRequest(request: IncomingMessage): Request {
  const headers = new Headers();
  for (const [name, value] of Object.entries(request.headers)) {
    if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(", ") : value);
  }
  const hasBody = request.method !== "GET" && request.method !== "HEAD";
  return new Request(new URL(request.url ?? "/", `http://${request.headers.host ?? "localhost"}`), {
    method: request.method,
    headers,
    body: hasBody ? Readable.toWeb(request) as ReadableStream<Uint8Array> : undefined,
    duplex: "half",
  } as RequestInit);
}

const server = createServer(async (request, response) => {
  const reply = await handle(webRequest(request));
  response.writeHead(reply.status, Object.fromEntries(reply.headers)).end(Buffer.from(await reply.arrayBuffer()));
});

server.listen(Number(process.env.PORT ?? 8000), "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${(server.address() as AddressInfo).port}`);
});

async function shutdown() {
  server.close();
  await db.close();
  process.exit(0);
}
process.on("SIGINT", shutdown);
process.on("SIGTERM", shutdown);
