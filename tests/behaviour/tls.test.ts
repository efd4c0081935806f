/**
 * TLS: each URL `sslmode` maps to the driver's options with libpq's meanings
 * on Postgres (and MySQL's on MySQL), and certificates are verified for
 * `verify-ca` / `verify-full`. A private PostgreSQL server with TLS (see
 * tests/support/tls_server.ts: its own CA, a server certificate for `localhost`
 * only, a user that must present a client certificate) is started for this
 * file and removed after it; every Postgres driver of the runtime connects to
 * it in each mode, and `pg_stat_ssl` says whether the session is encrypted.
 * The shared Postgres and MariaDB servers, which have TLS off, check that a
 * mode requiring TLS is refused there and a preferring one falls back.
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
import { ConfigError, ConnectionError, Database, type DriverName, parseDatabaseUrl, sql } from "../../mod.ts";
import { availableDrivers } from "../../src/drivers/mod.ts";
import { targets } from "../support/targets.ts";
import { CERT_USER, startTlsServer, TLS_ONLY_USER, type TlsServer } from "../support/tls_server.ts";

/** What a connection attempt must come to. */
type Expect = "tls" | "plain" | "connects" | "refused";

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

/** deno-postgres's documented outcome when the server's certificate or host name cannot be verified. */
const denoVerifies = (why: string): Case["differs"] => ({
  "deno-postgres": ["refused", `deno-postgres verifies every certificate: ${why}; no fall-back to plain text`],
});

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

/** Why the neon driver has no TLS tests here: tests/unit/options.test.ts holds its refusals. */
const neonTls = "its TLS is the WebSocket's (wss:), not Postgres's sslmode; the TLS settings it cannot honour are " +
  "ConfigErrors (tests/unit/options.test.ts)";

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

/** Asserts that connecting to `url` through `driver` comes to `expect`; `what` names the mode in failures. */
async function expectOutcome<T extends { ssl: boolean }>(
  what: string,
  expect: Expect,
  connect: () => Promise<T>,
): Promise<T | undefined> {
  let result: T | undefined;
  let failure: unknown;
  try {
    result = await connect();
  } catch (error) {
    failure = error;
  }
  if (expect === "refused") {
    assert.ok(
      failure !== undefined,
      `${what}: expected a ConnectionError, but it connected (TLS ${result?.ssl ? "on" : "off"})`,
    );
    assert.ok(failure instanceof ConnectionError, `${what}: expected a ConnectionError, got ${describeError(failure)}`);
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
    differs: denoVerifies("the certificate does not name 127.0.0.1"),
  },
  {
    title: "sslmode=require, sslrootcert=<the CA>, host localhost → TLS",
    host: "localhost",
    options: (server) => ({ sslmode: "require", sslrootcert: server.caFile }),
    expect: "tls",
  },
  {
    title: "sslmode=require, sslrootcert=<another CA> → ConnectionError (libpq: require with a root CA is verify-ca)",
    host: "127.0.0.1",
    options: (server) => ({ sslmode: "require", sslrootcert: server.otherCaFile }),
    expect: "refused",
  },
  {
    title: "sslmode=verify-ca without sslrootcert → ConnectionError",
    host: "127.0.0.1",
    options: () => ({ sslmode: "verify-ca" }),
    expect: "refused",
  },
  {
    title: "sslmode=verify-ca, sslrootcert=<the CA>, host 127.0.0.1 → TLS (host name not checked)",
    host: "127.0.0.1",
    options: (server) => ({ sslmode: "verify-ca", sslrootcert: server.caFile }),
    expect: "tls",
    differs: denoVerifies("the certificate does not name 127.0.0.1"),
  },
  {
    title: "sslmode=verify-ca, sslrootcert=<another CA> → ConnectionError",
    host: "127.0.0.1",
    options: (server) => ({ sslmode: "verify-ca", sslrootcert: server.otherCaFile }),
    expect: "refused",
  },
  {
    title: "sslmode=verify-full, sslrootcert=<the CA>, host localhost → TLS",
    host: "localhost",
    options: (server) => ({ sslmode: "verify-full", sslrootcert: server.caFile }),
    expect: "tls",
  },
  {
    title: "sslmode=verify-full, sslrootcert=<the CA>, host 127.0.0.1 (not in the certificate) → ConnectionError",
    host: "127.0.0.1",
    options: (server) => ({ sslmode: "verify-full", sslrootcert: server.caFile }),
    expect: "refused",
  },
  {
    title: "sslmode=verify-full without sslrootcert, host localhost → ConnectionError (CA unknown)",
    host: "localhost",
    options: () => ({ sslmode: "verify-full" }),
    expect: "refused",
  },
  {
    title: "sslmode=verify-full, sslrootcert=<another CA>, host localhost → ConnectionError",
    host: "localhost",
    options: (server) => ({ sslmode: "verify-full", sslrootcert: server.otherCaFile }),
    expect: "refused",
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
      const outcome = { tls: "TLS", plain: "plain", connects: "connects", refused: "ConnectionError" }[expect];
      const title = why === undefined ? c.title : `${c.title} — here ${outcome} (${why})`;
      test(`[${driver}] ${title}`, slow, async () => {
        const tls = started();
        const url = tls.url(c.host, withTimeout(c.options(tls)), c.user);
        await expectOutcome(`${title} via ${driver} (${url})`, expect, () => session(url, driver));
      });
    }

    test(
      `[${driver}] a multi-host URL checks each host's own name: 127.0.0.1 (not in the certificate) is passed over for localhost`,
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
          return true;
        });
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
              assert.ok(error instanceof ConnectionError, `expected a ConnectionError, got ${describeError(error)}`);
              assert.match(error.message, /sslrootcert/);
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
});

for (const target of targets({ places: ["postgres"] })) {
  if (target.driver === "neon") {
    console.warn(`SKIPPING sslmode on the shared Postgres server ${target.label}: ${neonTls}`);
    continue;
  }
  describe(`sslmode on the shared Postgres server, TLS off ${target.label}`, () => {
    const shared: [string, Expect][] = [
      ["disable", "plain"],
      ["allow", "plain"],
      ["prefer", "plain"],
      ["require", "refused"],
      ["verify-ca", "refused"],
      ["verify-full", "refused"],
    ];
    for (const [mode, expect] of shared) {
      const outcome = expect === "refused" ? "ConnectionError" : "connects without TLS";
      test(`sslmode=${mode} → ${outcome}`, slow, async () => {
        const url = new URL(target.url);
        url.searchParams.set("sslmode", mode);
        url.searchParams.set("connect_timeout", "5");
        await expectOutcome(
          `sslmode=${mode} via ${target.driver} (${url})`,
          expect,
          () => session(url.toString(), target.driver),
        );
      });
    }
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

    const shared: [string, Expect][] = [
      ["disable", "plain"],
      ["preferred", "plain"],
      ["required", "refused"],
      ["verify_ca", "refused"],
      ["verify_identity", "refused"],
    ];
    for (const [mode, expect] of shared) {
      const outcome = expect === "refused" ? "ConnectionError" : "connects without TLS";
      test(`sslmode=${mode} → ${outcome}`, slow, async () => {
        const url = new URL(target.url);
        url.searchParams.set("sslmode", mode);
        url.searchParams.set("connect_timeout", "5");
        // By name: mysql2 refuses verify_identity to an IP address before connecting (a ConfigError).
        if (mode === "verify_identity") url.hostname = "localhost";
        await expectOutcome(
          `sslmode=${mode} via ${target.driver} (${url})`,
          expect,
          () => mysqlSession(url.toString()),
        );
      });
    }
  });
}
