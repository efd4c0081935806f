/**
 * Which statements change the settings of the session they run on, so that
 * a pooled connection they ran on is not handed to anyone else afterwards
 * (see `Dialect.changesSession`). Read from the statement's first keywords
 * only, past whitespace and comments: cheap enough for every statement, and
 * blind to settings changed from inside another statement
 * (`SELECT set_config(…, false)`).
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

/**
 * Postgres: `SET` (but `SET LOCAL`, `SET TRANSACTION`, `SET CONSTRAINTS`,
 * which end with their transaction), `RESET` and `DISCARD`.
 */
export const postgresChangesSession = (text: string): boolean => postgres.test(text);

/**
 * MySQL and MariaDB: `SET` of a session or user variable (`SET @x`, `SET
 * NAMES`, `SET SESSION …`; not `SET TRANSACTION`, which is about the next
 * transaction only) and `USE`.
 */
export const mysqlChangesSession = (text: string): boolean => mysql.test(text);
