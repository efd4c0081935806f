/**
 * Roost behind Cloudflare Hyperdrive, as far as it runs locally: the Worker
 * in tests/support/workerd/worker_hyperdrive.ts is bundled the way wrangler
 * bundles one and runs in workerd through miniflare with two Hyperdrive
 * bindings, `HYPERDRIVE` in front of a database of the suite's own on the
 * local Postgres and `HYPERDRIVE_REPLICA` in front of a hot standby of it
 * (tests/support/standby.ts), reached by postgres.js through each binding's
 * `connectionString`. Locally a binding is a plain TCP passthrough to its
 * database (no pool, no cache): the last test records that, since on
 * Cloudflare it is not (docs/edge.md, Hyperdrive). Driven from Node, where
 * miniflare runs; the other runtimes skip it.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Miniflare } from "miniflare";
import { Database, sql } from "../../mod.ts";
import { createStandby, type Standby } from "../support/standby.ts";
import { eventually, inCi, runtime, skipUnless } from "../support/support.ts";
import { OwnDatabase, targets } from "../support/targets.ts";

const postgresTargets = runtime === "node" ? targets({ places: ["postgres"], onePerDialect: true }) : [];
if (runtime !== "node") console.warn(`SKIPPING [hyperdrive · miniflare]: the Hyperdrive suite is driven from Node`);

// Loaded only on Node: miniflare drives the workerd binary from there.
const harness = runtime === "node" ? await import("../support/workerd/harness.ts") : undefined;
const script = harness?.bundleWorker("tests/support/workerd/worker_hyperdrive.ts", { nodejsCompat: true });

// The replica binding fronts a hot standby of the test server (the suite's database, created later, replicates to it).
let standby: Standby | undefined;
let noStandby = "";
if (postgresTargets.length > 0) {
  try {
    standby = await createStandby(postgresTargets[0].url);
  } catch (error) {
    if (inCi) throw error;
    noStandby = `no hot standby for the replica binding: ${error instanceof Error ? error.message : String(error)}`;
    console.warn(`SKIPPING [hyperdrive · miniflare]: ${noStandby}`);
  }
}
const skipWithoutStandby = skipUnless(standby !== undefined, noStandby);

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

/** The same URL with a password: miniflare refuses a Hyperdrive origin without one (the local server trusts it). */
function withPassword(url: string): string {
  const parsed = new URL(url);
  parsed.password = "hyperdrive-local";
  return parsed.toString();
}

