/**
 * The PGlite driver (npm `@electric-sql/pglite`): Postgres compiled to
 * WebAssembly, running inside this process on Deno, Bun and Node, with no
 * server. It opens `pglite:` URLs: `pglite::memory:` (a database that lives
 * as long as its connection) and `pglite:path/to/dir` or
 * `pglite:///absolute/dir` (a data directory, created on first use).
 *
 * A PGlite database is one Postgres session in this process: Roost's pool
 * keeps exactly one connection for a `pglite:` URL, and statements, scopes
 * and transactions take turns on it. A statement runs synchronously in
 * WebAssembly, so nothing (a timer, `statementTimeout`, a forced close) can
 * interrupt it; see docs/drivers.md for the limits. With
 * `ROOST_PGLITE_TEMPLATE` naming a file, the first in-memory database of a
 * process loads a fresh cluster from it instead of running `initdb` (and
 * writes it there when there is none).
 *
 * @example An in-memory Postgres
 * ```ts
 * import { Database } from "@roost/db";
 * const db = new Database("pglite::memory:");
 * ```
 *
 * @example Passing the driver object (for bundlers that drop lazy imports)
 * ```ts
 * import { Database } from "@roost/db";
 * import { pglite } from "@roost/db/drivers/pglite";
 * const db = new Database("pglite:./data", { driver: pglite });
 * ```
 *
 * @module
 */
import { PGlite, type PGliteOptions, type Results } from "@electric-sql/pglite";
import type { Driver, DriverConnection, ExecuteResult, Row, Rows, StreamPlacement } from "../../driver.ts";
import { ConnectionError, messageOf } from "../../errors.ts";
import { tooManyParameters } from "../../query.ts";
import { builtinModule } from "../../runtime.ts";
import type { DatabaseUrl } from "../../url.ts";
import { executeBatched } from "../shared/batch.ts";
import { type ErrorRules, sanitizedCause, translateError } from "../shared/errors.ts";
import { setColumn } from "../shared/values.ts";
import { cursorStream } from "./cursor.ts";
import { camelCaseServerCause, fatalPostgresState } from "./errors.ts";
import {
  byteaText,
  type ElementParser,
  parameterOids,
  parseArray,
  postgresParam,
  serializeArray,
  serializeDateTime,
  serializeJson,
  textParsers,
} from "./values.ts";
import { permissionDenied } from "../shared/permissions.ts";

/** A column's text to its value. */
type Parser = (text: string) => unknown;
/** A parameter's value to its text. */
type Serializer = (value: unknown) => string;

const oid = { bool: 16, json: 114, jsonb: 3802 };

/** How Roost reads the types whose reading differs from PGlite's (or that PGlite reads by the process's time zone). */
const baseParsers: Record<number, Parser> = textParsers;

/** An array element's text, whatever the array's type (a Date as its instant, bytes as bytea hex, an object as JSON). */
function elementText(value: unknown): string {
  if (value instanceof Date) return serializeDateTime(value);
  if (value instanceof Uint8Array) return byteaText(value);
  if (typeof value === "object" && value !== null) return JSON.stringify(value);
  return String(value);
}

/**
 * A parameter's text for the type the server gave it: JSON for json/jsonb
 * (a string is JSON text already), an array literal for arrays, `t`/`f` for
 * booleans, hex for bytes, and the value's own text otherwise.
 */
function serializerFor(type: number, arrays: ReadonlyMap<number, string>): Serializer {
  const json = type === oid.json || type === oid.jsonb;
  const delimiter = arrays.get(type);
  return (value) => {
    if (json) return typeof value === "bigint" ? value.toString() : serializeJson(value);
    if (Array.isArray(value)) return String(serializeArray(value, elementText as never, delimiter));
    if (value instanceof Uint8Array) return byteaText(value);
    if (typeof value === "boolean") return type === oid.bool ? (value ? "t" : "f") : String(value);
    return String(value);
  };
}

