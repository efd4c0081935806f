/**
 * The server examples as their users run them: each runtime starts its own
 * (`deno run -A examples/deno-server.ts`, `bun examples/bun-server.ts`,
 * `node examples/node-server.ts`) as a child process on a free port and
 * drives its routes over HTTP, on a SQLite file and, where the servers run,
 * on a Postgres and a MySQL/MariaDB database of its own (with the same
 * database as a replica, so reads take the replica path). On Node, the Worker
 * example is bundled the way wrangler bundles it and runs in workerd through
 * miniflare against the servers too, and on Postgres once more through two
 * Hyperdrive bindings (primary and replica) in front of its database.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { rmSync } from "node:fs";
import process from "node:process";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import type { Miniflare } from "miniflare";
import { eventually, runtime, sleep, tempDatabasePath, uniqueName } from "../support/support.ts";
import { OwnDatabase, serverDialects, serverPlaces, type Target, targets } from "../support/targets.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));

interface Note {
  id: number;
  text: string;
}

interface Answer {
  status: number;
  body: unknown;
}

/** Sends one request to the example under test. */
type Ask = (method: string, path: string, body?: string) => Promise<Answer>;

/** One server dialect the suite can reach: the first target of each (any driver can create databases). */
const servers: { place: string; target: Target }[] = [];
for (const target of targets({ dialects: serverDialects, places: serverPlaces, onePerDialect: true })) {
  servers.push({ place: target.place, target });
}

