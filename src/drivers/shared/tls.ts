/**
 * What a URL's `sslmode`, `sslrootcert`, `sslcert` and `sslkey` ask for, in
 * libpq's terms whatever the dialect, with the certificate files read: the
 * drivers turn it into their own TLS options.
 *
 * @module
 */
import { ConfigError, messageOf } from "../../errors.ts";
import { builtinModule } from "../../runtime.ts";
import type { DatabaseUrl } from "../../url.ts";

/** libpq's TLS modes; MySQL's names map onto them. */
export type TlsMode = "disable" | "prefer" | "require" | "verify-ca" | "verify-full";

/** The TLS a connection asks for. */
export interface TlsRequest {
  /** How much TLS, and how much of the server's certificate is checked. */
  mode: TlsMode;
  /** PEM CA certificates to trust instead of the runtime's (`sslrootcert`). */
  ca?: string;
  /** PEM client certificate (`sslcert`). */
  cert?: string;
  /** PEM client key (`sslkey`). */
  key?: string;
}

const modes: Record<string, TlsMode> = {
  disable: "disable",
  // libpq's allow tries plain first; no driver here can, so it is prefer.
  allow: "prefer",
  prefer: "prefer",
  require: "require",
  "verify-ca": "verify-ca",
  "verify-full": "verify-full",
  preferred: "prefer",
  required: "require",
  verify_ca: "verify-ca",
  verify_identity: "verify-full",
};

type FileSystem = { readFileSync(path: string, encoding: "utf8"): string };

/** Reads a certificate or key file named by a URL option. */
function readPem(path: string, option: string): string {
  const fs = builtinModule<FileSystem>("node:fs");
  if (fs === undefined) {
    throw new ConfigError(`the URL option ${option} names a file, and this runtime cannot read files`);
  }
  try {
    return fs.readFileSync(path, "utf8");
  } catch (error) {
    const reason = messageOf(error);
    throw new ConfigError(`could not read the ${option} file "${path}": ${reason}`, { cause: error });
  }
}

/**
 * The TLS a URL asks for. No `sslmode` is `disable`. As in libpq,
 * `require` with an `sslrootcert` verifies the chain like `verify-ca`.
 */
export function tlsRequest(url: DatabaseUrl): TlsRequest {
  const { sslmode, sslrootcert, sslcert, sslkey } = url.options;
  const request: TlsRequest = { mode: modes[String(sslmode ?? "disable")] ?? "disable" };
  if (request.mode === "disable") return request;
  if (sslrootcert !== undefined) {
    request.ca = readPem(String(sslrootcert), "sslrootcert");
    if (request.mode === "require") request.mode = "verify-ca";
  }
  if (sslcert !== undefined) request.cert = readPem(String(sslcert), "sslcert");
  if (sslkey !== undefined) request.key = readPem(String(sslkey), "sslkey");
  return request;
}

/**
 * True when the URL's `sslmode` refuses a server without TLS (`require`,
 * `verify-ca`, `verify-full` and MySQL's names for them), read without the
 * certificate files.
 */
export function demandsTls(url: DatabaseUrl): boolean {
  return /^[rv]/.test(modes[String(url.options.sslmode)] ?? "");
}

/** True when the request names no certificate file, so a driver's own mode names can carry it out. */
export function withoutFiles(request: TlsRequest): boolean {
  return request.ca === undefined && request.cert === undefined && request.key === undefined;
}

/** `node:tls` connect options for a request: verification on for verify-ca and verify-full, the host name checked only by verify-full. */
export interface NodeTlsOptions {
  /** Whether the server's chain must verify. */
  rejectUnauthorized: boolean;
  /** Trusted CAs, when given. */
  ca?: string;
  /** Client certificate, when given. */
  cert?: string;
  /** Client key, when given. */
  key?: string;
  /** verify-ca: no host-name check; verify-full: the URL's host checked, even where the driver hands `node:tls` only a socket. */
  checkServerIdentity?: (servername: string, certificate: unknown) => Error | undefined;
}

type TlsModule = { checkServerIdentity(host: string, certificate: unknown): Error | undefined };

/**
 * The `node:tls` options that carry out a request to `host`. A driver that
 * upgrades its own socket may leave `node:tls` without the host (it then
 * checks the certificate against "localhost"), so verify-full names it.
 */
export function nodeTlsOptions(request: TlsRequest, host: string): NodeTlsOptions {
  // The files' fields are set only when given (see tlsRequest).
  const { mode, ...files } = request;
  const tls = mode === "verify-full" ? builtinModule<TlsModule>("node:tls") : undefined;
  const check: NodeTlsOptions["checkServerIdentity"] = mode === "verify-ca"
    ? () => undefined
    : tls && ((_, certificate) => tls.checkServerIdentity(host, certificate));
  return {
    rejectUnauthorized: mode === "verify-ca" || mode === "verify-full",
    ...files,
    ...(check && { checkServerIdentity: check }),
  };
}
