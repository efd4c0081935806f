/**
 * TLS: each URL `sslmode` maps to the driver's options with libpq's meanings
 * on Postgres (and MySQL's on MySQL), and certificates are verified for
 * `verify-ca` / `verify-full`. A private PostgreSQL server with TLS (see
 * tests/support/tls_server.ts: its own CA, a server certificate for `localhost`
 * only, a user that must present a client certificate) is started for this
 * file and removed after it; every Postgres driver of the runtime connects to
 * it in each mode, and `pg_stat_ssl` says whether the session is encrypted.
 * A server certificate a check refuses is a ConnectionError
 * `ROOST_CERTIFICATE_REJECTED` on every driver, saying which check (the chain
 * or the host name), the driver's own error and code in `cause`; the
 * harness also swaps in a certificate from the trusted CA for another host
 * name. The shared Postgres and MariaDB servers, which have TLS off, check that a
 * mode requiring TLS is refused there as `ROOST_TLS_NOT_OFFERED` on every
 * driver (the sslmode named, the driver's own error in `cause`, alone and
 * behind a multi-host URL) and a preferring one falls back; a connection
 * the network drops after the server said yes to TLS is no such refusal.
 * tests/behaviour/mysql_tls.test.ts runs the MySQL modes against a MariaDB
 * server with TLS.
 *
 * deno-postgres differs where docs/drivers.md says so: Deno verifies
 * the server's certificate chain and host name in every sslmode, and Roost
 * never lets the library fall back to plain text when that check fails, so
 * a certificate it cannot verify is a ConnectionError even under `allow`,
 * `prefer` and `require`; it cannot present a client certificate
 * (a ConfigError).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import { connect, createServer as createTcpServer, type Socket } from "node:net";
import { createServer } from "node:tls";
import { ConfigError, ConnectionError, Database, type DriverName, parseDatabaseUrl, sql } from "../../mod.ts";
import { availableDrivers } from "../../src/drivers/mod.ts";
import { assertHidden, postgresJsMajor, runtime } from "../support/support.ts";
import { targets } from "../support/targets.ts";
import { CERT_USER, startTlsServer, TLS_ONLY_USER, type TlsServer } from "../support/tls_server.ts";

/**
 * What a connection attempt must come to: TLS on or off, either, a
 * ConnectionError that is no certificate refusal nor a server without TLS
 * ("refused"), or `ROOST_CERTIFICATE_REJECTED` by the chain's check
 * ("untrusted") or the host name's ("misnamed").
 */
type Expect = "tls" | "plain" | "connects" | "refused" | "untrusted" | "misnamed";

/** A certificate refusal. */
type Rejection = "untrusted" | "misnamed";

/** One connection attempt to the private server. */
interface Case {
  /** Shown in the test name and in every failure. */
  title: string;
  host: "127.0.0.1" | "localhost";
  user?: string;
  options(server: TlsServer): Record<string, string>;
  expect: Expect;
  /** A driver that, as documented, comes to another outcome, and why. */
  differs?: Partial<Record<DriverName, [Expect, string]>>;
}

/** deno-postgres's documented outcome when the server's certificate (`untrusted`) or host name (`misnamed`) cannot be verified. */
const denoVerifies = (why: string, outcome: Rejection = "untrusted"): Case["differs"] => ({
  "deno-postgres": [outcome, `deno-postgres verifies every certificate: ${why}; no fall-back to plain text`],
});

/** What Roost's message says of each refusal. */
const rejectionMessages: Record<Rejection, RegExp> = {
  untrusted: /the server's certificate did not verify against /,
  misnamed: /the server's certificate does not name this host: /,
};

/**
 * The driver's own error for each refusal, which the Roost error keeps as
 * `cause`: its code, or its message where it has none (deno-postgres: Deno's
 * TLS names no code).
 */
const driverRefusals: Partial<Record<DriverName, Record<Rejection, { code?: string; message?: RegExp }>>> = {
  "postgres-js": {
    untrusted: { code: "SELF_SIGNED_CERT_IN_CHAIN" },
    misnamed: { code: "ERR_TLS_CERT_ALTNAME_INVALID" },
  },
  "bun-sql": { untrusted: { code: "SELF_SIGNED_CERT_IN_CHAIN" }, misnamed: { code: "ERR_TLS_CERT_ALTNAME_INVALID" } },
  "deno-postgres": {
    untrusted: { message: /invalid peer certificate: UnknownIssuer/ },
    misnamed: { message: /invalid peer certificate: certificate not valid for name/ },
  },
};

/**
 * Asserts that `error` is `ROOST_CERTIFICATE_REJECTED` for `rejection`, with
 * the driver's own error (its code, or its words) as `cause`.
 */
