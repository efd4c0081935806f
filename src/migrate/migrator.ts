/**
 * The migrator: applies and reverts migrations in order, records them in a
 * history table and keeps concurrent migrators from colliding.
 *
 * @module
 */
import type { Connection } from "../connection.ts";
import { asyncContextAvailable } from "../context.ts";
import type { Database } from "../database.ts";
import { transactionRefusal } from "../internal.ts";
import { ConfigError, messageOf } from "../errors.ts";
import type { Queryable } from "../queryable.ts";
import { definedTables, inDependencyOrder, type TableDefinition } from "../schema.ts";
import { MigrationError } from "./errors.ts";
import { History, type HistoryEntry } from "./history.ts";
import { acquireLock, refusePooled, retryWhileBusy } from "./lock.ts";
import { compareRevisions, loadDirectory, type LoadedMigration, loadList, type Migration } from "./source.ts";
import type {
  MigrationEvent,
  MigrationProblem,
  MigrationStatus,
  MigratorOptions,
  StampResult,
  SyncResult,
} from "./options.ts";
import { isEmptyStep, lacking, runStep } from "./steps.ts";

const optionNames = new Set(["directory", "migrations", "table", "lockTimeout", "onProgress"]);

/** The result of one locked upgrade run. */
interface UpgradeRun {
  applied: string[];
  /** How many migrations were applied before the run. */
  before: number;
}

/**
 * Applies and reverts schema migrations: SQL files, modules or a list in
 * memory, recorded in a history table.
 *
 * Every migrator query goes to the primary, on one connection held for the
 * call. On Postgres and SQLite each migration (its statements and its
 * history record) runs in a transaction of its own, so a failing migration
 * leaves nothing behind and those before it stay applied. MySQL and MariaDB
 * commit DDL as it runs, so there a migration runs without a transaction
 * and is recorded after its last statement succeeds: a migration that fails
 * part-way stays partly applied, and its `ROOST_MIGRATION_FAILED` error
 * names the statement that failed. Since Roost opens the transactions, a
 * migration holds no `BEGIN` or `COMMIT` of its own, and statements that
 * refuse to run in a transaction (Postgres's `CREATE INDEX CONCURRENTLY`,
 * SQLite's `VACUUM`) do not belong in one.
 *
 * Concurrent migrators (several processes starting at once) take turns, so
 * each migration is applied exactly once: an advisory lock on Postgres,
 * `GET_LOCK` on MySQL, and on SQLite each migration's `BEGIN IMMEDIATE`
 * transaction, which re-reads the history first (see `lock.ts`).
 *
 * @example
 * ```ts
 * import { Database } from "@roost/db";
 * import { Migrator } from "@roost/db/migrate";
 *
 * const db = new Database("sqlite:app.db");
 * const migrator = new Migrator(db, { directory: new URL("./migrations/", import.meta.url) });
 * console.log(await migrator.sync()); // "created", "upgraded" or "already-up-to-date"
 * await db.close();
 * ```
 *
 * @example In memory (for example on Workers)
 * ```ts
 * import { Database } from "@roost/db";
 * import { Migrator } from "@roost/db/migrate";
 *
 * const db = new Database("sqlite::memory:");
 * const migrator = new Migrator(db, {
 *   migrations: [
 *     { revision: "1", name: "users", up: "create table users (id integer primary key)", down: "drop table users" },
 *     {
 *       revision: "2",
 *       name: "seed",
 *       up: async (tx) => {
 *         await tx.execute("insert into users (id) values (1)");
 *       },
 *     },
 *   ],
 * });
 * await migrator.upgrade(); // ["1", "2"]
 * ```
 */
export class Migrator {
  readonly #db: Database;
  readonly #directory: string | URL | undefined;
  readonly #migrations: readonly Migration[] | undefined;
  readonly #table: string;
  readonly #history: History;
  readonly #lockTimeout: number;
  readonly #onProgress: ((event: MigrationEvent) => void) | undefined;

