/**
 * The history table: which migrations are applied, with their checksums and
 * when they ran.
 *
 * @module
 */
import type { DialectName } from "../dialect.ts";
import type { Queryable } from "../queryable.ts";
import { sql } from "../sql.ts";
import { compareRevisions, type LoadedMigration } from "./source.ts";

/** One applied migration, as the history table records it. */
export interface HistoryEntry {
  /** The migration's revision. */
  revision: string;
  /** Its name when it was applied. */
  name: string;
  /** The checksum of its source when it was applied. */
  checksum: string;
  /** When it was applied. */
  appliedAt: Date;
}

/** The `applied_at` column: a timestamp on the servers, ISO 8601 text on SQLite. */
const appliedAtColumn: Record<DialectName, string> = {
  postgres: "timestamptz not null default now()",
  mysql: "datetime(3) not null default current_timestamp(3)",
  sqlite: "text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
};

/** A time read back from the table, whatever the driver returned. */
function asDate(value: unknown): Date {
  if (value instanceof Date) return value;
  if (typeof value === "number" || typeof value === "bigint") return new Date(Number(value));
  const text = String(value);
  // A zone-less timestamp is UTC: that is how the table stores it.
  return new Date(/(?:Z|[+-]\d\d(?::?\d\d)?)$/i.test(text) ? text : `${text.replace(" ", "T")}Z`);
}

/** The history table of one migrator; every method runs on the handle it is given. */
export class History {
  readonly #table: string;

  /** Names the table (any string: it is quoted as an identifier). */
  constructor(table: string) {
    this.#table = table;
  }

  /** True when the table exists (in the current schema / database). */
  async exists(db: Queryable): Promise<boolean> {
    const found = db.dialect === "postgres"
      ? await db.fetchVal(sql`select to_regclass(quote_ident(${this.#table})) is not null`)
      : db.dialect === "mysql"
      ? await db.fetchVal(
        sql`select count(*) from information_schema.tables where table_schema = database() and table_name = ${this.#table}`,
      )
      : await db.fetchVal(
        sql`select count(*) from sqlite_master where type = 'table' and lower(name) = lower(${this.#table})`,
      );
    return found === true || Number(found) > 0;
  }

  /** Creates the table unless it exists. */
  async create(db: Queryable): Promise<void> {
    await db.execute(
      sql`create table if not exists ${sql.ident(this.#table)} (
        revision varchar(255) not null primary key,
        name varchar(255) not null,
        checksum varchar(64) not null,
        applied_at ${sql.unsafe(appliedAtColumn[db.dialect])}
      )`,
    );
  }

  /** The applied migrations, oldest revision first. */
  async read(db: Queryable): Promise<HistoryEntry[]> {
    const rows = await db.fetchAll<{ revision: string; name: string; checksum: string; applied_at: unknown }>(
      sql`select revision, name, checksum, applied_at from ${sql.ident(this.#table)}`,
    );
    return rows
      .map((row) => ({
        revision: String(row.revision),
        name: String(row.name),
        checksum: String(row.checksum),
        appliedAt: asDate(row.applied_at),
      }))
      .sort((a, b) => compareRevisions(a.revision, b.revision));
  }

  /** True when `revision` is recorded as applied. */
  async has(db: Queryable, revision: string): Promise<boolean> {
    const row = await db.fetchOne(sql`select revision from ${sql.ident(this.#table)} where revision = ${revision}`);
    return row !== undefined;
  }

  /** Records a migration as applied now. */
  async record(db: Queryable, migration: LoadedMigration): Promise<void> {
    const now = new Date();
    await db.execute(
      sql`insert into ${sql.ident(this.#table)} (revision, name, checksum, applied_at) values (${migration.revision}, ${
        migration.name.slice(0, 255)
      }, ${migration.checksum}, ${db.dialect === "sqlite" ? now.toISOString() : now})`,
    );
  }

  /** Records the source's checksum and name for an applied migration (stamped over an edited one). */
  async rewrite(db: Queryable, migration: LoadedMigration): Promise<void> {
    await db.execute(
      sql`update ${sql.ident(this.#table)} set checksum = ${migration.checksum}, name = ${
        migration.name.slice(0, 255)
      } where revision = ${migration.revision}`,
    );
  }

  /** Drops the table if it exists. */
  async drop(db: Queryable): Promise<void> {
    await db.execute(sql`drop table if exists ${sql.ident(this.#table)}`);
  }

  /** Removes a migration's record (it has been reverted). */
  async remove(db: Queryable, revision: string): Promise<void> {
    await db.execute(sql`delete from ${sql.ident(this.#table)} where revision = ${revision}`);
  }
}