function assertRejected(what: string, error: unknown, rejection: Rejection, driver: DriverName): void {
  assert.ok(error instanceof ConnectionError, `${what}: expected a ConnectionError, got ${describeError(error)}`);
  assert.equal(error.code, "ROOST_CERTIFICATE_REJECTED", `${what}: ${describeError(error)}`);
  assert.match(error.message, rejectionMessages[rejection], what);
  const own = driverRefusals[driver]?.[rejection];
  assert.ok(own !== undefined, `${what}: no driver error is listed for ${driver}`);
  const cause = error.cause;
  assert.ok(cause instanceof Error, `${what}: the cause is ${describeError(cause)}`);
  if (own.code !== undefined) {
    assert.equal((cause as { code?: unknown }).code, own.code, `${what}: the cause: ${describeError(cause)}`);
  }
  if (own.message !== undefined) assert.match(cause.message, own.message, `${what}: the cause`);
}

/**
 * The driver's own error for a server that does not offer TLS, which
 * `ROOST_TLS_NOT_OFFERED` keeps as `cause`: its code, or its words where it
 * has none (deno-postgres).
 */
function driverNoTls(dialect: "postgres" | "mysql", driver: DriverName): { code?: string; message?: RegExp } {
  if (dialect === "mysql") {
    // Bun.SQL calls it an authentication failure (no server error number); Roost asked the server's greeting.
    return { code: driver === "bun-sql" ? "ERR_MYSQL_AUTHENTICATION_FAILED" : "HANDSHAKE_NO_SSL_SUPPORT" };
  }
  if (driver === "deno-postgres") return { message: /The server isn't accepting TLS connections/ };
  if (driver === "bun-sql") return { code: "ERR_POSTGRES_TLS_NOT_AVAILABLE" };
  // postgres.js 3.4 meets the server's no with a TLS handshake the server closes (Roost saw the no); 4 says so.
  return { code: postgresJsMajor >= 4 ? "SSL_NOT_SUPPORTED" : "ECONNRESET" };
}

/** The password the shared servers' refused URLs carry (unchecked: TLS fails first); it must appear in no error. */
const unusedPassword = "tls-0ffer-s3cret";

/**
 * Asserts that `error` is `ROOST_TLS_NOT_OFFERED` for `host`:`port` under
 * `sslmode`, the message naming both (and not the password), with the
 * driver's own error as `cause`.
 */
function assertUnoffered(
  what: string,
  error: unknown,
  at: { dialect: "postgres" | "mysql"; host: string; port: string; sslmode: string; driver: DriverName },
): void {
  assert.ok(error instanceof ConnectionError, `${what}: expected a ConnectionError, got ${describeError(error)}`);
  assert.equal(error.code, "ROOST_TLS_NOT_OFFERED", `${what}: ${describeError(error)}`);
  assert.equal(
    error.message,
    `could not connect to ${at.dialect} at ${at.host}:${at.port}: the server does not offer TLS, which ` +
      `sslmode=${at.sslmode} asks for`,
    what,
  );
  const own = driverNoTls(at.dialect, at.driver);
  const cause = error.cause;
  assert.ok(cause instanceof Error, `${what}: the cause is ${describeError(cause)}`);
  if (own.code !== undefined) {
    assert.equal((cause as { code?: unknown }).code, own.code, `${what}: the cause: ${describeError(cause)}`);
  }
  if (own.message !== undefined) assert.match(cause.message, own.message, `${what}: the cause`);
  assertHidden(error, [unusedPassword], what);
}

/**
 * Asserts that `error` is `ROOST_HOSTS_UNREACHABLE` for the hosts 127.0.0.1
 * and localhost, each host's error in its `cause` `ROOST_TLS_NOT_OFFERED`.
 */
function assertEachHostUnoffered(
  what: string,
  error: unknown,
  at: { dialect: "postgres" | "mysql"; port: string; sslmode: string; driver: DriverName },
): void {
  assert.ok(error instanceof ConnectionError, `${what}: expected a ConnectionError, got ${describeError(error)}`);
  assert.equal(error.code, "ROOST_HOSTS_UNREACHABLE", what);
  assert.ok(error.cause instanceof AggregateError, `${what}: the cause is ${describeError(error.cause)}`);
  assert.equal(error.cause.errors.length, 2, what);
  for (const [i, host] of ["127.0.0.1", "localhost"].entries()) {
    assertUnoffered(`${what}: ${host}'s error`, error.cause.errors[i], { ...at, host });
  }
  assertHidden(error, [unusedPassword], what);
}

/** What the session says about itself. */
interface Session {
  ssl: boolean;
  user: string;
  client_dn: string | null;
}

const slow = { timeout: 30_000 };

const describeError = (error: unknown) =>
  error instanceof Error
    ? `${error.name}${
      (error as { code?: unknown }).code ? ` [${(error as { code?: unknown }).code}]` : ""
    }: ${error.message}`
    : String(error);

/** Why the neon driver has no sslmode tests here: tests/unit/options.test.ts holds its refusals. */
const neonTls = "its TLS is the WebSocket's (wss:), not Postgres's sslmode; the TLS settings it cannot honour are " +
  "ConfigErrors (tests/unit/options.test.ts); a wss:// proxy's certificate it refuses is tested here";

/** Postgres drivers of this runtime whose package loads here; the others are skipped with the reason printed. */
async function loadableDrivers(): Promise<DriverName[]> {
  const loadable: DriverName[] = [];
  for (const driver of availableDrivers("postgres")) {
    if (driver === "neon") {
      console.warn(`SKIPPING the TLS tests of neon: ${neonTls}`);
      continue;
    }
    // Port 1 is closed: a driver that loads fails with a ConnectionError, one that cannot load with a ConfigError.
    const db = new Database("postgres://postgres@127.0.0.1:1/postgres?connect_timeout=5", {
      driver,
      pool: { acquireTimeout: 10_000 },
    });
    try {
      await db.connect();
      loadable.push(driver);
    } catch (error) {
      if (error instanceof ConfigError && error.code === "ROOST_DRIVER_UNAVAILABLE") {
        console.warn(`SKIPPING the TLS tests of ${driver}: ${error.message}`);
      } else {
        loadable.push(driver);
      }
    } finally {
      await db.close();
    }
  }
  return loadable;
}

const postgresDrivers = await loadableDrivers();

/** Opens an instance on `url`, asks the session whether it is encrypted, and closes the instance. */
async function session(url: string, driver: DriverName): Promise<Session> {
  const db = new Database(url, { driver, pool: { acquireTimeout: 20_000 } });
  try {
    const row = await db.fetchOne<Session>(
      sql`select s.ssl, current_user::text as "user", s.client_dn from pg_stat_ssl s where s.pid = pg_backend_pid()`,
    );
    assert.ok(row !== undefined, "pg_stat_ssl has no row for this session");
    return row;
  } finally {
    await db.close();
  }
}

/** Asserts that connecting through `driver` comes to `expect`; `what` names the mode in failures. */
async function expectOutcome<T extends { ssl: boolean }>(
  what: string,
  expect: Expect,
  connect: () => Promise<T>,
  driver?: DriverName,
): Promise<T | undefined> {
  let result: T | undefined;
  let failure: unknown;
  try {
    result = await connect();
  } catch (error) {
    failure = error;
  }
  if (expect === "refused" || expect === "untrusted" || expect === "misnamed") {
    assert.ok(
      failure !== undefined,
      `${what}: expected a ConnectionError, but it connected (TLS ${result?.ssl ? "on" : "off"})`,
    );
    if (expect !== "refused") {
      assert.ok(driver !== undefined, `${what}: a certificate refusal is checked per driver`);
      assertRejected(what, failure, expect, driver);
      return undefined;
    }
    assert.ok(failure instanceof ConnectionError, `${what}: expected a ConnectionError, got ${describeError(failure)}`);
    assert.notEqual(failure.code, "ROOST_CERTIFICATE_REJECTED", `${what}: no certificate was refused`);
    assert.notEqual(failure.code, "ROOST_TLS_NOT_OFFERED", `${what}: the server offers TLS`);
    return undefined;
  }
  if (failure !== undefined || result === undefined) {
    assert.fail(
      `${what}: expected to connect${
        expect === "connects" ? "" : ` with TLS ${expect === "tls" ? "on" : "off"}`
      }, got ${describeError(failure)}`,
    );
  }
  if (expect === "tls") assert.equal(result.ssl, true, `${what}: expected TLS, got a plain connection`);
  if (expect === "plain") assert.equal(result.ssl, false, `${what}: expected a plain connection, got TLS`);
  return result;
}

const withTimeout = (options: Record<string, string>) => ({ connect_timeout: "5", ...options });

const cases: Case[] = [
  { title: "sslmode=disable → plain", host: "127.0.0.1", options: () => ({ sslmode: "disable" }), expect: "plain" },
  // libpq's allow tries without TLS first; this server accepts both, so either is right here.
  {
    title: "sslmode=allow → connects",
    host: "127.0.0.1",
    options: () => ({ sslmode: "allow" }),
    expect: "connects",
    differs: denoVerifies("the server offers TLS and its CA is unknown"),
  },
  {
    title: "sslmode=allow, user refused without TLS → TLS",
    host: "127.0.0.1",
    user: TLS_ONLY_USER,
    options: () => ({ sslmode: "allow" }),
    expect: "tls",
    differs: denoVerifies("CA unknown"),
  },
  {
    title: "sslmode=allow, sslrootcert=<the CA>, host localhost, user refused without TLS → TLS",
    host: "localhost",
    user: TLS_ONLY_USER,
    options: (server) => ({ sslmode: "allow", sslrootcert: server.caFile }),
    expect: "tls",
  },
  {
    title: "sslmode=prefer → TLS",
    host: "127.0.0.1",
    options: () => ({ sslmode: "prefer" }),
    expect: "tls",
    differs: denoVerifies("CA unknown"),
  },
  {
    title: "sslmode=prefer, sslrootcert=<the CA>, host localhost → TLS",
    host: "localhost",
    options: (server) => ({ sslmode: "prefer", sslrootcert: server.caFile }),
    expect: "tls",
  },
  {
    title: "sslmode=disable, user refused without TLS → ConnectionError",
    host: "127.0.0.1",
    user: TLS_ONLY_USER,
    options: () => ({ sslmode: "disable" }),
    expect: "refused",
  },
  {
    title: "sslmode=require without sslrootcert → TLS, certificate not checked",
    host: "127.0.0.1",
    options: () => ({ sslmode: "require" }),
    expect: "tls",
    differs: denoVerifies("CA unknown"),
  },
  {
    title: "sslmode=require, sslrootcert=<the CA> → TLS (checked like verify-ca)",
    host: "127.0.0.1",
    options: (server) => ({ sslmode: "require", sslrootcert: server.caFile }),
    expect: "tls",
    differs: denoVerifies("the certificate does not name 127.0.0.1", "misnamed"),
  },
  {
    title: "sslmode=require, sslrootcert=<the CA>, host localhost → TLS",
    host: "localhost",
    options: (server) => ({ sslmode: "require", sslrootcert: server.caFile }),
    expect: "tls",
  },
  {
    title: "sslmode=require, sslrootcert=<another CA> → ROOST_CERTIFICATE_REJECTED, the chain " +
      "(libpq: require with a root CA is verify-ca)",
    host: "127.0.0.1",
    options: (server) => ({ sslmode: "require", sslrootcert: server.otherCaFile }),
    expect: "untrusted",
  },
  {
    title: "sslmode=verify-ca without sslrootcert → ROOST_CERTIFICATE_REJECTED, the chain",
    host: "127.0.0.1",
    options: () => ({ sslmode: "verify-ca" }),
    expect: "untrusted",
  },
  {
    title: "sslmode=verify-ca, sslrootcert=<the CA>, host 127.0.0.1 → TLS (host name not checked)",
    host: "127.0.0.1",
    options: (server) => ({ sslmode: "verify-ca", sslrootcert: server.caFile }),
    expect: "tls",
    differs: denoVerifies("the certificate does not name 127.0.0.1", "misnamed"),
  },
  {
    title: "sslmode=verify-ca, sslrootcert=<another CA> → ROOST_CERTIFICATE_REJECTED, the chain",
    host: "127.0.0.1",
    options: (server) => ({ sslmode: "verify-ca", sslrootcert: server.otherCaFile }),
    expect: "untrusted",
  },
  {
    title: "sslmode=verify-full, sslrootcert=<the CA>, host localhost → TLS",
    host: "localhost",
    options: (server) => ({ sslmode: "verify-full", sslrootcert: server.caFile }),
    expect: "tls",
  },
  {
    title: "sslmode=verify-full, sslrootcert=<the CA>, host 127.0.0.1 (not in the certificate) → " +
      "ROOST_CERTIFICATE_REJECTED, the host name",
    host: "127.0.0.1",
    options: (server) => ({ sslmode: "verify-full", sslrootcert: server.caFile }),
    expect: "misnamed",
  },
  {
    title:
      "sslmode=verify-full without sslrootcert, host localhost → ROOST_CERTIFICATE_REJECTED, the chain (CA unknown)",
    host: "localhost",
    options: () => ({ sslmode: "verify-full" }),
    expect: "untrusted",
  },
  {
    title: "sslmode=verify-full, sslrootcert=<another CA>, host localhost → ROOST_CERTIFICATE_REJECTED, the chain",
    host: "localhost",
    options: (server) => ({ sslmode: "verify-full", sslrootcert: server.otherCaFile }),
    expect: "untrusted",
  },
  {
    title: "client certificate user without sslcert/sslkey → ConnectionError",
    host: "localhost",
    user: CERT_USER,
    options: (server) => ({ sslmode: "verify-full", sslrootcert: server.caFile }),
    expect: "refused",
  },
];

describe("TLS URL options", () => {
  test("Postgres takes libpq's sslmode values and sslrootcert", () => {
    for (const mode of ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]) {
      assert.equal(parseDatabaseUrl(`postgres://u@h/d?sslmode=${mode}`).options.sslmode, mode);
    }
    const url = parseDatabaseUrl("postgres://u@h/d?sslmode=verify-full&sslrootcert=%2Fca%20dir%2Fca.pem");
    assert.deepEqual(url.options, { sslmode: "verify-full", sslrootcert: "/ca dir/ca.pem" });
    for (const bad of ["verify_full", "required", "on", ""]) {
      assert.throws(() => parseDatabaseUrl(`postgres://u@h/d?sslmode=${bad}`), ConfigError, `sslmode=${bad}`);
    }
  });

  test("Postgres takes sslcert and sslkey (client certificate and key paths)", () => {
    const url = parseDatabaseUrl("postgres://u@h/d?sslmode=verify-full&sslcert=%2Fc.pem&sslkey=%2Fc.key");
    assert.deepEqual(url.options, { sslmode: "verify-full", sslcert: "/c.pem", sslkey: "/c.key" });
  });

  test("MySQL takes MySQL's sslmode values and sslrootcert", () => {
    for (const mode of ["disable", "preferred", "required", "verify_ca", "verify_identity"]) {
      assert.equal(parseDatabaseUrl(`mysql://u@h/d?sslmode=${mode}`).options.sslmode, mode);
    }
    assert.equal(parseDatabaseUrl("mysql://u@h/d?sslrootcert=%2Fca.pem").options.sslrootcert, "/ca.pem");
    for (const bad of ["require", "verify-full", "prefer"]) {
      assert.throws(() => parseDatabaseUrl(`mysql://u@h/d?sslmode=${bad}`), ConfigError, `sslmode=${bad}`);
    }
  });

  test("the URLs and TLS guide documents the sslmode values and the certificate options", () => {
    const readme = readFileSync(new URL("../../docs/urls-and-tls.md", import.meta.url), "utf8");
    const missing = [
      "verify-ca",
      "verify-full",
      "sslrootcert",
      "sslcert",
      "sslkey",
      "verify_ca",
      "verify_identity",
    ].filter((word) => !readme.includes(word));
    assert.deepEqual(missing, [], `docs/urls-and-tls.md does not mention ${missing.join(", ")}`);
  });
});