/** The SQLSTATE when `error` is a server error (PGlite's `DatabaseError`). */
function stateOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  return error instanceof Error && typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/** A server error as Roost's `cause`: message, stack and the server's fields, never its query's parameters. */
function serverCause(error: unknown): unknown {
  if (stateOf(error) === undefined) return error instanceof Error ? sanitizedCause(error, []) : error;
  return camelCaseServerCause(error as Error, error as unknown as Record<string, unknown>, "DatabaseError");
}

/**
 * PGlite's errors: the server's are `DatabaseError`s with a SQLSTATE; any
 * other (the instance closed, or its WebAssembly failed) leaves the
 * connection unusable.
 */
const errors: ErrorRules = {
  dialect: "pglite",
  cause: serverCause,
  classify(error) {
    const state = stateOf(error);
    return state === undefined
      ? { code: "CONNECTION_CLOSED", fatal: true }
      : { code: state, fatal: fatalPostgresState(state) };
  },
};

/** The rows of an array-mode result as objects named by its columns (a later duplicate name wins). */
function rowsOf(result: Results<unknown[]>): Row[] {
  const { fields, rows } = result;
  return rows.map((values) => {
    const row: Row = {};
    for (let i = 0; i < fields.length; i++) setColumn(row, fields[i].name, values[i]);
    return row;
  });
}

class PgliteConnection implements DriverConnection {
  readonly #db: PGlite;
  readonly #parsers: Record<number, Parser>;
  /** Serializers by the type the server gave a parameter, made on first use. */
  readonly #serializers: Record<number, Serializer>;
  readonly #release: () => void;
  #lost = false;

