/**
 * Starts and stops the WebSocket-to-TCP proxy (tests/support/ws_proxy_server.ts)
 * the neon driver's tests reach Postgres through. Not a test file:
 * tests/support/targets.ts starts one per test process for the
 * `[postgres · neon]` target, and the workerd test hands its address to a
 * Worker.
 *
 * The proxy runs as a Node child process (the repository's Node, from any
 * runtime), so Deno, Bun and Node tests share one implementation. It never
 * keeps the test process alive, stops when `stop()` is called or the test
 * process exits, and stops by itself when its parent dies (its standard
 * input closes).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { runtime } from "./support.ts";

/** A running proxy. */
export interface WsProxy {
  /** The port it listens on (127.0.0.1). */
  readonly port: number;
  /** Its address as the `wsproxy` URL option takes it: `ws://127.0.0.1:<port>/v1`. */
  readonly address: string;
  /** Stops it. Idempotent; never throws. */
  stop(): Promise<void>;
}

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");

/** The Node that runs the proxy: this process's on Node, else the repository's (npm's `node` package). */
function nodeBinary(): string {
  if (runtime === "node") return process.execPath;
  const local = join(root, "node_modules", ".bin", "node");
  if (!existsSync(local)) throw new Error(`the WebSocket proxy needs Node: ${local} is missing (run npm ci)`);
  return local;
}

/** A handle's `unref`, where the runtime's child-process streams have one. */
function unref(handle: unknown): void {
  (handle as { unref?: () => void } | null)?.unref?.();
}

/** Starts a proxy; rejects (with what it printed) when it does not report a port within 30 s. */
export function startWsProxy(): Promise<WsProxy> {
  const child: ChildProcess = spawn(nodeBinary(), [join(here, "ws_proxy_server.ts")], {
    cwd: root,
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    child.stdin?.end();
    child.kill("SIGTERM");
  };
  process.on("exit", stop);
  globalThis.addEventListener?.("unload", stop);
  return new Promise((resolve, reject) => {
    let output = "";
    let errors = "";
    const timer = setTimeout(() => fail(new Error("no port within 30 s")), 30_000);
    const fail = (error: Error) => {
      clearTimeout(timer);
      stop();
      reject(new Error(`the WebSocket proxy did not start: ${error.message}${errors ? `\n${errors}` : ""}`));
    };
    child.stderr?.on("data", (chunk) => errors += chunk);
    child.once("error", fail);
    child.once("exit", (code) => fail(new Error(`it exited with code ${code}`)));
    child.stdout?.on("data", (chunk) => {
      output += chunk;
      const line = /^(\d+)\n/.exec(output);
      if (line === null) return;
      clearTimeout(timer);
      child.removeAllListeners("exit");
      const port = Number(line[1]);
      // The proxy must not keep the test process alive: its streams and the process itself are unreferenced.
      for (const handle of [child, child.stdin, child.stdout, child.stderr]) unref(handle);
      resolve({
        port,
        address: `ws://127.0.0.1:${port}/v1`,
        stop: () => {
          if (stopped || child.exitCode !== null) return Promise.resolve();
          const exited = new Promise<void>((done) => child.once("exit", () => done()));
          stop();
          return exited;
        },
      });
    });
  });
}