describe("sslmode on a private PostgreSQL server with TLS", () => {
  let server: TlsServer | undefined;

  before(async () => {
    server = await startTlsServer();
  }, slow);

  after(async () => {
    await server?.destroy();
  }, slow);

  /** The server, or a failure saying it could not start. */
  const started = () => {
    assert.ok(server !== undefined, "the private TLS server did not start (see the before hook's error)");
    return server;
  };

  for (const driver of postgresDrivers) {
    for (const c of cases) {
      const [expect, why] = c.differs?.[driver] ?? [c.expect, undefined];
      const outcome = {
        tls: "TLS",
        plain: "plain",
        connects: "connects",
        refused: "ConnectionError",
        untrusted: "ROOST_CERTIFICATE_REJECTED, the chain",
        misnamed: "ROOST_CERTIFICATE_REJECTED, the host name",
      }[expect];
      const title = why === undefined ? c.title : `${c.title} — here ${outcome} (${why})`;
      test(`[${driver}] ${title}`, slow, async () => {
        const tls = started();
        const url = tls.url(c.host, withTimeout(c.options(tls)), c.user);
        await expectOutcome(`${title} via ${driver} (${url})`, expect, () => session(url, driver), driver);
      });
    }

    test(
      `[${driver}] a multi-host URL checks each host's own name: 127.0.0.1 (not in the certificate) is passed over ` +
        "for localhost; with no other host, each host's error is ROOST_CERTIFICATE_REJECTED",
      slow,
      async () => {
        const tls = started();
        const query = `sslmode=verify-full&sslrootcert=${encodeURIComponent(tls.caFile)}&connect_timeout=5`;
        const url = `postgres://postgres@127.0.0.1:${tls.port},localhost:${tls.port}/postgres?${query}`;
        assert.equal((await session(url, driver)).ssl, true);
        const only = `postgres://postgres@127.0.0.1:${tls.port},127.0.0.1:${tls.port}/postgres?${query}`;
        await assert.rejects(session(only, driver), (error: unknown) => {
          assert.ok(error instanceof ConnectionError, `expected a ConnectionError, got ${describeError(error)}`);
          assert.equal(error.code, "ROOST_HOSTS_UNREACHABLE");
          assert.ok(error.cause instanceof AggregateError, `the cause is ${describeError(error.cause)}`);
          assert.equal(error.cause.errors.length, 2);
          for (const each of error.cause.errors) {
            assertRejected(`a host's error via ${driver}`, each, "misnamed", driver);
          }
          return true;
        });
      },
    );

    test(
      `[${driver}] a certificate from the trusted CA for another host name only (db.roost.invalid): verify-full to ` +
        `localhost is ROOST_CERTIFICATE_REJECTED on the name, verify-ca ${
          driver === "deno-postgres" ? "too (Deno checks the name in every mode)" : "connects"
        }`,
      slow,
      async () => {
        const tls = started();
        const connect = (sslmode: string) => () =>
          session(tls.url("localhost", withTimeout({ sslmode, sslrootcert: tls.caFile })), driver);
        await tls.presentCertificateFor("another host");
        try {
          await expectOutcome(`verify-full via ${driver}`, "misnamed", connect("verify-full"), driver);
          const verifyCa = driver === "deno-postgres" ? "misnamed" : "tls";
          await expectOutcome(`verify-ca via ${driver}`, verifyCa, connect("verify-ca"), driver);
        } finally {
          await tls.presentCertificateFor("localhost");
        }
        // The server is back to its own certificate for the tests after this one.
        await expectOutcome(`verify-full to localhost again via ${driver}`, "tls", connect("verify-full"), driver);
      },
    );

    test(
      `[${driver}] sslmode=require, the connection dropped right after the server said yes to TLS → a ConnectionError ` +
        "that is no ROOST_TLS_NOT_OFFERED (nor a certificate refusal)",
      slow,
      async () => {
        const tls = started();
        // Between the driver and the server: passes the SSLRequest and the server's 'S', then drops both sockets at the
        // driver's next bytes (its TLS handshake), as a network fault would.
        const sockets = new Set<Socket>();
        const relay = createTcpServer((client) => {
          const server = connect(tls.port, "127.0.0.1");
          sockets.add(client).add(server);
          client.on("error", () => {});
          server.on("error", () => {});
          let asked = false;
          client.on("data", (chunk) => {
            if (asked) {
              client.destroy();
              server.destroy();
            } else {
              asked = true;
              server.write(chunk);
            }
          });
          server.on("data", (chunk) => client.write(chunk));
        });
        await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", () => resolve()));
        const port = (relay.address() as { port: number }).port;
        try {
          const url = new URL(tls.url("127.0.0.1", withTimeout({ sslmode: "require" })));
          url.port = String(port);
          await expectOutcome(
            `require through a relay that drops via ${driver}`,
            "refused",
            () => session(url.toString(), driver),
          );
        } finally {
          for (const socket of sockets) socket.destroy();
          await new Promise<void>((resolve) => relay.close(() => resolve()));
        }
      },
    );

    test(`[${driver}] an unreadable sslrootcert → ConfigError`, slow, async () => {
      const tls = started();
      const missing = `${tls.caFile}.missing`;
      const url = tls.url("localhost", withTimeout({ sslmode: "verify-full", sslrootcert: missing }));
      await assert.rejects(session(url, driver), (error: unknown) => {
        assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${describeError(error)}`);
        assert.match(error.message, /sslrootcert/);
        return true;
      });
    });

    if (driver === "deno-postgres") {
      test(`[${driver}] sslcert/sslkey → ConfigError: no client certificates`, slow, async () => {
        const tls = started();
        const options = { sslmode: "verify-full", sslrootcert: tls.caFile, sslcert: tls.clientCertFile };
        const url = tls.url("localhost", withTimeout({ ...options, sslkey: tls.clientKeyFile }), CERT_USER);
        await assert.rejects(session(url, driver), (error: unknown) => {
          assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${describeError(error)}`);
          assert.match(error.message, /client certificate/);
          return true;
        });
      });

      test(
        `[${driver}] sslmode=prefer, a certificate it cannot verify: a ConnectionError that says what to change, nothing on stderr`,
        slow,
        async () => {
          const tls = started();
          const url = tls.url("localhost", withTimeout({ sslmode: "prefer", sslrootcert: tls.otherCaFile }));
          const written: unknown[][] = [];
          const original = console.error;
          console.error = (...args: unknown[]) => void written.push(args);
          try {
            await assert.rejects(session(url, driver), (error: unknown) => {
              assertRejected(`sslmode=prefer via ${driver}`, error, "untrusted", driver);
              assert.match(error instanceof Error ? error.message : "", /name the server's CA with sslrootcert/);
              return true;
            });
          } finally {
            console.error = original;
          }
          assert.deepEqual(written, [], "the library wrote to stderr");
        },
      );
      continue;
    }

    test(`[${driver}] sslcert/sslkey: a client certificate logs its user in over verify-full`, slow, async () => {
      const tls = started();
      const options = {
        sslmode: "verify-full",
        sslrootcert: tls.caFile,
        sslcert: tls.clientCertFile,
        sslkey: tls.clientKeyFile,
      };
      const url = tls.url("localhost", withTimeout(options), CERT_USER);
      const what = `sslmode=verify-full with sslcert/sslkey as ${CERT_USER} via ${driver} (${url})`;
      const row = await expectOutcome(what, "tls", () => session(url, driver));
      assert.equal(row?.user, CERT_USER, `${what}: logged in as ${row?.user}`);
      assert.match(
        String(row?.client_dn),
        new RegExp(`CN=${CERT_USER}`),
        `${what}: the server saw no client certificate`,
      );
    });
  }

  if (availableDrivers("postgres").includes("neon")) {
    // Node's WebSocket (undici) reports a failed handshake with no reason: nothing tells a certificate apart there.
    const outcome = runtime === "node"
      ? "a ConnectionError with no certificate code (Node's WebSocket gives no reason)"
      : "ROOST_CERTIFICATE_REJECTED, the chain";
    test(
      `[neon] a wss:// proxy whose certificate the runtime does not trust (a private CA's) → ${outcome}`,
      slow,
      async () => {
        const tls = started();
        // A TLS endpoint with the private server's certificate: the handshake is refused before any WebSocket.
        const sockets = new Set<{ destroy(): void }>();
        const proxy = createServer({ cert: readFileSync(tls.serverCertFile), key: readFileSync(tls.serverKeyFile) });
        proxy.on("connection", (socket) => sockets.add(socket));
        proxy.on("tlsClientError", () => {});
        await new Promise<void>((resolve, reject) => {
          proxy.once("error", reject);
          proxy.listen(0, "127.0.0.1", () => resolve());
        });
        const port = (proxy.address() as { port: number }).port;
        try {
          const url = tls.url("127.0.0.1", withTimeout({ wsproxy: `wss://localhost:${port}/v1` }));
          const what = `neon through wss://localhost:${port} (${url})`;
          await assert.rejects(session(url, "neon"), (error: unknown) => {
            assert.ok(
              error instanceof ConnectionError,
              `${what}: expected a ConnectionError, got ${describeError(error)}`,
            );
            if (runtime === "node") {
              assert.notEqual(error.code, "ROOST_CERTIFICATE_REJECTED", what);
              assert.match(error.message, /the WebSocket failed/, what);
              return true;
            }
            assert.equal(error.code, "ROOST_CERTIFICATE_REJECTED", `${what}: ${describeError(error)}`);
            assert.match(error.message, /the server's certificate did not verify against the runtime's CAs: /, what);
            // The WebSocket's own words, which the cause keeps: Bun's OpenSSL message, Deno's rustls one.
            const words = runtime === "bun" ? /unable to verify the first certificate/ : /invalid peer certificate/;
            assert.ok(error.cause instanceof Error, `${what}: the cause is ${describeError(error.cause)}`);
            assert.match(error.cause.message, words, `${what}: the cause`);
            return true;
          });
        } finally {
          for (const socket of sockets) socket.destroy();
          await new Promise<void>((resolve) => proxy.close(() => resolve()));
        }
      },
    );
  }
});

