/**
 * The suite's Worker without `nodejs_compat`: Postgres only (mysql2 needs
 * Node's `net`), and no async context.
 *
 * @module
 */
import { env } from "cloudflare:workers";
import { postgresJs } from "@roost/db/drivers/postgres-js";
import { type Env, worker } from "./app.ts";

export default worker({ postgres: postgresJs }, env as Env);
