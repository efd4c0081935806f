/**
 * Roost in a real edge runtime: the Worker in tests/support/workerd/ is bundled the
 * way wrangler bundles one and runs in workerd (through miniflare) against
 * the local servers, with and without `nodejs_compat`. Each suite gives the
 * Worker a database of its own, so server-side counts see only its
 * connections. Driven from Node, where miniflare runs; the other runtimes
 * skip it.
 */
import assert from "node:assert/strict";
import { type AddressInfo, createServer, type Socket } from "node:net";
import { after, before, describe, test } from "node:test";
import type { Miniflare } from "miniflare";
import { eventually, postgresJsMajor, runtime, skipUnless, sleep } from "../support/support.ts";
import { OwnDatabase, serverDialects, serverPlaces, targets } from "../support/targets.ts";

const servers = runtime === "node" ? targets({ dialects: serverDialects, places: serverPlaces }) : [];
if (runtime !== "node") console.warn(`SKIPPING [workerd · miniflare]: the workerd suite is driven from Node`);

// Loaded only on Node: miniflare drives the workerd binary from there.
const harness = runtime === "node" ? await import("../support/workerd/harness.ts") : undefined;
const compatScript = harness?.bundleWorker("tests/support/workerd/worker_compat.ts", { nodejsCompat: true });
// postgres.js 4 imports node:os, node:fs, node:net and more, which no polyfill replaces: on Workers it needs
// nodejs_compat, at a compatibility date from 2025-09-15 on (workerd's node:os; the harness's default date).
// 3.4 also runs without nodejs_compat, with polyfills.
const postgresJs4 = postgresJsMajor >= 4;
const withoutCompat = !postgresJs4;
const withoutCompatSkip = "postgres.js 4 imports node:os, node:fs, node:net …: on Workers it needs nodejs_compat";
const plainScript = withoutCompat
  ? harness?.bundleWorker("tests/support/workerd/worker_plain.ts", { nodejsCompat: false })
  : undefined;
const postgresCompatScript = harness?.bundleWorker("tests/support/workerd/worker_plain.ts", { nodejsCompat: true });
// The neon driver's Worker: one bundle for every case (Neon's package needs no Node built-in).
const neonScript = servers.some((target) => target.driver === "neon")
  ? harness?.bundleWorker("tests/support/workerd/worker_neon.ts", { nodejsCompat: false })
  : undefined;

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

