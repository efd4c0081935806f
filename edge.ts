/**
 * Roost's main entry for Workers and other edge bundles: everything
 * `@roost/db` exports, without the registry that loads drivers by name. A
 * bundle holds only the drivers it imports, so it passes the driver object:
 *
 * @example
 * ```ts
 * import { Database, sql } from "@roost/db";
 * import { postgresJs } from "@roost/db/drivers/postgres-js";
 *
 * export default {
 *   async fetch(_request: Request, env: { DATABASE_URL: string }): Promise<Response> {
 *     const db = new Database(env.DATABASE_URL, { driver: postgresJs, pool: { max: 1 } });
 *     try {
 *       return Response.json(await db.fetchVal(sql`select 42`));
 *     } finally {
 *       await db.close();
 *     }
 *   },
 * };
 * ```
 *
 * npm's `workerd`, `worker` and `edge-light` export conditions (wrangler,
 * Vercel Edge) resolve `@roost/db` to this module.
 *
 * @module
 */
export * from "./src/api.ts";