  /** Creates a migrator; nothing is read or run until a method is called. Bad options are a `ConfigError`. */
  constructor(db: Database, options: MigratorOptions) {
    if (typeof options !== "object" || options === null) throw new ConfigError("migrator options must be an object");
    for (const key of Object.keys(options)) {
      if (!optionNames.has(key)) {
        throw new ConfigError(`unknown migrator option "${key}" (known: ${[...optionNames].join(", ")})`);
      }
    }
    const { directory, migrations, table = "roost_migrations", lockTimeout = 60_000, onProgress } = options;
    if ((directory === undefined) === (migrations === undefined)) {
      throw new ConfigError("a migrator takes exactly one of the directory and migrations options");
    }
    if (directory !== undefined && typeof directory !== "string" && !(directory instanceof URL)) {
      throw new ConfigError("directory must be a path or a file: URL");
    }
    if (migrations !== undefined && !Array.isArray(migrations)) throw new ConfigError("migrations must be an array");
    if (typeof table !== "string" || table === "") throw new ConfigError("table must be a non-empty string");
    if (typeof lockTimeout !== "number" || !(lockTimeout >= 0) || !Number.isFinite(lockTimeout)) {
      throw new ConfigError("lockTimeout must be a number of milliseconds, 0 or more");
    }
    if (onProgress !== undefined && typeof onProgress !== "function") {
      throw new ConfigError("onProgress must be a function");
    }
    this.#db = db;
    this.#directory = directory;
    this.#migrations = migrations;
    this.#table = table;
    this.#history = new History(table);
    this.#lockTimeout = lockTimeout;
    this.#onProgress = onProgress;
  }

  /** The history table's name. */
  get table(): string {
    return this.#table;
  }

  /** The migrations of the source, oldest revision first (read afresh at each call). */
  async migrations(): Promise<LoadedMigration[]> {
    return this.#directory !== undefined ? await loadDirectory(this.#directory) : await loadList(this.#migrations!);
  }

