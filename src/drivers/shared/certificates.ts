/**
 * TLS refused at connect, recognised in any driver's connect error: a
 * server certificate a check refused, which each driver names its own way
 * (Node's and Bun's TLS by OpenSSL's verify code,
 * `SELF_SIGNED_CERT_IN_CHAIN`, or `ERR_TLS_CERT_ALTNAME_INVALID` for the
 * host name; mysql2 replaces that code with `HANDSHAKE_SSL_ERROR` and keeps
 * the message; Deno's TLS and WebSockets give only a message, `invalid peer
 * certificate: UnknownIssuer`), and a server that does not offer TLS to a
 * URL whose sslmode demands it. `connectFailed` (errors.ts) makes the first
 * `ROOST_CERTIFICATE_REJECTED` and the second `ROOST_TLS_NOT_OFFERED`.
 *
 * @module
 */

/**
 * What refused TLS: the check of the server certificate's chain (issuer,
 * validity) or of the host name it names, or the server, which does not
 * offer TLS at all ("offer").
 */
export type TlsRefusal = "chain" | "name" | "offer";

/**
 * A server that answered the request for TLS with no, as "<code> <message>",
 * where a driver says so for certain: Bun.SQL's
 * `ERR_POSTGRES_TLS_NOT_AVAILABLE` (the server's 'N' to SSLRequest),
 * postgres.js 4's `SSL_NOT_SUPPORTED` (the same), mysql2's
 * `HANDSHAKE_NO_SSL_SUPPORT` (a greeting without CLIENT_SSL),
 * deno-postgres's "isn't accepting TLS" (the 'N'). Where the driver's error
 * does not tell, the adapter learns it another way and passes
 * `ROOST_TLS_NOT_OFFERED` to `connectFailed` itself (postgres.js 3.4 meets
 * the 'N' with a TLS handshake the server closes: `ECONNRESET`, as for any
 * reset; Bun.SQL's MySQL says "Authentication failed").
 */
const notOffered = /^(ERR_POSTGRES_TLS_NOT_AVAILABLE|SSL_NOT_SUPPORTED|HANDSHAKE_NO_SSL)|accepting TLS/;
/**
 * A certificate that does not name the host, as "<code> <message>": node:tls's
 * `ERR_TLS_CERT_ALTNAME_INVALID` ("… does not match certificate's altnames"),
 * OpenSSL's `HOSTNAME_MISMATCH`, rustls's "certificate not valid for name".
 */
const wrongName = /^(ERR_TLS_CERT_ALTNAME|HOSTNAME_MISMATCH)|certificate's altnames|not valid for name/;
/**
 * A chain that does not verify, as "<code> <message>": OpenSSL's verify
 * codes (unknown issuer, self-signed, expired…) and their messages where a
 * driver replaced the code (mysql2) or the runtime gives none (Bun's and
 * Deno's WebSockets), rustls's "invalid peer certificate: UnknownIssuer".
 */
const badChain =
  /^(CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED|INVALID_CA)|self[- ]signed cert|unable to (get|verify)[\w ]*certificate|invalid peer cert|certificate (has expired|is not yet valid)/;

/**
 * What a connect error says refused TLS, looking at the error and its
 * causes; `undefined` for any other failure (a reset handshake, a client
 * certificate the server refused).
 */
export function tlsRefusal(error: unknown): TlsRefusal | undefined {
  for (let depth = 0; depth < 4 && error instanceof Error; depth++) {
    const text = `${(error as { code?: unknown }).code} ${error.message}`;
    if (notOffered.test(text)) return "offer";
    if (wrongName.test(text)) return "name";
    if (badChain.test(text)) return "chain";
    error = error.cause;
  }
  return undefined;
}
