/** Timers never keep a process alive: a pool left open does not stop the program from exiting. */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { runtime, tempDatabasePath } from "./support.ts";

const fixture = fileURLToPath(new URL("./fixtures/forgotten_pool.ts", import.meta.url));
const waitingCaller = fileURLToPath(new URL("./fixtures/waiting_caller.ts", import.meta.url));
const execPath = (globalThis as unknown as { process: { execPath: string } }).process.execPath;

function runToExit(args: string[], limitMs: number): Promise<{ code: number | null; output: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (chunk) => output += chunk);
    child.stderr.on("data", (chunk) => output += chunk);
    const killer = setTimeout(() => child.kill("SIGKILL"), limitMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(killer);
      resolve({ code, output, ms: Date.now() - started });
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

  test("a caller waiting for a connection keeps the process alive until its acquireTimeout rejects it", async () => {
    const args = runtime === "deno" ? ["run", "-A", waitingCaller] : [waitingCaller];
    const { code, output, ms } = await runToExit(args, 20_000);
    assert.match(output, /timed out\s+done/, `the waiting call never settled (exit ${code} after ${ms} ms): ${output}`);
    assert.equal(code, 0, output);
  });
});
