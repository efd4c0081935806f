/**
 * Cloudflare D1 through the `d1` driver: tests/support/workerd/worker_d1.ts
 * is bundled as wrangler bundles a Worker and runs in workerd through
 * miniflare, bound to miniflare's local D1 (SQLite in a Durable Object, in
 * memory, removed with the Worker). Driven from Node, where miniflare runs;
 * the other runtimes skip it.
 *
 * Local D1 has no replicas: every session reads the one database, so these
 * tests show that bookmarks flow (a session started from one reports it, a
 * request continues from a client's) and that a context's reads see its
 * writes, but not a replica lagging behind (docs/drivers.md, "d1").
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import type { Miniflare } from "miniflare";
import { runtime, skipUnless } from "../support/support.ts";

const onNode = runtime === "node";
const skip = "the D1 suite runs workerd through miniflare, which is driven from Node";
if (!onNode) console.warn(`SKIPPING [d1 · miniflare]: ${skip}`);

// Loaded only on Node: miniflare drives the workerd binary from there.
const harness = onNode ? await import("../support/workerd/harness.ts") : undefined;
const scripts = {
  compat: harness?.bundleWorker("tests/support/workerd/worker_d1.ts", { nodejsCompat: true }),
  plain: harness?.bundleWorker("tests/support/workerd/worker_d1.ts", { nodejsCompat: false }),
};

interface Answer {
  status: number;
  body: Record<string, unknown>;
}

for (const flavour of ["compat", "plain"] as const) {
  const nodejsCompat = flavour === "compat";
  // tests/run.ts counts results per `[place · driver]`.
  const label = `[d1 ${nodejsCompat ? "nodejs_compat" : "no compat"} · d1]`;
  describe(`d1 in workerd ${nodejsCompat ? "with" : "without"} nodejs_compat ${label}`, () => {
    const running: Miniflare[] = [];
    let output = "";

    const start = async () => {
      const worker: Miniflare = harness!.startWorker((await scripts[flavour])!, {
        nodejsCompat,
        d1Databases: ["DB"],
        onOutput: (text) => output += text,
      });
      running.push(worker);
      await ok(worker, "/setup");
      return worker;
    };
    const ask = async (worker: Miniflare, path: string): Promise<Answer> => {
      const response = await worker.dispatchFetch(`http://worker${path}`);
      return { status: response.status, body: await response.json() as Record<string, unknown> };
    };
    const ok = async (worker: Miniflare, path: string) => {
      const answer = await ask(worker, path);
      assert.equal(answer.status, 200, `${path}: ${JSON.stringify(answer.body)}`);
      return answer.body;
    };

    after(async () => {
      await Promise.all(running.splice(0).map((worker) => worker.dispose()));
    });

    test(
      "a module-scope named Database over the binding: values round-trip by SQLite's rules",
      skipUnless(onNode, skip),
      async () => {
        const worker = await start();
        const facts = await ok(worker, "/facts");
        assert.deepEqual(facts.names, ["d1"]);
        assert.equal(facts.asyncContextAvailable, nodejsCompat);
        assert.equal(facts.url, "d1:DB");
        const values = await ok(worker, "/values");
        assert.deepEqual(values.inserted, { rowCount: 1, lastInsertId: 1 });
        assert.deepEqual(values.row, {
          id: 1,
          flag: 1,
          bytes: { bytes: [0, 1, 2, 254, 255] },
          at: "2024-02-29T12:34:56.789Z",
          doc: '{"a":[1,"two"]}',
          big: 2 ** 40,
          real_n: 1.5,
          empty_text: null,
        });
        assert.deepEqual(values.second, { flag: 0, bytes: { bytes: [9, 8] } });
        assert.equal(values.bytesIsUint8Array, true);
        // A repeated column name keeps its last value, as on the other SQLite drivers.
        assert.deepEqual(values.same, [{ a: 2 }]);
        assert.deepEqual(values.typeofs, { bytes: "blob", flag: "integer", big: "integer" });
        assert.equal(values.fetchVal, "text");
        assert.equal(values.none, "undefined");
      },
    );

    test(
      "rows as arrays: fetchRows, fetchRow and iterateRows read as the object path, keeping repeated names",
      skipUnless(onNode, skip),
      async () => {
        const worker = await start();
        await ok(worker, "/values");
        const answer = await ok(worker, "/rows");
        assert.deepEqual(answer.columns, ["id", "flag", "bytes", "at", "doc", "big", "real_n", "empty_text"]);
        assert.equal((answer.rows as unknown[]).length, 2);
        assert.deepEqual(answer.rows, answer.objects);
        assert.deepEqual(answer.iterated, answer.objects);
        assert.deepEqual(answer.repeated, { columns: ["a", "a"], rows: [[1, 2]] });
        assert.deepEqual(answer.numbered, { columns: ["2", "1"], rows: [[1, 2]] });
        assert.deepEqual(answer.first, [4]);
        assert.equal(answer.none, "undefined");
        assert.deepEqual(answer.empty, { columns: ["id", "flag"], rows: [] });
        assert.deepEqual(answer.replica, [5]);
      },
    );

    test(
      "text and numbers through D1's JSON transport: every text whole, -0 as 0, NaN as NULL, an infinity refused",
      skipUnless(onNode, skip),
      async () => {
        const worker = await start();
        const answer = await ok(worker, "/roundtrip");
        assert.deepEqual(answer.textMismatches, []);
        assert.deepEqual(answer.numbers, [
          "0",
          "0",
          "1.5",
          "-9007199254740991",
          "9007199254740991",
          "1e+308",
          "5e-324",
          null,
        ]);
        assert.deepEqual(answer.infinity, { name: "QueryError", code: "ROOST_INVALID_PARAMETER" });
      },
    );

    test(
      "errors: constraint violations carry SQLite's codes, bad parameters are refused before D1",
      skipUnless(onNode, skip),
      async () => {
        const worker = await start();
        const errors = await ok(worker, "/errors");
        assert.deepEqual(errors.unique, { name: "QueryError", code: "SQLITE_CONSTRAINT_UNIQUE" });
        assert.equal(errors.uniqueLeaksValue, false);
        assert.deepEqual(errors.notNull, { name: "QueryError", code: "SQLITE_CONSTRAINT_NOTNULL" });
        assert.equal((errors.syntax as { name: string }).name, "QueryError");
        assert.match(String((errors.syntax as { code: string }).code), /^(SQLITE_ERROR|D1_ERROR)$/);
        assert.equal((errors.noTable as { name: string }).name, "QueryError");
        assert.deepEqual(errors.bigint, { name: "QueryError", code: "ROOST_INVALID_PARAMETER" });
        assert.deepEqual(errors.undefinedParam, { name: "QueryError", code: "ROOST_INVALID_PARAMETER" });
        assert.equal(errors.stillWorks, 1);
      },
    );

    test("executeMany is one D1 batch: atomic, and its counts add up", skipUnless(onNode, skip), async () => {
      const worker = await start();
      const batch = await ok(worker, "/batch");
      assert.deepEqual(batch.many, { rowCount: 3, lastInsertId: 2003 });
      assert.deepEqual(batch.failed, { name: "QueryError", code: "SQLITE_CONSTRAINT_UNIQUE" });
      assert.equal(batch.count, 3, "the failed batch left none of its rows");
      assert.deepEqual(batch.empty, { rowCount: 0 });
    });

    test(
      "transactions and savepoints are refused with ROOST_D1_NO_TRANSACTIONS before D1 sees them",
      skipUnless(onNode, skip),
      async () => {
        const worker = await start();
        const refused = { name: "TransactionError", code: "ROOST_D1_NO_TRANSACTIONS" };
        const answer = await ok(worker, "/transactions");
        assert.deepEqual(answer.transaction, refused);
        assert.deepEqual(answer.begin, refused);
        assert.deepEqual(answer.rawBegin, refused);
        assert.deepEqual(answer.rawSavepoint, refused);
        assert.deepEqual(answer.connection, { ok: { seen: 1, nested: refused } });
        assert.equal(answer.unchanged, 0);
        assert.equal(answer.grew, 1);
        assert.deepEqual(answer.forceRollback, refused);
      },
    );

    test(
      "misuse is a ConfigError: no binding, a d1 driver on another URL, replicas, a bad binding or URL",
      skipUnless(onNode, skip),
      async () => {
        const worker = await start();
        const misuse = await ok(worker, "/misuse");
        assert.deepEqual(misuse.noBinding, { name: "ConfigError", code: "ROOST_D1_NEEDS_BINDING" });
        for (const key of ["sqliteDriverOnD1", "replicas", "badBinding", "badUrl"]) {
          assert.equal((misuse[key] as { name: string }).name, "ConfigError", key);
        }
      },
    );

    test(
      "20 sequential and 20 concurrent requests, each in a context: its reads see its writes",
      skipUnless(onNode, skip),
      async () => {
        const worker = await start();
        const check = (body: Record<string, unknown>, id: number) => {
          assert.deepEqual(body, {
            id,
            text: `note ${id}`,
            concurrent: Array.from({ length: 8 }, (_, i) => id + i),
            streamed: [1, 2, 3, 4, 5],
            replica: { read: `note ${id}`, write: { name: "ReadOnlyError" } },
            implicit: 1,
            bookmark: "string",
          });
        };
        for (let id = 1; id <= 20; id++) check(await ok(worker, `/context?id=${id}`), id);
        const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => ask(worker, `/context?id=${101 + i}`)));
        for (const [i, answer] of answers.entries()) {
          assert.equal(answer.status, 200, JSON.stringify(answer.body));
          check(answer.body, 101 + i);
        }
        assert.equal(await ok(worker, "/count"), 40 as unknown as Record<string, unknown>);
        assert.doesNotMatch(output, /different request|outside db\.context/i);
      },
    );

    test(
      "sessions: a request's bookmark advances with its writes, and the next request continues from it",
      skipUnless(onNode, skip),
      async () => {
        const worker = await start();
        const first = await ok(worker, "/write?id=5001");
        assert.equal(first.before, null, "no bookmark before the session's first query");
        assert.equal(typeof first.bookmark, "string");
        const read = await ok(worker, `/read?id=5001&bookmark=${encodeURIComponent(String(first.bookmark))}`);
        assert.equal(read.start, first.bookmark, "the session continues from the client's bookmark");
        assert.equal(read.text, "written 5001");
        assert.equal(typeof read.bookmark, "string");
        assert.ok(String(read.bookmark) >= String(first.bookmark), `${read.bookmark} < ${first.bookmark}`);
        assert.deepEqual(read.late, { name: "ConfigError", code: "ROOST_D1_SESSION_STARTED" });
        const second = await ok(worker, `/write?id=5002&bookmark=${encodeURIComponent(String(read.bookmark))}`);
        assert.equal(second.before, read.bookmark);
        assert.ok(String(second.bookmark) > String(first.bookmark), "a write moves the bookmark on");
        // Without a bookmark a request starts a session of its own (first-primary) and still sees every write.
        assert.equal((await ok(worker, "/read?id=5002")).text, "written 5002");
      },
    );

    test(
      "inside a connection() scope its handle runs; the context's handle waits for the held connection until acquireTimeout",
      skipUnless(onNode, skip),
      async () => {
        const worker = await start();
        assert.deepEqual(await ok(worker, "/held"), {
          conn: 1,
          context: { name: "PoolTimeoutError" },
          bookmark: { name: "PoolTimeoutError" },
        });
      },
    );

    test(
      "Kysely on Roost over D1 inside a context: queries run, its transactions are refused",
      skipUnless(
        onNode && nodejsCompat,
        onNode ? "Kysely on Roost runs through db.*, which needs async context (nodejs_compat)" : skip,
      ),
      async () => {
        const worker = await start();
        assert.deepEqual(await ok(worker, "/kysely?id=7001"), {
          row: { id: 7001, text: "kysely 7001" },
          transaction: { name: "TransactionError", code: "ROOST_D1_NO_TRANSACTIONS" },
          still: 1,
        });
      },
    );

    test(
      "acquire() is a handle on the context's D1 session; fresh transactions are ROOST_D1_NO_TRANSACTIONS at once",
      skipUnless(onNode, skip),
      async () => {
        const worker = await start();
        const refused = { name: "TransactionError", code: "ROOST_D1_NO_TRANSACTIONS" };
        const noContext = { name: "ConfigError", code: "ROOST_NO_ASYNC_CONTEXT" };
        assert.deepEqual(await ok(worker, "/acquire?id=8001"), {
          // db.acquire(), as every db.* call, needs async context (nodejs_compat).
          handle: nodejsCompat ? { ok: { seen: "acquired 8001", transaction: refused } } : noContext,
          fresh: refused,
          freshBegin: refused,
          // Inside a held connection (the pool's only one): refused at once, not after acquireTimeout (5 s there).
          inside: nodejsCompat ? refused : noContext,
          insideBegin: refused,
          after: nodejsCompat ? 1 : 0,
        });
        if (nodejsCompat) {
          // A handle forgotten in one request is closed with its context: the next request finds it refused.
          assert.deepEqual(await ok(worker, "/forget"), { released: false });
          assert.deepEqual(await ok(worker, "/forgotten"), {
            released: true,
            query: { name: "ClosedError" },
            next: 2,
          });
        }
      },
    );

    test(
      "db.schema creates and drops tables at a request; the migrator, which needs transactions, refuses before it writes",
      skipUnless(onNode, skip),
      async () => {
        const worker = await start();
        const refused = { name: "TransactionError", code: "ROOST_D1_NO_TRANSACTIONS" };
        assert.deepEqual(await ok(worker, "/models"), {
          // db.schema, as every db.* call, needs async context (nodejs_compat).
          schema: nodejsCompat
            ? { ok: [{ id: 1, name: "one" }] }
            : { name: "ConfigError", code: "ROOST_NO_ASYNC_CONTEXT" },
          status: { ok: "no-info" },
          createTables: refused,
          stamp: refused,
          upgrade: refused,
          dropTables: refused,
          history: 0,
        });
      },
    );

    test(
      "fetchRows and iterateRows in 10 concurrent requests answer as one alone",
      skipUnless(onNode, skip),
      async () => {
        const worker = await start();
        await ok(worker, "/values");
        const alone = await ok(worker, "/rows");
        const answers = await Promise.all(Array.from({ length: 10 }, () => ok(worker, "/rows")));
        for (const answer of answers) assert.deepEqual(answer, alone);
        assert.equal((alone.rows as unknown[]).length, 2);
      },
    );

    test("close(): queries after it are a ClosedError", skipUnless(onNode, skip), async () => {
      const worker = await start();
      assert.deepEqual(await ok(worker, "/close"), {
        before: 42,
        after: { name: "ClosedError" },
        closed: true,
      });
    });
  });
}
