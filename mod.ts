/**
 * Roost: an async database toolkit for Deno, Bun, Node.js and the edge, with
 * pooled connections, scoped transactions and named shared instances.
 *
 * @example
 * ```ts
 * import { Database, sql } from "@roost/db";
 *
 * const db = new Database("sqlite::memory:");
 * await db.execute(sql`create table users (id integer primary key, name text not null)`);
 * await db.execute(sql`insert into users (name) values (${"Ada"})`);
 * const users = await db.fetchAll<{ id: number; name: string }>(sql`select * from users`);
 * await db.close();
 * ```
 *
 * @module
 */
// The registry of the drivers Roost ships, so `driver` may be a name or left out.
import "./src/drivers/mod.ts";
// routing.maxLag and multi-host URLs, which the Worker entry (edge.ts) leaves out.
import "./src/lag_watch.ts";
import "./src/hosts.ts";
export * from "./src/api.ts";