/** The shared server's URL under `sslmode`, the host and port its errors name, and `hosts` (on its port) if given. */
interface SharedUrl {
  url: string;
  host: string;
  port: string;
}

/**
 * The shared server's URL (`targetUrl`) with `sslmode`, and for a mode that
 * demands TLS a password the server never checks (TLS fails first), which no
 * error may show; with `hosts`, a multi-host URL of those names on its port.
 */
function sharedUrl(targetUrl: string, sslmode: string, hosts?: readonly string[]): SharedUrl {
  const url = new URL(targetUrl);
  url.searchParams.set("sslmode", sslmode);
  url.searchParams.set("connect_timeout", "5");
  if (/^(require|verify)/.test(sslmode)) url.password = unusedPassword;
  const port = url.port || (url.protocol === "mysql:" ? "3306" : "5432");
  const host = hosts?.[0] ?? url.hostname;
  const text = url.toString();
  if (hosts === undefined) return { url: text, host, port };
  const list = hosts.map((name) => `${name}:${port}`).join(",");
  return { url: text.replace(`@${url.host}/`, `@${list}/`), host, port };
}

for (const target of targets({ places: ["postgres"] })) {
  if (target.driver === "neon") {
    console.warn(`SKIPPING sslmode on the shared Postgres server ${target.label}: ${neonTls}`);
    continue;
  }
  describe(`sslmode on the shared Postgres server, TLS off ${target.label}`, () => {
    const shared: [string, "plain" | "unoffered"][] = [
      ["disable", "plain"],
      ["allow", "plain"],
      ["prefer", "plain"],
      ["require", "unoffered"],
      ["verify-ca", "unoffered"],
      ["verify-full", "unoffered"],
    ];
    for (const [mode, expect] of shared) {
      const outcome = expect === "unoffered"
        ? "ROOST_TLS_NOT_OFFERED, the driver's error in cause"
        : "connects without TLS";
      test(`sslmode=${mode} → ${outcome}`, slow, async () => {
        const { url, host, port } = sharedUrl(target.url, mode);
        const what = `sslmode=${mode} via ${target.driver} (${url})`;
        if (expect === "plain") {
          await expectOutcome(what, expect, () => session(url, target.driver));
          return;
        }
        await assert.rejects(session(url, target.driver), (error: unknown) => {
          assertUnoffered(what, error, { dialect: "postgres", host, port, sslmode: mode, driver: target.driver });
          return true;
        });
      });
    }

    test(
      "a multi-host URL under sslmode=require: ROOST_HOSTS_UNREACHABLE, each host's error ROOST_TLS_NOT_OFFERED",
      slow,
      async () => {
        const { url, port } = sharedUrl(target.url, "require", ["127.0.0.1", "localhost"]);
        const what = `two hosts under sslmode=require via ${target.driver} (${url})`;
        await assert.rejects(session(url, target.driver), (error: unknown) => {
          assertEachHostUnoffered(what, error, {
            dialect: "postgres",
            port,
            sslmode: "require",
            driver: target.driver,
          });
          return true;
        });
      },
    );
  });
}

