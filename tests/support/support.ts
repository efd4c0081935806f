/**
 * Shared test helpers that touch no database: the runtime, unique names so
 * runtimes can share a server, temporary SQLite paths, child scripts, the one
 * skip mechanism (`skipUnless`), waiting helpers and the password-leak check.
 * Unit tests (tests/unit/) import only this module; the databases the
 * behavioural suite runs against, and how a test is restricted to some of
 * them, are in ./targets.ts.
 *
 * Layout of tests/: unit/ (no database: `node --test tests/unit/`),
 * behaviour/ (per target, against real databases), support/ (this module,
 * targets.ts, private servers, fixtures, the workerd harness), install/ (the
 * packed package, tests/run.ts's `install` runner), deno/ (Deno-only tests
 * of the JSR drivers, added to the Deno runner by tests/run.ts).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import type { TestOptions } from "node:test";
import { fileURLToPath } from "node:url";
import { inspect } from "node:util";
import { type DialectName, sql } from "../../mod.ts";

/** The runtime running the tests. */
export const runtime: string = "Bun" in globalThis ? "bun" : "Deno" in globalThis ? "deno" : "node";

let counter = 0;

const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env ?? {};

/** True in CI, where an unreachable server is a failure, never a skip. */
export const inCi: boolean = env.CI === "true" || env.CI === "1";

/** The servers' URLs: from `ROOST_TEST_POSTGRES_URL` and `ROOST_TEST_MYSQL_URL`, or the local defaults. */
export const serverUrls: { readonly postgres: string; readonly mysql: string } = {
  postgres: env.ROOST_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test",
  mysql: env.ROOST_TEST_MYSQL_URL ?? "mysql://root@127.0.0.1:3306/test",
};

/** A name no other test, runtime or run uses at the same time. */
export function uniqueName(prefix = "t"): string {
  counter++;
  return `${prefix}_${runtime}_${Date.now().toString(36)}_${counter}_${Math.random().toString(36).slice(2, 6)}`;
}

/** A unique quoted table identifier. */
export function uniqueTable(prefix = "t"): ReturnType<typeof sql.ident> {
  return sql.ident(uniqueName(prefix));
}

const scratch = mkdtempSync(join(tmpdir(), "roost-test-"));
let removeScheduled = false;

/** A path for a SQLite file in a temporary directory removed when the process exits. */
export function tempDatabasePath(name = uniqueName("db")): string {
  if (!removeScheduled) {
    removeScheduled = true;
    globalThis.addEventListener?.("unload", () => rmSync(scratch, { recursive: true, force: true }));
    (globalThis as { process?: { on?(event: string, fn: () => void): void } }).process?.on?.(
      "exit",
      () => rmSync(scratch, { recursive: true, force: true }),
    );
  }
  return join(scratch, `${name}.db`);
}

/**
 * The major version of the postgres.js (npm `postgres`) this runtime loads:
 * 3, or 4 where `postgres` is mapped to the `postgres-v4` devDependency
 * (tests/run.ts's `node-pg4` runner); 0 where it is not installed. Read from
 * the package.json of the package `postgres` resolves to.
 */
export const postgresJsMajor: number = (() => {
  try {
    const manifest = new URL("../package.json", import.meta.resolve("postgres"));
    return Number(JSON.parse(readFileSync(manifest, "utf8")).version.split(".")[0]);
  } catch {
    return 0;
  }
})();

/** A finished script: its exit code and output. */
export interface ScriptRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

const repository = fileURLToPath(new URL("../..", import.meta.url));

/**
 * Runs a script of the repository (`examples/…`) to its end under this
 * runtime, from the repository's root, with `args` after it and `env` over
 * this process's environment (an undefined value removes a variable).
 */
export function runScript(
  script: string,
  args: readonly string[] = [],
  env: Record<string, string | undefined> = {},
): Promise<ScriptRun> {
  const merged: Record<string, string> = {};
  for (const [key, value] of Object.entries({ ...process.env, ...env })) if (value !== undefined) merged[key] = value;
  const child = spawn(process.execPath, runtime === "deno" ? ["run", "-A", script, ...args] : [script, ...args], {
    cwd: repository,
    env: merged,
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk) => stdout += chunk);
  child.stderr.on("data", (chunk) => stderr += chunk);
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
}

/**
 * The suite's one way to leave a test out where it does not apply: node:test
 * options (`options` kept) that skip it with `reason` unless `applies`.
 * node --test, bun test and deno test all report such a test as skipped
 * (Deno: an ignored step), so a test that does not apply never counts as a
 * pass. Skip tests, not describes: a skipped describe vanishes from Node's
 * and Bun's counts. Where a whole group cannot apply, do not define it.
 */
export function skipUnless(applies: boolean, reason: string, options: TestOptions = {}): TestOptions {
  return applies ? options : { ...options, skip: reason };
}

/**
 * Resolves as `promise` does, or fails naming `what` when it has not settled
 * within `ms`: a generous limit for "this happens instead of hanging", never
 * a measurement of how fast.
 */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** Column types that differ between dialects. */
export function columnType(dialect: DialectName, kind: "autoId" | "bytes"): string {
  const types = {
    autoId: {
      sqlite: "integer primary key",
      postgres: "serial primary key",
      mysql: "integer auto_increment primary key",
    },
    bytes: { sqlite: "blob", postgres: "bytea", mysql: "longblob" },
  };
  return types[kind][dialect];
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A promise with its resolve function, for ordering concurrent tasks. */
export function signal(): { promise: Promise<void>; resolve(): void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => resolve = r);
  return { promise, resolve };
}

/** Polls `probe` until `check` holds, failing with `what` and the last value seen after `ms`. */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T> | T,
  check: (value: T) => boolean,
  ms = 5_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (check(value)) return value;
    if (Date.now() > deadline) throw new Error(`expected ${what} within ${ms} ms; last seen: ${JSON.stringify(value)}`);
    await sleep(20);
  }
}

/** Every rendering of a value a user or a log could see: String, JSON, inspections, and an error's cause chain. */
export function renderings(value: unknown): string[] {
  const out = [String(value), inspect(value, { depth: 10, showHidden: true })];
  try {
    out.push(JSON.stringify(value) ?? "");
  } catch {
    // not serialisable: nothing to search
  }
  for (let item: unknown = value, depth = 0; item instanceof Error && depth < 5; item = item.cause, depth++) {
    out.push(item.message, item.stack ?? "", String(item), inspect(item.cause, { depth: 10 }));
  }
  const host = globalThis as { Deno?: { inspect(v: unknown): string }; Bun?: { inspect(v: unknown): string } };
  if (host.Deno) out.push(host.Deno.inspect(value));
  if (host.Bun) out.push(host.Bun.inspect(value));
  return out;
}

/** A one-line description of a thrown value, for failure messages. */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return `${typeof error} ${inspect(error)}`;
  const code = (error as { code?: unknown }).code;
  return `${error.constructor.name}${code === undefined ? "" : ` [${String(code)}]`}: ${error.message}`;
}

/** Fails when any rendering of `value` contains any of `secrets`. */
export function assertHidden(value: unknown, secrets: readonly string[], context: string): void {
  if (secrets.length === 0) return;
  for (const text of renderings(value)) {
    for (const secret of secrets) {
      assert.ok(!text.includes(secret), `${context}: the password ${JSON.stringify(secret)} appears in: ${text}`);
    }
  }
}
