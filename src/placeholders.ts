/**
 * Counts the parameters a query written as a string expects, so a wrong
 * number of values is a clear error before anything is sent: drivers would
 * otherwise bind the missing ones as NULL (node:sqlite), read the extra ones
 * as garbage (mysql2) or take down the connection (Postgres).
 *
 * @module
 */
import type { DialectName } from "./dialect.ts";

/** Counted texts (up to 4 KiB each), per dialect; a bounded cache, so a hot query is scanned once. */
const counted: Record<DialectName, Map<string, number>> = { postgres: new Map(), mysql: new Map(), sqlite: new Map() };

/**
 * Where the quoted run or comment that starts at `i` ends (the index after
 * it); `i` itself when none starts there. It knows each dialect's quoting:
 * `'…'` strings (with backslash escapes on MySQL and in Postgres `E'…'`),
 * `"…"` and `` `…` `` identifiers (and `[…]` on SQLite), `--` comments,
 * block comments (nested on Postgres), `#` comments on MySQL, and Postgres
 * dollar-quoted bodies (`$$…$$`, `$tag$…$tag$`). An unterminated run ends
 * at the end of the text. The placeholder counter and the migration
 * statement splitter share it.
 */
export function skipQuoted(text: string, i: number, dialect: DialectName): number {
  const c = text[i];
  const next = text[i + 1];
  if (c === "-" && next === "-" || c === "#" && dialect === "mysql") {
    const end = text.indexOf("\n", i);
    return end < 0 ? text.length : end + 1;
  }
  if (c === "/" && next === "*") {
    // Postgres nests block comments; the others end at the first `*/`.
    let depth = 0;
    for (let j = i; j < text.length; j++) {
      if (text[j] === "/" && text[j + 1] === "*") depth++, j++;
      else if (text[j] === "*" && text[j + 1] === "/" && (--depth === 0 || dialect !== "postgres")) return j + 2;
    }
    return text.length;
  }
  if (c === "$" && dialect === "postgres") {
    const tag = /^\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$/.exec(text.slice(i, i + 64))?.[0];
    if (tag === undefined || /[A-Za-z0-9_]/.test(text[i - 1] ?? "")) return i;
    const end = text.indexOf(tag, i + tag.length);
    return end < 0 ? text.length : end + tag.length;
  }
  const close = c === "[" && dialect === "sqlite" ? "]" : c;
  if (c !== "'" && c !== '"' && c !== "`" && close !== "]") return i;
  // Backslash escapes: MySQL strings, and Postgres E'' strings.
  const escapes = dialect === "mysql" && c !== "`" || c === "'" && /[eE]/.test(text[i - 1] ?? "");
  for (let j = i + 1; j < text.length; j++) {
    if (escapes && text[j] === "\\") j++;
    else if (text[j] === close) {
      if (text[j + 1] !== close || close === "]") return j + 1;
      j++;
    }
  }
  return text.length;
}

/** The number of parameters `text` expects: the highest `$n` on Postgres, its `?` (and SQLite's named or numbered) placeholders elsewhere. */
function scan(text: string, dialect: DialectName): number {
  let count = 0;
  const names = new Set<string>();
  for (let i = 0; i < text.length;) {
    const skipped = skipQuoted(text, i, dialect);
    if (skipped !== i) {
      i = skipped;
      continue;
    }
    const c = text[i];
    // `$` and the named-parameter marks inside a word belong to an identifier (`price$1`).
    const inWord = () => /[A-Za-z0-9_$]/.test(text[i - 1] ?? "");
    if (dialect === "postgres") {
      const digits = c === "$" && !inWord() ? /^\d+/.exec(text.slice(i + 1, i + 8))?.[0] : undefined;
      if (digits !== undefined) count = Math.max(count, Number(digits));
      i += 1 + (digits?.length ?? 0);
    } else if (c === "?") {
      const digits = dialect === "sqlite" ? /^\d+/.exec(text.slice(i + 1, i + 8))?.[0] : undefined;
      count = digits === undefined ? count + 1 : Math.max(count, Number(digits));
      i += 1 + (digits?.length ?? 0);
    } else if (dialect === "sqlite" && (c === ":" || c === "@" || c === "$") && !inWord()) {
      const name = /^[A-Za-z0-9_]+/.exec(text.slice(i + 1, i + 130))?.[0];
      if (name !== undefined && !names.has(name)) names.add(name), count++;
      i += 1 + (name?.length ?? 0);
    } else {
      i++;
    }
  }
  return count;
}

/** The number of parameters `text` expects in `dialect`. */
export function placeholderCount(text: string, dialect: DialectName): number {
  const cache = counted[dialect];
  let count = cache.get(text);
  if (count === undefined) {
    count = scan(text, dialect);
    // A long script is rarely run twice, and the cache would keep it alive.
    if (text.length > 4_096) return count;
    if (cache.size >= 500) cache.clear();
    cache.set(text, count);
  }
  return count;
}
