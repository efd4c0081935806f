/**
 * Timers never keep a process alive: a pool left open does not stop the
 * program from exiting; nor do connections a close cut off, whose server
 * sessions stop too.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer, type Socket } from "node:net";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { sql } from "../../mod.ts";
import { eventually, runtime, skipUnless, tempDatabasePath } from "../support/support.ts";
import { OwnDatabase, serverDialects, serverPlaces, targets } from "../support/targets.ts";

const fixture = fileURLToPath(new URL("../support/fixtures/forgotten_pool.ts", import.meta.url));
const waitingCaller = fileURLToPath(new URL("../support/fixtures/waiting_caller.ts", import.meta.url));
const closeBusy = fileURLToPath(new URL("../support/fixtures/close_busy.ts", import.meta.url));
const forgottenPglite = fileURLToPath(new URL("../support/fixtures/forgotten_pglite.ts", import.meta.url));
const closeConnecting = fileURLToPath(new URL("../support/fixtures/close_connecting.ts", import.meta.url));
const execPath = (globalThis as unknown as { process: { execPath: string } }).process.execPath;

/** Runs the runtime with `args` to its exit (killed after `limitMs`); `markedAt`: when stdout first showed `mark`. */
function runToExit(
  args: string[],
  limitMs: number,
  mark = /$^/,
): Promise<{ code: number | null; output: string; ms: number; markedAt?: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    let markedAt: number | undefined;
    child.stdout.on("data", (chunk) => {
      output += chunk;
      if (markedAt === undefined && mark.test(output)) markedAt = Date.now();
    });
    child.stderr.on("data", (chunk) => output += chunk);
    const killer = setTimeout(() => child.kill("SIGKILL"), limitMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(killer);
      resolve({ code, output, ms: Date.now() - started, markedAt });
    });
  });
}

describe("process exit", () => {
  test("a pool with idle, lifetime and validation timers armed, never closed, lets the process exit", async () => {
    const args = runtime === "deno" ? ["run", "-A", fixture] : [fixture];
    const { code, output, ms } = await runToExit([...args, tempDatabasePath()], 20_000);
    assert.match(output, /done/, output);
    assert.equal(code, 0, `the process was killed after ${ms} ms or failed: ${output}`);
  });

  test(
    "two pglite::memory: databases, written to and never closed, let the process exit",
    skipUnless(targets({ drivers: ["pglite"] }).length > 0, "the pglite driver is not available", { timeout: 150_000 }),
    async () => {
      // PGlite leaves Postgres timers armed (a 10 s statistics flush, a start-up progress log every 10 s): the driver
      // disarms them. The limit only stops a child that never exits; each database starts in seconds of CPU.
      const args = runtime === "deno" ? ["run", "-A", forgottenPglite] : [forgottenPglite];
      const { code, output, ms } = await runToExit(args, 120_000);
      assert.match(output, /first\s+second\s+done/, output);
      assert.equal(code, 0, `the process was killed after ${ms} ms or failed: ${output}`);
    },
  );

  test("a caller waiting for a connection keeps the process alive until its acquireTimeout rejects it", async () => {
    const args = runtime === "deno" ? ["run", "-A", waitingCaller] : [waitingCaller];
    const { code, output, ms } = await runToExit(args, 20_000);
    assert.match(output, /timed out\s+done/, `the waiting call never settled (exit ${code} after ${ms} ms): ${output}`);
    assert.equal(code, 0, output);
  });
});

