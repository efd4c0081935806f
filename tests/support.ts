/**
 * Shared test helpers: the databases every behavioural test runs against,
 * unique names so runtimes can share a server, and cleanup.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Database, type DatabaseOptions, type DialectName, sql } from "../mod.ts";

/** The runtime running the tests. */
export const runtime: string = "Bun" in globalThis ? "bun" : "Deno" in globalThis ? "deno" : "node";

/** A database the behavioural suite runs against. */
export interface Target {
  /** Shown in test names. */
  label: string;
  dialect: DialectName;
  /** Opens a fresh instance on this target. */
  open(options?: DatabaseOptions): Database;
  /** The URL instances open. */
  url: string;
}

let counter = 0;

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

function target(label: string, dialect: DialectName, url: string): Target {
  return { label, dialect, url, open: (options) => new Database(url, options) };
}

const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env ?? {};

/** True in CI, where an unreachable server is a failure, never a skip. */
export const inCi: boolean = env.CI === "true" || env.CI === "1";

/** The servers the suite expects, from the environment or the local defaults. */
const servers: { label: string; dialect: DialectName; url: string }[] = [
  {
    label: "postgres (postgres-js)",
    dialect: "postgres",
    url: env.ROOST_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test",
  },
  {
    label: "mysql (mysql2)",
    dialect: "mysql",
    url: env.ROOST_TEST_MYSQL_URL ?? "mysql://root@127.0.0.1:3306/test",
  },
];

async function reachable(url: string, label: string): Promise<boolean> {
  const db = new Database(url, { pool: { acquireTimeout: 5_000 } });
  try {
    await db.connect();
    return true;
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    if (inCi) throw new Error(`${label} is unreachable in CI, where every server must run: ${why}`);
    console.warn(`SKIPPING ${label}: server unreachable (${why}); start it or set its ROOST_TEST_*_URL`);
    return false;
  } finally {
    await db.close();
  }
}

const reachableServers = (await Promise.all(
  servers.map(async (server) => (await reachable(server.url, server.label)) ? server : undefined),
)).filter((server) => server !== undefined);

/** Every database the suite runs against on this machine. */
export function targets(): Target[] {
  return [
    target("sqlite memory", "sqlite", "sqlite::memory:"),
    target("sqlite file", "sqlite", `sqlite://${tempDatabasePath()}`),
    ...reachableServers.map((server) => target(server.label, server.dialect, server.url)),
  ];
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
