/**
 * A bird-sighting log: migrations create the schema, table definitions give
 * typed rows and race-safe helpers, and pagination pages through the log.
 *
 * Runs on the embedded SQLite by default; set DATABASE_URL to use another
 * database (postgres://…, mysql://…, sqlite:path/to/file.db), or Postgres
 * with no server: `DATABASE_URL=pglite::memory:` (with
 * `@electric-sql/pglite` installed).
 *
 *   node examples/birdwatch.ts
 *   deno run -A examples/birdwatch.ts
 *   bun examples/birdwatch.ts
 *
 * The same migrations run from the command line: `npx roost status --dir examples/migrations`.
 */
import { Database, type KeysetPage, sql } from "@roost/db";
import { Migrator } from "@roost/db/migrate";
import { column, defineTable, type TableRow } from "@roost/db/model";

// The tables as the migrations create them: the model does not create them, it reads and writes their rows.
const birds = defineTable("birdwatch_birds", {
  id: column.serial().primaryKey(),
  name: column.varchar(100).notNull().unique(),
});
const sightings = defineTable("birdwatch_sightings", {
  id: column.serial().primaryKey(),
  bird_id: column.integer().notNull().references(birds),
  place: column.varchar(100).notNull(),
  seen_at: column.varchar(30).notNull(),
  note: column.varchar(200),
});
type Sighting = TableRow<typeof sightings>;

const url = globalThis.process?.env?.DATABASE_URL ?? "sqlite::memory:";
await using db = new Database(url);

const migrator = new Migrator(db, {
  directory: new URL("./migrations/", import.meta.url),
  onProgress: (event) => {
    if (event.phase === "done") {
      console.log(`migrated ${event.action} ${event.revision}_${event.name} (${event.ms} ms)`);
    }
  },
});
console.log(`schema: ${await migrator.sync()}, at revision ${await migrator.currentRevision()}`);

try {
  // Ten watchers report at once; getOrCreate makes each bird exactly once however the calls interleave.
  const reports = ["kestrel", "swift", "kestrel", "barn owl", "swift", "kestrel", "raven", "swift", "kestrel", "raven"];
  const places = ["meadow", "church tower", "river bank"];
  const seen = await Promise.all(reports.map((name) => birds.getOrCreate(db, { name })));
  console.log(`${reports.length} reports, ${seen.filter(([, created]) => created).length} new birds`);
  for (const [i, [bird]] of seen.entries()) {
    await sightings.insert(db, {
      bird_id: bird.id,
      place: places[i % places.length],
      seen_at: new Date(Date.UTC(2026, 10, 21, 6, i * 7)).toISOString(),
      note: i === 0 ? "first light" : null,
    });
  }

  // Numbered pages, as a web page would show them.
  const log = sql`select s.id, b.name, s.place, s.seen_at
                  from birdwatch_sightings s join birdwatch_birds b on b.id = s.bird_id
                  order by s.seen_at desc, s.id desc`;
  for (let number = 1;;) {
    const page = await db.paginate<Sighting & { name: string }>(log, { page: number, pageSize: 4 });
    console.log(
      `page ${page.page} of ${page.totalPages} (sightings ${page.startIndex}-${page.endIndex} of ${page.totalRows}):`,
    );
    for (const s of page) console.log(`  ${s.seen_at.slice(11, 16)}  ${s.name.padEnd(9)} ${s.place}`);
    if (page.nextPage === null) break;
    number = page.nextPage;
  }

  // Keyset pages: how an export walks a log too long to count.
  let after: string | null = null;
  let exported = 0;
  do {
    const batch: KeysetPage<{ id: number; place: string }> = await db.paginate(
      sql`select id, place from birdwatch_sightings`,
      {
        pageSize: 3,
        orderBy: "id",
        after,
      },
    );
    exported += batch.items.length;
    after = batch.nextCursor;
  } while (after !== null);
  console.log(`exported ${exported} sightings in keyset pages`);

  const kestrel = await birds.getOne(db, { name: "kestrel" });
  console.log(`kestrel seen ${await sightings.count(db, { bird_id: kestrel.id })} times`);
} finally {
  // Leave a server database as it was: revert the example's migrations.
  await migrator.downgrade("base");
}
