/**
 * The `roost` command line tool: creates, applies, reverts and reports
 * migrations (see `@roost/db/migrate`).
 *
 * ```sh
 * roost <command> [args] [--url URL] [--dir DIR] [--table NAME]
 * ```
 *
 * In a project that has `@roost/db` installed, run it as `npx roost` or
 * `bunx roost`; without a local install, as `npx @roost/db`,
 * `bunx @roost/db`, `deno run -A npm:@roost/db` or
 * `deno run -A jsr:@roost/db/cli`. The URL comes from `--url` or the
 * `DATABASE_URL` environment variable; the migrations directory is
 * `migrations` in the working directory unless `--dir` says otherwise.
 * Progress goes to standard output; errors go to standard error as one line
 * (message and code, no stack). Exit codes: 0 done, 1 the command failed or
 * `status` found a problem, 2 a usage error (a bad command line, no database
 * URL, no migrations directory). A URL's password is never printed.
 *
 * @module
 */
import { mkdir, readdir, stat, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { Database } from "./database.ts";
// The CLI names no driver: the registry picks the runtime's default.
import "./drivers/mod.ts";
import { RoostError } from "./errors.ts";
import type { HistoryEntry } from "./migrate/history.ts";
import { Migrator, problemsOf } from "./migrate/migrator.ts";
import type { MigrationEvent } from "./migrate/options.ts";
import { isEmptyStep } from "./migrate/steps.ts";
import { compareRevisions, type LoadedMigration, parseMigrationFileName } from "./migrate/source.ts";
import { packageVersion } from "./package_version.ts";

/** Where {@linkcode main} reads and writes; every field defaults to the process's own. */
export interface CliIo {
  /** Writes one line of output (default: standard output). */
  out(line: string): void;
  /** Writes one line of error output (default: standard error). */
  err(line: string): void;
  /** The environment, for `DATABASE_URL` (default: the process's). */
  env: Readonly<Record<string, string | undefined>>;
  /** The directory relative paths start from (default: the working directory). */
  cwd: string;
}

const usage = `Usage: roost <command> [args] [options]

Commands:
  status                 show the current and head revisions, pending migrations and problems
  upgrade [target]       apply pending migrations up to target (default: head)
  downgrade [target]     revert migrations back to target, a revision or "base" (default: the newest one only)
  history                list the applied migrations
  stamp [target]         record the migrations up to target (default: head; "base" for none) as applied without
                         running them, and forget the others: for a database made another way, or an edited migration
  new <name>             create <dir>/<revision>_<name>.sql to fill in (name: lowercase letters, digits and _);
                         upgrade refuses it while its up section is empty
  version                print roost's version (also --version, -v)
  help                   show this help (also --help, -h)

Options:
  --url URL              the database URL (default: the DATABASE_URL environment variable)
  --dir DIR              the migrations directory (default: migrations)
  --table NAME           the history table (default: roost_migrations)

Exit codes:
  0                      done; for status, no problem found (pending migrations are not a problem)
  1                      the command failed, or status found a problem: an applied migration edited or missing
                         from the directory, a pending one older than the newest applied one or empty
  2                      usage error: a bad command line, no database URL, no migrations directory

Without installing @roost/db in the project:
  npx @roost/db <command>                 Node.js >= 22.18
  bunx @roost/db <command>                Bun (add --bun to run on Bun when the system Node.js is older)
  deno run -A npm:@roost/db <command>     Deno
In a project that has it installed: npx roost <command>, bunx roost <command>.`;

/** A mistake in the command line: reported with the usage hint and exit code 2. */
class UsageError extends Error {}

/** Something the command needs is not set up (the migrations directory): reported as it is, with exit code 2. */
class SetupError extends Error {}

interface Parsed {
  command: string | undefined;
  positionals: string[];
  url: string | undefined;
  dir: string;
  table: string | undefined;
  help: boolean;
  version: boolean;
}

const optionNames = new Set(["url", "dir", "table"]);

function parse(args: readonly string[]): Parsed {
  const parsed: Parsed = {
    command: undefined,
    positionals: [],
    url: undefined,
    dir: "migrations",
    table: undefined,
    help: false,
    version: false,
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--help" || arg === "-h") {
      parsed.help = true;
    } else if (arg === "--version" || arg === "-v") {
      parsed.version = true;
    } else if (arg.startsWith("--")) {
      const equals = arg.indexOf("=");
      const name = arg.slice(2, equals < 0 ? undefined : equals);
      if (!optionNames.has(name)) throw new UsageError(`unknown option --${name}`);
      const value = equals < 0 ? args[++i] : arg.slice(equals + 1);
      if (value === undefined || value === "") throw new UsageError(`--${name} needs a value`);
      if (name === "url") parsed.url = value;
      else if (name === "dir") parsed.dir = value;
      else parsed.table = value;
    } else if (parsed.command === undefined) {
      parsed.command = arg;
    } else {
      parsed.positionals.push(arg);
    }
  }
  return parsed;
}

