/**
 * The messages between a SQLite connection's proxy and the Worker thread
 * that runs it, and how errors cross between them: structured clone keeps
 * values (bigint, Uint8Array, null, numbers) but not error classes, so errors
 * travel as plain data and are rebuilt as the same Roost classes.
 *
 * @module
 */
import type { Row, StreamPlacement } from "../../driver.ts";
import {
  ClosedError,
  ConfigError,
  ConnectionError,
  NoResultError,
  PoolTimeoutError,
  QueryError,
  ReadOnlyError,
  RegistryError,
  RoostError,
  TooManyResultsError,
  TransactionError,
} from "../../errors.ts";
import type { DatabaseUrlParts } from "../../url.ts";

/** The SQLite drivers that can run their connection in a Worker thread. */
export type SqliteWorkerDriver = "node-sqlite" | "bun-sqlite";

/** What the proxy asks the thread to do; `id` pairs it with its {@linkcode SqliteWorkerResponse}. */
export type SqliteWorkerRequest =
  & { id: number }
  & (
    | { op: "open"; driver: SqliteWorkerDriver; url: DatabaseUrlParts }
    | { op: "execute" | "fetchAll" | "fetchOne" | "fetchRows"; text: string; params: readonly unknown[] }
    | { op: "executeMany"; text: string; paramSets: readonly (readonly unknown[])[] }
    | {
      op: "stream";
      stream: number;
      text: string;
      params: readonly unknown[];
      batchSize: number;
      placement: StreamPlacement;
      arrays?: boolean;
    }
    | { op: "next" | "return"; stream: number }
    | { op: "ping" | "close" }
  );

/** The answer to `stream` and `next`: one batch, or `done` once the stream has no more rows. */
export interface StreamStep {
  done: boolean;
  batch?: Row[];
}

/** The thread's answer to one request. */
export type SqliteWorkerResponse =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: EncodedError };

/** An error's cause as plain data: its name, message, stack and primitive fields (`code`, `errcode` …). */
export interface EncodedCause {
  name: string;
  message: string;
  stack?: string;
  fields: Record<string, string | number | bigint | boolean>;
}

/** An error as plain data. */
export interface EncodedError {
  name: string;
  message: string;
  code?: string;
  sql?: string;
  cause?: EncodedCause;
}

const roostErrors: Record<string, new (message: string, options: { cause?: unknown; code?: string }) => RoostError> = {
  RoostError,
  ConfigError,
  ConnectionError,
  PoolTimeoutError,
  ReadOnlyError,
  TransactionError,
  NoResultError,
  TooManyResultsError,
  RegistryError,
  ClosedError,
};

const builtinErrors: Record<string, ErrorConstructor> = {
  Error,
  TypeError,
  RangeError,
  SyntaxError,
  ReferenceError,
};

function encodeCause(cause: unknown): EncodedCause | undefined {
  if (cause === undefined) return undefined;
  if (!(cause instanceof Error)) return { name: "Error", message: String(cause), fields: {} };
  const fields: EncodedCause["fields"] = {};
  for (const [key, value] of Object.entries(cause)) {
    if (key === "cause") continue;
    if (["string", "number", "bigint", "boolean"].includes(typeof value)) fields[key] = value as string;
  }
  return { name: cause.name, message: cause.message, stack: cause.stack, fields };
}

function decodeCause(cause: EncodedCause): Error {
  const error = Object.assign(new Error(cause.message), cause.fields);
  error.name = cause.name;
  error.stack = cause.stack;
  return error;
}

/** Turns an error thrown in the thread into plain data. */
export function encodeError(error: unknown): EncodedError {
  if (!(error instanceof Error)) return { name: "Error", message: String(error) };
  const encoded: EncodedError = { name: error.name, message: error.message };
  const { code, sql } = error as { code?: unknown; sql?: unknown };
  if (typeof code === "string") encoded.code = code;
  if (typeof sql === "string") encoded.sql = sql;
  const cause = encodeCause(error.cause);
  if (cause !== undefined) encoded.cause = cause;
  return encoded;
}

/** Rebuilds an error from {@linkcode encodeError}'s data, as the same Roost class with the same message, code and SQL. */
export function decodeError(encoded: EncodedError): Error {
  const cause = encoded.cause === undefined ? undefined : decodeCause(encoded.cause);
  const { code, sql } = encoded;
  if (encoded.name === "QueryError") return new QueryError(encoded.message, { cause, code, sql });
  const Roost = Object.hasOwn(roostErrors, encoded.name) ? roostErrors[encoded.name] : undefined;
  if (Roost !== undefined) return new Roost(encoded.message, { cause, code });
  const Builtin = Object.hasOwn(builtinErrors, encoded.name) ? builtinErrors[encoded.name] : Error;
  const error = new Builtin(encoded.message, cause === undefined ? undefined : { cause });
  if (error.name !== encoded.name) error.name = encoded.name;
  if (code !== undefined) Object.assign(error, { code });
  return error;
}
