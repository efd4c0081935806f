/**
 * Replica routing against a real PostgreSQL hot standby, which this file
 * creates (pg_basebackup of the test server, started on a free port as the
 * postgres OS user, with recovery_min_apply_delay) and removes afterwards.
 * Locally, a machine that cannot create one skips with the reason; in CI
 * that is a failure.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  ConnectionError,
  type Database,
  QueryError,
  type QueryEvent,
  ReadOnlyError,
  type RoutingOptions,
  sql,
} from "../../mod.ts";
import { column, defineTable } from "../../src/model/mod.ts";
import { createStandby, setApplyDelay, type Standby } from "../support/standby.ts";
import { inCi, skipUnless, sleep, uniqueName } from "../support/support.ts";
import { reachedBy, targets } from "../support/targets.ts";

/** How long the standby waits before applying a commit: replication lag the tests can rely on. */
const applyDelay = 1_500;

const postgresTargets = targets({ places: ["postgres"] });
let standby: Standby | undefined;
let unavailable = "";
if (postgresTargets.length > 0) {
  try {
    standby = await createStandby(postgresTargets[0].url, { applyDelay });
  } catch (error) {
    if (inCi) throw error;
    unavailable = error instanceof Error ? error.message : String(error);
    console.warn(`SKIPPING the hot-standby tests: ${unavailable}`);
  }
}

/** Polls `check` every 50 ms until it returns true; false after `ms`. */
async function eventually(check: () => Promise<boolean> | boolean, ms: number): Promise<boolean> {
  for (const deadline = Date.now() + ms; Date.now() < deadline; await sleep(50)) {
    if (await check()) return true;
  }
  return await check();
}

let suitesLeft = standby ? postgresTargets.length : 0;

