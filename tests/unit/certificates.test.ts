/**
 * A refused server certificate recognised in each driver's words, on errors
 * shaped as the drivers and runtimes give them, codes and messages copied
 * from real failures (tests/behaviour/tls.test.ts and mysql_tls.test.ts
 * make the real ones on every driver); and the other TLS failures, which
 * are no certificate refusal.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ConnectionError } from "../../mod.ts";
import { rejectedCertificate } from "../../src/drivers/shared/certificates.ts";
import { connectFailed } from "../../src/drivers/shared/errors.ts";

/** An error with a driver's `code`. */
function driverError(message: string, code?: string): Error {
  const error = new Error(message);
  if (code !== undefined) Object.assign(error, { code });
  return error;
}

describe("refused server certificates", () => {
  test("the chain: OpenSSL's verify codes, mysql2's HANDSHAKE_SSL_ERROR by its message, Deno's and Bun's words", () => {
    const chain = [
      driverError("self-signed certificate in certificate chain", "SELF_SIGNED_CERT_IN_CHAIN"),
      driverError("self signed certificate", "DEPTH_ZERO_SELF_SIGNED_CERT"),
      driverError("unable to verify the first certificate", "UNABLE_TO_VERIFY_LEAF_SIGNATURE"),
      driverError("unable to get local issuer certificate", "UNABLE_TO_GET_ISSUER_CERT_LOCALLY"),
      driverError("certificate has expired", "CERT_HAS_EXPIRED"),
      driverError("self-signed certificate in certificate chain", "HANDSHAKE_SSL_ERROR"),
      driverError("certificate has expired", "HANDSHAKE_SSL_ERROR"),
      driverError(
        "the WebSocket failed: NetworkError: failed to connect to WebSocket: invalid peer certificate: UnknownIssuer",
      ),
      driverError(
        "the WebSocket failed: WebSocket connection to 'wss://h/v1' failed: TLS handshake failed: unable to verify the first certificate",
      ),
    ];
    for (const error of chain) assert.equal(rejectedCertificate(error), "chain", error.message);
  });

  test("the host name: node:tls's check, mysql2's by its message, Deno's rustls; found as a cause too", () => {
    const name = [
      driverError(
        "Hostname/IP does not match certificate's altnames: IP: 127.0.0.1 is not in the cert's list: ",
        "ERR_TLS_CERT_ALTNAME_INVALID",
      ),
      driverError(
        "Hostname/IP does not match certificate's altnames: Host: localhost. is not in the cert's altnames: DNS:db.roost.invalid",
        "HANDSHAKE_SSL_ERROR",
      ),
      driverError("Hostname mismatch", "HOSTNAME_MISMATCH"),
      driverError(
        'invalid peer certificate: certificate not valid for name "127.0.0.1"; certificate is only valid for DnsName("localhost")',
      ),
    ];
    for (const error of name) assert.equal(rejectedCertificate(error), "name", error.message);
    const wrapped = new Error("could not connect", { cause: new Error("handshake", { cause: name[3] }) });
    assert.equal(rejectedCertificate(wrapped), "name");
  });

  test("other TLS failures are no certificate refusal", () => {
    const others = [
      driverError("Client network socket disconnected before secure TLS connection was established", "ECONNRESET"),
      driverError("Server does not support secure connection", "HANDSHAKE_NO_SSL_SUPPORT"),
      driverError("Server does not support SSL", "ERR_POSTGRES_TLS_NOT_AVAILABLE"),
      driverError(
        "The server isn't accepting TLS connections. Change the client configuration so TLS configuration isn't required to connect",
      ),
      // The server refusing the client's certificate: its side of the check, not ours.
      driverError("connection requires a valid client certificate", "28000"),
      driverError("ssl3_read_bytes:tlsv1 alert unknown ca", "ERR_SSL_TLSV1_ALERT_UNKNOWN_CA"),
      driverError("connect ECONNREFUSED 127.0.0.1:5432", "ECONNREFUSED"),
    ];
    for (const error of others) assert.equal(rejectedCertificate(error), undefined, error.message);
    assert.equal(rejectedCertificate("self-signed certificate"), undefined);
    assert.equal(rejectedCertificate(undefined), undefined);
  });

  test("connectFailed: ROOST_CERTIFICATE_REJECTED saying which check and against what, the driver's error as cause", () => {
    const url = { host: "db.example", port: 5432, options: {} };
    const own = driverError("self-signed certificate in certificate chain", "SELF_SIGNED_CERT_IN_CHAIN");
    const chain = connectFailed("postgres", url, own, own, "SELF_SIGNED_CERT_IN_CHAIN");
    assert.ok(chain instanceof ConnectionError);
    assert.equal(chain.code, "ROOST_CERTIFICATE_REJECTED");
    assert.equal(
      chain.message,
      "could not connect to postgres at db.example:5432: the server's certificate did not verify against the " +
        "runtime's CAs: self-signed certificate in certificate chain",
    );
    assert.equal(chain.cause, own);
    const withCa = { ...url, options: { sslrootcert: "/etc/ca.pem" } };
    assert.match(connectFailed("mysql", withCa, own, own, "HANDSHAKE_SSL_ERROR").message, /against sslrootcert's CA: /);
    const misnamed = driverError("Hostname/IP does not match certificate's altnames", "ERR_TLS_CERT_ALTNAME_INVALID");
    const name = connectFailed("postgres", url, misnamed, misnamed, "ERR_TLS_CERT_ALTNAME_INVALID");
    assert.equal(name.code, "ROOST_CERTIFICATE_REJECTED");
    assert.match(name.message, /: the server's certificate does not name this host: Hostname\/IP does not match/);
    const reset = driverError("Client network socket disconnected", "ECONNRESET");
    assert.equal(connectFailed("postgres", url, reset, reset, "ECONNRESET").code, "ECONNRESET");
  });
});
