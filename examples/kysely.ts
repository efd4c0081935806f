/**
 * Kysely on Roost: a typed Kysely instance runs on a registered Roost
 * `Database` through `RoostDialect`, so its reads go to a replica, its
 * transactions and savepoints are Roost's, and Kysely and Roost calls share
 * one transaction.
 *
 * Runs on a SQLite file in a temporary directory by default, with the same
 * file opened read-only (`?mode=ro`) as its replica. Pass another database as
 * the first argument or in DATABASE_URL (postgres://…, mysql://…,
 * sqlite:path/to/file.db): a server is its own replica there, in sessions
 * Roost makes read-only.
 *
 *   node examples/kysely.ts [url]
 *   deno run -A examples/kysely.ts [url]
 *   bun examples/kysely.ts [url]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { Database, type QueryEvent, sql } from "@roost/db";
import { RoostDialect } from "@roost/db/kysely";
import { type ColumnDefinitionBuilder, type Generated, Kysely } from "kysely";

/** The tables as Kysely sees them: `Generated` columns may be left out of inserts. */
interface Tables {
  kysely_birds: { id: Generated<number>; name: string; wingspan_cm: number };
  kysely_sightings: { id: Generated<number>; bird_id: number; place: string; seen_at: string };
}

// The default: a SQLite file in a directory of its own, removed at the end.
const given = process.argv[2] ?? process.env.DATABASE_URL;
const scratch = given === undefined ? mkdtempSync(join(tmpdir(), "roost-kysely-")) : undefined;
const url = given ?? `sqlite://${join(scratch!, "birds.db")}`;
/** The replica: the same SQLite file opened read-only, or the same server (an in-memory SQLite has none). */
const replica = !url.startsWith("sqlite:")
  ? url
  : url.includes(":memory:")
  ? undefined
  : `${url}${url.includes("?") ? "&" : "?"}mode=ro`;

// While `trace` is on, every query says where it ran and why.
let trace = false;
function show(e: QueryEvent): void {
  const server = e.served === "replica" ? `replica ${e.replica}` : "primary";
  const text = e.sql.replace(/\s+/g, " ");
  console.log(`  ${`${server} (${e.reason})`.padEnd(19)} ${text.length > 50 ? `${text.slice(0, 49)}…` : text}`);
}
const db = new Database(url, {
  name: "birds",
  replicas: replica === undefined ? [] : [replica],
  routing: { reads: "replicas" },
  onQuery: (e) => trace && show(e),
});
// The dialect finds the database by its registered name, as any module of the program could.
const kysely = new Kysely<Tables>({ dialect: new RoostDialect({ database: "birds" }) });
console.log(`on ${db.dialect}${replica === undefined ? "" : ", reads on a read-only replica"}`);

let minute = 0;
/** A sighting, seven minutes after the one before. */
const sighting = (bird_id: number, place: string) => ({
  bird_id,
  place,
  seen_at: new Date(Date.UTC(2026, 10, 21, 6, minute += 7)).toISOString(),
});

