/**
 * A JSR registry for the Deno drivers' packages (`jsr:@db/postgres`,
 * `jsr:@db/sqlite` and their dependencies) during a test run: the local
 * mirror in `../shared/jsr` (or `ROOST_JSR_MIRROR`), served on a free
 * loopback port until the run ends. Deno reads `JSR_URL`; @db/sqlite loads
 * the system's libsqlite3 through `DENO_SQLITE_PATH` instead of downloading
 * one. tests/run.ts sets both for the Deno runner only.
 *
 * @module
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";

/** A running registry: the environment that points Deno at it, and how to stop it. */
export interface JsrRegistry {
  env: Record<string, string>;
  /** Where it serves from, for the log. */
  mirror: string;
  stop(): void;
}

/** The mirror's directory, when there is one. */
export function jsrMirror(root: string, env: Record<string, string | undefined>): string | undefined {
  const mirror = env.ROOST_JSR_MIRROR ?? join(root, "..", "shared", "jsr");
  return existsSync(join(mirror, "serve")) ? mirror : undefined;
}

/** The system's libsqlite3 (Debian's multiarch path), for @db/sqlite. */
export function systemSqlite(): string | undefined {
  for (const base of ["/usr/lib", "/usr/lib64", "/lib"]) {
    if (!existsSync(base)) continue;
    for (const entry of readdirSync(base, { withFileTypes: true })) {
      const candidate = entry.isDirectory() ? join(base, entry.name, "libsqlite3.so.0") : join(base, entry.name);
      if (candidate.endsWith("libsqlite3.so.0") && existsSync(candidate)) return candidate;
    }
  }
  return undefined;
}

/**
 * Starts the mirror's server (`serve --timeout`, which also stops when this
 * process exits) and resolves once it prints its `JSR_URL`; undefined when
 * there is no mirror. `registryDir` serves another registry directory (a copy
 * `publish-local` added a package to) with the mirror's server.
 */
export async function startJsrRegistry(
  root: string,
  env: Record<string, string | undefined>,
  registryDir?: string,
): Promise<JsrRegistry | undefined> {
  const mirror = jsrMirror(root, env);
  if (mirror === undefined) return undefined;
  const args = ["--timeout", "7200", ...(registryDir === undefined ? [] : ["--root", registryDir])];
  const server = spawn(join(mirror, "serve"), args, { stdio: ["ignore", "pipe", "inherit"] });
  const lines = createInterface({ input: server.stdout });
  const url = await new Promise<string>((resolve, reject) => {
    server.on("error", reject);
    server.on("exit", (code) => reject(new Error(`the JSR mirror's server exited (${code}) before it listened`)));
    lines.on("line", (line) => {
      if (line.startsWith("JSR_URL=")) resolve(line.slice("JSR_URL=".length));
    });
  });
  server.removeAllListeners("exit");
  const registryEnv: Record<string, string> = { JSR_URL: url };
  const sqlite = env.DENO_SQLITE_PATH ?? systemSqlite();
  if (sqlite !== undefined) registryEnv.DENO_SQLITE_PATH = sqlite;
  return { env: registryEnv, mirror, stop: () => server.kill("SIGTERM") };
}