for (const target of servers) {
  const postgres = target.dialect === "postgres";
  const neon = target.driver === "neon";
  const dialect = target.dialect;
  describe(`workerd on [workerd ${target.label.slice(1, -1)}]`, () => {
    const own = new OwnDatabase(target, "roost_wd");
    const url = own.url;
    const running: Miniflare[] = [];
    let output = "";
    /** What each Worker wrote (workerd's logs and its console). */
    const outputs = new Map<Miniflare, string>();

    const start = async (
      nodejsCompat: boolean,
      options: { compatibilityDate?: string; url?: string; postgresOnly?: boolean } = {},
    ) => {
      const script = await (neon
        ? neonScript
        : options.postgresOnly
        ? postgresCompatScript
        : nodejsCompat
        ? compatScript
        : plainScript)!;
      const bound = options.url ?? url;
      const worker: Miniflare = harness!.startWorker(script, {
        nodejsCompat,
        compatibilityDate: options.compatibilityDate,
        bindings: postgres ? { POSTGRES_URL: bound } : { MYSQL_URL: bound },
        onOutput: (text) => {
          output += text;
          outputs.set(worker, (outputs.get(worker) ?? "") + text);
        },
      });
      running.push(worker);
      return worker;
    };
    const stop = async (worker: Miniflare) => {
      running.splice(running.indexOf(worker), 1);
      await worker.dispose();
    };
    /** Everything the Worker wrote so far: it logs a marker and waits until the marker arrives. */
    let markers = 0;
    const written = async (worker: Miniflare) => {
      const marker = ++markers;
      await ok(worker, `/log?id=${marker}`);
      return await eventually(
        `marker ${marker} in the Worker's output`,
        () =>
          outputs.get(worker) ?? "",
        (text) => text.includes(`marker ${marker}`),
        10_000,
      );
    };
    /** `/probe` alone, then while another request holds a context and a transaction open, then alone again. */
    const probeAloneAndBeside = async (worker: Miniflare, id: number) => {
      const alone = await ok(worker, "/probe");
      const holder = ask(worker, `/hold?id=${id}`);
      await eventually(
        "the holding request in its context",
        () => ok(worker, `/holding?id=${id}`),
        (body) => body.holding === true,
        10_000,
      );
      const beside = await Promise.all([ok(worker, "/probe"), ok(worker, "/probe"), ok(worker, "/probe")]);
      await ok(worker, `/release?id=${id}`);
      const held = await holder;
      assert.equal(held.status, 200, JSON.stringify(held.body));
      return { alone, beside, held: held.body, after: await ok(worker, "/probe") };
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
      assert.deepEqual(facts.names, [dialect, `${dialect}-solo`, `${dialect}-one`]);

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

    test(
      "a Worker that passes no driver gets a ConfigError naming the import",
      skipUnless(!neon, "the neon target's URL names its WebSocket proxy, which only the neon driver reads"),
      async () => {
        const worker = await start(true);
        const answer = await ask(worker, "/nodriver");
        assert.equal(answer.status, 500);
        assert.equal(answer.body.name, "ConfigError");
        assert.match(String(answer.body.error), new RegExp(`@roost/db/drivers/${postgres ? "postgres-js" : "mysql2"}`));
        await worker.dispose();
        running.splice(running.indexOf(worker), 1);
      },
    );

    if (postgres) {
      test(
        "without nodejs_compat the core loads: explicit handles work, db.* inside scopes and out is one clear error",
        skipUnless(withoutCompat || neon, withoutCompatSkip),
        async () => {
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
          // Routing never guesses: without async context, db.* refuses to run, inside an open scope or not.
          for (const path of ["/implicit", "/bare?id=311", "/kysely?id=312"]) {
            const refused = await ask(worker, path);
            assert.equal(refused.status, 500, path);
            assert.deepEqual([refused.body.name, refused.body.code], ["ConfigError", "ROOST_NO_ASYNC_CONTEXT"]);
            assert.match(String(refused.body.error), /db\.context\(\(scope\) => scope\.fetchAll/);
          }
          await stop(worker);
          await eventually("no connection after dispose", serverConnections, (n) => n === baseline);
          assert.doesNotMatch(output, /different request/i);
        },
      );

      test(
        "without nodejs_compat, a request holding db.context() open changes no other request's answers",
        skipUnless(withoutCompat || neon, withoutCompatSkip),
        async () => {
          const worker = await start(false);
          await ok(worker, "/setup");
          const { alone, beside, held, after } = await probeAloneAndBeside(worker, 501);
          for (const answer of beside) assert.deepEqual(answer, alone);
          const refused = { name: "ConfigError", code: "ROOST_NO_ASYNC_CONTEXT" };
          assert.deepEqual(alone, {
            bare: refused,
            bareTransaction: refused,
            inContext: refused,
            handle: { ok: 4 },
            visible: alone.visible,
          });
          assert.deepEqual(held, { id: 501, joined: "no async context" });
          assert.deepEqual({ ...after, visible: undefined }, { ...alone, visible: undefined });
          await stop(worker);
        },
      );
    }

    test("with nodejs_compat, a request holding a context and a transaction open changes no other request's answers", async () => {
      const worker = await start(true);
      await ok(worker, "/setup");
      const { alone, beside, held, after } = await probeAloneAndBeside(worker, 502);
      assert.deepEqual({ ...alone, visible: undefined }, {
        bare: { ok: 1 },
        bareTransaction: { ok: 2 },
        inContext: { ok: 3 },
        handle: { ok: 4 },
        visible: undefined,
      });
      // The others neither join the held transaction nor see its uncommitted row.
      for (const answer of beside) assert.deepEqual(answer, alone);
      // Its own db.* call joined it.
      assert.deepEqual(held, { id: 502, joined: "held" });
      assert.equal(Number((after.visible as { ok: unknown }).ok), Number((alone.visible as { ok: unknown }).ok) + 1);
      await stop(worker);
    });

    for (const compatibilityDate of ["2024-09-22", "2024-09-23"]) {
      // Before 2024-09-23 there is no `process` global, so AsyncLocalStorage can only be imported.
      const early = compatibilityDate < "2024-09-23";
      const unmet = postgres
        ? postgresJs4 && !neon ? "postgres.js 4 needs workerd's node:os, which nodejs_compat has from 2025-09-15" : ""
        : early
        ? "mysql2 needs the Buffer global, which nodejs_compat has from 2024-09-23"
        : "";
      const name =
        `with nodejs_compat dated ${compatibilityDate}, scopes follow async context: db.* inside db.transaction joins it`;
      test(name, skipUnless(unmet === "", unmet), async () => {
        const worker = await start(true, { compatibilityDate, postgresOnly: early });
        await ok(worker, "/setup");
        assert.equal((await ok(worker, "/facts")).asyncContextAvailable, true);
        const id = compatibilityDate === "2024-09-22" ? 601 : 602;
        assert.deepEqual(await ok(worker, `/joins?id=${id}`), { same: true, seen: "joined" });
        assert.deepEqual(await ok(worker, "/implicit"), { onReplica: true, onPrimary: false });
        await stop(worker);
      });
    }

    test("acquire() in a request: released at its end, a forgotten handle reclaimed with its context and refused in the next request", async () => {
      const baseline = await serverConnections();
      const worker = await start(true);
      await ok(worker, "/setup");
      assert.deepEqual(await ok(worker, "/acquire?id=901"), { id: 901, note: "acquired" });
      assert.deepEqual(await ok(worker, "/forget?id=902"), { id: 902, released: false });
      // The next request neither reuses the handle's connection nor sees its uncommitted write.
      assert.deepEqual(await ok(worker, "/forgotten?id=902"), {
        released: true,
        query: { name: "ClosedError" },
        rows: 0,
      });
      await eventually("no connection left after the requests", serverConnections, (n) => n === baseline);
      assert.doesNotMatch(output, /different request/i);
      await stop(worker);
    });

    test("fresh: true in a request's transaction sees only committed rows; 10 concurrent requests acquire and go fresh", async () => {
      const baseline = await serverConnections();
      const worker = await start(true);
      await ok(worker, "/setup");
      const fresh = { inTransaction: 1, fresh: 0, committed: 0, acquired: 0 };
      assert.deepEqual(await ok(worker, "/fresh?id=911"), { id: 911, ...fresh });
      const ids = Array.from({ length: 10 }, (_, i) => 920 + i);
      const answers = await Promise.all(
        ids.flatMap((id) => [ask(worker, `/fresh?id=${id}`), ask(worker, `/acquire?id=${id + 20}`)]),
      );
      for (const [i, answer] of answers.entries()) {
        assert.equal(answer.status, 200, JSON.stringify(answer.body));
        const id = ids[Math.floor(i / 2)];
        assert.deepEqual(answer.body, i % 2 === 0 ? { id, ...fresh } : { id: id + 20, note: "acquired" });
      }
      await eventually("no connection left after the requests", serverConnections, (n) => n === baseline);
      assert.doesNotMatch(output, /different request/i);
      await stop(worker);
    });

    test("a Worker creates its tables at a request: createTables, stamp and dropTables of the migrator and db.schema", async () => {
      const worker = await start(true);
      await ok(worker, "/setup");
      assert.deepEqual(await ok(worker, "/models?id=1"), {
        before: "no-info",
        created: ["wd_notes"],
        rows: [{ id: 1, text: "from a model" }],
        unstamped: ["0001"],
        stamped: ["0001"],
        status: "up-to-date",
        dropped: ["wd_notes", "wd_migrations"],
        after: "no-info",
      });
      await stop(worker);
    });

    test("fetchRows and iterateRows in 10 concurrent requests; iterateRows on a pool of one with a query inside the loop", async () => {
      const worker = await start(true);
      await ok(worker, "/setup");
      const ids = Array.from({ length: 10 }, (_, i) => 1001 + i);
      const answers = await Promise.all(ids.map((id) => ok(worker, `/rows?id=${id}`)));
      for (const [i, body] of answers.entries()) {
        const rows = [1, 2, 3, 4, 5].map((n) => [n, ids[i]]);
        assert.deepEqual(body, { columns: ["n", "id"], rows, iterated: rows });
      }
      const looped = await Promise.all([1100, 1200].map((id) => ok(worker, `/iterate-one?id=${id}`)));
      for (const [i, body] of looped.entries()) {
        const id = [1100, 1200][i];
        assert.deepEqual(body.seen, Array.from({ length: 10 }, (_, k) => id + k));
      }
      assert.doesNotMatch(output, /different request/i);
      await stop(worker);
    });

    test("a Worker querying outside db.context() is told once, on its console, to wrap requests in it", async () => {
      // Postgres trusts this client, so the password only has to stay out of the warning.
      const password = "pw-never-printed-7f3a";
      const withPassword = new URL(url);
      if (postgres) withPassword.password = password;
      const worker = await start(true, { url: withPassword.toString() });
      await ok(worker, "/setup");
      assert.doesNotMatch(await written(worker), /outside db\.context/);
      for (let id = 701; id <= 703; id++) assert.equal((await ok(worker, `/bare?id=${id}`)).note, "bare");
      await Promise.all([704, 705].map((id) => ok(worker, `/bare?id=${id}`)));
      const text = await written(worker);
      const warnings = text.match(/opened a connection outside db\.context\(\)/g) ?? [];
      assert.equal(warnings.length, 1, text);
      assert.match(text, new RegExp(`Roost: Database\\("${dialect}" [^)]*\\) opened a connection outside`));
      assert.match(text, /db\.context\(\(scope\) => \.\.\.\)/);
      assert.doesNotMatch(text, new RegExp(password));
      await stop(worker);
    });

    test("requests that run in db.context(), and an instance that chose its connectionScope, print no warning", async () => {
      const worker = await start(true);
      await ok(worker, "/setup");
      assert.deepEqual(await ok(worker, "/explicit"), { one: 1 });
      await Promise.all([801, 802, 803].map((id) => ok(worker, `/context?id=${id}`)));
      await ok(worker, `/joins?id=804`);
      await ok(worker, "/implicit");
      await ok(worker, `/kysely?id=805`);
      assert.doesNotMatch(await written(worker), /Roost:|outside db\.context/);
      await stop(worker);
    });

    test("close() in the request whose query is connecting to a server that never answers (connect_timeout=60): the query fails with ClosedError at once and the socket closes", async () => {
      const silent = await silentServer();
      try {
        const worker = await start(true);
        const id = 1301;
        const answer = ask(worker, `/close-connecting?id=${id}&port=${silent.port}`);
        answer.catch(() => {}); // awaited below; a failed assertion before that disposes the Worker under it
        // The Worker's client (for neon, the WebSocket proxy it asked) has reached the server: the connect is under way.
        await eventually("a socket to the silent server", () => silent.accepted.length, (n) => n >= 1, 10_000);
        await ok(worker, `/release?id=${id}`);
        // The request closes the instance and stays open: the socket must close now, not at the request's end.
        await eventually("the silent server sees every socket closed", () => silent.open(), (n) => n === 0, 10_000);
        await ok(worker, `/release?id=${id + 1}`);
        const { status, body } = await answer;
        assert.equal(status, 200, JSON.stringify(body));
        const query = body.query as { name?: string; code?: string; afterClose: number };
        assert.deepEqual({ ...query, afterClose: 0 }, { name: "ClosedError", afterClose: 0 }, JSON.stringify(body));
        // Far from connect_timeout's 60 s (workerd's clock moves only between I/O events).
        assert.ok(query.afterClose < 10_000, `the query failed ${query.afterClose} ms after close() began`);
        assert.deepEqual(body.close, {}, "close() resolved");
        assert.deepEqual(body.stats, { size: 0, idle: 0, busy: 0, waiting: 0 });
        assert.doesNotMatch(output, /different request/i);
        console.log(
          `[workerd ${target.label.slice(1, -1)}] close() in the request gave up the connect: the query failed ` +
            `${query.afterClose} ms after close() began; ${silent.accepted.length} socket(s) to the silent server, ` +
            `closed before the request ended`,
        );
        await stop(worker);
      } finally {
        await silent.close();
      }
    });
  });
}

/** A server on a free port of 127.0.0.1 that accepts, reads what it gets (so it sees a close) and never answers. */
async function silentServer() {
  const accepted: Socket[] = [];
  const closed = new Set<Socket>();
  const server = createServer((socket) => {
    accepted.push(socket);
    socket.on("error", () => {});
    socket.on("close", () => closed.add(socket));
    socket.resume();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    accepted,
    /** Accepted sockets not closed yet. */
    open: () => accepted.filter((socket) => !closed.has(socket)).length,
    /** Closes every socket and stops listening. */
    close: () => {
      for (const socket of accepted) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