for (const target of targets({ dialects: ["mysql"] })) {
  describe(`sslmode on the shared MariaDB server, SSL disabled ${target.label}`, () => {
    /** Opens an instance, asks whether the session is encrypted, and closes it. */
    async function mysqlSession(url: string): Promise<{ ssl: boolean }> {
      const db = new Database(url, { driver: target.driver, pool: { acquireTimeout: 20_000 } });
      try {
        const rows = await db.fetchAll<Record<string, unknown>>(sql`show session status like 'Ssl_cipher'`);
        const value = rows[0] === undefined ? "" : String(Object.values(rows[0])[1] ?? "");
        return { ssl: value !== "" };
      } finally {
        await db.close();
      }
    }

    const shared: [string, "plain" | "unoffered"][] = [
      ["disable", "plain"],
      ["preferred", "plain"],
      ["required", "unoffered"],
      ["verify_ca", "unoffered"],
      ["verify_identity", "unoffered"],
    ];
    for (const [mode, expect] of shared) {
      const outcome = expect === "unoffered"
        ? "ROOST_TLS_NOT_OFFERED, the driver's error in cause"
        : "connects without TLS";
      test(`sslmode=${mode} → ${outcome}`, slow, async () => {
        // By name: mysql2 refuses verify_identity to an IP address before connecting (a ConfigError).
        const { url, host, port } = sharedUrl(target.url, mode, mode === "verify_identity" ? ["localhost"] : undefined);
        const what = `sslmode=${mode} via ${target.driver} (${url})`;
        if (expect === "plain") {
          await expectOutcome(what, expect, () => mysqlSession(url));
          return;
        }
        await assert.rejects(mysqlSession(url), (error: unknown) => {
          assertUnoffered(what, error, { dialect: "mysql", host, port, sslmode: mode, driver: target.driver });
          return true;
        });
      });
    }

    test(
      "a multi-host URL under sslmode=required: ROOST_HOSTS_UNREACHABLE, each host's error ROOST_TLS_NOT_OFFERED",
      slow,
      async () => {
        const { url, port } = sharedUrl(target.url, "required", ["127.0.0.1", "localhost"]);
        const what = `two hosts under sslmode=required via ${target.driver} (${url})`;
        await assert.rejects(mysqlSession(url), (error: unknown) => {
          assertEachHostUnoffered(what, error, { dialect: "mysql", port, sslmode: "required", driver: target.driver });
          return true;
        });
      },
    );
  });
}
