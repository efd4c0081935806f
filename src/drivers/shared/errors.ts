/**
 * Driver errors as Roost errors, written once for every driver: the
 * translation skeleton (a `QueryError`, or a `ConnectionError` when the
 * connection is gone), the `cause` a Roost error carries (a copy without
 * what could hold query parameters), the socket failures every driver
 * treats as a lost connection, and the error for a failed connect. Each
 * dialect adds its own codes (`postgres/errors.ts`, `mysql/errors.ts`).
 *
 * @module
 */
import { type ConfigError, ConnectionError, messageOf, queryError, RoostError } from "../../errors.ts";
import { connectTimeoutSeconds } from "../../url.ts";
import { tlsRefusal } from "./certificates.ts";
import { permissionDenied } from "./permissions.ts";

/** The fields of a driver error the translation reads. */
export interface DriverError {
  code?: unknown;
  errno?: unknown;
  sqlState?: unknown;
  message?: unknown;
  fatal?: unknown;
}

/** How one driver's errors read. */
export interface ErrorRules {
  /** The dialect's name, for "… connection lost" messages. */
  readonly dialect: string;
  /** The error as a Roost error's `cause`: a copy without what could hold parameters (see `sanitizedCause`). */
  cause(error: unknown): unknown;
  /** Cleans quoted values out of a message (MySQL quotes them). */
  readonly redact?: (text: string) => string;
  /** The Roost error code, and whether the connection is gone. */
  classify(error: DriverError): { code: string | undefined; fatal: boolean };
}

/**
 * A driver's error as a Roost error: Roost's own errors as they are, a
 * `ConnectionError` ("<dialect> connection lost: …") when `rules` say the
 * connection is gone, else a `QueryError` carrying the statement.
 */
export function translateError(rules: ErrorRules, error: unknown, text: string): Error {
  if (error instanceof RoostError) return error;
  const raw = (typeof error === "object" && error !== null ? error : {}) as DriverError;
  const message = typeof raw.message === "string" ? raw.message : String(error);
  const redacted = rules.redact ? rules.redact(message) : message;
  const cause = rules.cause(error);
  const { code, fatal } = rules.classify(raw);
  if (fatal) return new ConnectionError(`${rules.dialect} connection lost: ${redacted}`, { cause, code });
  return queryError(redacted, { cause, code, sql: text });
}

/** The error's own `code` when it is a string (a socket's `ECONNREFUSED`, a driver's `CONNECTION_CLOSED`). */
export function ownCode(error: unknown): string | undefined {
  const code = (error as DriverError | null | undefined)?.code;
  return typeof code === "string" ? code : undefined;
}

/** Codes of the drivers' own (not the server's) that mean the connection is gone: its socket failed or closed. */
const lostConnection =
  /CONNECTION_(CLOSED|ENDED|DESTROYED)|(CONNECT|CONNECTION|IDLE|LIFETIME)_TIMEOUT|E(CONNREFUSED|CONNRESET|PIPE|TIMEDOUT|NOTFOUND|HOSTUNREACH)/;

/** True for a driver's or socket's code that means the connection is gone. */
export function connectionLost(code: string | undefined): boolean {
  return code !== undefined && lostConnection.test(code);
}

/**
 * The drivers' codes for a server that did not answer within
 * `connect_timeout` (postgres.js and deno-postgres, mysql2, Bun.SQL on each
 * dialect), all reported as `ROOST_CONNECT_TIMEOUT`.
 */
const connectTimeouts = /^(CONNECT_TIMEOUT|ETIMEDOUT|ERR_(POSTGRES|MYSQL)_CONNECTION_TIMEOUT|ROOST_CONNECT_TIMEOUT)$/;

/**
 * The `ConnectionError` for a connection that could not be opened: "could
 * not connect to <dialect> at <host>:<port>: <reason>", with the cause and
 * code the driver gives. Three codes are the same whichever driver failed,
 * and say so in the same words on each: a timeout is
 * `ROOST_CONNECT_TIMEOUT` ("no answer within connect_timeout (30 s)"), a
 * server certificate the TLS check refused is `ROOST_CERTIFICATE_REJECTED`
 * ("the server's certificate does not name this host: …" or "… did not
 * verify against sslrootcert's CA: …", the driver's words after), and a
 * server without TLS under an sslmode that demands it is
 * `ROOST_TLS_NOT_OFFERED` ("the server does not offer TLS, which
 * sslmode=require asks for"; an adapter that learnt it otherwise than from
 * the driver's error passes that `code`), the driver's error and code in
 * `cause`. When Deno refused the driver (`driver`, for the message) a
 * permission, it is the `ConfigError` `ROOST_PERMISSION_DENIED` naming the
 * flag.
 */
export function connectFailed(
  dialect: string,
  url: {
    host: string;
    port: number;
    options?: { connect_timeout?: unknown; sslmode?: unknown; sslrootcert?: unknown };
  },
  error: unknown,
  cause: unknown,
  code: string | undefined,
  driver: string = dialect,
): ConnectionError | ConfigError {
  const refused = permissionDenied(driver, error);
  if (refused !== undefined) return refused;
  const timedOut = code !== undefined && connectTimeouts.test(code);
  // Without a deadline of Roost's (connect_timeout=0) a timeout is the system's own: its words stand.
  const seconds = connectTimeoutSeconds(url);
  const check = timedOut ? undefined : code === "ROOST_TLS_NOT_OFFERED" ? "offer" : tlsRefusal(error);
  const trusted = url.options?.sslrootcert === undefined ? "the runtime's CAs" : "sslrootcert's CA";
  let reason = messageOf(error);
  if (timedOut) {
    code = "ROOST_CONNECT_TIMEOUT";
    if (seconds > 0) reason = `no answer within connect_timeout (${seconds} s)`;
  } else if (check === "offer") {
    code = "ROOST_TLS_NOT_OFFERED";
    reason = `the server does not offer TLS, which sslmode=${url.options?.sslmode} asks for`;
  } else if (check) {
    code = "ROOST_CERTIFICATE_REJECTED";
    reason = check === "name"
      ? `the server's certificate does not name this host: ${reason}`
      : `the server's certificate did not verify against ${trusted}: ${reason}`;
  }
  return new ConnectionError(`could not connect to ${dialect} at ${url.host}:${url.port}: ${reason}`, { cause, code });
}

/** Copies an error's name, message, stack and the listed fields; `redact` cleans the message and stack. */
export function sanitizedCause(
  error: unknown,
  fields: readonly string[],
  redact: (text: string) => string = (text) => text,
): unknown {
  if (!(error instanceof Error)) return error;
  const copy = new Error(redact(error.message));
  copy.name = error.name;
  const source = error as unknown as Record<string, unknown>;
  const target = copy as unknown as Record<string, unknown>;
  for (const field of fields) if (source[field] !== undefined) target[field] = source[field];
  // Postgres's context lines quote bound values: `unnamed portal parameter $1 = '…'`, `JSON data, line 1: …`.
  if (typeof target.where === "string") {
    target.where = target.where.split("\n").filter((line) => !/parameter \$\d+ = |^JSON data/.test(line)).join("\n");
  }
  copy.stack = error.stack === undefined ? undefined : redact(error.stack);
  return copy;
}
