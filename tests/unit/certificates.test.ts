/**
 * A refused server certificate, and a server that does not offer TLS,
 * recognised in each driver's words, on errors shaped as the drivers and
 * runtimes give them, codes and messages copied from real failures
 * (tests/behaviour/tls.test.ts and mysql_tls.test.ts make the real ones on
 * every driver); the other TLS failures, which are neither; and the MySQL
 * greeting Roost reads where Bun.SQL's error does not tell.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ConnectionError } from "../../mod.ts";
import { greetingOffersTls } from "../../src/drivers/mysql/greeting.ts";
import { tlsRefusal } from "../../src/drivers/shared/certificates.ts";
import { connectFailed } from "../../src/drivers/shared/errors.ts";
import { demandsTls } from "../../src/drivers/shared/tls.ts";
import { parseDatabaseUrl } from "../../src/url.ts";

/** An error with a driver's `code`. */
function driverError(message: string, code?: string): Error {
  const error = new Error(message);
  if (code !== undefined) Object.assign(error, { code });
  return error;
}

describe("refused TLS: server certificates and servers without TLS", () => {
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
    for (const error of chain) assert.equal(tlsRefusal(error), "chain", error.message);
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
    for (const error of name) assert.equal(tlsRefusal(error), "name", error.message);
    const wrapped = new Error("could not connect", { cause: new Error("handshake", { cause: name[3] }) });
    assert.equal(tlsRefusal(wrapped), "name");
  });

  test("a server without TLS: Bun.SQL's, postgres.js 4's, mysql2's codes, deno-postgres's words; found as a cause too", () => {
    const offer = [
      driverError("Server does not support SSL", "ERR_POSTGRES_TLS_NOT_AVAILABLE"),
      driverError("SSL_NOT_SUPPORTED: The server does not support SSL connections", "SSL_NOT_SUPPORTED"),
      driverError("Server does not support secure connection", "HANDSHAKE_NO_SSL_SUPPORT"),
      driverError(
        "The server isn't accepting TLS connections. Change the client configuration so TLS configuration isn't required to connect",
      ),
    ];
    for (const error of offer) assert.equal(tlsRefusal(error), "offer", error.message);
    const wrapped = new Error("postgres connection lost", { cause: offer[0] });
    assert.equal(tlsRefusal(wrapped), "offer");
  });

  test("other TLS failures are neither: a reset (postgres.js 3.4's words for a server without TLS too), the server's refusals", () => {
    const others = [
      // What postgres.js 3.4 says when the server without TLS closes its TLS handshake, and for any reset there:
      // Roost learns the server's no from the SSLRequest's answer (tests/behaviour/tls.test.ts shows both).
      driverError("Client network socket disconnected before secure TLS connection was established", "ECONNRESET"),
      // Bun.SQL's MySQL words for a server without TLS, and for its own failed TLS upgrade: the greeting tells.
      driverError("Authentication failed", "ERR_MYSQL_AUTHENTICATION_FAILED"),
      driverError("error:100000f7:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER", "EPROTO"),
      // The server refusing the client's certificate: its side of the check, not ours.
      driverError("connection requires a valid client certificate", "28000"),
      driverError("ssl3_read_bytes:tlsv1 alert unknown ca", "ERR_SSL_TLSV1_ALERT_UNKNOWN_CA"),
      driverError("connect ECONNREFUSED 127.0.0.1:5432", "ECONNREFUSED"),
    ];
    for (const error of others) assert.equal(tlsRefusal(error), undefined, error.message);
    assert.equal(tlsRefusal("self-signed certificate"), undefined);
    assert.equal(tlsRefusal(undefined), undefined);
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

  test("connectFailed: ROOST_TLS_NOT_OFFERED naming the URL's sslmode, from the driver's error or an adapter's code", () => {
    const url = parseDatabaseUrl("postgres://app:s3cret-pw@db.example:6432/app?sslmode=verify-full");
    const own = driverError("Server does not support SSL", "ERR_POSTGRES_TLS_NOT_AVAILABLE");
    const error = connectFailed("postgres", url, own, own, "ERR_POSTGRES_TLS_NOT_AVAILABLE");
    assert.ok(error instanceof ConnectionError);
    assert.equal(error.code, "ROOST_TLS_NOT_OFFERED");
    assert.equal(
      error.message,
      "could not connect to postgres at db.example:6432: the server does not offer TLS, which sslmode=verify-full asks for",
    );
    assert.equal(error.cause, own);
    // postgres.js 3.4's reset, where the adapter saw the server's 'N': the code it passes decides.
    const reset = driverError("Client network socket disconnected", "ECONNRESET");
    const mysql = parseDatabaseUrl("mysql://root:s3cret-pw@db.example/app?sslmode=required");
    const told = connectFailed("mysql", mysql, reset, reset, "ROOST_TLS_NOT_OFFERED");
    assert.equal(told.code, "ROOST_TLS_NOT_OFFERED");
    assert.match(told.message, /^could not connect to mysql at db\.example:3306: .*, which sslmode=required asks for$/);
    assert.equal(told.cause, reset);
    assert.doesNotMatch(error.message + told.message, /s3cret/);
    // A timeout stays a timeout.
    const late = driverError("timeout", "CONNECT_TIMEOUT");
    assert.equal(connectFailed("postgres", url, late, late, "CONNECT_TIMEOUT").code, "ROOST_CONNECT_TIMEOUT");
  });

  test("demandsTls: require and the verify modes (and MySQL's names), not disable, allow, prefer, preferred", () => {
    const demands = (query: string, scheme = "postgres") => demandsTls(parseDatabaseUrl(`${scheme}://u@h/d${query}`));
    for (const mode of ["require", "verify-ca", "verify-full"]) assert.equal(demands(`?sslmode=${mode}`), true, mode);
    for (const mode of ["required", "verify_ca", "verify_identity"]) {
      assert.equal(demands(`?sslmode=${mode}`, "mysql"), true, mode);
    }
    for (const mode of ["disable", "allow", "prefer"]) assert.equal(demands(`?sslmode=${mode}`), false, mode);
    assert.equal(demands("?sslmode=preferred", "mysql"), false);
    assert.equal(demands(""), false);
  });
});

/** A MariaDB 10.11 greeting as the shared server sends it (TLS off), capability flags' lower bytes fe f7. */
const greeting = Uint8Array.from(
  (
    "640000000a352e352e352d31302e31312e31392d4d6172696144422d302b6465623132753100970600002e53365321492c3d00fef72d02" +
    "00ff81150000000000001d0000002e6e63252b47623b3c5b363c006d7973716c5f6e61746976655f70617373776f726400"
  ).match(/../g)!,
  (byte) => parseInt(byte, 16),
);

describe("the MySQL greeting's CLIENT_SSL", () => {
  test("a server without TLS, the same with CLIENT_SSL set, too few bytes, an error packet", () => {
    assert.equal(greetingOffersTls(greeting), false);
    const flags = greeting.indexOf(0, 5) + 14;
    const withTls = greeting.slice();
    withTls[flags + 1] |= 0x08;
    assert.equal(greetingOffersTls(withTls), true);
    assert.equal(greetingOffersTls(greeting.subarray(0, flags + 1)), undefined);
    assert.equal(greetingOffersTls(greeting.subarray(0, 20)), undefined);
    // Too many connections: an error packet (0xff), no handshake.
    const refused = Uint8Array.from([
      0x17,
      0,
      0,
      0,
      0xff,
      0x10,
      0x04,
      ...new TextEncoder().encode("Too many connections"),
    ]);
    assert.equal(greetingOffersTls(refused), undefined);
  });
});
