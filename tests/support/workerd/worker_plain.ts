/**
 * The suite's Postgres-only Worker: without `nodejs_compat` (mysql2 needs
 * Node's `net`), where there is no async context, and with it before
 * 2024-09-23 (mysql2 needs the `Buffer` global that date brings).
 *
 * @module
 */
import { env } from "cloudflare:workers";
import { postgresJs } from "@roost/db/drivers/postgres-js";
import { type Env, worker } from "./app.ts";

export default worker({ postgres: postgresJs }, env as Env);
