/**
 * What the harness's own servers share (tests/support/standby.ts,
 * pgbouncer.ts, mariadb_replica.ts, tls_server.ts): a free port, waiting
 * for a server, the OS user a server runs as when the tests run as root,
 * and removing what a killed test process left behind. Not a test file.
 */
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
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
