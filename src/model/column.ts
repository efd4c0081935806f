/**
 * Column builders for {@linkcode defineTable}: each builder says what the
 * column stores, and its type parameters carry what a row holds, so row types
 * are inferred from the definition.
 *
 * @module
 */
import { ConfigError } from "../errors.ts";
import { compile, Sql } from "../sql.ts";
import { NOW } from "./ddl.ts";

/** What a column stores; each maps to the closest type of every dialect. */
export type ColumnKind =
  | "serial"
  | "bigserial"
  | "integer"
  | "bigint"
  | "real"
  | "numeric"
  | "text"
  | "varchar"
  | "uuid"
  | "boolean"
  | "timestamp"
  | "json"
  | "blob";

/** What a referencing row does when the row it references is deleted. */
export type ReferenceAction = "cascade" | "restrict" | "set null" | "no action";

/** A foreign key: the referenced table's name and column. */
export interface ColumnReference {
  /** The referenced table, as defined with `defineTable` (a function, for tables that refer to each other). */
  readonly table: () => ReferencedTable;
  /** The referenced column; the referenced table's one-column primary key when omitted. */
  readonly column?: string;
  /** What happens to this row when the referenced one is deleted. */
  readonly onDelete?: ReferenceAction;
}

/** What `references()` needs of the referenced table. */
export interface ReferencedTable {
  /** Its name. */
  readonly name: string;
  /** Its primary key's columns. */
  readonly primaryKey?: readonly string[];
}

/** The column a foreign key references: the given one, or the referenced table's one-column primary key. */
export function referencedColumn(reference: Pick<ColumnReference, "table" | "column">): string {
  if (reference.column !== undefined) return reference.column;
  const target = reference.table();
  if (target.primaryKey?.length !== 1) {
    throw new ConfigError(`a reference to "${target.name}" needs the column: its primary key is not one column`);
  }
  return target.primaryKey[0];
}

/** Everything a column definition says, as plain data. */
export interface ColumnSpec {
  /** What the column stores. */
  readonly kind: ColumnKind;
  /** `varchar` length; `numeric` precision. */
  readonly size?: number;
  /** `numeric` scale. */
  readonly scale?: number;
  /** Whether the column accepts NULL. */
  readonly nullable: boolean;
  /** Whether the column is the table's primary key. */
  readonly primaryKey: boolean;
  /** Whether the column's values are unique. */
  readonly unique: boolean;
  /** The column's default: a value, or an `sql` fragment without parameters. */
  readonly default?: { readonly value: unknown };
  /** The foreign key, when the column references another table. */
  readonly references?: ColumnReference;
}

/**
 * One column of a table definition. `Value` is what the column holds,
 * `Nullable` whether a row may hold `null` there, and `Optional` whether an
 * insert may leave it out (a default fills it).
 */
export class Column<Value, Nullable extends boolean = true, Optional extends boolean = false> {
  /** Type carrier only: the column's value type. */
  declare readonly valueType: Value;
  /** Type carrier only: whether the column is nullable. */
  declare readonly nullableType: Nullable;
  /** Type carrier only: whether inserts may omit the column. */
  declare readonly optionalType: Optional;
  /** The definition as data. */
  readonly spec: ColumnSpec;

  /** Wraps a definition; use the `column.*` builders. */
  constructor(spec: ColumnSpec) {
    this.spec = Object.freeze(spec);
  }

  /** Refuses NULL. */
  notNull(): Column<Value, false, Optional> {
    return new Column({ ...this.spec, nullable: false });
  }

  /** Makes the column the table's primary key (and NOT NULL). */
  primaryKey(): Column<Value, false, Optional> {
    return new Column({ ...this.spec, nullable: false, primaryKey: true });
  }

  /** Adds a UNIQUE constraint. */
  unique(): Column<Value, Nullable, Optional> {
    return new Column({ ...this.spec, unique: true });
  }