for (const target of postgresTargets) {
  describe(`Hyperdrive bindings in workerd on [hyperdrive ${target.label.slice(1, -1)}]`, () => {
    const own = new OwnDatabase(target, "roost_hd");
    const primaryPort = Number(new URL(own.url).port || 5432);
    /** An instance on the standby's copy of the database, counting the connections there. */
    let standbyObserver: Database | undefined;
    let worker: Miniflare | undefined;
    let output = "";

    const ask = async (path: string): Promise<Answer> => {
      const response = await worker!.dispatchFetch(`http://worker${path}`, { signal: AbortSignal.timeout(30_000) });
      return { status: response.status, body: await response.json() as Record<string, unknown> };
    };
    const ok = async (path: string) => {
      const answer = await ask(path);
      assert.equal(answer.status, 200, `${path}: ${JSON.stringify(answer.body)}`);
      return answer.body;
    };
    /** Client connections to the suite's database on the standby, the observer's own left out. */
    const standbyConnections = async () =>
      Number(
        await standbyObserver!.fetchVal(
          sql`select count(*) from pg_stat_activity where datname = current_database()
              and backend_type = 'client backend' and pid <> pg_backend_pid()`,
        ),
      );

    before(async () => {
      if (standby === undefined) return;
      await own.create();
      // The suite's database on the standby, once it has replayed its creation.
      const replicaUrl = new URL(standby.url);
      replicaUrl.pathname = `/${own.name}`;
      standbyObserver = new Database(replicaUrl.toString(), { pool: { max: 1 } });
      await eventually("the database on the standby", () =>
        standbyObserver!.fetchVal(sql`select 1`).then(
          () => true,
          () => false,
        ), (there) => there);
      worker = harness!.startWorker(await script!, {
        nodejsCompat: true,
        hyperdrives: { HYPERDRIVE: withPassword(own.url), HYPERDRIVE_REPLICA: withPassword(replicaUrl.toString()) },
        onOutput: (text) => output += text,
      });
      await ok("/setup");
    });

    after(async () => {
      try {
        await worker?.dispose();
        await standbyObserver?.close();
        await standby?.destroy();
      } finally {
        await own.drop();
      }
    });

    test(
      "each binding's connectionString names a host of its own on port 5432 with sslmode=disable, unchanged across requests",
      skipWithoutStandby,
      async () => {
        const first = await ok("/binding");
        const second = await ok("/binding");
        assert.deepEqual(second, first);
        // The scheme is the origin URL's; the host and port are the binding's own.
        assert.equal(first.protocol, new URL(own.url).protocol);
        assert.match(String(first.host), /^[0-9a-f]+\.hyperdrive\.local$/);
        assert.match(String(first.replicaHost), /^[0-9a-f]+\.hyperdrive\.local$/);
        assert.notEqual(first.replicaHost, first.host);
        assert.equal(first.port, "5432");
        assert.equal(first.search, "?sslmode=disable");
        assert.deepEqual([first.user, first.database], ["postgres", own.name]);
        assert.deepEqual(first.fields, [first.host, 5432, "postgres"]);
        assert.equal(first.unchanged, true);
        console.log(`[hyperdrive] the binding as the Worker sees it: ${JSON.stringify(first)}`);
      },
    );

    test("a connectionString read at module scope stops the Worker from starting", skipWithoutStandby, async () => {
      const early = harness!.startWorker(
        `import { env } from "cloudflare:workers";
const url = env.HYPERDRIVE.connectionString;
export default { fetch: () => new Response(url) };`,
        { nodejsCompat: true, hyperdrives: { HYPERDRIVE: withPassword(own.url) } },
      );
      const failure = await early.dispatchFetch("http://worker/").then(() => undefined, (error: Error) => error);
      // Disposing a Worker that never started fails the same way.
      await early.dispose().catch(() => {});
      assert.match(String(failure?.message), /Disallowed operation called within global scope/);
    });

    test(
      "10 sequential and 20 concurrent requests in db.context(): transactions, prepared statements and replica reads through two bindings, then no connection left",
      skipWithoutStandby,
      async () => {
        const baseline = await own.connections();
        const peaks: number[] = [];
        for (let id = 1; id <= 10; id++) {
          const body = await ok(`/work?id=${id}`);
          assert.deepEqual({ ...body, peak: 0 }, {
            id,
            note: "done",
            rolledBack: true,
            prepared: 1,
            peak: 0,
            primary: { standby: false, port: primaryPort },
            replica: { standby: true, port: standby!.port },
          });
          peaks.push(body.peak as number);
        }
        // A context opens at most 3 connections per server with one replica: the Worker's 6 sockets, shared.
        assert.ok(Math.max(...peaks) <= 3 && Math.max(...peaks) >= 2, `server connections per request: ${peaks}`);
        const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => ask(`/work?id=${101 + i}`)));
        for (const answer of answers) assert.equal(answer.status, 200, JSON.stringify(answer.body));
        assert.deepEqual(answers.map((a) => a.body.id), Array.from({ length: 20 }, (_, i) => 101 + i));
        assert.equal((await ok("/count")).rows, 30);
        // Each context closed its connections, through both bindings, before its response left. The server sees a
        // closed socket's backend end a moment later; under a loaded CI run that moment passed 5 s once (2026-12-08),
        // so the limit is generous: what is checked is that they close, not how fast.
        await eventually("no connection left on the primary", () => own.connections(), (n) => n === baseline, 30_000);
        await eventually("no connection left on the standby", standbyConnections, (n) => n === 0, 30_000);
        assert.doesNotMatch(output, /different request|uncaught/i, output);
      },
    );

    test(
      "routing reads to the replica binding: a request's reads go to the standby until its own write, then to the primary",
      skipWithoutStandby,
      async () => {
        const body = await ok("/routed?id=501");
        assert.deepEqual(body, {
          before: { standby: true, port: standby!.port },
          after: { standby: false, port: primaryPort },
          seen: "routed",
        });
        // The standby replays the row later; a fresh request reads it there.
        await eventually(
          "the row on the standby",
          () => ok("/replicated?id=501"),
          (answer) => answer.note === "routed",
        );
        await eventually("no connection left on the standby", standbyConnections, (n) => n === 0, 30_000);
      },
    );

    test(
      "locally a binding is a passthrough: the start-up parameters arrive, a session setting lasts the connection, reads are not cached, and a closed one ends its server session",
      skipWithoutStandby,
      async () => {
        const baseline = await own.connections();
        // On Cloudflare the pool RESETs a connection it takes back after each transaction or statement (docs/edge.md).
        assert.deepEqual(await ok("/session"), { setting: "roost-hyperdrive", startup: "UTC ISO, MDY" });
        // Nothing caches reads locally: the same read after a write sees it.
        assert.deepEqual(await ok("/fresh?id=601"), { reads: ["before", "after"] });
        await eventually(
          "the session's server connection gone with it",
          () => own.connections(),
          (n) => n === baseline,
        );
        await worker!.dispose();
        worker = undefined;
        await eventually("no connection after dispose", () => own.connections(), (n) => n === baseline, 30_000);
      },
    );
  });
}
