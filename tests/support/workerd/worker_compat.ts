/**
 * The suite's Worker for `nodejs_compat`: both server dialects.
 *
 * @module
 */
import { env } from "cloudflare:workers";
import { mysql2 } from "@roost/db/drivers/mysql2";
import { postgresJs } from "@roost/db/drivers/postgres-js";
import { type Env, worker } from "./app.ts";

export default worker({ postgres: postgresJs, mysql: mysql2 }, env as Env);
