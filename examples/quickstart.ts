/**
 * Roost quickstart: create a table, insert rows in a transaction, query them.
 *
 * Runs on the embedded SQLite by default; set DATABASE_URL to use another
 * database (postgres://…, mysql://…, sqlite:path/to/file.db).
 *
 *   node examples/quickstart.ts
 *   deno run -A examples/quickstart.ts
 *   bun examples/quickstart.ts
 */
import { Database, sql } from "@roost/db";

interface Bird {
  id: number;
  name: string;
  wingspan_cm: number;
}

const url = globalThis.process?.env?.DATABASE_URL ?? "sqlite::memory:";
await using db = new Database(url, { name: "main" });

// A table name of our own, so the example never touches someone else's data.
const birds = sql.ident(`roost_quickstart_${Date.now().toString(36)}`);
await db.execute(sql`create table ${birds} (id integer primary key, name text not null, wingspan_cm integer not null)`);

try {
  await db.transaction(async (tx) => {
    await tx.executeMany(sql`insert into ${birds} (id, name, wingspan_cm) values (${0}, ${""}, ${0})`, [
      [1, "barn owl", 95],
      [2, "kestrel", 76],
      [3, "swift", 42],
    ]);
    // Inside the callback, plain db.* calls join the same transaction.
    await db.execute(sql`insert into ${birds} (id, name, wingspan_cm) values (${4}, ${"raven"}, ${120})`);
  });

  const all = await db.fetchAll<Bird>(sql`select * from ${birds} order by wingspan_cm desc`);
  console.log(`${all.length} birds roost here:`);
  for (const bird of all) console.log(`  ${bird.name.padEnd(10)} ${bird.wingspan_cm} cm`);

  const widest = await db.fetchOne<Bird>(sql`select * from ${birds} order by wingspan_cm desc limit 1`);
  const average = await db.fetchVal<number>(sql`select avg(wingspan_cm) from ${birds}`);
  console.log(`widest: ${widest?.name}; average wingspan: ${Number(average).toFixed(1)} cm`);
  console.log(`same instance from the registry: ${Database.get("main") === db}`);
} finally {
  await db.execute(sql`drop table ${birds}`);
}
