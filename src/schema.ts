/**
 * `db.schema`: creates and drops the tables defined with `defineTable`
 * (from `@roost/db/model`), in the order their foreign keys need.
 *
 * @module
 */
import type { DialectName } from "./dialect.ts";
import type { ExecuteResult } from "./driver.ts";
import { ConfigError } from "./errors.ts";

/** What `db.schema` needs of a table definition; `defineTable` returns one. */
export interface TableDefinition {
  /** The table's name. */
  readonly name: string;
  /** The statements that create the table (if it does not exist) and its indexes. */
  createStatements(dialect: DialectName): string[];
  /** The statement that drops the table (if it exists). */
  dropStatement(dialect: DialectName): string;
  /** The tables this one references. */
  dependencies(): readonly TableDefinition[];
}

/** Every table defined so far, in definition order: what `createTables()` creates when given no list. */
export const definedTables: TableDefinition[] = [];

/** What the schema runs its statements through: a transaction on the database. */
export interface SchemaRunner {
  /** The database's dialect. */
  readonly dialect: DialectName;
  /** Runs `fn` in a transaction (a savepoint inside one). */
  transaction<T>(fn: (tx: { execute(text: string): Promise<ExecuteResult> }) => Promise<T>): Promise<T>;
}

/** The tables in an order where each comes after the tables it references (among those given). */
export function inDependencyOrder(tables: readonly TableDefinition[]): TableDefinition[] {
  const wanted = new Set(tables);
  const done = new Set<TableDefinition>();
  const visiting = new Set<TableDefinition>();
  const order: TableDefinition[] = [];
  const visit = (table: TableDefinition) => {
    if (done.has(table)) return;
    if (visiting.has(table)) throw new ConfigError(`tables reference each other in a cycle through "${table.name}"`);
    visiting.add(table);
    for (const dependency of table.dependencies()) {
      if (wanted.has(dependency) && dependency !== table) visit(dependency);
    }
    visiting.delete(table);
    done.add(table);
    order.push(table);
  };
  for (const table of tables) visit(table);
  return order;
}

/**
 * Creates and drops tables on one database, each call in one transaction
 * (on MySQL DDL commits as it runs, so a failure there can leave the tables
 * created before it).
 */
export class Schema {
  readonly #runner: SchemaRunner;

  /** A schema for one database; use `db.schema`. */
  constructor(runner: SchemaRunner) {
    this.#runner = runner;
  }

  /**
   * Creates the given tables, or every table defined with `defineTable` so
   * far, where they do not exist yet, referenced tables first. Returns the
   * tables' names in the order they were created.
   */
  async createTables(tables: readonly TableDefinition[] = definedTables): Promise<string[]> {
    const order = inDependencyOrder(tables);
    await this.#runner.transaction(async (tx) => {
      for (const table of order) {
        for (const text of table.createStatements(this.#runner.dialect)) await tx.execute(text);
      }
    });
    return order.map((table) => table.name);
  }

  /**
   * Drops the given tables, or every table defined with `defineTable` so
   * far, where they exist, referencing tables first. Returns the names in
   * the order they were dropped.
   */
  async dropTables(tables: readonly TableDefinition[] = definedTables): Promise<string[]> {
    const order = inDependencyOrder(tables).reverse();
    await this.#runner.transaction(async (tx) => {
      for (const table of order) await tx.execute(table.dropStatement(this.#runner.dialect));
    });
    return order.map((table) => table.name);
  }
}
