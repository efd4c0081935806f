/**
 * Where migrations come from: a directory of `.sql` files and modules, or a
 * list in memory. Loading a directory reaches the file system lazily, so
 * this module (and a list of migrations) loads where `node:*` modules are
 * absent, such as Cloudflare Workers.
 *
 * @module
 */
import type * as Fs from "node:fs/promises";
import type * as Path from "node:path";
import type * as Url from "node:url";
import { ConfigError } from "../errors.ts";
import type { Queryable } from "../queryable.ts";
import { builtinModule } from "../runtime.ts";
import { MigrationError } from "./errors.ts";

/**
 * One direction of a migration: SQL text, split into statements and run one
 * by one (see {@linkcode splitStatements}), or a function that runs the
 * migration through the handle it is given (a transaction on Postgres and
 * SQLite, the migrator's connection on MySQL).
 */
export type MigrationStep = string | ((db: Queryable) => Promise<void> | void);

/**
 * A migration given in memory.
 *
 * @example
 * ```ts
 * import type { Migration } from "@roost/db/migrate";
 * const migrations: Migration[] = [
 *   { revision: "0001", name: "create_users", up: "create table users (id integer primary key)", down: "drop table users" },
 * ];
 * ```
 */
export interface Migration {
  /** Orders the migrations and names them in the history: letters, digits, `.` and `-`. */
  readonly revision: string;
  /** A description (for a file, the part of its name after the revision). */
  readonly name: string;
  /** Applies the migration. */
  readonly up: MigrationStep;
  /** Reverts it; without one, the migration cannot be downgraded. */
  readonly down?: MigrationStep;
}

/** A migration as the migrator holds it: with its checksum and, from a directory, its file. */
export interface LoadedMigration extends Migration {
  /** SHA-256 (hex) of the file's text (CRLF read as LF), or of an in-memory migration's steps. */
  readonly checksum: string;
  /** The file it was read from, for a directory source. */
  readonly file?: string;
}

const revisionPattern = /^[A-Za-z0-9.-]+$/;
const digits = /^[0-9]+$/;
const moduleExtensions = [".ts", ".mts", ".js", ".mjs"];

/**
 * Orders two revisions: numerically when both are all digits (`"9"` before
 * `"10"`), by code units otherwise.
 */
