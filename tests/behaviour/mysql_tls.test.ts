/**
 * MySQL TLS against a real MariaDB server with TLS, on every MySQL driver of
 * the runtime (mysql2; Bun.SQL's MySQL adapter on Bun): what each URL
 * `sslmode` comes to. The server (tests/support/mariadb_tls.ts) is started
 * for this file and removed after it: its own CA, a certificate for the DNS
 * name `localhost` only, a user refused without TLS (`REQUIRE SSL`) and one
 * that must present a client certificate (`REQUIRE X509`), each with a
 * password that must appear in no error. A server certificate a check
 * refuses is a ConnectionError `ROOST_CERTIFICATE_REJECTED` on every
 * driver, saying which check (chain or host name), with the driver's own
 * code in `cause`. `Ssl_cipher` and `Ssl_version` in
 * the session's status say whether it is encrypted. Locally, a machine that
 * cannot start the server skips with the reason; in CI that is a failure.
 * tests/behaviour/tls.test.ts covers the shared MariaDB server, which has
 * TLS off.
 */
import assert from "node:assert/strict";
import { after, describe, test } from "node:test";
import { ConfigError, ConnectionError, Database, type DriverName, sql } from "../../mod.ts";
import {
  CERT_USER,
  type MariaDbTls,
  PLAIN_USER,
  startMariaDbTls,
  TLS_ONLY_USER,
  TLS_PASSWORD,
} from "../support/mariadb_tls.ts";
import { assertHidden, describeError, inCi, skipUnless } from "../support/support.ts";
import { targets } from "../support/targets.ts";

const mysqlTargets = targets({ places: ["mysql"] });
let server: MariaDbTls | undefined;
let unavailable = "";
if (mysqlTargets.length > 0) {
  try {
    server = await startMariaDbTls();
  } catch (error) {
    if (inCi) throw error;
    unavailable = error instanceof Error ? error.message : String(error);
    console.warn(`SKIPPING the MariaDB TLS tests: ${unavailable}`);
  }
}

/** The password, raw and as the URL carries it: neither may appear in an error. */
const secrets = [TLS_PASSWORD, encodeURIComponent(TLS_PASSWORD)];

/** What the session says about itself. */
interface Session {
  /** `Ssl_cipher`: empty on a plain connection. */
  cipher: string;
  /** `Ssl_version`: TLSv1.2 or TLSv1.3 when encrypted. */
  version: string;
  /** `current_user()`: the account the server logged in. */
  user: string;
}

/** Opens an instance on `url`, asks the session about its TLS and user, and closes the instance. */
async function session(url: string, driver: DriverName): Promise<Session> {
  const db = new Database(url, { driver, pool: { acquireTimeout: 20_000 } });
  try {
    const rows = await db.fetchAll<Record<string, unknown>>(
      sql`show session status where variable_name in ('Ssl_cipher', 'Ssl_version')`,
    );
    const status = new Map(rows.map((row) => Object.values(row).map(String) as [string, string]));
    const user = await db.fetchVal<string>(sql`select current_user()`);
    return { cipher: status.get("Ssl_cipher") ?? "", version: status.get("Ssl_version") ?? "", user: String(user) };
  } finally {
    await db.close();
  }
}

/**
 * What a connection attempt must come to: TLS on or off, or refused with
 * this error class and code; for a refused certificate, also what Roost's
 * message says and the driver's own code, which the error's `cause` keeps.
 */
type Outcome = { tls: boolean } | {
  refused: typeof ConnectionError | typeof ConfigError;
  code?: string;
  message?: RegExp;
  causeCode?: string;
};

const encrypted: Outcome = { tls: true };
const plain: Outcome = { tls: false };
const denied: Outcome = { refused: ConnectionError, code: "ER_ACCESS_DENIED_ERROR" };

/** A certificate the check of its chain (`untrusted`) or host name (`misnamed`) refused; `driverCode` is the cause's. */
const rejected = (check: "untrusted" | "misnamed", driverCode: string): Outcome => ({
  refused: ConnectionError,
  code: "ROOST_CERTIFICATE_REJECTED",
  message: check === "untrusted"
    ? /the server's certificate did not verify against /
    : /the server's certificate does not name this host: /,
  causeCode: driverCode,
});

