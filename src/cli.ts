/**
 * The `roost` command line tool: creates, applies, reverts and reports
 * migrations (see `@roost/db/migrate`).
 *
 * ```sh
 * roost <command> [args] [--url URL] [--dir DIR] [--table NAME]
 * ```
 *
 * Run it as `npx roost`, `bunx roost` or `deno run -A jsr:@roost/db/cli`.
 * The URL comes from `--url` or the `DATABASE_URL` environment variable;
 * the migrations directory is `migrations` in the working directory unless
 * `--dir` says otherwise. Progress goes to standard output; errors go to
 * standard error as one line (message and code, no stack) with exit code 1,
 * and usage errors exit with 2. A URL's password is never printed.
 *
 * @module
 */
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { Database } from "./database.ts";
import { RoostError } from "./errors.ts";
import { type MigrationEvent, Migrator } from "./migrate/migrator.ts";
import { parseMigrationFileName } from "./migrate/source.ts";

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
  status                 show the current and head revisions, the status and pending migrations
  upgrade [target]       apply pending migrations up to target (default: head)
  downgrade [target]     revert migrations back to target, a revision or "base" (default: the newest one only)
  history                list the applied migrations
  new <name>             create <dir>/<revision>_<name>.sql (name: lowercase letters, digits and _)
  help                   show this help

Options:
  --url URL              the database URL (default: the DATABASE_URL environment variable)
  --dir DIR              the migrations directory (default: migrations)
  --table NAME           the history table (default: roost_migrations)`;

/** A mistake in the command line: reported with the usage hint and exit code 2. */
class UsageError extends Error {}

interface Parsed {
  command: string | undefined;
  positionals: string[];
  url: string | undefined;
  dir: string;
  table: string | undefined;
  help: boolean;
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
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--help" || arg === "-h") {
      parsed.help = true;
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

const expectedArgs: Record<string, number> = { status: 0, history: 0, upgrade: 1, downgrade: 1, new: 1, help: 0 };

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
  await writeFile(
    join(dir, file),
    `-- ${revision} ${name}: the SQL after "-- migrate:up" applies this migration, the SQL after ` +
      `"-- migrate:down" reverts it.\n-- migrate:up\n\n\n-- migrate:down\n\n`,
    { flag: "wx" },
  );
  io.out(join(shownDir, file));
  return 0;
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
        for (const problem of await migrator.check()) {
          io.out(
            `problem: ${label(problem)} ${
              problem.kind === "edited"
                ? "was edited after it was applied"
                : "is applied but not in the migrations directory"
            }`,
          );
        }
        return 0;
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
      case "history": {
        const applied = await migrator.history();
        if (applied.length === 0) io.out("no migration is applied");
        for (const entry of applied) {
          io.out(`${label(entry)}  ${entry.appliedAt.toISOString()}  ${entry.checksum.slice(0, 12)}`);
        }
        return 0;
      }
    }
    throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  } finally {
    await db.close();
  }
}

/**
 * Runs the `roost` command line with `args` (without the program name) and
 * resolves to its exit code: 0 on success, 1 when the command failed, 2 for
 * a usage error. It never throws and never calls `process.exit`.
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
    if (parsed.help || parsed.command === undefined || parsed.command === "help") {
      (parsed.command === undefined && !parsed.help ? full.err : full.out)(usage);
      return parsed.command === undefined && !parsed.help ? 2 : 0;
    }
    const most = expectedArgs[parsed.command];
    if (most === undefined) throw new UsageError(`unknown command ${JSON.stringify(parsed.command)}`);
    if (parsed.positionals.length > most) throw new UsageError(`too many arguments for ${parsed.command}`);
    if (parsed.command === "new" && parsed.positionals.length === 0) throw new UsageError("new needs a name");
    return await run(parsed, full);
  } catch (error) {
    if (error instanceof UsageError) {
      full.err(`error: ${error.message} (run "roost help" for usage)`);
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
