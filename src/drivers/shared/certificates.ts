/**
 * A refused server certificate, recognised in any driver's connect error:
 * each names it its own way (Node's and Bun's TLS by OpenSSL's verify code,
 * `SELF_SIGNED_CERT_IN_CHAIN`, or `ERR_TLS_CERT_ALTNAME_INVALID` for the
 * host name; mysql2 replaces that code with `HANDSHAKE_SSL_ERROR` and keeps
 * the message; Deno's TLS and WebSockets give only a message, `invalid peer
 * certificate: UnknownIssuer`). `connectFailed` (errors.ts) makes each one
 * `ROOST_CERTIFICATE_REJECTED`.
 *
 * @module
 */

/** Which check refused the server's certificate: its chain (issuer, validity) or the host name it names. */
export type CertificateCheck = "chain" | "name";

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
 * The check a connect error says the server's certificate failed, looking
 * at the error and its causes; `undefined` when it is no refused
 * certificate (a server without TLS, a reset handshake, a client
 * certificate the server refused).
 */
export function rejectedCertificate(error: unknown): CertificateCheck | undefined {
  for (let depth = 0; depth < 4 && error instanceof Error; depth++) {
    const text = `${(error as { code?: unknown }).code} ${error.message}`;
    if (wrongName.test(text)) return "name";
    if (badChain.test(text)) return "chain";
    error = error.cause;
  }
  return undefined;
}
