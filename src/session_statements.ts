/**
 * Which statements change the settings of the session they run on, so that
 * a pooled connection they ran on is not handed to anyone else afterwards
 * (see `Dialect.changesSession`). Read from the statement's first keywords,
 * past whitespace and comments, and from calls that set a setting or
 * variable inside another statement (Postgres's `set_config`, MySQL's
 * `@x := …`): cheap enough for every statement. Blind to a function that
 * runs `SET` itself.
 *
 * @module
 */

/**
 * A pattern's source matching the whitespace and comments before a
 * statement's first keyword, each read one way only:
 * a space at a time, a line comment to its line's end, a block comment to
 * its first `*` `/`. Patterns that can split the same text more ways (`\s+`
 * repeated, a lazy block comment that may run on into the next one) try
 * every way before failing: an indented template's 26 leading spaces took
 * 0.7 s a statement.
 */
export const beforeFirstKeyword = String.raw`^(?:\s|--[^\n]*(?:\n|$)|/\*(?:[^*]|\*(?!/))*\*/)*`;

const postgres = new RegExp(
  `${beforeFirstKeyword}(?:set(?!\\s+(?:local|transaction|constraints)\\b)|reset|discard)\\b`,
  "i",
);

const mysql = new RegExp(`${beforeFirstKeyword}(?:set(?!\\s+transaction\\b)|use)\\b`, "i");

/** A call of Postgres's `set_config`, anywhere in a statement. */
const setConfigCall = /\bset_config\s*\(/gi;

/** A literal that makes `set_config`'s third argument true: the setting ends with its transaction. */
const localLiteral = /^(?:true|'(?:t|true|y|yes|on|1)')(?:\s*::\s*bool(?:ean)?)?$/i;

/**
 * The argument at `index` (0-based) of the call whose argument list starts
 * at `start` (just past its parenthesis), trimmed; `undefined` if the call
 * has fewer. Quotes and nested parentheses are skipped over, each character
 * read once.
 */
function argumentOf(text: string, start: number, index: number): string | undefined {
  let depth = 0;
  let from = start;
  let quote = "";
  for (let i = start; i < text.length; i++) {
    const char = text[i];
    if (quote !== "") {
      if (char === quote) quote = "";
    } else if (char === "'" || char === '"') quote = char;
    else if (char === "(") depth++;
    else if (char === ")" && depth > 0) depth--;
    else if ((char === "," || char === ")") && depth === 0) {
      if (index === 0) return text.slice(from, i).trim();
      if (char === ")") return undefined;
      index--;
      from = i + 1;
    }
  }
  return undefined;
}

/**
 * Whether `set_config` appears in the text, in any case: a look at each `_`
 * only, cheaper on every statement than a case-blind pattern.
 */
function mentionsSetConfig(text: string): boolean {
  for (let i = text.indexOf("_"); i !== -1; i = text.indexOf("_", i + 1)) {
    if (i >= 3 && (text.charCodeAt(i + 1) | 32) === 99 && text.slice(i - 3, i + 7).toLowerCase() === "set_config") {
      return true;
    }
  }
  return false;
}

/**
 * Whether a statement calls `set_config` for the session: with a third
 * argument other than a literal true (`false`, or a parameter, which could
 * be either).
 */
function setsConfigForSession(text: string): boolean {
  if (!mentionsSetConfig(text)) return false;
  setConfigCall.lastIndex = 0;
  while (setConfigCall.exec(text) !== null) {
    const local = argumentOf(text, setConfigCall.lastIndex, 2);
    if (local === undefined || !localLiteral.test(local)) return true;
  }
  return false;
}

/** A MySQL user variable assigned inside a statement: `@x := …`, `… INTO @x`. */
const userVariableAssigned = /@(?:[\w$.]+|`[^`]*`|'[^']*'|"[^"]*")\s*:=|\binto\s+@/i;

/**
 * Postgres: `SET` (but `SET LOCAL`, `SET TRANSACTION`, `SET CONSTRAINTS`,
 * which end with their transaction), `RESET` and `DISCARD`; and a
 * statement that calls `set_config(name, value, is_local)` with `is_local`
 * anything but a literal true (a multi-tenant `select set_config('app.tenant',
 * $1, false)`; a parameter counts as false, since it could be).
 */
export const postgresChangesSession = (text: string): boolean => postgres.test(text) || setsConfigForSession(text);

/**
 * MySQL and MariaDB: `SET` of a session or user variable (`SET @x`, `SET
 * NAMES`, `SET SESSION …`; not `SET TRANSACTION`, which is about the next
 * transaction only) and `USE`; and a statement that assigns a user variable
 * (`SELECT @tenant := 42`, `SELECT … INTO @x`).
 */
export const mysqlChangesSession = (text: string): boolean =>
  mysql.test(text) || (text.includes("@") && userVariableAssigned.test(text));

/** Most statement texts a {@linkcode rememberedJudgement} keeps its answers for; past it, it forgets them all. */
export const rememberedTexts = 256;

/** Texts longer than this (chars) are judged each time: they are rarely sent twice, and would be kept alive. */
export const rememberedLength = 2_048;

/**
 * `judge` (a dialect's `changesSession`), remembering its answer for each
 * text up to {@linkcode rememberedLength} characters: an application sends
 * the same few texts again and again (a template's text is built once), and
 * a look-up by a string whose hash is kept costs a fraction of reading it
 * (on Bun, ~860 instructions a Postgres point select for the patterns,
 * most of what Roost's executor cost per statement). Past
 * {@linkcode rememberedTexts} texts, every answer is forgotten and learned
 * again. One per database: nothing is shared between instances.
 */
export function rememberedJudgement(judge: (text: string) => boolean): (text: string) => boolean {
  const answers = new Map<string, boolean>();
  return (text) => {
    const known = answers.get(text);
    if (known !== undefined) return known;
    const answer = judge(text);
    if (text.length <= rememberedLength) {
      if (answers.size >= rememberedTexts) answers.clear();
      answers.set(text, answer);
    }
    return answer;
  };
}