/** A certificate that does not verify: mysql2 names every TLS failure HANDSHAKE_SSL_ERROR, Bun.SQL by OpenSSL's code. */
const unverified: Partial<Record<DriverName, Outcome>> = {
  mysql2: rejected("untrusted", "HANDSHAKE_SSL_ERROR"),
  "bun-sql": rejected("untrusted", "SELF_SIGNED_CERT_IN_CHAIN"),
};
/** A certificate that does not name the host (an IP address here). */
const wrongHost: Partial<Record<DriverName, Outcome>> = {
  // node:tls under mysql2 would check an IP address's certificate for "localhost": Roost refuses (docs/urls-and-tls.md).
  mysql2: { refused: ConfigError, code: "ROOST_VERIFY_IDENTITY_IP" },
  "bun-sql": rejected("misnamed", "ERR_TLS_CERT_ALTNAME_INVALID"),
};

/** A certificate signed by the trusted CA for another host name than the one connected to. */
const otherName: Partial<Record<DriverName, Outcome>> = {
  mysql2: rejected("misnamed", "HANDSHAKE_SSL_ERROR"),
  "bun-sql": rejected("misnamed", "ERR_TLS_CERT_ALTNAME_INVALID"),
};

/** One connection attempt to the private server. */
interface Case {
  title: string;
  host: "127.0.0.1" | "localhost";
  user: string;
  options(server: MariaDbTls): Record<string, string>;
  /** The same outcome for every driver, or each driver's. */
  expect: Outcome | Partial<Record<DriverName, Outcome>>;
}

const cases: Case[] = [
  {
    title: "sslmode=disable → plain",
    host: "127.0.0.1",
    user: PLAIN_USER,
    options: () => ({ sslmode: "disable" }),
    expect: plain,
  },
  {
    title: "sslmode=disable, a REQUIRE SSL user → ConnectionError ER_ACCESS_DENIED_ERROR",
    host: "127.0.0.1",
    user: TLS_ONLY_USER,
    options: () => ({ sslmode: "disable" }),
    expect: denied,
  },
  {
    title: "no sslmode (disable), a REQUIRE SSL user → ConnectionError ER_ACCESS_DENIED_ERROR",
    host: "127.0.0.1",
    user: TLS_ONLY_USER,
    options: () => ({}),
    expect: denied,
  },
  {
    title: "sslmode=preferred → TLS",
    host: "127.0.0.1",
    user: PLAIN_USER,
    options: () => ({ sslmode: "preferred" }),
    expect: encrypted,
  },
  {
    title: "sslmode=preferred, a REQUIRE SSL user → TLS",
    host: "127.0.0.1",
    user: TLS_ONLY_USER,
    options: () => ({ sslmode: "preferred" }),
    expect: encrypted,
  },
  {
    title: "sslmode=preferred, sslrootcert=<another CA> → TLS (preferred checks no certificate)",
    host: "127.0.0.1",
    user: TLS_ONLY_USER,
    options: (server) => ({ sslmode: "preferred", sslrootcert: server.otherCaFile }),
    expect: encrypted,
  },
  {
    title: "sslmode=required without sslrootcert → TLS, certificate not checked",
    host: "127.0.0.1",
    user: TLS_ONLY_USER,
    options: () => ({ sslmode: "required" }),
    expect: encrypted,
  },
  {
    title: "sslmode=required, sslrootcert=<the CA> → TLS",
    host: "127.0.0.1",
    user: TLS_ONLY_USER,
    options: (server) => ({ sslmode: "required", sslrootcert: server.caFile }),
    expect: encrypted,
  },
  {
    title: "sslmode=required, sslrootcert=<another CA> → ROOST_CERTIFICATE_REJECTED, the chain " +
      "(with a root CA, required is verify_ca)",
    host: "127.0.0.1",
    user: TLS_ONLY_USER,
    options: (server) => ({ sslmode: "required", sslrootcert: server.otherCaFile }),
    expect: unverified,
  },
  {
    title: "sslmode=verify_ca without sslrootcert → ROOST_CERTIFICATE_REJECTED, the chain (CA unknown)",
    host: "127.0.0.1",
    user: TLS_ONLY_USER,
    options: () => ({ sslmode: "verify_ca" }),
    expect: unverified,
  },
  {
    title: "sslmode=verify_ca, sslrootcert=<the CA>, host 127.0.0.1 (not in the certificate) → TLS (host not checked)",
    host: "127.0.0.1",
    user: TLS_ONLY_USER,
    options: (server) => ({ sslmode: "verify_ca", sslrootcert: server.caFile }),
    expect: encrypted,
  },
  {
    title: "sslmode=verify_ca, sslrootcert=<another CA> → ROOST_CERTIFICATE_REJECTED, the chain",
    host: "127.0.0.1",
    user: TLS_ONLY_USER,
    options: (server) => ({ sslmode: "verify_ca", sslrootcert: server.otherCaFile }),
    expect: unverified,
  },
  {
    title: "sslmode=verify_identity, sslrootcert=<the CA>, host localhost → TLS",
    host: "localhost",
    user: TLS_ONLY_USER,
    options: (server) => ({ sslmode: "verify_identity", sslrootcert: server.caFile }),
    expect: encrypted,
  },
  {
    title: "sslmode=verify_identity, sslrootcert=<the CA>, host 127.0.0.1 (not in the certificate) → " +
      "ROOST_CERTIFICATE_REJECTED, the host name (mysql2: ConfigError ROOST_VERIFY_IDENTITY_IP before connecting)",
    host: "127.0.0.1",
    user: TLS_ONLY_USER,
    options: (server) => ({ sslmode: "verify_identity", sslrootcert: server.caFile }),
    expect: wrongHost,
  },
  {
    title: "sslmode=verify_identity without sslrootcert, host localhost → ROOST_CERTIFICATE_REJECTED, the chain " +
      "(CA unknown)",
    host: "localhost",
    user: TLS_ONLY_USER,
    options: () => ({ sslmode: "verify_identity" }),
    expect: unverified,
  },
  {
    title: "sslmode=verify_identity, sslrootcert=<another CA>, host localhost → ROOST_CERTIFICATE_REJECTED, the chain",
    host: "localhost",
    user: TLS_ONLY_USER,
    options: (server) => ({ sslmode: "verify_identity", sslrootcert: server.otherCaFile }),
    expect: unverified,
  },
  {
    title: "a REQUIRE X509 user without sslcert/sslkey → ConnectionError ER_ACCESS_DENIED_ERROR",
    host: "localhost",
    user: CERT_USER,
    options: (server) => ({ sslmode: "verify_identity", sslrootcert: server.caFile }),
    expect: denied,
  },
];