for (const target of standby ? postgresTargets : []) {
  describe(`hot standby ${target.label.replace("[postgres ·", "[postgres standby ·")}`, () => {
    const name = uniqueName("standby");
    const table = sql.ident(name);
    const opened: Database[] = [];
    let setup: Database;

    function open(routing: RoutingOptions = {}) {
      const events: QueryEvent[] = [];
      const db = target.open({
        replicas: [reachedBy(target.driver, standby!.url)],
        routing: { reads: "replicas", ...routing },
        onQuery: (event) => events.push(event),
        pool: { acquireTimeout: 5_000 },
      });
      opened.push(db);
      return { db, events };
    }

    const rowCount = (db: Database, id: number) =>
      db.fetchVal<number>(sql`select count(*) from ${table} where id = ${id}`).then(Number);
    let nextId = 0;
    const newId = () => ++nextId + Math.floor(Math.random() * 1_000) * 1_000;

    before(async () => {
      setup = target.open();
      await setup.execute(sql`create table ${table} (id integer primary key, note text)`);
      // The standby applies the new table after its apply delay.
      const replica = target.open({ replicas: [reachedBy(target.driver, standby!.url)] });
      opened.push(replica);
      const exists = () =>
        replica.replica(() => replica.fetchVal<boolean>(sql`select to_regclass(${name}) is not null`));
      assert.ok(
        await eventually(async () => (await exists()) === true, applyDelay + 10_000),
        "the table reached the standby",
      );
    });
    after(async () => {
      await Promise.all(opened.map((db) => db.close()));
      await setup.execute(sql`drop table ${table}`);
      await setup.close();
      if (--suitesLeft === 0) await standby!.destroy();
    });

    test("a row written on the primary is read back on the replica", async () => {
      const { db, events } = open();
      assert.equal(await db.replica(() => db.fetchVal(sql`select pg_is_in_recovery()`)), true);
      const id = newId();
      await db.execute(sql`insert into ${table} (id, note) values (${id}, ${"from the primary"})`);
      const seen = await eventually(
        async () => (await db.replica(() => rowCount(db, id))) === 1,
        applyDelay + 10_000,
      );
      assert.ok(seen, "the row reached the standby");
      const note = await db.replica((r) => r.fetchVal(sql`select note from ${table} where id = ${id}`));
      assert.equal(note, "from the primary");
      assert.equal(events.at(-1)?.served, "replica");
      assert.equal(events.at(-1)?.url.includes(`:${standby!.port}/`), true);
    });

    test("ReadOnlyError before the standby; a write hidden in a fetch fails at the server", async () => {
      const { db, events } = open();
      await db.replica(async (r) => {
        await assert.rejects(db.execute(sql`insert into ${table} (id) values (${newId()})`), ReadOnlyError);
        await assert.rejects(r.executeMany(sql`insert into ${table} (id) values (${0})`, [[newId()]]), ReadOnlyError);
        await assert.rejects(db.transaction(() => {}), ReadOnlyError);
        await assert.rejects(r.begin(), ReadOnlyError);
      });
      assert.equal(events.length, 0, "no write reached a server");
      const id = newId();
      const failure = await db.replica(() => db.fetchAll(sql`insert into ${table} (id) values (${id}) returning id`))
        .catch((error) => error);
      assert.ok(failure instanceof QueryError && !(failure instanceof ReadOnlyError), String(failure));
      assert.equal(failure.code, "25006", "read_only_sql_transaction, from the standby");
      assert.equal(events.at(-1)?.served, "replica");
      assert.equal(await rowCount(setup, id), 0);
    });

    test("readYourWrites returns the row just written despite the standby's apply delay", async () => {
      const { db, events } = open({ readYourWrites: 10_000 });
      const id = newId();
      await db.context(async () => {
        await db.execute(sql`insert into ${table} (id) values (${id})`);
        assert.equal(await rowCount(db, id), 1, "read your write");
        assert.deepEqual([events.at(-1)?.served, events.at(-1)?.reason], ["primary", "read-your-writes"]);
      });
      // Outside the writer's context the same read goes to the standby, which has not applied the row yet.
      assert.equal(await rowCount(db, id), 0, "the standby lags by recovery_min_apply_delay");
      assert.deepEqual([events.at(-1)?.served, events.at(-1)?.reason], ["replica", "read"]);
    });

    test("table.paginate: on the standby its page and count lag together; after a write, both on the primary", async () => {
      const { db, events } = open({ readYourWrites: 10_000 });
      const rows = defineTable(name, { id: column.integer().primaryKey(), note: column.text() });
      const id = newId();
      const mine = (
        page: { items: { id: number }[]; totalRows: number },
      ) => [page.items.some((row) => row.id === id), page.items.length === Math.min(page.totalRows, 1000)];
      await db.context(async () => {
        await db.execute(sql`insert into ${table} (id, note) values (${id}, ${"paged"})`);
        const page = await rows.paginate(db, {}, { page: 1, pageSize: 1000 });
        assert.deepEqual(mine(page), [true, true], "read your write: the page and its total");
        assert.deepEqual([events.at(-1)?.served, events.at(-1)?.reason], ["primary", "read-your-writes"]);
      });
      // Outside the writer's context: the standby, which has not applied the row yet, in the page and the total.
      const page = await rows.paginate(db, {}, { page: 1, pageSize: 1000 });
      assert.deepEqual(mine(page), [false, true]);
      assert.deepEqual([events.at(-1)?.served, events.at(-1)?.reason], ["replica", "read"]);
      const inScope = await db.replica(() => rows.paginate(db, { id }, { page: 1, pageSize: 10 }));
      assert.equal(inScope.totalRows, 0);
      assert.deepEqual([events.at(-1)?.served, events.at(-1)?.reason], ["replica", "replica-scope"]);
    });

    test("stopping the standby moves reads to the primary without a failed query; restarting brings it back", async () => {
      const { db, events } = open({ fallback: "primary", recheckAfter: 100, maxRecheckAfter: 400 });
      const failures: unknown[] = [];
      let reads = 0;
      let running = true;
      const reader = async () => {
        while (running) {
          try {
            await db.fetchVal(sql`select count(*) from ${table}`);
            reads++;
          } catch (error) {
            failures.push(error);
          }
          await sleep(5);
        }
      };
      const readers = Array.from({ length: 5 }, reader);
      try {
        assert.ok(await eventually(() => events.some((e) => e.served === "replica" && !e.error), 5_000));
        await standby!.stop();
        assert.ok(await eventually(() => !db.stats().replicas[0].healthy, 5_000), "the standby left the rotation");
        const down = events.length;
        assert.ok(
          await eventually(() => events.slice(down).filter((e) => e.reason === "fallback").length >= 10, 5_000),
          "reads went on, on the primary",
        );
        await standby!.start();
        assert.ok(await eventually(() => db.stats().replicas[0].healthy, 10_000), "the recheck found it back");
        const up = events.length;
        assert.ok(
          await eventually(() => events.slice(up).some((e) => e.served === "replica" && !e.error), 5_000),
          "reads are served by the standby again",
        );
      } finally {
        running = false;
        await Promise.all(readers);
      }
      assert.deepEqual(failures, [], "no read failed");
      const retried = events.filter((e) => e.served === "replica" && e.error !== undefined);
      assert.ok(retried.length >= 1, "the lost standby was noticed by a read, which was retried on the primary");
      assert.ok(retried.every((e) => e.error instanceof ConnectionError), "only connection failures are retried");
      assert.ok(reads > 20, `reads ran throughout (${reads})`);
    });

    test("maxLag: the standby leaves the rotation while its replay lags, and rejoins once it catches up", async () => {
      const { db, events } = open({ maxLag: 500, recheckAfter: 100 });
      const read = () => db.fetchVal(sql`select count(*) from ${table}`);
      const replica = () => db.stats().replicas[0];
      try {
        // Without the apply delay it catches up, and is measured within maxLag.
        await setApplyDelay(standby!, 0);
        assert.ok(
          await eventually(async () => (await read(), replica().lag !== undefined && !replica().lagging), 10_000),
          `measured, caught up (${JSON.stringify(replica())})`,
        );
        // A delay longer than maxLag holds the next commit back: the time since the last replayed commit grows.
        await setApplyDelay(standby!, 3_000);
        await sleep(200); // the reload reaches the standby's startup process
        await setup.execute(sql`insert into ${table} (id) values (${newId()})`);
        let most = 0;
        assert.ok(
          await eventually(async () => {
            await read();
            most = Math.max(most, replica().lag ?? 0);
            return replica().lagging === true;
          }, 10_000),
          "the standby lags while recovery_min_apply_delay holds the insert back",
        );
        console.info(`Postgres standby lag measured (${target.driver}): ${most} ms`);
        await read();
        assert.deepEqual([events.at(-1)?.served, events.at(-1)?.reason], ["primary", "fallback"]);
        await db.replica(() => read());
        assert.deepEqual([events.at(-1)?.served, events.at(-1)?.reason], ["primary", "fallback"]);
        // Replaying at once again, it catches up and rejoins.
        await setApplyDelay(standby!, 0);
        assert.ok(
          await eventually(async () => (await read(), !replica().lagging), 10_000),
          `it rejoins (${JSON.stringify(replica())})`,
        );
        assert.ok(await eventually(async () => (await read(), events.at(-1)?.served === "replica"), 5_000));
      } finally {
        await setApplyDelay(standby!, applyDelay);
      }
    });
  });
}

if (unavailable !== "") {
  describe("hot standby", () => {
    test(`needs a hot standby: ${unavailable}`, skipUnless(false, "no hot standby could be created here"), () => {});
  });
}