  /**
   * Runs `fn` on one primary connection, also inside a replica scope and with
   * replica reads. Without async context (Workers without `nodejs_compat`)
   * `db.primary()` is refused, so the connection is taken through the handle
   * of a context of its own, which needs none.
   */
  #pinned<T>(fn: (conn: Connection) => Promise<T>): Promise<T> {
    if (!asyncContextAvailable) return this.#db.context((scope) => scope.primary((primary) => primary.connection(fn)));
    return this.#db.primary((primary) => primary.connection(fn));
  }

  /** Runs `fn` holding the migration lock on a pinned primary connection. */
  #locked<T>(fn: (conn: Connection) => Promise<T>): Promise<T> {
    // Without transactions (D1) a migration and its history row cannot apply together: refused before anything runs.
    const refusal = transactionRefusal(this.#db);
    if (refusal) return Promise.reject(refusal);
    try {
      refusePooled(this.#db.url);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#pinned(async (conn) => {
      const release = await acquireLock(conn, this.#table, this.#lockTimeout);
      let result: T;
      try {
        result = await fn(conn);
      } catch (error) {
        // The run's own error matters more; a lost connection took the lock with it anyway.
        await release().catch(() => {});
        throw error;
      }
      await release();
      return result;
    });
  }

  /** The applied migrations (none when the history table does not exist). */
  async #applied(conn: Queryable): Promise<HistoryEntry[]> {
    return await this.#history.exists(conn) ? await this.#history.read(conn) : [];
  }

  /**
   * Applies the pending migrations in revision order, up to `target`
   * (included; `"head"`, the default, is the newest), each in a transaction
   * of its own except on MySQL. Creates the history table if needed.
   * Resolves to the revisions this call applied (another migrator may have
   * applied some meanwhile). Refuses, before running anything, when an
   * applied migration was edited (`ROOST_MIGRATION_EDITED`), when a pending
   * migration is older than the newest applied one
   * (`ROOST_MIGRATION_OUT_OF_ORDER`), when a pending migration's up step is
   * SQL without a statement (`ROOST_MIGRATION_EMPTY`: a file `roost new`
   * created that was never written) and when `target` is not a revision of
   * the source (`ROOST_MIGRATION_UNKNOWN_TARGET`).
   */
  async upgrade(target: string = "head"): Promise<string[]> {
    return (await this.#upgrade(target)).applied;
  }

  async #upgrade(target: string): Promise<UpgradeRun> {
    const source = await this.migrations();
    let last = source.length - 1;
    if (target !== "head") {
      last = source.findIndex((migration) => migration.revision === target);
      if (last < 0) throw unknownTarget(target, "upgrade");
    }
    const wanted = source.slice(0, last + 1);
    return await this.#locked(async (conn) => {
      await retryWhileBusy(conn.dialect, this.#table, this.#lockTimeout, () => this.#history.create(conn));
      const applied = await this.#history.read(conn);
      const edited = problemsOf(source, applied).filter((problem) => problem.kind === "edited");
      if (edited.length > 0) {
        const list = edited.map((problem) => problem.revision);
        throw new MigrationError(
          `applied migrations were edited since they ran: ${list.join(", ")}; restore them and put the change in a ` +
            `new migration`,
          { code: "ROOST_MIGRATION_EDITED", revisions: list, revision: list[0] },
        );
      }
      const done = new Set(applied.map((entry) => entry.revision));
      const pending = wanted.filter((migration) => !done.has(migration.revision));
      const newest = applied.at(-1)?.revision;
      const late = newest === undefined
        ? []
        : pending.filter((migration) => compareRevisions(migration.revision, newest) < 0);
      if (late.length > 0) {
        const list = late.map((migration) => migration.revision);
        throw new MigrationError(
          `pending migrations are older than the newest applied one (${newest}): ${list.join(", ")}; ` +
            `give them revisions after ${newest}`,
          { code: "ROOST_MIGRATION_OUT_OF_ORDER", revisions: list, revision: list[0] },
        );
      }
      const empty = pending.filter((migration) => isEmptyStep(migration.up, conn.dialect));
      if (empty.length > 0) {
        const list = empty.map((migration) => migration.revision);
        throw new MigrationError(
          `pending migrations have nothing to apply: ${empty.map((m) => lacking(m, "up")).join("; ")}. ` +
            `Write the migration, or delete it; nothing was applied`,
          { code: "ROOST_MIGRATION_EMPTY", revisions: list, revision: list[0], file: empty[0].file },
        );
      }
      const ran: string[] = [];
      for (const migration of pending) {
        if (await this.#run(conn, migration, "upgrade")) ran.push(migration.revision);
      }
      return { applied: ran, before: applied.length };
    });
  }

  /**
   * Reverts applied migrations, newest first, back to `target`: a revision,
   * which stays applied, or `"base"` to revert them all. Resolves to the
   * revisions this call reverted. Refuses before running anything when a
   * migration to revert has no down step (`ROOST_MIGRATION_IRREVERSIBLE`; a
   * `-- migrate:down` section without statements counts as none) or is no
   * longer in the source (`ROOST_MIGRATION_MISSING`), and when `target` is
   * neither `"base"` nor a known revision (`ROOST_MIGRATION_UNKNOWN_TARGET`).
   */
  async downgrade(target: string): Promise<string[]> {
    if (typeof target !== "string" || target === "") throw unknownTarget(String(target), "downgrade");
    const source = await this.migrations();
    const bySource = new Map(source.map((migration) => [migration.revision, migration]));
    return await this.#locked(async (conn) => {
      const applied = await this.#applied(conn);
      if (target !== "base" && !bySource.has(target) && !applied.some((entry) => entry.revision === target)) {
        throw unknownTarget(target, "downgrade");
      }
      const reverting = applied
        .filter((entry) => target === "base" || compareRevisions(entry.revision, target) > 0)
        .reverse();
      const missing = reverting.filter((entry) => !bySource.has(entry.revision)).map((entry) => entry.revision);
      if (missing.length > 0) {
        throw new MigrationError(
          `applied migrations to revert are not in the source: ${missing.join(", ")}`,
          { code: "ROOST_MIGRATION_MISSING", revisions: missing, revision: missing[0] },
        );
      }
      const migrations = reverting.map((entry) => bySource.get(entry.revision)!);
      const irreversible = migrations.filter((migration) => isEmptyStep(migration.down, conn.dialect));
      if (irreversible.length > 0) {
        const list = irreversible.map((migration) => migration.revision);
        throw new MigrationError(
          `migrations without a down step cannot be reverted: ${
            irreversible.map((m) => lacking(m, "down")).join("; ")
          }. Write their down step, or downgrade to a revision after them; nothing was reverted`,
          { code: "ROOST_MIGRATION_IRREVERSIBLE", revisions: list, revision: list[0], file: irreversible[0].file },
        );
      }
      const ran: string[] = [];
      for (const migration of migrations) {
        if (await this.#run(conn, migration, "downgrade")) ran.push(migration.revision);
      }
      return ran;
    });
  }

  /**
   * Records the source's migrations up to `target` as applied, without
   * running any of them: `"head"` (the default) for all of them, a revision
   * of the source, or `"base"` for none. Afterwards the history holds
   * exactly those migrations: records of newer revisions, and of revisions
   * the source no longer has, are removed, and an applied migration edited
   * since it ran is recorded with its new checksum, so `check()` and
   * `upgrade()` accept it. For a database whose schema was made some other
   * way (a dump, {@linkcode Migrator.createTables}) or to accept an edit.
   * Resolves to what changed; refuses an unknown `target`
   * (`ROOST_MIGRATION_UNKNOWN_TARGET`) before changing anything. Creates the
   * history table if needed.
   */
  async stamp(target: string = "head"): Promise<StampResult> {
    if (typeof target !== "string" || target === "") throw unknownTarget(String(target), "stamp");
    const source = await this.migrations();
    let last = source.length - 1;
    if (target === "base") last = -1;
    else if (target !== "head") {
      last = source.findIndex((migration) => migration.revision === target);
      if (last < 0) throw unknownTarget(target, "stamp");
    }
    return await this.#locked(async (conn) => {
      await retryWhileBusy(conn.dialect, this.#table, this.#lockTimeout, () => this.#history.create(conn));
      return await this.#write(conn, (db) => this.#stampOn(db, source.slice(0, last + 1)));
    });
  }

  /**
   * Creates the tables defined with `defineTable` (the given ones, or every
   * one defined so far, as `db.schema.createTables()` does) and stamps every
   * migration of the source as applied, so `status()` says `"up-to-date"`:
   * a new database made from the models rather than by replaying each
   * migration. One transaction, except on MySQL, where DDL commits as it
   * runs. Refuses with `ROOST_MIGRATION_ALREADY_APPLIED`, creating nothing,
   * when a migration is applied already (upgrade such a database instead).
   * Resolves to the tables' names in the order they were created.
   */
  async createTables(tables: readonly TableDefinition[] = definedTables): Promise<string[]> {
    const order = inDependencyOrder(tables);
    const source = await this.migrations();
    return await this.#locked(async (conn) => {
      await retryWhileBusy(conn.dialect, this.#table, this.#lockTimeout, () => this.#history.create(conn));
      await this.#write(conn, async (db) => {
        const applied = await this.#history.read(db);
        if (applied.length > 0) {
          const newest = applied.at(-1)!.revision;
          throw new MigrationError(
            `migrations are applied already (the newest is ${newest}): createTables() makes a new database and ` +
              `stamps it; run upgrade() on this one. Nothing was created`,
            { code: "ROOST_MIGRATION_ALREADY_APPLIED", revision: newest },
          );
        }
        for (const table of order) {
          for (const text of table.createStatements(db.dialect)) await db.execute(text);
        }
        await this.#stampOn(db, source);
      });
      return order.map((table) => table.name);
    });
  }

  /**
   * Drops the tables defined with `defineTable` (the given ones, or every
   * one defined so far, referencing tables first) and the history table,
   * where they exist: the opposite of {@linkcode Migrator.createTables},
   * after which `status()` says `"no-info"`. No down step runs. One
   * transaction, except on MySQL. Resolves to the names dropped, the
   * history table last.
   */
  async dropTables(tables: readonly TableDefinition[] = definedTables): Promise<string[]> {
    const order = inDependencyOrder(tables).reverse();
    return await this.#locked(async (conn) => {
      await this.#write(conn, async (db) => {
        for (const table of order) await db.execute(table.dropStatement(db.dialect));
        await this.#history.drop(db);
      });
      return [...order.map((table) => table.name), this.#table];
    });
  }

  /** Runs `fn` in a transaction (retried while SQLite is busy), or straight on the connection on MySQL. */
  async #write<T>(conn: Connection, fn: (db: Queryable) => Promise<T>): Promise<T> {
    if (conn.dialect === "mysql") return await fn(conn);
    return await retryWhileBusy(conn.dialect, this.#table, this.#lockTimeout, () => conn.transaction(fn));
  }

  /** Makes the history hold exactly `wanted` (a prefix of the source), with their current checksums. */
  async #stampOn(db: Queryable, wanted: readonly LoadedMigration[]): Promise<StampResult> {
    const applied = await this.#history.read(db);
    const keep = new Set(wanted.map((migration) => migration.revision));
    const recorded = new Map(applied.map((entry) => [entry.revision, entry]));
    const result: StampResult = { stamped: [], restamped: [], unstamped: [] };
    for (const entry of applied) {
      if (keep.has(entry.revision)) continue;
      await this.#history.remove(db, entry.revision);
      result.unstamped.push(entry.revision);
    }
    for (const migration of wanted) {
      const entry = recorded.get(migration.revision);
      if (entry === undefined) {
        await this.#history.record(db, migration);
        result.stamped.push(migration.revision);
      } else if (entry.checksum !== migration.checksum) {
        await this.#history.rewrite(db, migration);
        result.restamped.push(migration.revision);
      }
    }
    return result;
  }

  /** The newest applied revision, or `null` when none is applied (or there is no history table). */
  async currentRevision(): Promise<string | null> {
    return (await this.history()).at(-1)?.revision ?? null;
  }

  /**
   * `"no-info"` when nothing is applied (or there is no history table),
   * `"upgrade-available"` when a migration of the source is not applied,
   * `"up-to-date"` otherwise.
   */
  async status(): Promise<MigrationStatus> {
    const source = await this.migrations();
    const applied = await this.history();
    if (applied.length === 0) return "no-info";
    const done = new Set(applied.map((entry) => entry.revision));
    return source.every((migration) => done.has(migration.revision)) ? "up-to-date" : "upgrade-available";
  }

  /**
   * Brings the database up to date: `"created"` when nothing was applied
   * before and this call applied the migrations, `"upgraded"` when it
   * applied the pending ones, `"already-up-to-date"` when there was nothing
   * to apply. Refuses as {@linkcode Migrator.upgrade} does.
   */
  async sync(): Promise<SyncResult> {
    const run = await this.#upgrade("head");
    if (run.applied.length === 0) return "already-up-to-date";
    return run.before === 0 ? "created" : "upgraded";
  }

  /** The applied migrations, oldest revision first (none when there is no history table). */
  async history(): Promise<HistoryEntry[]> {
    return await this.#pinned((conn) => this.#applied(conn));
  }

  /**
   * The applied migrations that no longer match the source: `"edited"` when
   * its checksum differs from the one recorded, `"unknown"` when the source
   * has no migration of that revision.
   */
  async check(): Promise<MigrationProblem[]> {
    const source = await this.migrations();
    return problemsOf(source, await this.history());
  }

  /** The migrations of the source not applied yet, oldest revision first. */
  async pending(): Promise<LoadedMigration[]> {
    const source = await this.migrations();
    const done = new Set((await this.history()).map((entry) => entry.revision));
    return source.filter((migration) => !done.has(migration.revision));
  }

  /**
   * Applies or reverts one migration with its history record: in a
   * transaction (retried while SQLite is busy) except on MySQL. Re-reads the
   * history first and skips the migration when another migrator got there
   * first; resolves to whether it ran.
   */
  async #run(conn: Connection, migration: LoadedMigration, action: "upgrade" | "downgrade"): Promise<boolean> {
    let started = 0;
    const attempt = async (db: Queryable): Promise<boolean> => {
      const applied = await this.#history.has(db, migration.revision);
      if (applied !== (action === "downgrade")) return false;
      started = performance.now();
      this.#emit({ action, revision: migration.revision, name: migration.name, phase: "start" });
      await runStep(db, action === "upgrade" ? migration.up : migration.down!, migration, action);
      if (action === "upgrade") await this.#history.record(db, migration);
      else await this.#history.remove(db, migration.revision);
      return true;
    };
    let ran: boolean;
    try {
      ran = conn.dialect === "mysql"
        ? await attempt(conn)
        : await retryWhileBusy(conn.dialect, this.#table, this.#lockTimeout, () => conn.transaction(attempt));
    } catch (error) {
      if (error instanceof MigrationError) throw error;
      // Outside its steps: reading or writing the history, or the COMMIT (a deferred constraint, say).
      throw new MigrationError(
        `${action} of migration ${migration.revision}_${migration.name} failed: ${messageOf(error)}`,
        { code: "ROOST_MIGRATION_FAILED", cause: error, revision: migration.revision, file: migration.file },
      );
    }
    if (ran) {
      const ms = Math.round(performance.now() - started);
      this.#emit({ action, revision: migration.revision, name: migration.name, phase: "done", ms });
    }
    return ran;
  }

  #emit(event: MigrationEvent): void {
    this.#onProgress?.(event);
  }
}

const allowedTargets: Record<string, string> = {
  upgrade: '"head" nor a revision of the source',
  downgrade: '"base" nor a known revision',
  stamp: '"head", "base" nor a revision of the source',
};

function unknownTarget(target: string, action: "upgrade" | "downgrade" | "stamp"): MigrationError {
  return new MigrationError(
    `cannot ${action} to ${JSON.stringify(target)}: it is not ${allowedTargets[action]}`,
    { code: "ROOST_MIGRATION_UNKNOWN_TARGET", revision: target },
  );
}

/** The applied migrations that do not match the source. */
export function problemsOf(source: readonly LoadedMigration[], applied: readonly HistoryEntry[]): MigrationProblem[] {
  const bySource = new Map(source.map((migration) => [migration.revision, migration]));
  const problems: MigrationProblem[] = [];
  for (const entry of applied) {
    const migration = bySource.get(entry.revision);
    if (migration === undefined) problems.push({ revision: entry.revision, name: entry.name, kind: "unknown" });
    else if (migration.checksum !== entry.checksum) {
      problems.push({ revision: entry.revision, name: entry.name, kind: "edited" });
    }
  }
  return problems;
}