export function compareRevisions(a: string, b: string): number {
  if (digits.test(a) && digits.test(b)) {
    const x = BigInt(a);
    const y = BigInt(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

/** SHA-256 of a text, as 64 hex digits (Web Crypto: every runtime and Workers have it). */
export async function checksum(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (byte) => byte.toString(16).padStart(2, "0")).join("");
}

const upMarker = /^[ \t]*--[ \t]*migrate:up[ \t]*$/i;
const downMarker = /^[ \t]*--[ \t]*migrate:down[ \t]*$/i;

/**
 * Reads a `.sql` migration: the lines after a `-- migrate:up` line are its
 * up step, those after a `-- migrate:down` line its down step (optional).
 * Anything before `-- migrate:up` is a comment. `file` names the file in
 * errors.
 *
 * @example
 * ```ts
 * import { parseSqlMigration } from "@roost/db/migrate";
 * parseSqlMigration("-- migrate:up\ncreate table t (n integer);\n-- migrate:down\ndrop table t;\n", "0001_t.sql");
 * // { up: "create table t (n integer);\n", down: "drop table t;\n" }
 * ```
 */
export function parseSqlMigration(text: string, file: string): { up: string; down?: string } {
  const lines = text.split(/\r?\n/);
  let up = -1;
  let down = -1;
  for (let i = 0; i < lines.length; i++) {
    const marker = upMarker.test(lines[i]) ? "up" : downMarker.test(lines[i]) ? "down" : undefined;
    if (marker === undefined) continue;
    if ((marker === "up" ? up : down) >= 0) {
      throw invalid(`${file} has more than one "-- migrate:${marker}" line`, file);
    }
    if (marker === "up") up = i;
    else down = i;
  }
  if (up < 0) throw invalid(`${file} has no "-- migrate:up" line: write the migration's SQL after one`, file);
  if (down >= 0 && down < up) {
    throw invalid(`${file} has its "-- migrate:down" line before "-- migrate:up"`, file);
  }
  const section = (from: number, to: number) => lines.slice(from + 1, to).join("\n");
  return down < 0 ? { up: section(up, lines.length) } : { up: section(up, down), down: section(down, lines.length) };
}

function invalid(message: string, file?: string, revision?: string): MigrationError {
  return new MigrationError(message, { code: "ROOST_MIGRATION_INVALID", file, revision });
}

function checkStep(step: unknown, what: string, revision: string, file?: string): void {
  if (typeof step !== "string" && typeof step !== "function") {
    throw invalid(`migration ${revision}: ${what} must be SQL text or a function`, file, revision);
  }
}

/** Sorts migrations by revision; a revision used twice is a `ROOST_MIGRATION_DUPLICATE` error. */
function ordered(migrations: LoadedMigration[]): LoadedMigration[] {
  migrations.sort((a, b) => compareRevisions(a.revision, b.revision));
  for (let i = 1; i < migrations.length; i++) {
    const [a, b] = [migrations[i - 1], migrations[i]];
    if (compareRevisions(a.revision, b.revision) === 0) {
      const where = a.file !== undefined && b.file !== undefined ? ` (${a.file} and ${b.file})` : "";
      throw new MigrationError(`two migrations have revision ${b.revision}${where}`, {
        code: "ROOST_MIGRATION_DUPLICATE",
        revision: b.revision,
      });
    }
  }
  return migrations;
}

function stepText(step: MigrationStep): string {
  return typeof step === "string" ? step : String(step);
}

/**
 * Checks and orders migrations given in memory. Each one's checksum is that
 * of its up step's text, followed by a newline and its down step's text
 * when it has one; a function's text is its source as the runtime shows it
 * (`String(fn)`), which differs between runtimes that compile TypeScript
 * differently: check a list's migrations from the runtime that applies them.
 */
export async function loadList(list: readonly Migration[]): Promise<LoadedMigration[]> {
  if (!Array.isArray(list)) throw invalid("migrations must be an array");
  const loaded: LoadedMigration[] = [];
  for (const migration of list) {
    const { revision, name, up, down } = (migration ?? {}) as Partial<Migration>;
    if (typeof revision !== "string" || !revisionPattern.test(revision)) {
      throw invalid(`a migration's revision must be letters, digits, "." and "-"; got ${JSON.stringify(revision)}`);
    }
    if (typeof name !== "string" || name === "") {
      throw invalid(`migration ${revision} needs a name`, undefined, revision);
    }
    checkStep(up, "up", revision);
    if (down !== undefined) checkStep(down, "down", revision);
    const text = stepText(up!) + (down === undefined ? "" : `\n${stepText(down)}`);
    loaded.push({ revision, name, up: up!, down, checksum: await checksum(text) });
  }
  return ordered(loaded);
}

/**
 * A Node built-in (Deno and Bun provide them too) through the runtime, not an
 * import a bundler would follow: only a directory source needs one, and a
 * Worker bundle of the migrator must not carry it.
 */
function builtin<T>(name: string): T {
  const module = builtinModule<T>(`node:${name}`);
  if (module === undefined) {
    throw new ConfigError("this runtime has no file system: pass the migrations option (a list) instead of directory");
  }
  return module;
}

/**
 * The revision, name and extension in a migration file's name
 * (`<revision>_<name>.sql`, `.ts`, `.mts`, `.js` or `.mjs`), or `undefined`
 * when the name does not have that shape.
 *
 * @example
 * ```ts
 * import { parseMigrationFileName } from "@roost/db/migrate";
 * parseMigrationFileName("0003_add_email.sql"); // { revision: "0003", name: "add_email", extension: ".sql" }
 * ```
 */
export function parseMigrationFileName(
  fileName: string,
): { revision: string; name: string; extension: string } | undefined {
  if (fileName.endsWith(".d.ts")) return undefined;
  const extension = [".sql", ...moduleExtensions].find((candidate) => fileName.endsWith(candidate));
  if (extension === undefined) return undefined;
  const base = fileName.slice(0, -extension.length);
  const underscore = base.indexOf("_");
  if (underscore <= 0 || underscore === base.length - 1) return undefined;
  const revision = base.slice(0, underscore);
  return revisionPattern.test(revision) ? { revision, name: base.slice(underscore + 1), extension } : undefined;
}

/**
 * Loads the migrations of a directory: `<revision>_<name>.sql` files (see
 * {@linkcode parseSqlMigration}) and `<revision>_<name>.ts` / `.mts` /
 * `.js` / `.mjs` modules exporting an `up(db)` function (or SQL text) and
 * optionally `down(db)`. A `.sql` file whose name lacks a revision is an
 * error; other files (a README, a `.d.ts`, a module whose name lacks a
 * revision, such as a helper) are ignored. A relative path is resolved
 * against the working directory. Each checksum is that of the file's text
 * with CRLF line ends read as LF.
 */
export async function loadDirectory(directory: string | URL): Promise<LoadedMigration[]> {
  const { readdir, readFile } = builtin<typeof Fs>("fs/promises");
  const { join, resolve } = builtin<typeof Path>("path");
  const { fileURLToPath, pathToFileURL } = builtin<typeof Url>("url");
  const dir = typeof directory === "string" ? resolve(directory) : fileURLToPath(directory);
  let entries: { name: string; isFile(): boolean }[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const why = code === "ENOENT"
      ? "does not exist"
      : code === "ENOTDIR"
      ? "is not a directory"
      : `cannot be read (${(error as Error).message})`;
    throw new MigrationError(`the migrations directory ${dir} ${why}`, {
      code: "ROOST_MIGRATION_INVALID",
      cause: error,
      file: dir,
    });
  }
  const loaded: LoadedMigration[] = [];
  for (const entry of entries) {
    if (!entry.isFile() || entry.name.startsWith(".")) continue;
    const file = join(dir, entry.name);
    const parsed = parseMigrationFileName(entry.name);
    if (parsed === undefined) {
      if (!entry.name.endsWith(".sql")) continue;
      throw invalid(
        `${file} is not named <revision>_<name>.sql (a revision is letters, digits, "." and "-")`,
        file,
      );
    }
    const parts = { revision: parsed.revision, name: parsed.name };
    const text = await readFile(file, "utf8");
    // A checkout that turns LF into CRLF (git's autocrlf) is not an edit.
    const sum = await checksum(text.replaceAll("\r\n", "\n"));
    if (parsed.extension === ".sql") {
      loaded.push({ ...parts, ...parseSqlMigration(text, file), checksum: sum, file });
      continue;
    }
    let exports: { up?: unknown; down?: unknown };
    try {
      exports = await import(pathToFileURL(file).href);
    } catch (error) {
      throw new MigrationError(`${file} could not be imported: ${(error as Error)?.message ?? error}`, {
        code: "ROOST_MIGRATION_INVALID",
        cause: error,
        file,
        revision: parts.revision,
      });
    }
    if (exports.up === undefined) throw invalid(`${file} exports no up function`, file, parts.revision);
    checkStep(exports.up, "up", parts.revision, file);
    if (exports.down !== undefined) checkStep(exports.down, "down", parts.revision, file);
    loaded.push({
      ...parts,
      up: exports.up as MigrationStep,
      down: exports.down as MigrationStep | undefined,
      checksum: sum,
      file,
    });
  }
  return ordered(loaded);
}
