/**
 * Splits a migration's SQL text into the statements drivers run one at a
 * time.
 *
 * @module
 */
import type { DialectName } from "../dialect.ts";
import { skipQuoted } from "../placeholders.ts";

const wordStart = /[A-Za-z_]/;
const wordChar = /[A-Za-z0-9_$]/;

/** The words that make a statement's `BEGIN … END` body one statement, per dialect. */
const routineWords: Record<DialectName, ReadonlySet<string>> = {
  sqlite: new Set(["TRIGGER"]),
  mysql: new Set(["TRIGGER", "PROCEDURE", "FUNCTION", "EVENT"]),
  postgres: new Set(),
};

/** MySQL's compound statements whose `END` is followed by their own name (`END IF`), which `BEGIN` did not open. */
const compoundEnds = new Set(["IF", "WHILE", "LOOP", "REPEAT"]);

/** True for a comment that is only a comment (MySQL runs its executable comments, `/*!…`, as code). */
function isComment(text: string, i: number, dialect: DialectName): boolean {
  const c = text[i];
  if (c === "-" || c === "#") return true;
  return c === "/" && !(dialect === "mysql" && text[i + 2] === "!");
}

/** The word that starts at `i`, upper-cased, or `undefined` when none starts there. */
function wordAt(text: string, i: number): string | undefined {
  if (!wordStart.test(text[i]) || wordChar.test(text[i - 1] ?? "")) return undefined;
  let end = i + 1;
  while (end < text.length && wordChar.test(text[end])) end++;
  return text.slice(i, end).toUpperCase();
}

/** The next word at or after `i`, skipping whitespace and comments. */
function nextWord(text: string, i: number, dialect: DialectName): string | undefined {
  while (i < text.length) {
    const skipped = skipQuoted(text, i, dialect);
    if (skipped !== i) {
      if (!isComment(text, i, dialect)) return undefined;
      i = skipped;
    } else if (/\s/.test(text[i])) {
      i++;
    } else {
      return wordAt(text, i);
    }
  }
  return undefined;
}

/**
 * Splits SQL text into statements, for running one by one (drivers take one
 * statement per call). The rules:
 *
 * - A `;` ends a statement, except inside a string (`'…'`, with backslash
 *   escapes on MySQL and in Postgres `E'…'`), a quoted identifier (`"…"`,
 *   `` `…` ``, SQLite's `[…]`), a comment (`-- …`, MySQL's `# …`, block
 *   comments, nested on Postgres) or a Postgres dollar-quoted body
 *   (`$$…$$`, `$fn$…$fn$`), so `CREATE FUNCTION … AS $$ …; … $$` and
 *   `DO $$ … $$` stay whole.
 * - A `BEGIN … END` body stays with its statement: SQLite's and MySQL's
 *   `CREATE TRIGGER … BEGIN …; …; END`, MySQL's `CREATE PROCEDURE`,
 *   `CREATE FUNCTION` and `CREATE EVENT` bodies, and Postgres's
 *   `BEGIN ATOMIC … END` function bodies. `CASE … END` inside a body is
 *   counted, and MySQL's `END IF`, `END WHILE`, `END LOOP` and `END REPEAT`
 *   close nothing `BEGIN` opened.
 * - Statements that hold only whitespace and comments are dropped; MySQL's
 *   executable comments (`/*!…`) count as code.
 * - The text is sent as written (comments included, surrounding whitespace
 *   trimmed, the final `;` removed). Client commands such as MySQL's
 *   `DELIMITER` or psql's `\i` are not SQL and are not understood; put such
 *   logic in a `.ts` migration instead.
 *
 * @example
 * ```ts
 * import { splitStatements } from "@roost/db/migrate";
 * splitStatements("create table t (s text); insert into t values ('a;b'); -- done", "sqlite");
 * // ["create table t (s text)", "insert into t values ('a;b')"]
 * ```
 */
export function splitStatements(text: string, dialect: DialectName): string[] {
  const statements: string[] = [];
  let start = 0;
  let hasCode = false;
  /** The statement's leading words, up to its first `BEGIN` (to spot routines). */
  const leading: string[] = [];
  let routine = false;
  let depth = 0;
  const end = (at: number) => {
    if (hasCode) statements.push(text.slice(start, at).trim());
    start = at + 1;
    hasCode = false;
    leading.length = 0;
    routine = false;
    depth = 0;
  };
  for (let i = 0; i < text.length;) {
    const skipped = skipQuoted(text, i, dialect);
    if (skipped !== i) {
      if (!isComment(text, i, dialect)) hasCode = true;
      i = skipped;
      continue;
    }
    const c = text[i];
    if (c === ";") {
      if (depth === 0) end(i);
      i++;
      continue;
    }
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    hasCode = true;
    const word = wordAt(text, i);
    if (word === undefined) {
      i++;
      continue;
    }
    if (depth === 0 && leading.length < 8) {
      leading.push(word);
      if (leading[0] === "CREATE" && routineWords[dialect].has(word)) routine = true;
    }
    if (word === "BEGIN") {
      if (routine || depth > 0) depth++;
      else if (dialect === "postgres" && leading[0] === "CREATE" && nextWord(text, i + 5, dialect) === "ATOMIC") {
        depth++;
      }
    } else if (word === "CASE") {
      if (depth > 0) depth++;
    } else if (word === "END" && depth > 0) {
      const following = dialect === "mysql" ? nextWord(text, i + 3, dialect) : undefined;
      if (following === undefined || !compoundEnds.has(following)) depth--;
    }
    i += word.length;
  }
  end(text.length);
  return statements;
}
