/**
 * Reliability with bad input. (Any string, any value and any URL-shaped text
 * given as a URL or options: tests/unit/options.test.ts.) On every target, `sql.ident` round-trips hostile
 * identifiers within each dialect's documented rules, values full of SQL
 * metacharacters are stored verbatim through the `sql` tag and through native
 * placeholders, and too many parameters or a parameters array that does not
 * match its placeholders are typed QueryErrors that leave the pool usable.
 * Properties run with fast-check, which prints its seed on failure.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { inspect } from "node:util";
import fc from "fast-check";
import { compile, ConfigError, Database, type DialectName, QueryError, sql } from "../../mod.ts";
import { describeError, postgresJsMajor, runtime, skipUnless, uniqueName, uniqueTable } from "../support/support.ts";
import { matches, type Target, targets } from "../support/targets.ts";

/** Bun's default of 5 s per test is too short for the database properties. */
const slow = { timeout: 30_000 };

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/** The error a promise rejects with; fails when it fulfils. */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  let value: unknown;
  try {
    value = await promise;
  } catch (error) {
    return error;
  }
  assert.fail(`expected a rejection, but it fulfilled with ${inspect(value)}`);
}

/** Asserts a QueryError with `code` (when given) and a message matching each of `patterns`. */
function assertQueryError(error: unknown, code: string | RegExp | undefined, ...patterns: RegExp[]): void {
  assert.ok(error instanceof QueryError, `expected a QueryError, got ${describeError(error)}`);
  if (typeof code === "string") assert.equal(error.code, code, `wrong code on ${describeError(error)}`);
  if (code instanceof RegExp) assert.match(String(error.code), code, `wrong code on ${describeError(error)}`);
  for (const pattern of patterns) assert.match(error.message, pattern, `message of ${describeError(error)}`);
}

/** Rejects when `promise` has not settled within `ms` (a hung driver must fail the test, not stall it). */
async function settles<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The dialect's native placeholder for the `index`-th parameter (1-based). */
function placeholder(dialect: DialectName, index: number): string {
  return dialect === "postgres" ? `$${index}` : "?";
}

// ---------------------------------------------------------------------------
// 2. Identifiers
// ---------------------------------------------------------------------------

/** Characters MySQL/MariaDB refuse at the end of a name (its isspace(); observed on MariaDB 10.11). */
const mysqlTrailingSpace = /[ \t\n\v\f\r]$/;

/** Bytes of a MySQL table's file name: characters outside [A-Za-z0-9_] are written as `@xxxx`. */
function mysqlFileNameBytes(name: string): number {
  let bytes = 0;
  for (const ch of name) bytes += /^[A-Za-z0-9_]$/.test(ch) ? 1 : 5;
  return bytes;
}

/**
 * Whether a dialect accepts `name` as a quoted identifier, by its documented rules:
 * - all: no NUL (no server accepts U+0000 in a name, and `sql.ident` refuses it) and well-formed UTF-16
 *   (a lone surrogate cannot be sent as UTF-8).
 * - Postgres: at most 63 bytes of UTF-8 (NAMEDATALEN - 1); longer names are truncated (tested on their own).
 * - MySQL/MariaDB: at most 64 characters, all in the Basic Multilingual Plane (the manual: "ASCII NUL (U+0000)
 *   and supplementary characters (U+10000 and higher) are not permitted in quoted or unquoted identifiers"),
 *   and "Database, table, and column names cannot end with space characters", the server's isspace(): a
 *   trailing space, tab, newline, vertical tab, form feed or carriage return (U+00A0, U+0085, U+2028 pass).
 *   A table name is also a file name, and each character outside [A-Za-z0-9_] takes 5 of its 255 bytes.
 * - SQLite: no length limit worth the name; a table name must not start with "sqlite_" (reserved).
 */
