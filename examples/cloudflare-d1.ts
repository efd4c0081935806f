/**
 * The notes API (examples/notes.ts) as a Cloudflare Worker over D1, with
 * D1's read replication: each request continues the client's D1 session
 * from the bookmark it sends (`x-d1-bookmark`) and answers with the new
 * one, so a client's reads see its own writes even when a replica serves
 * them.
 *
 *   npm i -D wrangler                                  # wrangler is not a dependency of Roost
 *   cd examples && npx wrangler d1 create roost-notes  # once: put its id in wrangler-d1.toml
 *   cd examples && npx wrangler dev -c wrangler-d1.toml
 *   curl -i -X POST localhost:8787/notes -d '{"text":"hello"}'   # note the x-d1-bookmark header
 *   curl -H "x-d1-bookmark: <it>" localhost:8787/notes
 *
 * The Database is built at module scope over the binding, which connects
 * nothing. Each request runs in db.context(): the notes handler's own
 * context nests in it (nodejs_compat gives the async context that needs),
 * so the whole request is one D1 session.
 */
import { env } from "cloudflare:workers";
import { Database } from "@roost/db";
import { continueD1Session, d1, type D1Binding, d1Bookmark } from "@roost/db/drivers/d1";
import { notesHandler } from "./notes.ts";

const db = new Database("d1:DB", { name: "main", driver: d1((env as { DB: D1Binding }).DB) });
const notes = notesHandler("workerd");

export default {
  fetch: (request: Request): Promise<Response> =>
    db.context(async (scope) => {
      await continueD1Session(scope, request.headers.get("x-d1-bookmark"));
      const response = await notes(request);
      const bookmark = await d1Bookmark(scope);
      if (bookmark !== null) response.headers.set("x-d1-bookmark", bookmark);
      return response;
    }),
};
