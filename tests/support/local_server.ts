/**
 * What the harness's own servers share (tests/support/standby.ts,
 * pgbouncer.ts, mariadb_replica.ts, mariadb_tls.ts, tls_server.ts): finding and running their tools, a free port, waiting
 * for a server, the OS user a server runs as when the tests run as root,
 * and removing what a killed test process left behind. Not a test file.
 */
import { execFile, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const messageOf = (error: unknown) => error instanceof Error ? error.message : String(error);

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error("no port assigned"))));
    });
  });
}

/** Retries `check` every 100 ms until it returns true; throws with its last error after `ms`. */
export async function poll(what: string, ms: number, check: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + ms;
  let last = "";
  for (;;) {
    try {
      if (await check()) return;
    } catch (error) {
      last = messageOf(error);
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms / 1000} s waiting for ${what}${last && `: ${last}`}`);
    }
    await sleep(100);
  }
}

/** The uid and gid of an OS user (a server run as root switches to it); throws naming the user when it is missing. */
export function osUserIds(user: string): [number, number] {
  const id = (flag: string) => {
    const result = spawnSync("id", [flag, user], { encoding: "utf8" });
    const value = Number(result.stdout?.trim());
    if (result.status !== 0 || !Number.isInteger(value)) {
      throw new Error(`id ${flag} ${user}: ${result.stderr?.trim()}`);
    }
    return value;
  };
  return [id("-u"), id("-g")];
}

/** Whether a process with this pid exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === "EPERM";
  }
}

/** The last lines of a server log, for error messages. */
export function tail(path: string): string {
  try {
    return readFileSync(path, "utf8").trim().split("\n").slice(-15).join("\n");
  } catch {
    return "";
  }
}

/**
 * Removes the temporary directories named `<prefix><pid>-…` whose owning
 * process died without running its exit handler (killed by a signal, or
 * Deno ending on an uncaught error), through `remove`.
 */
export function removeOrphans(prefix: string, remove: (dir: string) => void): void {
  for (const name of readdirSync(tmpdir())) {
    const owner = new RegExp(`^${prefix}(\\d+)-`).exec(name)?.[1];
    if (owner && !alive(Number(owner))) remove(join(tmpdir(), name));
  }
}

/** The first of `names` found in `dirs` or on PATH (a server binary, its client, openssl). */
export function findTool(names: string[], dirs: string[]): string {
  const path = (process.env.PATH ?? "").split(":").filter((dir) => dir !== "");
  for (const dir of [...dirs, ...path]) {
    for (const name of names) if (existsSync(join(dir, name))) return join(dir, name);
  }
  throw new Error(`${names.join(" or ")} not found in ${[...dirs, "PATH"].join(", ")}`);
}

/** Runs a tool; resolves with its stdout, rejects with its stderr (or that it was killed at `timeout` ms). */
export function runTool(file: string, args: string[], timeout = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { cwd: "/", timeout, encoding: "utf8" }, (error, stdout, stderr) => {
      if (error) {
        const why = error.killed ? `killed after ${timeout / 1000} s` : stderr.trim() || error.message;
        reject(new Error(`${file} ${args[0] ?? ""}… failed: ${why}`));
      } else {
        resolve(stdout.trim());
      }
    });
  });
}