function identifierAllowed(dialect: DialectName, name: string, role: "table" | "column"): boolean {
  if (name === "" || name.includes("\u0000") || !name.isWellFormed()) return false;
  switch (dialect) {
    case "postgres":
      return new TextEncoder().encode(name).length <= 63;
    case "mysql":
      return [...name].length <= 64 && !/[\u{10000}-\u{10FFFF}]/u.test(name) && !mysqlTrailingSpace.test(name) &&
        (role === "column" || mysqlFileNameBytes(name) <= 240);
    case "sqlite":
      return role === "column" || !name.toLowerCase().startsWith("sqlite_");
  }
}

/** A table name holding `name` and a unique part: after it, unless `name` ends in whitespace. */
function tableNameFor(name: string, unique: string): string {
  return /\s$/u.test(name) ? `${unique}_${name}` : `${name}_${unique}`;
}

/** Stands for a `uniqueName()` result when checking lengths (those are about 25 ASCII characters). */
const uniqueStandIn = "x".repeat(30);

/** Hostile identifiers: quotes of every dialect, spaces, non-ASCII, SQL punctuation. */
const hostileIdentifiers = [
  'double"quote',
  '"',
  '""',
  "back`tick",
  "`",
  "single'quote",
  "'",
  "with space",
  " leading space",
  "trailing space ",
  "   ",
  "trailing tab\t",
  "café",
  "straße",
  "漢字",
  "Привет мир",
  "emoji 😀",
  "family 👩‍👩‍👧‍👦",
  "a.b",
  "a;b",
  "; drop table x; --",
  "a--b",
  "--",
  "a/*b",
  "/*",
  "*/",
  "$1",
  "?",
  ":name",
  "@x",
  "%s",
  "back\\slash",
  "tab\there",
  "new\nline",
  "UPPER lower",
  "0",
  "123",
  "select",
  "[bracket]",
  "\u00a0nbsp\u00a0",
  "x".repeat(60),
];

/**
 * Names that are the internals of a JavaScript object (mysql2 refuses the first five itself); a row must
 * still hold each as an own key. Tested on their own, so the identifier property leaves them out.
 */
const objectInternals = [
  "__proto__",
  "__defineGetter__",
  "__defineSetter__",
  "__lookupGetter__",
  "__lookupSetter__",
  "constructor",
  "toString",
  "hasOwnProperty",
  "valueOf",
  "isPrototypeOf",
];

/** Identifier characters worth mixing: quotes, punctuation, whitespace, non-ASCII, astral. */
const identifierUnit = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      ...['"', "`", "'", " ", ".", ";", "-", "/", "*", "\\", "?", "$", ":", "@", "%", "\t", "\n", "[", "]"],
      ...["é", "ß", "漢", "字", "Ж", "ы", "😀", "👩‍👩‍👧"],
    ),
  },
  { weight: 2, arbitrary: fc.string({ unit: "grapheme", minLength: 1, maxLength: 1 }) },
  { weight: 3, arbitrary: fc.constantFrom(..."abcxyzABC019_") },
);

/** Identifiers the dialect's rules allow, as a column and inside a table name. */
function identifierArb(dialect: DialectName): fc.Arbitrary<string> {
  return fc.string({ unit: identifierUnit, minLength: 1, maxLength: 16 }).filter((name) =>
    !objectInternals.includes(name) && identifierAllowed(dialect, name, "column") &&
    identifierAllowed(dialect, tableNameFor(name, uniqueStandIn), "table")
  );
}

/**
 * Creates a table and a column named by `name` (the table's name holds a unique part too, unless that
 * makes it too long), fills and reads them, and drops the table.
 */