const slow = { timeout: 30_000 };
const withTimeout = (options: Record<string, string>) => ({ connect_timeout: "5", ...options });

/** Asserts that `failure` is the refusal `expect` describes, and that it shows no password. */
function assertRefused(what: string, failure: unknown, expect: Extract<Outcome, { refused: unknown }>): void {
  assertHidden(failure, secrets, what);
  const name = expect.refused.name;
  assert.ok(failure instanceof expect.refused, `${what}: expected a ${name}, got ${describeError(failure)}`);
  assert.equal(failure.code, expect.code, `${what}: ${describeError(failure)}`);
  if (expect.message) assert.match(failure.message, expect.message, what);
  if (expect.causeCode !== undefined) {
    const cause = failure.cause as { code?: unknown } | undefined;
    assert.equal(cause?.code, expect.causeCode, `${what}: the cause: ${describeError(cause)}`);
  }
}

/** Connects and checks the outcome, and that no error shows the password; returns the session when it connected. */
async function attempt(what: string, expect: Outcome, connect: () => Promise<Session>): Promise<Session | undefined> {
  let result: Session | undefined;
  let failure: unknown;
  try {
    result = await connect();
  } catch (error) {
    failure = error;
  }
  if ("refused" in expect) {
    const name = expect.refused.name;
    assert.ok(failure !== undefined, `${what}: expected a ${name}, but it connected (Ssl_cipher "${result?.cipher}")`);
    assertRefused(what, failure, expect);
    return undefined;
  }
  if (failure !== undefined) assertHidden(failure, secrets, what);
  assert.ok(result !== undefined, `${what}: expected to connect, got ${describeError(failure)}`);
  if (expect.tls) {
    assert.notEqual(result.cipher, "", `${what}: expected TLS, got a plain connection`);
    assert.match(result.version, /^TLSv1\.[23]$/, `${what}: Ssl_version`);
  } else {
    assert.equal(result.cipher, "", `${what}: expected a plain connection, got TLS (${result.cipher})`);
    assert.equal(result.version, "", `${what}: Ssl_version`);
  }
  return result;
}