  constructor(db: PGlite, parsers: Record<number, Parser>, arrays: ReadonlyMap<number, string>, release: () => void) {
    this.#db = db;
    this.#parsers = parsers;
    const made = new Map<number, Serializer>();
    this.#serializers = new Proxy({}, {
      get: (_, key) => {
        const type = Number(key);
        let serializer = made.get(type);
        if (serializer === undefined) made.set(type, serializer = serializerFor(type, arrays));
        return serializer;
      },
    });
    this.#release = release;
  }

  get broken(): boolean {
    return this.#lost || this.#db.closed;
  }

  #translate(error: unknown, text: string): Error {
    const translated = translateError(errors, error, text);
    if (translated instanceof ConnectionError) this.#lost = true;
    return translated;
  }

  /** Runs one statement through the extended protocol, parameters typed as `parameterTypes` says. */
  #run(text: string, params: readonly unknown[]): Promise<Results<unknown[]>> {
    if (this.#lost || this.#db.closed) {
      return Promise.reject(
        new ConnectionError("pglite connection lost: the database was closed", {
          code: "CONNECTION_CLOSED",
        }),
      );
    }
    if (params.length > 65_535) throw tooManyParameters({ text, params }, 65_535, "Postgres");
    const values = params.map((value, i) => postgresParam(value, i, (array) => array));
    return this.#db.query<unknown[]>(text, values, {
      rowMode: "array",
      parsers: this.#parsers,
      serializers: this.#serializers,
      paramTypes: parameterOids(values),
    }).finally(() => disarmTimers(this.#db));
  }

  async #query(text: string, params: readonly unknown[]): Promise<Results<unknown[]>> {
    try {
      return await this.#run(text, params);
    } catch (error) {
      throw this.#translate(error, text);
    }
  }

  async execute(text: string, params: readonly unknown[]): Promise<ExecuteResult> {
    const result = await this.#query(text, params);
    return { rowCount: result.affectedRows || result.rows.length };
  }

  /** One statement at a time (PGlite has no pipeline): a single-row insert becomes multi-row inserts. */
  executeMany(text: string, paramSets: readonly (readonly unknown[])[]): Promise<ExecuteResult> {
    return executeBatched(text, paramSets, (statement, params) => this.execute(statement, params), true);
  }

  async fetchAll(text: string, params: readonly unknown[]): Promise<Row[]> {
    return rowsOf(await this.#query(text, params));
  }

  async fetchOne(text: string, params: readonly unknown[]): Promise<Row | undefined> {
    return (await this.fetchAll(text, params))[0];
  }

  async fetchRows(text: string, params: readonly unknown[]): Promise<Rows> {
    const { fields, rows } = await this.#query(text, params);
    return { columns: fields.map((field) => field.name), rows };
  }

  /**
   * PGlite returns whole results, so every stream is a server-side cursor
   * fetched `batchSize` rows at a time (see `cursorBatches`); a statement
   * that cannot be a cursor (a write with RETURNING) is read whole.
   */
  stream(
    text: string,
    params: readonly unknown[],
    batchSize: number,
    placement: StreamPlacement,
    arrays?: boolean,
  ): AsyncIterableIterator<Row[]> {
    if (arrays) {
      return cursorStream(
        async (statement, values = []) => (await this.#run(statement, values)).rows as unknown as Row[],
        () => this.fetchRows(text, params).then((result) => result.rows as unknown as Row[]),
        (error) => this.#translate(error, text),
        text,
        params,
        batchSize,
        placement,
      );
    }
    return cursorStream(
      async (statement, values = []) => rowsOf(await this.#run(statement, values)),
      () => this.fetchAll(text, params),
      (error) => this.#translate(error, text),
      text,
      params,
      batchSize,
      placement,
    );
  }

  async ping(): Promise<void> {
    await this.execute("SELECT 1", []);
  }

  async close(): Promise<void> {
    this.#lost = true;
    try {
      if (!this.#db.closed) await this.#db.close();
    } catch {
      // Closing never throws; the directory is released below either way.
    } finally {
      this.#release();
    }
  }
}

/**
 * Stops the Postgres timer a PGlite database leaves armed, which would keep
 * the process alive: Postgres's `setitimer`, which PGlite's WebAssembly
 * turns into a plain `setTimeout` out of reach. Two were seen: after a
 * write, the idle statistics flush (once, 10 s later); and, in a database
 * that started by recovering (as every one loaded from a dump does), the
 * start-up progress log, every 10 s for good. Between statements neither can do anything in a session that is
 * not running one (the statistics are flushed at a later statement instead),
 * so the driver disarms them after each statement with PGlite's own
 * `clear_setitimer`, which PGlite itself calls when it closes.
 */
function disarmTimers(db: PGlite): void {
  (db.Module as unknown as { _clear_setitimer?: () => void } | undefined)?._clear_setitimer?.();
}

/** The data directories open in this process (a second instance on one would corrupt it). */
const openDirectories = new Set<string>();

/** A directory's absolute path, the key of `openDirectories`. */
function absolute(dir: string): string {
  const path = builtinModule<{ resolve(...parts: string[]): string }>("node:path");
  return path ? path.resolve(dir) : dir;
}

/**
 * A fresh in-memory cluster to copy, dumped from the process's first
 * in-memory database before it is used: loading it skips `initdb`, which
 * takes most of a new database's start-up (see docs/drivers.md, PGlite).
 */
let template: Promise<Blob | undefined> | undefined;

/** What the template file helpers need of `node:fs/promises`. */
interface TemplateFs {
  readFile(path: string): Promise<Uint8Array>;
  writeFile(path: string, data: Uint8Array): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  rm(path: string, options: { force: boolean }): Promise<void>;
}

/**
 * The file named by `ROOST_PGLITE_TEMPLATE`, where the template is kept
 * between processes (each one otherwise runs `initdb` again); none when the
 * variable is unset or cannot be read (Deno without `--allow-env`).
 */
function templateFile(): string | undefined {
  try {
    const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env;
    const file = env?.ROOST_PGLITE_TEMPLATE;
    return file === undefined || file === "" ? undefined : file;
  } catch {
    return undefined;
  }
}

/** The stored template, or none when there is no file or it cannot be read. */
async function readTemplate(file: string): Promise<Blob | undefined> {
  const fs = builtinModule<TemplateFs>("node:fs/promises");
  const bytes = await fs?.readFile(file).catch(() => undefined);
  return bytes === undefined ? undefined : new Blob([bytes as Uint8Array<ArrayBuffer>]);
}

/** Stores the template whole or not at all (written beside, then renamed over); a failure only costs the cache. */
async function writeTemplate(file: string, dump: Blob): Promise<void> {
  const fs = builtinModule<TemplateFs>("node:fs/promises");
  if (fs === undefined) return;
  const partial = `${file}.${Date.now().toString(36)}${Math.random().toString(36).slice(2)}.partial`;
  try {
    await fs.writeFile(partial, new Uint8Array(await dump.arrayBuffer()));
    await fs.rename(partial, file);
  } catch {
    await fs.rm(partial, { force: true }).catch(() => {});
  }
}

/**
 * The process's first in-memory database: from the template file when one is
 * there and loads, else by `initdb`, then dumped (and stored when a file is
 * named) as the template.
 */
async function firstInMemory(options: PGliteOptions): Promise<{ db: PGlite; dump: Blob | undefined }> {
  const file = templateFile();
  const stored = file === undefined ? undefined : await readTemplate(file);
  if (stored !== undefined) {
    // A file from another PGlite whose cluster it cannot open is replaced below.
    const db = await PGlite.create({ ...options, loadDataDir: stored }).catch(() => undefined);
    if (db !== undefined) return { db, dump: stored };
  }
  const db = await PGlite.create(options);
  const dump = await db.dumpDataDir("none").then((dump) => dump as Blob, () => undefined);
  if (file !== undefined && dump !== undefined) await writeTemplate(file, dump);
  return { db, dump };
}

/** Opens an in-memory database: the first by `initdb` or from the template file, the rest from the template. */
async function openInMemory(options: PGliteOptions): Promise<PGlite> {
  if (template === undefined) {
    let made!: (dump: Blob | undefined) => void;
    template = new Promise((resolve) => made = resolve);
    try {
      const { db, dump } = await firstInMemory(options);
      made(dump);
      return db;
    } catch (error) {
      made(undefined);
      template = undefined;
      throw error;
    }
  }
  const dump = await template;
  return await PGlite.create(dump === undefined ? options : { ...options, loadDataDir: dump });
}

/** Reads the array types the database has: each one's element type and delimiter. */
async function arrayTypes(db: PGlite): Promise<{ typarray: number; oid: number; typdelim: string }[]> {
  const result = await db.query<{ typarray: number; oid: number; typdelim: string }>(
    "SELECT oid, typarray, typdelim FROM pg_catalog.pg_type WHERE typarray <> 0",
  );
  return result.rows;
}

/** The PGlite driver. */
export const pglite: Driver = {
  name: "pglite",
  dialect: "postgres",
  interleavedStreams: false,
  keepsItsSession: true,
  async connect(url: DatabaseUrl) {
    const dir = url.database === ":memory:" ? undefined : absolute(url.database);
    if (dir !== undefined && openDirectories.has(dir)) {
      throw new ConnectionError(
        `the PGlite data directory ${url.database} is already open in this process (one database holds it at a ` +
          `time: share that Database instance)`,
        { code: "ROOST_PGLITE_DIRECTORY_IN_USE" },
      );
    }
    if (dir !== undefined) openDirectories.add(dir);
    const release = () => dir !== undefined && openDirectories.delete(dir);
    let db: PGlite;
    try {
      db = dir === undefined ? await openInMemory({}) : await PGlite.create({ dataDir: dir });
    } catch (error) {
      release();
      const refused = permissionDenied("pglite", error);
      if (refused !== undefined) throw refused;
      throw new ConnectionError(`could not open PGlite at ${url.database}: ${messageOf(error)}`, {
        cause: serverCause(error),
        code: stateOf(error),
      });
    }
    try {
      await db.exec("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'");
      const arrays = new Map<number, string>();
      const parsers: Record<number, Parser> = { ...baseParsers };
      for (const { oid: element, typarray, typdelim } of await arrayTypes(db)) {
        const parseElement: ElementParser | undefined = baseParsers[element];
        parsers[typarray] = (text) => parseArray(text, parseElement, typdelim);
        arrays.set(typarray, typdelim);
      }
      disarmTimers(db);
      return new PgliteConnection(db, parsers, arrays, release);
    } catch (error) {
      await db.close().catch(() => {});
      release();
      throw new ConnectionError(`could not open PGlite at ${url.database}: ${messageOf(error)}`, {
        cause: serverCause(error),
      });
    }
  },
};