async function identifierRoundTrip(db: Database, dialect: DialectName, name: string): Promise<void> {
  const unique = uniqueName("bi");
  const tableName = identifierAllowed(dialect, tableNameFor(name, uniqueStandIn), "table")
    ? tableNameFor(name, unique)
    : unique;
  const table = sql.ident(tableName);
  const column = sql.ident(name);
  const value = `value of ${name}`;
  await db.execute(sql`create table ${table} (${column} text)`);
  try {
    await db.execute(sql`insert into ${table} (${column}) values (${value})`);
    const rows = await db.fetchAll(sql`select * from ${table}`);
    assert.equal(rows.length, 1);
    assert.deepEqual(Object.keys(rows[0]), [name], `the column key of ${JSON.stringify(name)}`);
    assert.equal(rows[0][name], value);
    const qualified = await db.fetchAll(
      sql`select ${sql.ident(tableName, name)} from ${table} where ${column} = ${value}`,
    );
    assert.deepEqual(qualified.map((row) => Object.entries(row)), [[[name, value]]], "selected by qualified name");
  } finally {
    await db.execute(sql`drop table ${table}`);
  }
}

/** `text` truncated to at most `bytes` bytes of UTF-8, at a character boundary. */
function truncateUtf8(text: string, bytes: number): string {
  let out = "";
  let used = 0;
  for (const ch of text) {
    const size = new TextEncoder().encode(ch).length;
    if (used + size > bytes) break;
    out += ch;
    used += size;
  }
  return out;
}

describe("bad input: sql.ident", () => {
  test("a NUL in any name is a QueryError (ROOST_INVALID_QUERY) at the call", () => {
    for (const names of [["a\u0000b"], ["\u0000"], ["public", "t\u0000"], ["s\u0000", "t"]]) {
      let error: unknown;
      try {
        sql.ident(...names);
      } catch (caught) {
        error = caught;
      }
      assert.ok(error !== undefined, `sql.ident(${JSON.stringify(names)}) did not throw`);
      assertQueryError(error, "ROOST_INVALID_QUERY");
    }
  });
});

// ---------------------------------------------------------------------------
// 3. Values with SQL metacharacters
// ---------------------------------------------------------------------------

/** Values full of what SQL, drivers and placeholders treat specially. */
const metaValues = [
  "'",
  "''",
  '"',
  "`",
  "\\",
  "\\'",
  "';",
  ";",
  "--",
  "-- comment",
  "/*",
  "*/",
  "/* x */",
  "$1",
  "$2$",
  "$$",
  "$tag$",
  "?",
  "??",
  "?1",
  ":name",
  "@x",
  "@@version",
  "%s",
  "%",
  "_",
  "\n",
  "\r",
  "\t",
  "\r\n",
  "\\n",
  "a'b\"c`d\\e",
  "'); drop table x; --",
  "\\'; select 1; --",
  "é",
  "漢字",
  "Привет",
  "😀",
  "👩‍👩‍👧‍👦",
  "𝕏\u{10FFFF}",
  "\uFEFF",
  "\u200B",
  "",
  " ",
  "  spaces around  ",
  "\u0001\u001f\u007f",
  "null",
  "NULL",
  "undefined",
  "0x41",
  "1e999",
];

/** Characters mixed into the value property. */
const metaUnit = fc.oneof(
  { weight: 2, arbitrary: fc.constantFrom(..."'\"`\\;-/*$?:@%_\n\r\t ", "--", "/*", "*/", "$1", "😀", "\u{10FFFF}") },
  { weight: 3, arbitrary: fc.string({ unit: "grapheme", minLength: 1, maxLength: 1 }) },
);
/** Well-formed strings without NUL (a NUL is tested on its own; a lone surrogate cannot be UTF-8). */
const metaValueArb = fc.oneof(fc.string({ unit: metaUnit, maxLength: 40 }), fc.string({ unit: "grapheme" }))
  .filter((value) => !value.includes("\u0000"));

/** The SQLite parameter limit (SQLITE_MAX_VARIABLE_NUMBER) of each driver's build, where known. */
const sqliteParameterLimits: Partial<Record<string, number>> = {
  "node-sqlite": 32766, // Node 24 and Deno 2.9 node:sqlite: SQLite's default since 3.32
  "bun-sqlite": 250000, // Bun 1.4 bun:sqlite: compiled with SQLITE_MAX_VARIABLE_NUMBER=250000
};

// ---------------------------------------------------------------------------
// 2–5 on every target
// ---------------------------------------------------------------------------