const expectedArgs: Record<string, number> = {
  status: 0,
  history: 0,
  upgrade: 1,
  downgrade: 1,
  stamp: 1,
  new: 1,
  help: 0,
  version: 0,
};

/** The text of one error for standard error: its message and code, never a stack. */
function errorLine(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return `error: ${error.message}${typeof code === "string" && error instanceof RoostError ? ` (${code})` : ""}`;
  }
  return `error: ${String(error)}`;
}

/** The label of a migration in output: `<revision>_<name>`. */
const label = (migration: { revision: string; name: string }) => `${migration.revision}_${migration.name}`;

/** The revision of a new migration: the next sequence number, or a UTC timestamp. */
function nextRevision(existing: readonly string[], now: Date): string {
  if (existing.every((revision) => /^[0-9]+$/.test(revision) && revision.length < 14)) {
    const width = Math.max(4, ...existing.map((revision) => revision.length));
    const next = existing.reduce((max, revision) => BigInt(revision) > max ? BigInt(revision) : max, 0n) + 1n;
    return next.toString().padStart(width, "0");
  }
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${now.getUTCFullYear()}${pad(now.getUTCMonth() + 1)}${pad(now.getUTCDate())}` +
    `${pad(now.getUTCHours())}${pad(now.getUTCMinutes())}${pad(now.getUTCSeconds())}`;
}

async function createMigration(dir: string, shownDir: string, name: string, io: CliIo): Promise<number> {
  if (!/^[a-z0-9_]+$/.test(name)) {
    io.err(`error: a migration name is lowercase letters, digits and _ (got ${JSON.stringify(name)})`);
    return 2;
  }
  await mkdir(dir, { recursive: true });
  const files = await readdir(dir);
  const revisions = files.flatMap((file) => parseMigrationFileName(file)?.revision ?? []);
  const revision = nextRevision(revisions, new Date());
  if (revisions.includes(revision)) {
    throw new RoostError(`a migration with revision ${revision} already exists in ${shownDir}: try again in a second`);
  }
  const file = `${revision}_${name}.sql`;
  await writeFile(join(dir, file), template(revision, name), { flag: "wx" });
  io.out(join(shownDir, file));
  return 0;
}

/**
 * A new migration file: the markers, with nothing to run. `upgrade` refuses
 * it until its up section holds SQL; without SQL after `-- migrate:down` it
 * cannot be reverted.
 */
function template(revision: string, name: string): string {
  return `-- ${revision} ${name}
-- Write the SQL that applies this migration after "-- migrate:up" (upgrade refuses the file while that part is
-- empty), and the SQL that reverts it after "-- migrate:down" (left empty, downgrade refuses to revert it).
-- migrate:up


-- migrate:down

`;
}

/**
 * The migrations directory for a command that reads it: a usage error (exit
 * code 2) naming it, and how to create it, when it is missing.
 */
async function checkDirectory(dir: string, shownDir: string): Promise<void> {
  const where = shownDir === dir ? dir : `${shownDir} (${dir})`;
  let isDirectory = false;
  try {
    isDirectory = (await stat(dir)).isDirectory();
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code === "ENOENT") {
      throw new SetupError(
        `no migrations directory ${where}: "roost new <name>" creates it with a first migration, ` +
          `or pass --dir DIR for another directory`,
      );
    }
    if (code !== "ENOTDIR") throw error;
  }
  if (!isDirectory) throw new SetupError(`the migrations directory ${where} is not a directory: pass --dir DIR`);
}

/**
 * What `status` reports as a problem, one line each: what makes `upgrade`
 * refuse to run (an applied migration edited since, a pending one older than
 * the newest applied one or empty) and an applied migration missing from the
 * directory (which `downgrade` cannot revert).
 */
function problems(
  source: readonly LoadedMigration[],
  applied: readonly HistoryEntry[],
  dialect: Database["dialect"],
): string[] {
  const lines = problemsOf(source, applied).map((problem) =>
    problem.kind === "edited"
      ? `${label(problem)} was edited after it was applied`
      : `${label(problem)} is applied but not in the migrations directory`
  );
  const done = new Set(applied.map((entry) => entry.revision));
  const newest = applied.at(-1)?.revision;
  for (const migration of source) {
    if (done.has(migration.revision)) continue;
    if (newest !== undefined && compareRevisions(migration.revision, newest) < 0) {
      lines.push(
        `${label(migration)} is pending but older than the newest applied migration (${newest}): ` +
          `give it a revision after ${newest}`,
      );
    }
    if (isEmptyStep(migration.up, dialect)) {
      const where = migration.file === undefined ? "" : ` in ${migration.file}`;
      lines.push(`${label(migration)} is empty: write its SQL after "-- migrate:up"${where}, or delete it`);
    }
  }
  return lines;
}

/** Rows as columns, each padded to its widest cell (the last one is not padded). */
function table(rows: readonly (readonly string[])[]): string[] {
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  return rows.map((row) =>
    row.map((cell, column) => column === row.length - 1 ? cell : cell.padEnd(widths[column])).join("  ")
  );
}

function progress(io: CliIo): (event: MigrationEvent) => void {
  return (event) => {
    const name = label(event);
    const verb = event.action === "upgrade" ? "upgrad" : "downgrad";
    io.out(event.phase === "start" ? `${verb}ing ${name}` : `${verb}ed ${name} (${event.ms} ms)`);
  };
}

async function run(parsed: Parsed, io: CliIo): Promise<number> {
  const command = parsed.command!;
  const dir = resolve(io.cwd, parsed.dir);
  if (command === "new") return await createMigration(dir, parsed.dir, parsed.positionals[0] ?? "", io);
  const url = parsed.url ?? io.env.DATABASE_URL;
  if (url === undefined || url === "") {
    io.err("error: no database URL: set the DATABASE_URL environment variable or pass --url");
    return 2;
  }
  const db = new Database(url);
  try {
    // A bad URL is reported first (the line above); history reads only the database.
    if (command !== "history") await checkDirectory(dir, parsed.dir);
    const migrator = new Migrator(db, {
      directory: dir,
      ...(parsed.table === undefined ? {} : { table: parsed.table }),
      onProgress: progress(io),
    });
    const target = parsed.positionals[0];
    switch (command) {
      case "status": {
        const source = await migrator.migrations();
        const applied = await migrator.history();
        const current = applied.at(-1);
        const head = source.at(-1);
        const done = new Set(applied.map((entry) => entry.revision));
        const pending = source.filter((migration) => !done.has(migration.revision));
        io.out(`database: ${db.url}`);
        io.out(`current: ${current === undefined ? "none" : label(current)}`);
        io.out(`head: ${head === undefined ? "none" : label(head)}`);
        io.out(`status: ${await migrator.status()}`);
        io.out(`pending: ${pending.length === 0 ? "none" : pending.map(label).join(", ")}`);
        const found = problems(source, applied, db.dialect);
        for (const problem of found) io.out(`problem: ${problem}`);
        return found.length === 0 ? 0 : 1;
      }
      case "upgrade": {
        const applied = await migrator.upgrade(target ?? "head");
        const current = await migrator.currentRevision();
        io.out(
          applied.length === 0
            ? `already up to date (current: ${current ?? "none"})`
            : `applied ${applied.length} migration${applied.length === 1 ? "" : "s"} (current: ${current})`,
        );
        return 0;
      }
      case "downgrade": {
        let to = target;
        if (to === undefined) {
          const applied = await migrator.history();
          if (applied.length === 0) {
            io.out("nothing to downgrade: no migration is applied");
            return 0;
          }
          to = applied.at(-2)?.revision ?? "base";
        }
        const reverted = await migrator.downgrade(to);
        const current = await migrator.currentRevision();
        io.out(
          `reverted ${reverted.length} migration${reverted.length === 1 ? "" : "s"} (current: ${current ?? "none"})`,
        );
        return 0;
      }
      case "stamp": {
        const { stamped, restamped, unstamped } = await migrator.stamp(target ?? "head");
        const current = await migrator.currentRevision();
        const changes = [
          ...(stamped.length === 0 ? [] : [`recorded ${stamped.join(", ")}`]),
          ...(restamped.length === 0 ? [] : [`re-recorded ${restamped.join(", ")} with their current checksums`]),
          ...(unstamped.length === 0 ? [] : [`forgot ${unstamped.join(", ")}`]),
        ];
        io.out(
          `${changes.length === 0 ? "the history already matched" : changes.join("; ")} (current: ${
            current ?? "none"
          }); no migration ran`,
        );
        return 0;
      }
      case "history": {
        const applied = await migrator.history();
        if (applied.length === 0) {
          io.out("no migration is applied");
          return 0;
        }
        const rows = applied.map((entry) => [label(entry), entry.appliedAt.toISOString(), entry.checksum.slice(0, 12)]);
        for (const line of table([["migration", "applied at (UTC)", "checksum"], ...rows])) io.out(line);
        return 0;
      }
    }
    throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  } finally {
    await db.close();
  }
}

/** Prints the version of the `@roost/db` this module belongs to, as `package.json` (or JSR's URL) says. */
async function printVersion(io: CliIo): Promise<number> {
  const version = await packageVersion(import.meta.url);
  if (version === undefined) throw new RoostError(`no package.json of @roost/db above ${import.meta.url}`);
  io.out(version);
  return 0;
}

/**
 * Runs the `roost` command line with `args` (without the program name) and
 * resolves to its exit code: 0 on success, 1 when the command failed or
 * `status` found a problem, 2 for a usage error (including no database URL
 * and no migrations directory). It never throws and never calls
 * `process.exit`.
 *
 * @example
 * ```ts
 * import { main } from "@roost/db/cli";
 * const lines: string[] = [];
 * const code = await main(["status", "--url", "sqlite:app.db"], { out: (line) => lines.push(line) });
 * ```
 */
export async function main(args: string[], io: Partial<CliIo> = {}): Promise<number> {
  const full: CliIo = {
    out: io.out ?? ((line) => console.log(line)),
    err: io.err ?? ((line) => console.error(line)),
    env: io.env ?? process.env,
    cwd: io.cwd ?? process.cwd(),
  };
  try {
    const parsed = parse(args);
    if (parsed.version) return await printVersion(full);
    if (parsed.help || parsed.command === undefined || parsed.command === "help") {
      (parsed.command === undefined && !parsed.help ? full.err : full.out)(usage);
      return parsed.command === undefined && !parsed.help ? 2 : 0;
    }
    const most = expectedArgs[parsed.command];
    if (most === undefined) throw new UsageError(`unknown command ${JSON.stringify(parsed.command)}`);
    if (parsed.positionals.length > most) throw new UsageError(`too many arguments for ${parsed.command}`);
    if (parsed.command === "new" && parsed.positionals.length === 0) throw new UsageError("new needs a name");
    if (parsed.command === "version") return await printVersion(full);
    return await run(parsed, full);
  } catch (error) {
    if (error instanceof UsageError) {
      full.err(`error: ${error.message} (run "roost help" for usage)`);
      return 2;
    }
    if (error instanceof SetupError) {
      full.err(`error: ${error.message}`);
      return 2;
    }
    full.err(errorLine(error));
    return 1;
  }
}

const meta = import.meta as ImportMeta & { main?: boolean };
const isMain = meta.main ??
  (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url));
if (isMain) process.exitCode = await main(process.argv.slice(2));
