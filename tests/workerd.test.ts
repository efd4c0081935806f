/**
 * Roost in a real edge runtime: the Worker in tests/workerd/ is bundled the
 * way wrangler bundles one and runs in workerd (through miniflare) against
 * the local servers, with and without `nodejs_compat`. Each suite gives the
 * Worker a database of its own, so server-side counts see only its
 * connections. Driven from Node, where miniflare runs; the other runtimes
 * skip it.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { Miniflare } from "miniflare";
import { eventually, OwnDatabase, runtime, sleep, targets } from "./support.ts";

const servers = runtime === "node" ? targets().filter((t) => t.dialect !== "sqlite") : [];
if (runtime !== "node") console.warn(`SKIPPING [workerd · miniflare]: the workerd suite is driven from Node`);

// Loaded only on Node: miniflare drives the workerd binary from there.
const harness = runtime === "node" ? await import("./workerd/harness.ts") : undefined;
const compatScript = harness?.bundleWorker("tests/workerd/worker_compat.ts", { nodejsCompat: true });
const plainScript = harness?.bundleWorker("tests/workerd/worker_plain.ts", { nodejsCompat: false });

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

for (const target of servers) {
  const postgres = target.dialect === "postgres";
  const dialect = target.dialect;
  describe(`workerd on [workerd ${target.label.slice(1, -1)}]`, () => {
    const own = new OwnDatabase(target, "roost_wd");
    const url = own.url;
    const running: Miniflare[] = [];
    let output = "";

    const start = async (nodejsCompat: boolean) => {
      const script = await (nodejsCompat ? compatScript : plainScript)!;
      const worker = harness!.startWorker(script, {
        nodejsCompat,
        bindings: postgres ? { POSTGRES_URL: url } : { MYSQL_URL: url },
        onOutput: (text) => output += text,
      });
      running.push(worker);
      return worker;
    };
    const ask = async (worker: Miniflare, path: string): Promise<Answer> => {
      const response = await worker.dispatchFetch(
        `http://worker${path}${path.includes("?") ? "&" : "?"}dialect=${dialect}`,
      );
      return { status: response.status, body: await response.json() as Record<string, unknown> };
    };
    const ok = async (worker: Miniflare, path: string) => {
      const answer = await ask(worker, path);
      assert.equal(answer.status, 200, `${path}: ${JSON.stringify(answer.body)}`);
      return answer.body;
    };
    const serverConnections = () => own.connections();

    before(() => own.create());
    after(async () => {
      await Promise.all(running.splice(0).map((worker) => worker.dispose()));
      await own.drop();
    });

    test("a module-scope named Database serves 20 sequential and 20 concurrent requests, then leaves no connection", async () => {
      const baseline = await serverConnections();
      const worker = await start(true);
      await ok(worker, "/setup");
      const facts = await ok(worker, "/facts");
      assert.equal(facts.asyncContextAvailable, true);
      assert.deepEqual(facts.names, [dialect, `${dialect}-solo`]);

      const peaks: number[] = [];
      for (let id = 1; id <= 20; id++) {
        const body = await ok(worker, `/context?id=${id}`);
        assert.deepEqual({ ...body, peak: 0 }, { id, note: "done", peak: 0, onReplica: true, onPrimary: false });
        peaks.push(body.peak as number);
      }
      // The request's concurrent queries opened several connections, never more than a Worker may hold per request:
      // with one replica, 3 per server; without, up to 6 on the primary.
      assert.ok(Math.max(...peaks) <= 3 && Math.max(...peaks) >= 2, `server connections per request: ${peaks}`);
      const solo = await ok(worker, "/solo?id=21");
      assert.ok((solo.peak as number) <= 6 && (solo.peak as number) >= 4, `without replicas: ${solo.peak}`);

      let concurrentPeak = 0;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          concurrentPeak = Math.max(concurrentPeak, await serverConnections());
          await sleep(10);
        }
      })();
      const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => ask(worker, `/context?id=${101 + i}`)));
      sampling = false;
      await sampler;
      for (const answer of answers) assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.deepEqual(answers.map((a) => a.body.id), Array.from({ length: 20 }, (_, i) => 101 + i));

      // Outside any context each statement opens and closes a connection of its own, sequential or concurrent.
      for (let id = 201; id <= 205; id++) assert.equal((await ok(worker, `/bare?id=${id}`)).note, "bare");
      const bare = await Promise.all([206, 207, 208, 209, 210].map((id) => ask(worker, `/bare?id=${id}`)));
      for (const answer of bare) assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.equal((await ok(worker, "/count")).rows, 51);

      // Contexts closed their connections before answering; per-statement ones close right after.
      const between = await eventually(
        "no connection left while the Worker still runs",
        serverConnections,
        (n) => n === baseline,
      );
      await worker.dispose();
      running.splice(running.indexOf(worker), 1);
      const afterDispose = await eventually("no connection after dispose", serverConnections, (n) => n === baseline);
      assert.doesNotMatch(output, /different request/i);
      console.log(
        `[workerd ${target.label.slice(1, -1)}] server connections: baseline ${baseline}, per sequential request ` +
          `${Math.min(...peaks)}-${Math.max(...peaks)} (${solo.peak} without replicas), ` +
          `peak during 20 concurrent requests ${concurrentPeak}, ` +
          `idle Worker ${between}, after dispose ${afterDispose}`,
      );
    });

    test("with nodejs_compat, db.* calls inside db.context() and db.replica() follow async context", async () => {
      const worker = await start(true);
      await ok(worker, "/setup");
      assert.deepEqual(await ok(worker, "/implicit"), { onReplica: true, onPrimary: false });
      await worker.dispose();
      running.splice(running.indexOf(worker), 1);
    });

    test("Kysely on Roost inside db.context(): transactions and replica reads on the request's own connections", async () => {
      const worker = await start(true);
      await ok(worker, "/setup");
      const answers = await Promise.all([401, 402, 403, 404, 405].map((id) => ok(worker, `/kysely?id=${id}`)));
      for (const [i, body] of answers.entries()) {
        assert.deepEqual(body, { id: 401 + i, note: "kysely", onReplica: true });
      }
      // Each request closed its connections before answering.
      await eventually("no connection after the Kysely requests", serverConnections, (n) => n === 0, 5_000);
      await worker.dispose();
      running.splice(running.indexOf(worker), 1);
    });

    test("a Worker that passes no driver gets a ConfigError naming the import", async () => {
      const worker = await start(true);
      const answer = await ask(worker, "/nodriver");
      assert.equal(answer.status, 500);
      assert.equal(answer.body.name, "ConfigError");
      assert.match(String(answer.body.error), new RegExp(`@roost/db/drivers/${postgres ? "postgres-js" : "mysql2"}`));
      await worker.dispose();
      running.splice(running.indexOf(worker), 1);
    });

    if (postgres) {
      test("without nodejs_compat the core loads: explicit handles work, db.* in an open scope is a clear error", async () => {
        const baseline = await serverConnections();
        const worker = await start(false);
        await ok(worker, "/setup");
        assert.equal((await ok(worker, "/facts")).asyncContextAvailable, false);
        for (let id = 301; id <= 305; id++) {
          const body = await ok(worker, `/context?id=${id}`);
          assert.deepEqual({ ...body, peak: 0 }, { id, note: "done", peak: 0, onReplica: true, onPrimary: false });
        }
        const answers = await Promise.all([306, 307, 308, 309, 310].map((id) => ask(worker, `/context?id=${id}`)));
        for (const answer of answers) assert.equal(answer.status, 200, JSON.stringify(answer.body));
        assert.equal((await ok(worker, "/bare?id=311")).note, "bare");
        // Routing never guesses: without async context, db.* inside an open scope refuses to run.
        const implicit = await ask(worker, "/implicit");
        assert.equal(implicit.status, 500);
        assert.deepEqual([implicit.body.name, implicit.body.code], ["ConfigError", "ROOST_NO_ASYNC_CONTEXT"]);
        await worker.dispose();
        running.splice(running.indexOf(worker), 1);
        await eventually("no connection after dispose", serverConnections, (n) => n === baseline);
        assert.doesNotMatch(output, /different request/i);
      });
    }
  });
}