describe("process exit after close({ timeout }) cut off busy connections", () => {
  for (const target of targets({ dialects: serverDialects, places: serverPlaces })) {
    const postgres = target.dialect === "postgres";
    test(
      `20 60 s sleeps on a pool of 10, close({ timeout: 100 }): the process exits long before they end, and the server stops them ${target.label}`,
      { timeout: 90_000 },
      async () => {
        const own = new OwnDatabase(target, "exit_close");
        await own.create();
        try {
          const args = [...(runtime === "deno" ? ["run", "-A"] : []), closeBusy, own.url, target.driver, "20"];
          // close-cuts-sockets: the sleeps last 60 s; the limit only stops a child that hangs.
          const { code, output, markedAt } = await runToExit(args, 45_000, /closed \d+/);
          const exited = Date.now();
          assert.equal(code, 0, `the child failed or was killed: ${output}`);
          assert.ok(markedAt !== undefined, `close never resolved: ${output}`);
          const lived = exited - markedAt;
          // Generous: before the fix the process lived until the server ended the sleeps (60 s).
          assert.ok(lived < 10_000, `the process lived ${lived} ms after close resolved: ${output}`);
          const outcomes = /outcomes (.*)/.exec(output)?.[1] ?? "";
          // Cut-off sleeps fail with ConnectionError, queued ones with ClosedError; none completes.
          assert.match(outcomes, /^(ClosedError:\d+ )?ConnectionError:\d+$/, output);
          console.log(
            `${target.label}: close resolved in ${
              /closed (\d+)/.exec(output)?.[1]
            } ms; the process exited ${lived} ms later; ${outcomes}`,
          );
          // close-ends-sessions: the server stops the cut-off sleeps (and any queued behind them) too.
          const running = postgres
            ? sql`select count(*) from pg_stat_activity where datname = ${own.name} and state = 'active' and query like ${"select pg_sleep(60)%"}`
            : sql`select count(*) from information_schema.processlist where db = ${own.name} and info like ${"select sleep(60)%"}`;
          await eventually(
            "no sleep running on the server",
            async () => Number(await own.observer.fetchVal(running)),
            (n) => n === 0,
          );
        } finally {
          await own.drop();
        }
      },
    );
  }
});

describe("process exit after close() while a connection is being opened", () => {
  for (const target of targets({ dialects: serverDialects, places: serverPlaces })) {
    test(
      `a server that accepts and never answers, connect_timeout=60: close() gives up the connect and the process exits at once ${target.label}`,
      { timeout: 90_000 },
      async () => {
        // Before: the query waited out connect_timeout, and its socket kept the process alive for those 60 s.
        const accepted: Socket[] = [];
        const closed = new Set<Socket>();
        const silent = createServer((socket) => {
          accepted.push(socket);
          socket.on("error", () => {});
          socket.on("close", () => closed.add(socket));
          socket.resume();
        });
        await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
        try {
          const url = new URL(target.url);
          url.hostname = "127.0.0.1";
          url.port = String((silent.address() as { port: number }).port);
          url.searchParams.set("connect_timeout", "60");
          const args = [...(runtime === "deno" ? ["run", "-A"] : []), closeConnecting, url.toString(), target.driver];
          // The limit only stops a child that hangs: connect_timeout is 60 s.
          const { code, output, markedAt } = await runToExit(args, 45_000, /closed \d+/);
          const exited = Date.now();
          assert.equal(code, 0, `the child failed or was killed: ${output}`);
          assert.ok(markedAt !== undefined, `close never resolved: ${output}`);
          assert.ok(accepted.length >= 1, `the child never connected: ${output}`);
          // Generous: before, the process lived until connect_timeout (60 s).
          const lived = exited - markedAt;
          assert.ok(lived < 20_000, `the process lived ${lived} ms after close resolved: ${output}`);
          assert.match(output, /outcome ClosedError/, output);
          await eventually(
            "the server side sees every socket closed",
            () => accepted.length - closed.size,
            (n) => n === 0,
          );
          console.log(
            `${target.label}: close resolved in ${/closed (\d+)/.exec(output)?.[1]} ms; exited ${lived} ms later`,
          );
        } finally {
          for (const socket of accepted) socket.destroy();
          await new Promise<void>((resolve) => silent.close(() => resolve()));
        }
      },
    );
  }
});
