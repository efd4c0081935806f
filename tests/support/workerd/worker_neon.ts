/**
 * The suite's Worker on the neon driver (Postgres over a WebSocket, through
 * the test proxy the URL's `wsproxy` names): Neon's package imports no Node
 * built-in, so the same bundle runs with `nodejs_compat` and without.
 *
 * @module
 */
import { env } from "cloudflare:workers";
import { neon } from "@roost/db/drivers/neon";
import { type Env, worker } from "./app.ts";

export default worker({ postgres: neon }, env as Env);