function targetTests(target: Target): void {
  const { dialect } = target;
  let db: Database;

  before(() => {
    db = target.open();
  });
  after(async () => {
    await db.close();
  });

  test(
    "an sslrootcert file that cannot be read is a ConfigError naming the option, and no connection stays open",
    skipUnless(matches(target, { places: ["postgres"] }), "about a Postgres server's sslrootcert"),
    async () => {
      const url = new URL(target.url);
      url.searchParams.set("sslmode", "require");
      url.searchParams.set("sslrootcert", `/nonexistent/${uniqueName("ca")}.pem`);
      const bad = new Database(url.toString(), { driver: target.driver });
      try {
        // deno-postgres: a ConnectionError before (the file was read inside its connect).
        const error = await bad.fetchVal(sql`select 1`).then(() => undefined, (caught: unknown) => caught);
        assert.ok(error instanceof ConfigError, `got ${String(error)}`);
        assert.match(error.message, /sslrootcert/);
        assert.deepEqual(bad.stats().primary, { size: 0, idle: 0, busy: 0, waiting: 0 });
      } finally {
        await bad.close();
      }
    },
  );

  // 2. Identifiers

  test(
    "sql.ident: a table and a column named by each hostile identifier are created, filled and read back",
    slow,
    async () => {
      for (const name of hostileIdentifiers) {
        if (!identifierAllowed(dialect, name, "column")) continue;
        await identifierRoundTrip(db, dialect, name).catch((error) => {
          throw new Error(`identifier ${JSON.stringify(name)}: ${describeError(error)}`, { cause: error });
        });
      }
    },
  );

  if (dialect === "mysql") {
    test(
      "sql.ident: names MySQL/MariaDB forbids (trailing whitespace, beyond the BMP) are QueryErrors",
      slow,
      async () => {
        const forbidden = hostileIdentifiers.filter((name) => !identifierAllowed(dialect, name, "column"));
        assert.deepEqual(forbidden, ["trailing space ", "   ", "trailing tab\t", "emoji 😀", "family 👩‍👩‍👧‍👦"]);
        /** The error creating `table` fails with; a table that was created after all is dropped. */
        const refusal = async (table: ReturnType<typeof sql.ident>, column: ReturnType<typeof sql.ident>) => {
          try {
            await db.execute(sql`create table ${table} (${column} text)`);
          } catch (error) {
            return error;
          }
          await db.execute(sql`drop table ${table}`);
          assert.fail(`create table ${compile(table, dialect).text} (${compile(column, dialect).text}) succeeded`);
        };
        const refused = /^(ER_WRONG_COLUMN_NAME|ER_WRONG_TABLE_NAME|ER_INVALID_CHARACTER_STRING|42000|HY000)$/;
        for (const name of [...forbidden, "x\r", "x\n", "x\v", "x\f", "astral 𝕏"]) {
          assertQueryError(await refusal(uniqueTable("bi_forbidden"), sql.ident(name)), refused);
          // As the end of a table name: refused too.
          assertQueryError(await refusal(sql.ident(`${uniqueName("bi")}_${name}`), sql.ident("a")), refused);
        }
      },
    );
  }

  /**
   * postgres.js and mysql2 build rows themselves (docs/values.md): postgres.js 3.4 assigns `row.__proto__ = value`,
   * which drops that column (except on Deno, which has no `__proto__` setter; 4.x defines the column as an own key),
   * and mysql2 refuses to read a column named like an Object.prototype member. Roost builds the other drivers' rows.
   */
  const dropsProto = target.driver === "postgres-js" && runtime !== "deno" && postgresJsMajor < 4;
  const refusesInternals = target.driver === "mysql2";
  test(
    "sql.ident: columns named like JavaScript object internals (__proto__, constructor …) are own keys of the row",
    slow,
    async () => {
      const table = uniqueTable("bi_internals");
      const columns = sql.join(objectInternals.map((name) => sql`${sql.ident(name)} text`));
      await db.execute(sql`create table ${table} (${columns})`);
      try {
        await db.execute(sql`insert into ${table} values (${sql.join(objectInternals.map((name) => `v ${name}`))})`);
        if (refusesInternals) {
          assertQueryError(await rejection(db.fetchAll(sql`select * from ${table}`)), undefined, /__proto__/);
          return;
        }
        const rows = await db.fetchAll(sql`select * from ${table}`).catch((error) => {
          throw new Error(`reading the row failed: ${describeError(error)}`, { cause: error });
        });
        const row = rows[0];
        const expected = dropsProto ? objectInternals.filter((name) => name !== "__proto__") : objectInternals;
        assert.deepEqual(Object.keys(row), expected, "the row's own keys");
        for (const name of expected) {
          assert.equal(Object.getOwnPropertyDescriptor(row, name)?.value, `v ${name}`, name);
        }
        assert.equal(Object.getPrototypeOf(row), Object.prototype, "a row is a plain object");
      } finally {
        await db.execute(sql`drop table ${table}`);
      }
    },
  );

  test(
    "a column named __proto__ whose values are converted (a 64-bit integer) is an own key of the row too",
    skipUnless(!refusesInternals && !dropsProto, "postgres.js 3 and mysql2 build their rows themselves (see above)"),
    async () => {
      const big = dialect === "mysql" ? sql`cast(5 as signed)` : sql`cast(5 as bigint)`;
      const row = await db.fetchOne(sql`select ${big} as ${sql.ident("__proto__")}, ${big} as b`);
      assert.ok(row !== undefined);
      assert.deepEqual(Object.keys(row), ["__proto__", "b"]);
      assert.equal(Object.getOwnPropertyDescriptor(row, "__proto__")?.value, 5);
      assert.equal(Object.getPrototypeOf(row), Object.prototype, "a row is a plain object");
    },
  );

  test("a row is the caller's: changing it changes no other row, of this result or of the same statement run again", async () => {
    const text = sql`select 1 as a, 'x' as b union all select 2, 'y'`;
    const withParam = sql`select 1 as a, 'x' as b where 1 = ${1}`;
    for (const query of [text, withParam]) {
      const first = await db.fetchAll<{ a: unknown; b: unknown }>(query);
      first[0].a = 99;
      delete (first[0] as { b?: unknown }).b;
      const again = await db.fetchAll<{ a: unknown; b: unknown }>(query);
      assert.deepEqual(again[0], { a: 1, b: "x" });
      assert.notEqual(again[0], first[0]);
      assert.equal(Object.getPrototypeOf(again[0]), Object.prototype, "a row is a plain object");
      if (first.length > 1) assert.deepEqual(first[1], { a: 2, b: "y" });
    }
  });

  test("statements one after the other with the same column names but other types are each read by their own", async () => {
    const big = dialect === "mysql" ? "signed" : "bigint";
    const statements: [string, unknown][] = [
      [`select cast(5 as ${big}) as v`, 5],
      ["select 'x' as v", "x"],
      [`select cast(9007199254740993 as ${big}) as v`, 9_007_199_254_740_993n],
      ...(dialect === "sqlite" ? [] : [["select date '2024-01-02' as v", "2024-01-02"] as [string, unknown]]),
    ];
    // Twice round, so each statement follows another with the same name (for drivers that remember the last shape).
    for (const [text, expected] of [...statements, ...statements]) {
      assert.deepEqual(await db.fetchOne(sql.unsafe(text)), { v: expected }, text);
    }
  });

  test(
    "sql.ident property: any identifier within the dialect's rules round-trips as table and column",
    slow,
    async () => {
      await fc.assert(fc.asyncProperty(identifierArb(dialect), (name) => identifierRoundTrip(db, dialect, name)), {
        numRuns: 30,
      });
    },
  );

  if (dialect === "postgres") {
    test(
      "sql.ident beyond 63 bytes: Postgres truncates the name silently, so two long names can collide",
      slow,
      async () => {
        const unique = uniqueName("bi_long");
        const longColumn = "é".repeat(35); // 70 bytes
        const longTable = `${unique}_${"t".repeat(70)}`;
        const truncatedColumn = truncateUtf8(longColumn, 63);
        const truncatedTable = truncateUtf8(longTable, 63);
        assert.equal(truncatedColumn, "é".repeat(31));
        await db.execute(sql`create table ${sql.ident(longTable)} (${sql.ident(longColumn)} text)`);
        try {
          await db.execute(sql`insert into ${sql.ident(longTable)} values (${"v"})`);
          // The row's key is the truncated name: the long one the query used is gone.
          assert.deepEqual(await db.fetchAll(sql`select * from ${sql.ident(longTable)}`), [{ [truncatedColumn]: "v" }]);
          // The table answers to its truncated name.
          assert.equal(await db.fetchVal(sql`select count(*)::int from ${sql.ident(truncatedTable)}`), 1);
          // A different name with the same first 63 bytes is the same table.
          const error = await rejection(db.execute(sql`create table ${sql.ident(`${longTable}_other`)} (a int)`));
          assertQueryError(error, "42P07");
        } finally {
          await db.execute(sql`drop table if exists ${sql.ident(longTable)}`);
        }
      },
    );
  }

  // 3. Values

  /** Inserts `values` through the sql tag and through native placeholders, and reads each back both ways. */
  /** Text this target reads back whole: PGlite drops one leading U+FEFF (a documented quirk, docs/values.md). */
  const readsWhole = (value: string) => !(target.quirks.has("text-drops-leading-bom") && value.startsWith("\uFEFF"));

  async function valuesRoundTrip(given: readonly string[]): Promise<void> {
    const values = given.filter(readsWhole);
    const table = uniqueTable("bi_values");
    const tableText = compile(table, dialect).text;
    const p = (index: number) => placeholder(dialect, index);
    await db.execute(sql`create table ${table} (id integer primary key, v text)`);
    try {
      for (const [i, value] of values.entries()) {
        await db.execute(sql`insert into ${table} (id, v) values (${2 * i}, ${value})`);
        await db.execute(`insert into ${tableText} (id, v) values (${p(1)}, ${p(2)})`, [2 * i + 1, value]);
      }
      for (const [i, value] of values.entries()) {
        const context = `value ${JSON.stringify(value)}`;
        assert.equal(await db.fetchVal(sql`select v from ${table} where id = ${2 * i}`), value, `${context} (sql tag)`);
        assert.equal(
          await db.fetchVal(`select v from ${tableText} where id = ${p(1)}`, [2 * i + 1]),
          value,
          `${context} (native placeholders)`,
        );
      }
    } finally {
      await db.execute(sql`drop table ${table}`);
    }
  }

  test(
    "values with SQL metacharacters are stored verbatim through the sql tag and native placeholders",
    slow,
    async () => {
      await valuesRoundTrip(metaValues);
    },
  );

  test("value property: any well-formed string without NUL round-trips verbatim", slow, async () => {
    await fc.assert(fc.asyncProperty(fc.array(metaValueArb, { minLength: 1, maxLength: 3 }), valuesRoundTrip), {
      numRuns: 25,
    });
  });

  if (dialect === "postgres") {
    test(
      "a NUL in a text value: Postgres refuses it with a QueryError (22021), and the pool still serves",
      slow,
      async () => {
        const table = uniqueTable("bi_nul");
        await db.execute(sql`create table ${table} (v text)`);
        try {
          for (
            const attempt of [
              () => db.execute(sql`insert into ${table} (v) values (${"a\u0000b"})`),
              () => db.execute(`insert into ${compile(table, dialect).text} (v) values ($1)`, ["a\u0000b"]),
              () => db.fetchVal(sql`select ${"\u0000"}::text as v`),
            ]
          ) {
            assertQueryError(await rejection(attempt()), "22021", /invalid byte sequence for encoding "UTF8": 0x00/);
          }
          assert.equal(await db.fetchVal(sql`select count(*)::int from ${table}`), 0);
        } finally {
          await db.execute(sql`drop table ${table}`);
        }
      },
    );
  } else {
    // Deno's node:sqlite and @db/sqlite (deno-sqlite, which reads text as a C string) cut text at its first NUL
    // when they read it (docs/values.md); the bytes are stored whole.
    const cut = runtime === "deno" && (target.driver === "node-sqlite" || target.driver === "deno-sqlite");
    const read = cut ? "read back cut at the NUL (a documented difference of this driver)" : "read back whole";
    test(`a NUL in a text value is stored whole and ${read}`, slow, async () => {
      const table = uniqueTable("bi_nul");
      const bytes = dialect === "mysql" ? sql`octet_length(v)` : sql`length(cast(v as blob))`;
      await db.execute(sql`create table ${table} (id integer, v text)`);
      try {
        await db.execute(sql`insert into ${table} (id, v) values (${1}, ${"a\u0000b"})`);
        await db.execute(`insert into ${compile(table, dialect).text} (id, v) values (?, ?)`, [2, "\u0000x\u0000"]);
        assert.deepEqual(await db.fetchAll(sql`select ${bytes} as n from ${table} order by id`), [{ n: 3 }, { n: 3 }]);
        assert.deepEqual(await db.fetchAll(sql`select v from ${table} order by id`), [{ v: cut ? "a" : "a\u0000b" }, {
          v: cut ? "" : "\u0000x\u0000",
        }]);
      } finally {
        await db.execute(sql`drop table ${table}`);
      }
    });
  }

  // 4. Too many parameters

  /** A query with `n` bound parameters, true when 1 is among them. */
  const manyParameters = (n: number) =>
    sql`select 1 as x where 1 in (${sql.join(Array.from({ length: n }, (_, i) => i + 1))})`;

  if (dialect === "sqlite") {
    const limit = sqliteParameterLimits[target.driver];
    test(
      `more parameters than this SQLite build allows (${limit ?? "unknown"}): ROOST_TOO_MANY_PARAMETERS saying so`,
      slow,
      async () => {
        const own = target.open({ pool: { max: 1 } });
        try {
          if (limit !== undefined) assert.equal(await own.fetchVal(manyParameters(limit)), 1, `${limit} parameters`);
          const over = (limit ?? 250_000) + 1;
          const error = await rejection(settles(own.fetchVal(manyParameters(over)), 15_000, `${over} parameters`));
          assertQueryError(error, "ROOST_TOO_MANY_PARAMETERS", /too many SQL variables/);
          assert.equal(Number(await own.fetchVal(sql`select ${7} as x`)), 7, "the connection still serves");
        } finally {
          await own.close({ timeout: 1_000 });
        }
      },
    );
  } else {
    /**
     * The most parameters a statement can bind: 65535 on both protocols (a 16-bit count), but postgres.js
     * refuses 65534 and more (node_modules/postgres/src/connection.js:186, `>= 65534`), and a second such
     * query on the same connection then never settles: Roost must refuse them before the driver sees them.
     */
    const limit = target.driver === "postgres-js" ? 65_533 : 65_535;

    test(
      `more than ${limit} parameters: QueryError ROOST_TOO_MANY_PARAMETERS naming ${limit}, each time; the pool still serves`,
      slow,
      async () => {
        const own = target.open({ pool: { max: 1 } });
        try {
          for (const n of [limit + 1, limit + 1, 65_536, 65_536]) {
            const error = await rejection(settles(own.fetchVal(manyParameters(n)), 15_000, `${n} parameters`));
            // Past the protocol's 65535 the dialect's limit is named; up to it, the driver's own.
            const named = n > 65_535 ? 65_535 : limit;
            assertQueryError(
              error,
              "ROOST_TOO_MANY_PARAMETERS",
              new RegExp(`\\b${named}\\b`),
              new RegExp(`\\b${n}\\b`),
            );
          }
          assert.equal(Number(await settles(own.fetchVal(sql`select ${7} as x`), 15_000, "a query after")), 7);
        } finally {
          await own.close({ timeout: 1_000 });
        }
      },
    );

    test(`exactly ${limit} parameters run${limit === 65_535 ? " (the protocol's maximum)" : ""}`, slow, async () => {
      const own = target.open({ pool: { max: 1 } });
      try {
        assert.equal(Number(await settles(own.fetchVal(manyParameters(limit)), 15_000, `${limit} parameters`)), 1);
      } finally {
        await own.close({ timeout: 1_000 });
      }
    });
  }

  // 5. Wrong parameter count

  test(
    "a parameters array shorter or longer than the placeholders: QueryError ROOST_PARAMETER_COUNT with both counts; the connection still serves",
    slow,
    async () => {
      const own = target.open({ pool: { max: 1 } });
      const text = dialect === "postgres" ? "select $1::int as a, $2::int as b" : "select ? as a, ? as b";
      try {
        for (const params of [[1], [1, 2, 3], []]) {
          const error = await rejection(settles(own.fetchAll(text, params), 15_000, `${params.length} parameters`));
          assertQueryError(error, "ROOST_PARAMETER_COUNT", /\b2\b/, new RegExp(`\\b${params.length}\\b`));
          assert.equal(await settles(own.fetchVal("select 7 as x"), 15_000, "a query after"), 7, "still serves");
        }
        assert.deepEqual(await own.fetchAll(text, [1, 2]), [{ a: 1, b: 2 }]);
      } finally {
        await own.close({ timeout: 1_000 });
      }
    },
  );

  test("placeholders inside string literals, quoted identifiers and comments are not counted", slow, async () => {
    const cases: [string, Record<string, unknown>][] = dialect === "postgres"
      ? [
        ["select '$1' as a, $1::int as b", { a: "$1", b: 1 }],
        ["select 'it''s $2' as a, $1::int as b", { a: "it's $2", b: 1 }],
        ["select E'\\' $2' as a, $1::int as b", { a: "' $2", b: 1 }],
        ["select $$ $2 ' $$ as a, $1::int as b", { a: " $2 ' ", b: 1 }],
        ["select $tag$ $2 $tag$ as a, $1::int as b", { a: " $2 ", b: 1 }],
        ['select $1::int as "$2"', { $2: 1 }],
        ["select $1::int as b -- $2\n", { b: 1 }],
        ["select /* $2 */ $1::int as b", { b: 1 }],
        ["select $1::int as a, $1::int + 1 as b", { a: 1, b: 2 }],
        [`select '{"k":1}'::jsonb ? 'k' as a, $1::int as b`, { a: true, b: 1 }],
      ]
      : [
        ["select '?' as a, ? as b", { a: "?", b: 1 }],
        ["select 'it''s ?' as a, ? as b", { a: "it's ?", b: 1 }],
        ["select ? as b -- ?\n", { b: 1 }],
        ["select /* ? */ ? as b", { b: 1 }],
        ...(dialect === "mysql"
          ? [
            ["select 'it\\'s ?' as a, ? as b", { a: "it's ?", b: 1 }],
            ['select "?" as a, ? as b', { a: "?", b: 1 }],
            ["select ? as `?`", { "?": 1 }],
            ["select ? as b # ?\n", { b: 1 }],
          ] as [string, Record<string, unknown>][]
          : [
            ['select ? as "?"', { "?": 1 }],
            ["select ? as [?]", { "?": 1 }],
          ] as [string, Record<string, unknown>][]),
      ];
    for (const [text, expected] of cases) {
      const rows = await db.fetchAll(text, [1]).catch((error) => {
        throw new Error(`${JSON.stringify(text)}: ${describeError(error)}`, { cause: error });
      });
      assert.deepEqual(rows, [expected], text);
    }
  });
}

for (const target of targets()) {
  describe(`bad input on ${target.label}`, () => targetTests(target));
}