/** A server example running as a child process. */
class ServerProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  stdout = "";
  stderr = "";

  constructor(env: Record<string, string>) {
    const script = `examples/${runtime}-server.ts`;
    this.child = spawn(process.execPath, runtime === "deno" ? ["run", "-A", script] : [script], {
      cwd: root,
      env: { ...process.env, PORT: "0", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child.stdout!.setEncoding("utf8").on("data", (chunk: string) => this.stdout += chunk);
    this.child.stderr!.setEncoding("utf8").on("data", (chunk: string) => this.stderr += chunk);
    this.child.on("error", (error) => this.stderr += `\ncould not run ${process.execPath}: ${error.message}`);
    this.exited = new Promise((resolve) => this.child.on("exit", (code, signal) => resolve({ code, signal })));
  }

  get output(): string {
    return `stdout: ${JSON.stringify(this.stdout)}, stderr: ${JSON.stringify(this.stderr.slice(-2_000))}`;
  }

  /** The address of its `listening on` line, waiting up to `ms` for it. */
  async address(ms = 20_000): Promise<string> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.stdout.match(/^listening on (http:\/\/127\.0\.0\.1:\d+)$/m)?.[1];
      if (found !== undefined) return found;
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        assert.fail(
          `the example exited (${this.child.exitCode ?? this.child.signalCode}) before listening; ${this.output}`,
        );
      }
      if (Date.now() > deadline) assert.fail(`no "listening on" line within ${ms} ms; ${this.output}`);
      await sleep(25);
    }
  }

  /** Sends `signal` and waits up to `ms` for the exit; undefined when it did not exit. */
  async stop(signal: "SIGTERM" | "SIGKILL", ms = 10_000) {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      // process.kill, not child.kill: Deno's ChildProcess reports a child it signalled as killed by that signal
      // even when it exited by itself, and sends no second signal after a first one.
      try {
        process.kill(this.child.pid!, signal);
      } catch {
        // It exited meanwhile.
      }
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<undefined>((resolve) => timer = setTimeout(() => resolve(undefined), ms));
    try {
      return await Promise.race([this.exited, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops it whatever state it is in: SIGKILL if SIGTERM was not enough. */
  async kill(): Promise<void> {
    if ((await this.stop("SIGTERM", 5_000)) === undefined) await this.stop("SIGKILL", 5_000);
  }
}

/** The route tests every example passes; `ask` reaches the example, set up by the describe's `before`. */
function routeTests(ask: Ask, expectedRuntime: string) {
  const post = async (text: unknown): Promise<Note> => {
    const answer = await ask("POST", "/notes", JSON.stringify({ text }));
    assert.equal(answer.status, 201, JSON.stringify(answer.body));
    const note = answer.body as Note;
    assert.equal(typeof note.id, "number", JSON.stringify(note));
    assert.deepEqual(note, { id: note.id, text });
    return note;
  };

  test("GET /health answers ok and the runtime", async () => {
    assert.deepEqual(await ask("GET", "/health"), { status: 200, body: { ok: true, runtime: expectedRuntime } });
  });

  test("POST /notes inserts two notes (201) and GET /notes lists them newest first", async () => {
    const first = await post("first note");
    const second = await post("second note, with ünïcödé");
    assert.ok(second.id > first.id, `ids ${first.id}, ${second.id}`);
    const list = await ask("GET", "/notes");
    assert.equal(list.status, 200, JSON.stringify(list.body));
    const notes = list.body as Note[];
    assert.ok(Array.isArray(notes) && notes.length <= 50, JSON.stringify(notes));
    assert.deepEqual(notes.filter((n) => n.id === first.id || n.id === second.id), [second, first]);
    assert.deepEqual(notes, [...notes].sort((a, b) => b.id - a.id));
  });

  test("GET /notes/:id answers one note, and 404 for a missing one", async () => {
    const note = await post("look me up");
    assert.deepEqual(await ask("GET", `/notes/${note.id}`), { status: 200, body: note });
    const missing = await ask("GET", "/notes/987654321");
    assert.equal(missing.status, 404);
    assert.equal(typeof (missing.body as { error?: unknown }).error, "string", JSON.stringify(missing.body));
    assert.equal((await ask("GET", "/nowhere")).status, 404);
  });

  test("POST /notes with bad JSON, no text or a text that is not a string is a 400 with an error", async () => {
    for (const body of ["{not json", "{}", JSON.stringify({ text: 42 }), JSON.stringify({ text: "  " }), "null", ""]) {
      const answer = await ask("POST", "/notes", body);
      assert.equal(answer.status, 400, `${body}: ${JSON.stringify(answer)}`);
      assert.equal(typeof (answer.body as { error?: unknown }).error, "string", JSON.stringify(answer.body));
    }
  });
}

const places = [{ place: "sqlite", target: undefined }, ...servers];

for (const { place, target } of places) {
  describe(`the ${runtime} server example on [example ${place} · ${runtime}]`, () => {
    const database = target === undefined ? undefined : new OwnDatabase(target, "roost_ex");
    const file = tempDatabasePath(uniqueName("example"));
    let server: ServerProcess | undefined;
    let base = "";

    const ask: Ask = async (method, path, body) => {
      const response = await fetch(`${base}${path}`, { method, body, signal: AbortSignal.timeout(10_000) });
      return { status: response.status, body: await response.json() };
    };

    before(async () => {
      await database?.create();
      // On a server, the replica is the same database through read-only sessions: reads take the replica path.
      const url = database?.url ?? `sqlite://${file}`;
      server = new ServerProcess({ DATABASE_URL: url, REPLICA_URLS: database === undefined ? "" : url });
      base = await server.address();
    });

    after(async () => {
      try {
        await server?.kill();
      } finally {
        await database?.drop();
        for (const suffix of ["", "-wal", "-shm"]) rmSync(`${file}${suffix}`, { force: true });
      }
    });

    routeTests(ask, runtime);

    if (database) {
      test("reads took the replica path: besides the primary's connection, the example holds a replica's", async () => {
        // Requests run one at a time, so without replicas the example's pool would hold a single connection.
        const connections = await database.connections();
        assert.ok(connections >= 2, `the server sees ${connections} connection(s) of the example`);
      });
    }

    test("SIGTERM closes the database and exits, having printed one line", async () => {
      const exit = await server!.stop("SIGTERM");
      assert.ok(exit !== undefined, `still running 10 s after SIGTERM; ${server!.output}`);
      assert.deepEqual(exit, { code: 0, signal: null }, server!.output);
      assert.equal(server!.stdout, `listening on ${base}\n`);
      if (database) await eventually("no connection left after exit", () => database.connections(), (n) => n === 0);
    });
  });
}

// The Worker example runs from Node only: miniflare drives the workerd binary from there.
const harness = runtime === "node" ? await import("../support/workerd/harness.ts") : undefined;
if (harness === undefined) console.warn(`SKIPPING [example worker · workerd]: the Worker example is driven from Node`);
let workerScript: Promise<string> | undefined; // bundled once, by the first Worker suite

/**
 * The Worker example's ways to its database: URLs in the environment, (Postgres) two Hyperdrive bindings, and a URL
 * naming a WebSocket proxy, for which the example picks the neon driver.
 */
const workerCases = [
  ...servers.flatMap(({ place, target }) => [
    { place, target, hyperdrive: false },
    ...(target.dialect === "postgres" ? [{ place: `${place} hyperdrive`, target, hyperdrive: true }] : []),
  ]),
  ...targets({ drivers: ["neon"] }).map((target) => ({ place: `${target.place} · neon`, target, hyperdrive: false })),
];

/** A URL with a password: miniflare refuses a Hyperdrive origin without one (the local server trusts it). */
function withPassword(url: string): string {
  const parsed = new URL(url);
  parsed.password = "hyperdrive-local";
  return parsed.toString();
}

for (const { place, target, hyperdrive } of harness === undefined ? [] : workerCases) {
  describe(`the Worker example on [example worker ${place} · workerd]`, () => {
    const database = new OwnDatabase(target, "roost_ex");
    let worker: Miniflare | undefined;
    let output = "";

    before(async () => {
      await database.create();
      workerScript ??= harness!.bundleWorker("examples/cloudflare-worker.ts", { nodejsCompat: true });
      // Through Hyperdrive the replica binding fronts the same database: the reads still take the replica path.
      const url = withPassword(database.url);
      worker = harness!.startWorker(await workerScript, {
        nodejsCompat: true,
        ...(hyperdrive
          ? { hyperdrives: { HYPERDRIVE: url, HYPERDRIVE_REPLICA: url } }
          : { bindings: { DATABASE_URL: database.url, REPLICA_URLS: database.url } }),
        onOutput: (text) => output += text,
      });
    });

    after(async () => {
      try {
        await worker?.dispose();
      } finally {
        await database.drop();
      }
    });

    routeTests(async (method, path, body) => {
      const response = await worker!.dispatchFetch(`http://worker${path}`, {
        method,
        body,
        signal: AbortSignal.timeout(10_000),
      });
      return { status: response.status, body: await response.json() };
    }, "workerd");

    test("requests leave no connection open, and neither does dispose", async () => {
      await eventually("no connection left between requests", () => database.connections(), (n) => n === 0);
      await worker!.dispose();
      worker = undefined;
      await eventually("no connection left after dispose", () => database.connections(), (n) => n === 0);
      assert.doesNotMatch(output, /different request|uncaught/i, output);
    });
  });
}

// The D1 Worker example: miniflare's local D1 (in memory) under the binding DB, from Node only as above.
if (harness !== undefined) {
  describe(`the D1 Worker example on [example worker d1 · workerd]`, () => {
    let worker: Miniflare | undefined;
    let output = "";
    let bookmark = "";

    before(async () => {
      const script = await harness.bundleWorker("examples/cloudflare-d1.ts", { nodejsCompat: true });
      worker = harness.startWorker(script, {
        nodejsCompat: true,
        d1Databases: ["DB"],
        onOutput: (text) => output += text,
      });
    });

    after(async () => {
      await worker?.dispose();
    });

    const send = async (method: string, path: string, body?: string, headers: Record<string, string> = {}) => {
      const response = await worker!.dispatchFetch(`http://worker${path}`, {
        method,
        body,
        headers,
        signal: AbortSignal.timeout(10_000),
      });
      const answer = { status: response.status, body: await response.json() as unknown };
      // Every answer that touched D1 carries the session's bookmark for the client's next request.
      const carried = response.headers.get("x-d1-bookmark");
      if (carried !== null) bookmark = carried;
      return { ...answer, bookmark: carried };
    };

    routeTests(async (method, path, body) => {
      const { status, body: answer } = await send(method, path, body);
      return { status, body: answer };
    }, "workerd");

    test("each answer carries the D1 session's bookmark; a request sent with it continues from it", async () => {
      const posted = await send("POST", "/notes", JSON.stringify({ text: "with a bookmark" }));
      assert.equal(posted.status, 201);
      assert.equal(typeof posted.bookmark, "string");
      const id = (posted.body as Note).id;
      const read = await send("GET", `/notes/${id}`, undefined, { "x-d1-bookmark": bookmark });
      assert.deepEqual(read.body, { id, text: "with a bookmark" });
      assert.ok(read.bookmark !== null && read.bookmark >= posted.bookmark!, `${read.bookmark} < ${posted.bookmark}`);
      assert.doesNotMatch(output, /different request|uncaught/i, output);
    });
  });
}
