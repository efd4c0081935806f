/**
 * SQLite errors as Roost errors, for every SQLite driver: `SQLITE_*` codes
 * (extended constraint codes by name) and the busy errors a connection waits
 * out.
 *
 * @module
 */
import { QueryError } from "../../errors.ts";

const primaryCodes = [
  "OK",
  "ERROR",
  "INTERNAL",
  "PERM",
  "ABORT",
  "BUSY",
  "LOCKED",
  "NOMEM",
  "READONLY",
  "INTERRUPT",
  "IOERR",
  "CORRUPT",
  "NOTFOUND",
  "FULL",
  "CANTOPEN",
  "PROTOCOL",
  "EMPTY",
  "SCHEMA",
  "TOOBIG",
  "CONSTRAINT",
  "MISMATCH",
  "MISUSE",
  "NOLFS",
  "AUTH",
  "FORMAT",
  "RANGE",
  "NOTADB",
];

const constraintCodes: Record<number, string> = {
  275: "CHECK",
  531: "COMMITHOOK",
  787: "FOREIGNKEY",
  1043: "FUNCTION",
  1299: "NOTNULL",
  1555: "PRIMARYKEY",
  1811: "TRIGGER",
  2067: "UNIQUE",
  2323: "VTAB",
  2579: "ROWID",
  3091: "DATATYPE",
};

const busySnapshot = 517;

/**
 * SQLITE_BUSY and its extended codes: another connection holds a lock.
 * SQLITE_BUSY_SNAPSHOT is left out: the transaction's snapshot is stale, and
 * only a new transaction can succeed.
 */
export function isBusy(error: unknown): boolean {
  const raw = error as { code?: unknown; errcode?: unknown; errno?: unknown };
  const numeric = typeof raw?.errcode === "number" ? raw.errcode : raw?.errno;
  if (typeof numeric === "number") return (numeric & 0xff) === 5 && numeric !== busySnapshot;
  return typeof raw?.code === "string" && raw.code.startsWith("SQLITE_BUSY") && raw.code !== "SQLITE_BUSY_SNAPSHOT";
}

function sqliteCodeName(code: number): string {
  const extended = constraintCodes[code];
  if (extended) return `SQLITE_CONSTRAINT_${extended}`;
  return `SQLITE_${primaryCodes[code & 0xff] ?? String(code)}`;
}

/** Turns a runtime's SQLite error into a {@linkcode QueryError} with a `SQLITE_*` code. */
export function sqliteError(error: unknown, text: string): QueryError {
  if (error instanceof QueryError) return error;
  const raw = (error ?? {}) as { code?: unknown; errcode?: unknown; errno?: unknown; message?: unknown };
  const numeric = typeof raw.errcode === "number" ? raw.errcode : typeof raw.errno === "number" ? raw.errno : undefined;
  const code = typeof raw.code === "string" && raw.code.startsWith("SQLITE_")
    ? raw.code
    : numeric !== undefined
    ? sqliteCodeName(numeric)
    : typeof raw.code === "string"
    ? raw.code
    : undefined;
  const message = typeof raw.message === "string" ? raw.message : String(error);
  // The one limit Roost cannot check before SQLite does: its own, which each build sets.
  const tooMany = message.includes("too many SQL variables");
  return new QueryError(tooMany ? `${message} (split the statement, or bind a list as one JSON value)` : message, {
    cause: error,
    code: tooMany ? "ROOST_TOO_MANY_PARAMETERS" : code,
    sql: text,
  });
}