  /**
   * Sets the column's default, so inserts may leave it out: a value of the
   * column's type, or an `sql` fragment without parameters
   * (`sql\`current_timestamp\``).
   */
  default(value: Value | Sql): Column<Value, Nullable, true> {
    if (value instanceof Sql && compile(value, "sqlite").params.length > 0) {
      throw new ConfigError("a default written with sql`…` cannot have parameters: write the value itself");
    }
    return new Column({ ...this.spec, default: { value } });
  }

  /** Defaults the column to the instant of the insert (for `timestamp` columns). */
  defaultNow(): Column<Value, Nullable, true> {
    return new Column({ ...this.spec, default: { value: NOW } });
  }

  /**
   * Makes the column a foreign key to `column` of another table (its primary
   * key when omitted). Pass the table, or a function returning it when two
   * tables refer to each other.
   */
  references(
    table: ReferencedTable | (() => ReferencedTable),
    column?: string,
    options: { onDelete?: ReferenceAction } = {},
  ): Column<Value, Nullable, Optional> {
    const target = typeof table === "function" ? table : () => table;
    // A table given directly is known now; a function's table may be defined later, so its key is read at DDL time.
    const known = column ?? (typeof table === "function" ? undefined : referencedColumn({ table: target }));
    return new Column({ ...this.spec, references: { table: target, column: known, onDelete: options.onDelete } });
  }
}

function build<Value, Optional extends boolean = false>(
  kind: ColumnKind,
  extra: Partial<ColumnSpec> = {},
): Column<Value, true, Optional> {
  return new Column<Value, true, Optional>({ kind, nullable: true, primaryKey: false, unique: false, ...extra });
}

function positive(name: string, value: number, max: number): number {
  if (!Number.isInteger(value) || value < 1 || value > max) throw new ConfigError(`${name} must be 1 to ${max}`);
  return value;
}

/**
 * The column builders. Every column is nullable until `.notNull()` or
 * `.primaryKey()`; a serial column is filled by the database.
 *
 * @example
 * ```ts
 * import { column, defineTable } from "@roost/db/model";
 * const users = defineTable("users", {
 *   id: column.serial().primaryKey(),
 *   email: column.text().notNull().unique(),
 *   active: column.boolean().notNull().default(true),
 * });
 * ```
 */
export const column = {
  /** An auto-incrementing 32-bit integer key (`integer` identity, `int auto_increment`, SQLite's rowid). */
  serial: (): Column<number, true, true> => build<number, true>("serial"),
  /** An auto-incrementing 64-bit integer key, read as `bigint`. */
  bigserial: (): Column<bigint, true, true> => build<bigint, true>("bigserial"),
  /** A 32-bit integer. */
  integer: (): Column<number> => build<number>("integer"),
  /** A 64-bit integer, read as `bigint`. */
  bigint: (): Column<bigint> => build<bigint>("bigint"),
  /** A double-precision float. */
  real: (): Column<number> => build<number>("real"),
  /** An exact decimal, read as a string with every digit (text on SQLite, which has no exact type). */
  numeric: (precision = 18, scale = 0): Column<string> =>
    build<string>("numeric", { size: positive("precision", precision, 65), scale: Math.min(scale, precision) }),
  /** Text of any length (`varchar(255)` on MySQL when it is a key, unique or referenced, as MySQL keys need a length). */
  text: (): Column<string> => build<string>("text"),
  /** Text of at most `length` characters. */
  varchar: (length = 255): Column<string> => build<string>("varchar", { size: positive("length", length, 65_535) }),
  /** A UUID, as text (`uuid` on Postgres). */
  uuid: (): Column<string> => build<string>("uuid"),
  /** A boolean (`tinyint(1)` on MySQL, `0`/`1` on SQLite, read back as `true`/`false` everywhere). */
  boolean: (): Column<boolean> => build<boolean>("boolean"),
  /** An instant, read as a `Date` (`timestamptz`, `datetime(3)` in UTC, ISO text on SQLite). */
  timestamp: (): Column<Date> => build<Date>("timestamp"),
  /** A JSON document (`jsonb` on Postgres), written and read as the value itself. */
  json: <T = unknown>(): Column<T> => build<T>("json"),
  /** Bytes, read as a `Uint8Array`. */
  blob: (): Column<Uint8Array> => build<Uint8Array>("blob"),
};