try {
  // An auto-numbered key: serial on Postgres, an autoincrement integer on MySQL and SQLite.
  const idType = db.dialect === "postgres" ? "serial" : "integer";
  const autoId = (c: ColumnDefinitionBuilder) =>
    db.dialect === "postgres" ? c.primaryKey() : c.primaryKey().autoIncrement();
  await kysely.schema.createTable("kysely_birds")
    .addColumn("id", idType, autoId)
    .addColumn("name", "varchar(100)", (c) => c.notNull().unique())
    .addColumn("wingspan_cm", "integer", (c) => c.notNull())
    .execute();
  await kysely.schema.createTable("kysely_sightings")
    .addColumn("id", idType, autoId)
    .addColumn("bird_id", "integer", (c) => c.notNull().references("kysely_birds.id"))
    .addColumn("place", "varchar(100)", (c) => c.notNull())
    .addColumn("seen_at", "varchar(30)", (c) => c.notNull())
    .execute();
  await kysely.insertInto("kysely_birds").values([
    { name: "barn owl", wingspan_cm: 95 },
    { name: "kestrel", wingspan_cm: 76 },
    { name: "swift", wingspan_cm: 42 },
  ]).execute();

  console.log("where Kysely's queries run:");
  trace = true;
  const kestrel = await kysely.selectFrom("kysely_birds").select("id").where("name", "=", "kestrel")
    .executeTakeFirstOrThrow();
  await kysely.insertInto("kysely_sightings").values(sighting(kestrel.id, "meadow")).execute();
  // A transaction holds one primary connection, for its reads too.
  await kysely.transaction().execute(async (trx) => {
    const swift = await trx.selectFrom("kysely_birds").select("id").where("name", "=", "swift")
      .executeTakeFirstOrThrow();
    await trx.insertInto("kysely_sightings").values([
      sighting(swift.id, "church tower"),
      sighting(swift.id, "church tower"),
    ]).execute();
  });
  trace = false;

  // A controlled transaction: a doubtful report goes in after a savepoint, and is rolled back to it.
  const trx = await kysely.startTransaction().execute();
  try {
    const owl = await trx.selectFrom("kysely_birds").select("id").where("name", "=", "barn owl")
      .executeTakeFirstOrThrow();
    await trx.insertInto("kysely_sightings").values(sighting(owl.id, "barn")).execute();
    const doubtful = await trx.savepoint("doubtful").execute();
    await doubtful.insertInto("kysely_sightings").values(sighting(owl.id, "city centre, at noon")).execute();
    await doubtful.rollbackToSavepoint("doubtful").execute();
    await trx.commit().execute();
    console.log("controlled transaction: 1 sighting committed, 1 rolled back to its savepoint");
  } catch (error) {
    await trx.rollback().execute();
    throw error;
  }

  // Kysely and Roost in one Roost transaction: Kysely's insert joins it, so both commit or neither does.
  const reportHeron = (confirmed: boolean) =>
    db.transaction(async () => {
      await kysely.insertInto("kysely_birds").values({ name: "grey heron", wingspan_cm: 185 }).execute();
      const { place, seen_at } = sighting(0, "river bank");
      await db.execute(sql`insert into kysely_sightings (bird_id, place, seen_at)
                           select id, ${place}, ${seen_at} from kysely_birds where name = ${"grey heron"}`);
      if (!confirmed) throw new Error("it was a stork");
    });
  await reportHeron(false).catch((error: Error) => console.log(`heron report rolled back (${error.message})`));
  const herons = await kysely.selectFrom("kysely_birds").select("id").where("name", "=", "grey heron").execute();
  console.log(`  herons kept: ${herons.length}`);
  await reportHeron(true);
  console.log("heron report committed: the bird (Kysely) and its sighting (Roost)");

  // A typed select. Roost reads counts as numbers on every dialect, so `count<number>` is the truth.
  const counts = await kysely.selectFrom("kysely_birds as b")
    .leftJoin("kysely_sightings as s", "s.bird_id", "b.id")
    .select(["b.name", "b.wingspan_cm", (eb) => eb.fn.count<number>("s.id").as("seen")])
    .groupBy(["b.name", "b.wingspan_cm"])
    .orderBy("b.wingspan_cm", "desc")
    .execute();
  console.log(`${counts.reduce((sum, b) => sum + b.seen, 0)} sightings of ${counts.length} birds:`);
  for (const b of counts) console.log(`  ${b.name.padEnd(10)} ${String(b.wingspan_cm).padStart(3)} cm, seen ${b.seen}`);

  // stream() is Roost's iterate, two rows a round trip here; querying inside the loop is fine.
  console.log("streamed log:");
  const log = kysely.selectFrom("kysely_sightings as s")
    .innerJoin("kysely_birds as b", "b.id", "s.bird_id")
    .select(["s.id", "s.bird_id", "b.name", "s.place", "s.seen_at"])
    .orderBy("s.seen_at");
  for await (const s of log.stream(2)) {
    const first = await kysely.selectFrom("kysely_sightings").where("bird_id", "=", s.bird_id)
      .select((eb) => eb.fn.min("seen_at").as("at")).executeTakeFirstOrThrow();
    const note = first.at === s.seen_at ? "first of its kind" : "";
    console.log(`  ${s.seen_at.slice(11, 16)}  ${s.name.padEnd(10)} ${s.place.padEnd(13)} ${note}`.trimEnd());
  }

  // Kysely builds, Roost runs: a compiled query goes to any Roost query method, paginate included.
  const big = await db.fetchAll<{ name: string }>(
    kysely.selectFrom("kysely_birds").select("name").where("wingspan_cm", ">", 80).orderBy("name").compile(),
  );
  console.log(`wingspan over 80 cm: ${big.map((b) => b.name).join(", ")}`);
  const page = await db.paginate<{ place: string; seen_at: string }>(
    log.clearSelect().select(["s.place", "s.seen_at"]).compile(),
    { page: 2, pageSize: 2 },
  );
  console.log(`log page ${page.page} of ${page.totalPages}: ${page.items.map((s) => s.place).join(", ")}`);
} finally {
  await kysely.schema.dropTable("kysely_sightings").ifExists().execute();
  await kysely.schema.dropTable("kysely_birds").ifExists().execute();
  await kysely.destroy(); // leaves the database open: it is the program's, closed here
  await db.close();
  if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true });
}