/** The outcome a case expects of `driver`. */
function expected(c: Case, driver: DriverName): Outcome {
  const outcome = "tls" in c.expect || "refused" in c.expect ? c.expect as Outcome : c.expect[driver];
  assert.ok(outcome !== undefined, `the case "${c.title}" says nothing about ${driver}`);
  return outcome;
}

let suitesLeft = server ? mysqlTargets.length : 0;

for (const target of mysqlTargets) {
  describe(`sslmode on a private MariaDB server with TLS [${target.driver}]`, () => {
    after(async () => {
      if (--suitesLeft === 0) await server?.destroy();
    }, slow);

    const options = skipUnless(
      server !== undefined,
      `the private MariaDB TLS server did not start: ${unavailable}`,
      slow,
    );
    /** The server; only called by tests that are not skipped. */
    const started = () => {
      assert.ok(server !== undefined, "the private MariaDB TLS server did not start");
      return server;
    };

    for (const c of cases) {
      test(c.title, options, async () => {
        const tls = started();
        const url = tls.url(c.host, withTimeout(c.options(tls)), c.user);
        const row = await attempt(
          `${c.title} via ${target.driver}`,
          expected(c, target.driver),
          () => session(url, target.driver),
        );
        if (row) assert.equal(row.user, `${c.user}@127.0.0.1`);
      });
    }

    test(
      "a certificate for another host name only (same CA): verify_identity to localhost is " +
        "ROOST_CERTIFICATE_REJECTED on the name, verify_ca connects",
      options,
      async () => {
        const tls = started();
        await tls.presentCertificateFor("another host");
        try {
          const connect = (sslmode: string) => () =>
            session(tls.url("localhost", withTimeout({ sslmode, sslrootcert: tls.caFile })), target.driver);
          await attempt(`verify_identity via ${target.driver}`, otherName[target.driver]!, connect("verify_identity"));
          await attempt(`verify_ca via ${target.driver}`, encrypted, connect("verify_ca"));
        } finally {
          await tls.presentCertificateFor("localhost");
        }
        // The server is back to its own certificate for the tests after this one.
        await attempt(`verify_identity to localhost again via ${target.driver}`, encrypted, () =>
          session(
            tls.url("localhost", withTimeout({ sslmode: "verify_identity", sslrootcert: tls.caFile })),
            target.driver,
          ));
      },
    );

    test(
      "a multi-host URL whose hosts' certificates are all refused: ROOST_HOSTS_UNREACHABLE, each host's error " +
        "ROOST_CERTIFICATE_REJECTED",
      options,
      async () => {
        const tls = started();
        const one = new URL(tls.url("127.0.0.1", withTimeout({ sslmode: "verify_ca", sslrootcert: tls.otherCaFile })));
        const url = one.href.replace(`@127.0.0.1:${tls.port}/`, `@127.0.0.1:${tls.port},localhost:${tls.port}/`);
        const what = `verify_ca with another CA, two hosts, via ${target.driver}`;
        await assert.rejects(session(url, target.driver), (error: unknown) => {
          assertRefused(what, error, { refused: ConnectionError, code: "ROOST_HOSTS_UNREACHABLE" });
          const hosts = (error as Error).cause;
          assert.ok(hosts instanceof AggregateError, `${what}: the cause is ${describeError(hosts)}`);
          assert.equal(hosts.errors.length, 2, what);
          const each = unverified[target.driver];
          assert.ok(each !== undefined && "refused" in each, `nothing is listed for ${target.driver}`);
          for (const host of hosts.errors) assertRefused(`${what}: a host's error`, host, each);
          return true;
        });
      },
    );

    test("sslcert/sslkey: a client certificate logs a REQUIRE X509 user in over verify_identity", options, async () => {
      const tls = started();
      const url = tls.url(
        "localhost",
        withTimeout({
          sslmode: "verify_identity",
          sslrootcert: tls.caFile,
          sslcert: tls.clientCertFile,
          sslkey: tls.clientKeyFile,
        }),
        CERT_USER,
      );
      const what = `sslmode=verify_identity with sslcert/sslkey as ${CERT_USER} via ${target.driver}`;
      const row = await attempt(what, encrypted, () => session(url, target.driver));
      assert.equal(row?.user, `${CERT_USER}@127.0.0.1`, what);
    });
  });
}
