/**
 * Option validation, in one place: every URL form and every option a
 * `Database` accepts or refuses at construction, which connects to nothing.
 * What is refused is a `ConfigError` naming the option (and never showing the
 * password it came with); anything else builds an instance. Fixed cases first
 * (database URLs, Database options, SQLite's `:memory:` and root path,
 * replicas and routing, connectionScope), then properties over any string,
 * any value and any URL-shaped text (fast-check, which prints its seed on
 * failure). Whether a secret shows anywhere once an instance connects, fails
 * or logs is tests/behaviour/secrets.test.ts's job; how an accepted option
 * behaves against a database is the behaviour suite's.
 */
import assert from "node:assert/strict";
import { tmpdir } from "node:os";
import { describe, test } from "node:test";
import { inspect } from "node:util";
import fc from "fast-check";
import {
  ConfigError,
  Database,
  type DatabaseOptions,
  type DatabaseUrl,
  parseDatabaseUrl,
  type RoutingOptions,
} from "../../mod.ts";
import { main } from "../../src/cli.ts";
import { availableDrivers } from "../../src/drivers/mod.ts";
import { d1, type D1Binding } from "../../src/drivers/sqlite/d1.ts";
import { bundledDrivers } from "../../src/drivers/option.ts";
import { resolveOptions } from "../../src/options.ts";
import { assertHidden, describeError, runScript, tempDatabasePath, uniqueName } from "../support/support.ts";

const secret = "s3cr3t-P@ss:w/rd";
const encoded = encodeURIComponent(secret);

function assertNoSecret(value: unknown): void {
  assertHidden(value, [secret, encoded], "password leaked");
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${error}`);
    return error;
  }
  assert.fail("expected a ConfigError");
}

describe("database URLs", () => {
  test("each accepted form parses to its parts", () => {
    assert.deepEqual(
      { ...parseDatabaseUrl(`postgres://app:${encoded}@db.example:6543/shop?sslmode=require&connect_timeout=5`) },
      {
        dialect: "postgres",
        scheme: "postgres:",
        host: "db.example",
        port: 6543,
        user: "app",
        database: "shop",
        options: { sslmode: "require", connect_timeout: 5 },
      },
    );
    assert.equal(parseDatabaseUrl(`postgres://app:${encoded}@h/d`).password(), secret);
    assert.equal(parseDatabaseUrl("postgresql://h/d").port, 5432);
    assert.equal(parseDatabaseUrl("mariadb://root@127.0.0.1/test").dialect, "mysql");
    assert.equal(parseDatabaseUrl("mysql://root@[::1]:3307/test").host, "::1");
    assert.equal(parseDatabaseUrl("sqlite::memory:").inMemory, true);
    assert.equal(parseDatabaseUrl("sqlite:data/app.db").database, "data/app.db");
    assert.equal(parseDatabaseUrl("sqlite:///var/lib/app.db?mode=ro").database, "/var/lib/app.db");
    assert.deepEqual(parseDatabaseUrl("sqlite:x.db?busy_timeout=250&foreign_keys=off").options, {
      busy_timeout: 250,
      foreign_keys: false,
    });
  });

  test("durations stop where a timer or the server stops: connect_timeout 2147483 s, statement and busy timeouts 2^31 - 1 ms", () => {
    const most = { connect_timeout: 2_147_483, statement_timeout: 2_147_483_647 };
    for (const dialect of ["postgres", "mysql"]) {
      for (const [key, value] of Object.entries(most)) {
        const url = `${dialect}://app:${encoded}@host/db?${key}=`;
        assert.equal(parseDatabaseUrl(url + value).options[key], value, `${dialect} ${key} at its limit`);
        assert.equal(parseDatabaseUrl(url + 0).options[key], 0, `${dialect} ${key} 0 (none)`);
        for (const over of [value + 1, 9_999_999_999]) {
          const error = configError(() => new Database(url + over));
          assert.equal(error.message, `URL option "${key}" must be a whole number from 0 to ${value}`);
          assertNoSecret(error);
        }
      }
    }
    assert.equal(parseDatabaseUrl("sqlite:x.db?busy_timeout=2147483647").options.busy_timeout, 2_147_483_647);
    configError(() => new Database("sqlite:x.db?busy_timeout=2147483648"));
    const url = `postgres://app:${encoded}@host/db`;
    assert.equal(new Database(url, { statementTimeout: 2_147_483_647 }).closed, false);
    assert.match(
      configError(() => new Database(url, { statementTimeout: 2_147_483_648 })).message,
      /statementTimeout option must be a whole number of milliseconds from 1 to 2147483647/,
    );
  });

  test("close refuses a timeout that is not 0 or more milliseconds, and closes nothing; Infinity is taken", async () => {
    const db = new Database(`postgres://app:${encoded}@db.example/shop`);
    for (const timeout of [-1, Number.NaN, "100", null]) {
      await assert.rejects(
        db.close({ timeout } as unknown as { timeout: number }),
        (error: unknown) =>
          error instanceof ConfigError && /close's timeout must be a number of milliseconds/.test(error.message) &&
          !error.message.includes(secret),
        `timeout ${String(timeout)}`,
      );
      assert.equal(db.closed, false, `timeout ${String(timeout)}: nothing was closed`);
    }
    // @ts-expect-error: not an options object
    await assert.rejects(db.close(5), ConfigError);
    await db.close({ timeout: Infinity });
    assert.equal(db.closed, true);
  });

  test("bad URLs and options are ConfigErrors that never contain the password", () => {
    const bad = [
      `ftp://app:${encoded}@host/db`,
      `postgres://app:${encoded}@host:99999/db`,
      `postgres://app:${encoded}@host/db?sslmode=sometimes`,
      `postgres://app:${encoded}@host/db?colour=blue`,
      `postgres://app:${encoded}@host/db?connect_timeout=soon`,
      `postgres://app:${encoded}@host/db/extra`,
      `postgres:app:${encoded}@host/db`,
      `mysql://app:${encoded}@host/db?sslmode=require`,
      `postgres://app:${secret}@host/db`,
      `postgres://app:${encoded}%zz@host/db`,
      `sqlite://host/${encoded}.db`,
      `sqlite:`,
      `sqlite:x.db?mode=${encoded}`,
      `${secret}`,
      `postgres://app:${encoded}@host/db?sslmode=require&sslmode=disable`,
    ];
    for (const url of bad) {
      let error: unknown;
      try {
        new Database(url);
      } catch (caught) {
        error = caught;
      }
      if (error === undefined) continue; // a URL that parses is checked by the next test
      assert.ok(error instanceof ConfigError, `${url}: ${error}`);
      assertNoSecret(error);
    }
    assert.ok(
      configError(() => new Database(`postgres://app:${encoded}@host/db?colour=blue`)).message.includes("colour"),
    );
    // @ts-expect-error: not a string
    configError(() => new Database(42));
  });
});

describe("multi-host URLs", () => {
  const url = `postgres://app:${encoded}@db1:5433,[::1],db3.example:6000/shop?target_session_attrs=read-write`;

  test("a host list parses to every host in order; host and port are the first's; unset ports are the default", () => {
    const parsed = parseDatabaseUrl(url);
    assert.deepEqual(parsed.hosts, [
      { host: "db1", port: 5433 },
      { host: "::1", port: 5432 },
      { host: "db3.example", port: 6000 },
    ]);
    assert.equal(parsed.host, "db1");
    assert.equal(parsed.port, 5433);
    assert.equal(parsed.password(), secret);
    assert.equal(parsed.options.target_session_attrs, "read-write");
    assert.deepEqual(parseDatabaseUrl("mariadb://root@a,b:3307/test").hosts, [
      { host: "a", port: 3306 },
      { host: "b", port: 3307 },
    ]);
    assert.deepEqual(parseDatabaseUrl("postgres://h/d").hosts, [{ host: "h", port: 5432 }]);
  });

  test("printing shows every host and never the password; the printed form parses to the same hosts", () => {
    const parsed = parseDatabaseUrl(url);
    const printed = "postgres://app:***@db1:5433,[::1]:5432,db3.example:6000/shop?target_session_attrs=read-write";
    assert.equal(String(parsed), printed);
    assert.equal(JSON.stringify(parsed), JSON.stringify(printed));
    assert.ok(inspect(parsed).includes(printed));
    assertNoSecret(parsed);
    assert.deepEqual(parseDatabaseUrl(printed).hosts, parsed.hosts);
    const db = new Database(url);
    assert.equal(db.url, printed);
    assertNoSecret(db);
  });

  test("target_session_attrs and load_balance_hosts take libpq's values; Postgres and MySQL only", () => {
    for (const value of ["any", "read-write", "read-only", "primary", "standby", "prefer-standby"]) {
      assert.equal(
        parseDatabaseUrl(`postgres://a,b/d?target_session_attrs=${value}`).options.target_session_attrs,
        value,
      );
      assert.equal(parseDatabaseUrl(`mysql://a,b/d?target_session_attrs=${value}`).options.target_session_attrs, value);
    }
    assert.equal(parseDatabaseUrl("postgres://a,b/d?load_balance_hosts=random").options.load_balance_hosts, "random");
    assert.match(
      configError(() => parseDatabaseUrl("postgres://a,b/d?target_session_attrs=master")).message,
      /read-write/,
    );
    configError(() => parseDatabaseUrl("postgres://a,b/d?load_balance_hosts=round-robin"));
    configError(() => parseDatabaseUrl("pglite::memory:?target_session_attrs=any"));
    configError(() => parseDatabaseUrl("sqlite::memory:?target_session_attrs=any"));
  });

  test("a bad host list is a ConfigError that never shows the password", () => {
    for (
      const bad of [
        `postgres://app:${encoded}@a,,b/d`,
        `postgres://app:${encoded}@a,/d`,
        `postgres://app:${encoded}@a,b:99999/d`,
        `postgres://app:${encoded}@a,b:x/d`,
        `postgres://app:${encoded}@a,b c/d`,
      ]
    ) {
      assertNoSecret(configError(() => new Database(bad)));
    }
  });
});

describe("Database options", () => {
  test("unknown and mistyped options are ConfigErrors naming the option", () => {
    // @ts-expect-error: unknown option
    assert.match(configError(() => new Database("sqlite::memory:", { pools: {} })).message, /pools/);
    // @ts-expect-error: unknown pool option
    assert.match(configError(() => new Database("sqlite::memory:", { pool: { maximum: 3 } })).message, /maximum/);
    configError(() => new Database("sqlite::memory:", { pool: { max: 0 } }));
    configError(() => new Database("sqlite::memory:", { pool: { max: 2, min: 3 } }));
    configError(() => new Database("sqlite::memory:", { pool: { acquireTimeout: -1 } }));
    configError(() => new Database("sqlite::memory:", { pool: { idleTimeout: 1.5 } }));
    configError(() => new Database("sqlite::memory:", { name: "" }));
    // @ts-expect-error: not a driver
    assert.match(configError(() => new Database("sqlite::memory:", { driver: "oracle" })).message, /oracle/);
    // @ts-expect-error: not an options object
    configError(() => new Database("sqlite::memory:", "fast"));
  });

  test("a driver for another dialect or runtime is refused at construction", () => {
    configError(() => new Database("sqlite::memory:", { driver: "Bun" in globalThis ? "node-sqlite" : "bun-sqlite" }));
  });
});

describe("SQLite URLs: :memory: and the filesystem root", () => {
  test("`:memory:` is in memory in every SQLite URL form, with or without options", () => {
    for (const form of ["sqlite::memory:", "sqlite://:memory:", "sqlite:///:memory:", "sqlite:%3Amemory%3A"]) {
      for (const query of ["", "?mode=ro", "?worker=true&foreign_keys=off"]) {
        const url = parseDatabaseUrl(`${form}${query}`);
        assert.equal(url.inMemory, true, `${form}${query}`);
        assert.equal(url.database, ":memory:", `${form}${query}`);
        assert.deepEqual(url.options, parseDatabaseUrl(`sqlite::memory:${query}`).options, `${form}${query}`);
      }
    }
  });

  test("a SQLite file in the filesystem root is a ConfigError ROOST_SQLITE_ROOT_PATH; other absolute paths parse", () => {
    for (const url of ["sqlite:///app.db", "sqlite:////app.db", "sqlite:/app.db", "sqlite:%2Fapp.db", "sqlite:///"]) {
      const error = configError(() => new Database(`${url}?mode=rwc`));
      assert.equal(error.code, "ROOST_SQLITE_ROOT_PATH", url);
      assert.match(error.message, /filesystem root.*sqlite:app\.db/, url);
    }
    configError(() => parseDatabaseUrl("sqlite:///tmp/../app.db"));
    assert.equal(parseDatabaseUrl("sqlite:///var/data/app.db").database, "/var/data/app.db");
    assert.equal(parseDatabaseUrl("sqlite:////var/data/app.db").database, "//var/data/app.db");
    assert.equal(parseDatabaseUrl("sqlite:app.db").database, "app.db");
    assert.equal(parseDatabaseUrl("sqlite:./app.db").database, "./app.db");
  });

  test("pglite: URLs name an in-memory Postgres or a data directory, as SQLite's name files; no host, no options", () => {
    for (const form of ["pglite::memory:", "pglite://:memory:", "pglite:///:memory:"]) {
      const url = parseDatabaseUrl(form);
      assert.deepEqual({ ...url }, {
        dialect: "postgres",
        scheme: "pglite:",
        host: "",
        port: 0,
        user: "",
        database: ":memory:",
        options: {},
      }, form);
      assert.equal(url.inMemory, true, form);
      assert.equal(url.embedded, true, form);
      assert.equal(String(url), "pglite::memory:", form);
    }
    assert.equal(parseDatabaseUrl("pglite:data/pg").database, "data/pg");
    assert.equal(parseDatabaseUrl("pglite:./data").database, "./data");
    assert.equal(parseDatabaseUrl("pglite:///var/lib/app/pg").database, "/var/lib/app/pg");
    assert.equal(parseDatabaseUrl("PGLITE:data").inMemory, false);
    assert.equal(parseDatabaseUrl("postgres://h/d").embedded, false);
    assert.match(configError(() => parseDatabaseUrl("pglite://host/dir")).message, /PGlite URL has no host/);
    assert.match(configError(() => parseDatabaseUrl("pglite:")).message, /directory path or :memory:/);
    const option = configError(() => parseDatabaseUrl("pglite::memory:?sslmode=require")).message;
    assert.match(option, /unknown pglite URL option "sslmode" \(known: \)/);
    for (const url of ["pglite:///data", "pglite:/data", "pglite:///"]) {
      assert.equal(configError(() => parseDatabaseUrl(url)).code, "ROOST_PGLITE_ROOT_PATH", url);
    }
  });

  test("pglite: the pglite driver alone, one connection kept for good, no replicas, no per-context connections", () => {
    assert.equal(new Database("pglite::memory:").dialect, "postgres");
    assert.doesNotThrow(() => new Database("pglite:data", { driver: "pglite" }));
    assert.match(configError(() => new Database("pglite::memory:", { driver: "postgres-js" })).message, /"pglite"/);
    assert.match(
      configError(() => new Database("postgres://127.0.0.1/test", { driver: "pglite" })).message,
      /not a server/,
    );
    assert.match(
      configError(() => new Database("pglite::memory:", { connectionScope: "context" })).message,
      /PGlite database/,
    );
    assert.match(
      configError(() => new Database("pglite:data", { replicas: ["postgres://127.0.0.1/test"] })).message,
      /has no replicas/,
    );
    assert.match(
      configError(() => new Database("postgres://127.0.0.1/test", { replicas: ["pglite:data"] })).message,
      /has no replicas/,
    );
    for (const url of ["pglite::memory:", "pglite:data"]) {
      const options = { pool: { max: 10, min: 3, idleTimeout: 5_000, maxLifetime: 60_000 }, statementTimeout: 100 };
      const resolved = resolveOptions(options, parseDatabaseUrl(url));
      assert.deepEqual(
        [resolved.pool.max, resolved.pool.min, resolved.pool.idleTimeout, resolved.pool.maxLifetime],
        [1, 1, 0, 0],
        url,
      );
      // PGlite cannot interrupt a statement: as on SQLite, the timeout is not set (docs/drivers.md).
      assert.equal(resolved.url.options.statement_timeout, undefined, url);
    }
  });

  test("d1: URLs name a binding and need the d1 driver object; one session per pool, no replicas, no forceRollback", () => {
    // A binding-shaped object: construction validates it and connects nothing (queries are tests/behaviour/d1.test.ts's).
    const binding = { prepare: () => ({}) } as unknown as D1Binding;
    const driver = d1(binding);
    for (const [url, database] of [["d1:", ""], ["d1:DB", "DB"], ["D1:notes_2", "notes_2"]]) {
      const parsed = parseDatabaseUrl(url);
      assert.deepEqual([parsed.dialect, parsed.scheme, parsed.database, parsed.bound], [
        "sqlite",
        "d1:",
        database,
        true,
      ]);
      assert.equal(String(parsed), `d1:${database}`);
      assert.equal(new Database(url, { driver }).dialect, "sqlite");
    }
    for (const url of ["d1://DB", "d1:my db", "d1:1st", "d1:DB/x"]) {
      assert.match(configError(() => parseDatabaseUrl(url)).message, /d1: or d1:BINDING/, url);
    }
    assert.match(configError(() => parseDatabaseUrl("d1:DB?mode=ro")).message, /unknown d1 URL option "mode"/);
    const unbound = configError(() => new Database("d1:DB"));
    assert.equal(unbound.code, "ROOST_D1_NEEDS_BINDING");
    assert.match(unbound.message, /@roost\/db\/drivers\/d1/);
    assert.equal(configError(() => new Database("d1:DB", { driver: "node-sqlite" })).code, "ROOST_D1_NEEDS_BINDING");
    assert.match(configError(() => new Database("sqlite::memory:", { driver })).message, /driver "d1" cannot open/);
    assert.match(configError(() => new Database("d1:DB", { driver, replicas: ["d1:DB"] })).message, /replicates/);
    assert.match(
      configError(() => new Database("sqlite:app.db", { replicas: ["d1:DB"] })).message,
      /D1 replicates itself/,
    );
    assert.doesNotThrow(() => new Database("d1:DB", { driver, connectionScope: "context" }));
    assert.match(configError(() => d1({} as D1Binding)).message, /takes a D1 binding/);
    assert.match(
      configError(() => d1(binding, { session: "nearest" as "off" })).message,
      /first-primary, first-unconstrained, off/,
    );
    const resolved = resolveOptions(
      { driver, pool: { max: 10, min: 3, idleTimeout: 5_000 } },
      parseDatabaseUrl("d1:DB"),
    );
    assert.deepEqual(
      [resolved.pool.max, resolved.pool.min, resolved.pool.idleTimeout, resolved.pool.maxLifetime],
      [1, 0, 0, 0],
    );
  });

  test("wsproxy: a ws:// or wss:// address the neon driver alone reads; TLS it cannot give is refused", async () => {
    const url = parseDatabaseUrl(`postgres://app:${encoded}@127.0.0.1/app?wsproxy=ws://127.0.0.1:9000/v1`);
    assert.equal(url.options.wsproxy, "ws://127.0.0.1:9000/v1");
    const { socketSettings } = await import("../../src/drivers/postgres/neon.ts");
    for (const bad of ["http://proxy/v1", "127.0.0.1:9000", "ws://", ""]) {
      // Checked by the neon driver (at the first connection), so the core's bundle carries no rule of it.
      const error = configError(() =>
        socketSettings(parseDatabaseUrl(`postgres://app:${encoded}@h/app?wsproxy=${bad}`))
      );
      assert.match(error.message, /"wsproxy" must be a ws:\/\/ or wss:\/\/ address/, bad);
      assertNoSecret(error);
    }
    assert.match(configError(() => parseDatabaseUrl("mysql://h/app?wsproxy=ws://p/v1")).message, /unknown mysql/);
    const withProxy = `postgres://app:${encoded}@127.0.0.1/app?wsproxy=wss://proxy.example/v1`;
    assert.doesNotThrow(() => new Database(withProxy, { driver: "neon" }));
    for (const driver of [undefined, "postgres-js" as const]) {
      const error = configError(() => new Database(withProxy, { driver }));
      assert.match(error.message, /"wsproxy" is for the "neon" driver only/);
      assertNoSecret(error);
    }
    assert.match(
      configError(() => new Database("postgres://127.0.0.1/app", { replicas: [withProxy] }))
        .message,
      /"wsproxy"/,
    );
    const settings = socketSettings(parseDatabaseUrl(`${withProxy}&sslmode=verify-full`));
    assert.deepEqual([settings.useSecureWebSocket, settings.pipelineConnect], [true, false]);
    assert.equal(settings.wsProxy?.("db.internal", 5432), "proxy.example/v1?address=db.internal:5432");
    // Neon's own proxy (no wsproxy) takes the password with the start-up; with no password there is nothing to send.
    assert.equal(socketSettings(parseDatabaseUrl("postgres://a:pw@ep-x.neon.tech/db")).pipelineConnect, "password");
    assert.equal(socketSettings(parseDatabaseUrl("postgres://a@ep-x.neon.tech/db")).pipelineConnect, false);
    for (const mode of ["require", "verify-ca", "verify-full"]) {
      const plain = parseDatabaseUrl(`postgres://a@h/db?wsproxy=ws://p/v1&sslmode=${mode}`);
      assert.match(configError(() => socketSettings(plain)).message, /needs TLS, which a ws:\/\/ proxy does not give/);
    }
    const certificate = parseDatabaseUrl("postgres://a@ep-x.neon.tech/db?sslrootcert=/ca.pem");
    assert.match(configError(() => socketSettings(certificate)).message, /cannot use the URL option "sslrootcert"/);
  });

  test("the migrate CLI refuses DATABASE_URL=sqlite:///app.db with the root-path message and code", async () => {
    const errors: string[] = [];
    const code = await main(["status"], {
      out: () => {},
      err: (line) => errors.push(line),
      env: { DATABASE_URL: "sqlite:///app.db" },
      cwd: tmpdir(),
    });
    assert.equal(code, 1);
    assert.match(errors.join("\n"), /filesystem root.*ROOST_SQLITE_ROOT_PATH/s);
  });
});

describe("routing options", () => {
  test("bad replicas and routing options are ConfigErrors that never show a password", () => {
    const url = "postgres://app:hunter2-secret@127.0.0.1/app";
    const bad: DatabaseOptions[] = [
      { replicas: url as unknown as string[] },
      { replicas: [42 as unknown as string] },
      { replicas: ["mysql://app:hunter2-secret@127.0.0.1/app"] },
      { replicas: ["postgres://app:hunter2-secret@127.0.0.1/app?colour=blue"] },
      { replicas: [{ url, poool: {} } as unknown as string] },
      { routing: { reads: "replica" as "replicas" } },
      { routing: { picker: "fastest" as "random" } },
      { routing: { fallback: "none" as "error" } },
      { routing: { readYourWrites: -1 } },
      { routing: { recheckAfter: 0 } },
      { routing: { recheckAfter: 1_000, maxRecheckAfter: 10 } },
      { routing: { typo: 1 } as RoutingOptions },
      { onQuery: "log" as unknown as () => void },
    ];
    for (const options of bad) {
      assert.throws(
        () => new Database(url, options),
        (error: unknown) => error instanceof ConfigError && !error.message.includes("hunter2"),
        JSON.stringify(options),
      );
    }
    assert.throws(() => new Database("sqlite:app.db", { replicas: ["sqlite::memory:"] }), ConfigError);
  });
});

describe("connectionScope option (no target)", () => {
  test('"context" with sqlite::memory: and an unknown value are ConfigErrors', async () => {
    assert.throws(
      () => new Database("sqlite::memory:", { connectionScope: "context" }),
      (error: unknown) => error instanceof ConfigError && /in-memory/.test(error.message),
    );
    for (const url of ["sqlite::memory:", `sqlite://${tempDatabasePath()}`, "postgres://app@127.0.0.1:1/app"]) {
      assert.throws(
        () => new Database(url, { connectionScope: "bogus" as "context" }),
        (error: unknown) => error instanceof ConfigError && /connectionScope/.test(error.message),
        url,
      );
    }
    const fine = [
      new Database("sqlite::memory:", { connectionScope: "instance" }),
      new Database(`sqlite://${tempDatabasePath()}`, { connectionScope: "context" }),
    ];
    await Promise.all(fine.map((db) => db.close()));
  });
});

function assertConfigError(error: unknown, context: string): void {
  assert.ok(error instanceof ConfigError, `${context}: expected a ConfigError, got ${describeError(error)}`);
}

// ---------------------------------------------------------------------------
// Properties: any URL, any options
// ---------------------------------------------------------------------------

const dialectSchemes = ["postgres", "postgresql", "mysql", "mariadb", "sqlite", "POSTGRES", "MariaDB", "SQLite"];
const junkScheme = fc.oneof(
  fc.constantFrom("http", "https", "ftp", "file", "jdbc", "postgres+tls", "my sql", "", "sqlite3", "pg"),
  // No "-": a junk scheme can never contain a password ("pw-…").
  fc.stringMatching(/^[a-z][a-z0-9+.]{0,7}$/),
);

/** Characters of generated passwords: many need percent-encoding. */
const passwordChars = [
  ..."abcXYZ019@:/?#[]%&=+ ;'\"\\`~!$^*()<>{}|,.-_",
  "é",
  "ß",
  "漢",
  "😀",
  "\u0000",
  "\u007f",
  "\n",
];
/** A distinctive password: `pw-` and at least 8 random characters. */
const passwordArb = fc.string({ unit: fc.constantFrom(...passwordChars), minLength: 8, maxLength: 14 }).map((s) =>
  `pw-${s}`
);
/** User names never contain "-", so none can contain a password. */
const userArb = fc.string({ unit: fc.constantFrom(..."abcxyz019_.é%: @"), maxLength: 6 });

/** How a password is written into a URL. */
type Writing = "component" | "raw" | "mixed";

function writePassword(password: string, how: Writing): string {
  if (how === "component") return encodeURIComponent(password);
  if (how === "raw") return password;
  return [...password].map((ch, i) => i % 2 === 0 ? encodeURIComponent(ch) : ch).join("");
}

/** The forms of a password that must never be printed: as meant, encoded, as written and as a parser reads it. */
function secretForms(password: string, written: string): string[] {
  const forms = [password, encodeURIComponent(password), written];
  try {
    forms.push(decodeURIComponent(written));
  } catch {
    // not decodable: the URL is refused
  }
  try {
    const whatwg = new URL(`x://u:${written}@h/`).password;
    forms.push(whatwg);
    forms.push(decodeURIComponent(whatwg));
  } catch {
    // not parseable
  }
  // A short form (a password cut by a raw "/", "?" or "#") could occur by chance elsewhere.
  return [...new Set(forms)].filter((form) => form.length >= 11);
}

// Each part is usually good (so many URLs parse and the successful path is searched for the password
// too) and sometimes bad.
const hostArb = fc.oneof(
  { weight: 4, arbitrary: fc.oneof(fc.constantFrom("localhost", "127.0.0.1", "[::1]", "db.example"), fc.domain()) },
  { weight: 1, arbitrary: fc.constantFrom("", "[::1", "ho st", "h%41st", "[zz]", "::1", "@", "a:b", "h/") },
  { weight: 1, arbitrary: fc.oneof(fc.ipV4(), fc.ipV6().map((ip) => `[${ip}]`), fc.string({ maxLength: 8 })) },
);
const portArb = fc.oneof(
  { weight: 4, arbitrary: fc.oneof(fc.constant(""), fc.integer({ min: 1, max: 65_535 }).map((n) => `:${n}`)) },
  { weight: 1, arbitrary: fc.integer({ min: -2, max: 70_000 }).map((n) => `:${n}`) },
  { weight: 1, arbitrary: fc.constantFrom(":", ":0", ":65536", ":99999999999", ":abc", ":80a", ": 1", ":+1", ":0x50") },
  { weight: 1, arbitrary: fc.string({ maxLength: 5 }).map((s) => `:${s}`) },
);
const pathArb = fc.oneof(
  { weight: 4, arbitrary: fc.string({ unit: "grapheme", maxLength: 6 }).map((s) => `/${encodeURIComponent(s)}`) },
  { weight: 1, arbitrary: fc.constantFrom("", "/", "/a/b", "/%zz", "/:memory:", "/db%2Fx", "//db", "/..") },
  { weight: 1, arbitrary: fc.string({ maxLength: 10 }).map((s) => `/${s}`) },
);
const knownOptionKeys = [
  "sslmode",
  "sslrootcert",
  "connect_timeout",
  "application_name",
  "statement_timeout",
  "charset",
  "mode",
  "busy_timeout",
  "journal_mode",
  "foreign_keys",
  "worker",
];
const optionKeyArb = fc.oneof(
  fc.constantFrom(...knownOptionKeys),
  fc.constantFrom("colour", "SSLMODE", "__proto__", "toString", "constructor", "", "a%zz", "ssl%6Dode"),
  fc.string({ maxLength: 8 }),
);
const optionValueArb = fc.oneof(
  fc.constantFrom("require", "disable", "verify-full", "required", "ro", "rwc", "wal", "true", "off", "1", "0", "5"),
  fc.constantFrom("-1", "1.5", "99999999999", "", "%zz", "a+b", "%00", "%E2%82"),
  fc.string({ maxLength: 10 }),
  fc.integer().map(String),
);
/** Options one dialect or another accepts, with good values. */
const goodOptionArb = fc.constantFrom(
  "sslmode=require",
  "sslmode=disable",
  "connect_timeout=5",
  "application_name=app%20one",
  "statement_timeout=1000",
  "charset=utf8mb4",
  "sslmode=required",
  "mode=ro",
  "busy_timeout=250",
  "foreign_keys=off",
);
const queryArb = fc.oneof(
  { weight: 3, arbitrary: fc.constant("") },
  {
    weight: 2,
    arbitrary: fc.array(goodOptionArb, { minLength: 1, maxLength: 2 }).map((pairs) => `?${pairs.join("&")}`),
  },
  {
    weight: 2,
    arbitrary: fc.array(fc.tuple(optionKeyArb, fc.option(optionValueArb, { nil: undefined })), { maxLength: 4 }).map((
      pairs,
    ) => `?${pairs.map(([key, value]) => value === undefined ? key : `${key}=${value}`).join("&")}`),
  },
);
const fragmentArb = fc.oneof(
  { weight: 4, arbitrary: fc.constant("") },
  { weight: 1, arbitrary: fc.string({ maxLength: 6 }).map((s) => `#${s}`) },
);

/** A URL and the forms of its password that must never be printed. */
interface UrlCase {
  url: string;
  secrets: string[];
}

/** `scheme://userinfo@host:port/path?query#fragment`, each part good or bad. */
const authorityUrlArb: fc.Arbitrary<UrlCase> = fc.record({
  scheme: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...dialectSchemes) }, { weight: 1, arbitrary: junkScheme }),
  user: userArb,
  password: fc.option(passwordArb, { nil: undefined }),
  how: fc.constantFrom<Writing>("component", "component", "raw", "mixed"),
  withUser: fc.boolean(),
  host: hostArb,
  port: portArb,
  path: pathArb,
  query: queryArb,
  fragment: fragmentArb,
}).map(({ scheme, user, password, how, withUser, host, port, path, query, fragment }) => {
  let userinfo = "";
  let secrets: string[] = [];
  if (password !== undefined) {
    const written = writePassword(password, how);
    userinfo = `${encodeURIComponent(user)}:${written}@`;
    secrets = secretForms(password, written);
  } else if (withUser) {
    userinfo = `${user}@`;
  }
  return { url: `${scheme}://${userinfo}${host}${port}${path}${query}${fragment}`, secrets };
});

/** `scheme:path?query`: no authority, so no password. */
const opaqueUrlArb: fc.Arbitrary<UrlCase> = fc.tuple(
  fc.oneof(fc.constantFrom(...dialectSchemes), junkScheme),
  fc.oneof(
    fc.constantFrom(":memory:", "", "/", "//", "///", "data/app.db", "/abs/app.db", "///abs/app.db", "%zz", ":memory"),
    fc.string({ maxLength: 12 }),
  ),
  queryArb,
  fragmentArb,
).map(([scheme, location, query, fragment]) => ({ url: `${scheme}:${location}${query}${fragment}`, secrets: [] }));

const urlCaseArb: fc.Arbitrary<UrlCase> = fc.oneof({ weight: 3, arbitrary: authorityUrlArb }, opaqueUrlArb);

/** A URL that parses, with a password, for the option properties. */
const goodUrlArb: fc.Arbitrary<UrlCase> = fc.tuple(
  fc.constantFrom("postgres", "mysql", "sqlite-memory", "sqlite-file"),
  passwordArb,
).map(([kind, password]) => {
  if (kind === "sqlite-memory") return { url: "sqlite::memory:", secrets: [] };
  if (kind === "sqlite-file") return { url: `sqlite:${uniqueName("never_opened")}.db`, secrets: [] };
  const written = encodeURIComponent(password);
  return { url: `${kind}://app:${written}@127.0.0.1:1/db`, secrets: secretForms(password, written) };
});

/** Values no option expects. */
const oddValueArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer({ min: -3, max: 100_000 }),
  fc.double(),
  fc.constantFrom(NaN, Infinity, -Infinity, -0, 0.5, 2 ** 53, -1, 0),
  fc.string({ maxLength: 10 }),
  fc.bigInt({ min: -5n, max: 5n }),
  fc.boolean(),
  fc.constantFrom(null, undefined),
  fc.constant(Symbol("odd")),
  fc.constant(() => 1),
  fc.constant([]),
  fc.constant({}),
  fc.constant(Object.create(null)),
  fc.date(),
);

const poolKeys = ["min", "max", "acquireTimeout", "idleTimeout", "maxLifetime", "validateAfter"];
const routingKeys = ["reads", "picker", "readYourWrites", "fallback", "recheckAfter", "maxRecheckAfter"];

const poolArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(undefined),
  oddValueArb,
  fc.dictionary(fc.constantFrom(...poolKeys, "maximum"), oddValueArb, { maxKeys: 3 }),
  fc.record(
    Object.fromEntries(poolKeys.map((key) => [key, fc.integer({ min: -1, max: 20 })])),
    { requiredKeys: [] },
  ),
);

const routingArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(undefined),
  oddValueArb,
  fc.record({
    reads: fc.oneof(fc.constantFrom("primary", "replicas", "Primary"), oddValueArb),
    picker: fc.oneof(
      fc.constantFrom("round-robin", "random", "least-busy", "first"),
      fc.constant(() => 0),
      oddValueArb,
    ),
    readYourWrites: fc.oneof(fc.integer({ min: -1, max: 1000 }), oddValueArb),
    fallback: fc.oneof(fc.constantFrom("primary", "error", "replica"), oddValueArb),
    recheckAfter: fc.oneof(fc.integer({ min: -1, max: 100_000 }), oddValueArb),
    maxRecheckAfter: fc.oneof(fc.integer({ min: -1, max: 100_000 }), oddValueArb),
  }, { requiredKeys: [] }),
  fc.dictionary(fc.string({ maxLength: 8 }), oddValueArb, { maxKeys: 2 }),
);

/** A replica entry and the passwords it carries. */
const replicaArb: fc.Arbitrary<{ entry: unknown; secrets: string[] }> = fc.oneof(
  fc.oneof(goodUrlArb, urlCaseArb).map((u) => ({ entry: u.url, secrets: u.secrets })),
  fc.tuple(goodUrlArb, poolArb).map(([u, pool]) => ({ entry: { url: u.url, pool }, secrets: u.secrets })),
  fc.tuple(goodUrlArb, oddValueArb).map(([u, extra]) => ({ entry: { url: u.url, extra }, secrets: u.secrets })),
  fc.record({ url: oddValueArb }).map((entry) => ({ entry, secrets: [] })),
  oddValueArb.map((entry) => ({ entry, secrets: [] })),
);

const driverNames = [
  "node-sqlite",
  "bun-sqlite",
  "deno-sqlite",
  "postgres-js",
  "deno-postgres",
  "bun-sql",
  "mysql2",
  "neon",
];
/** A driver object that never connects (the property never queries). */
const fakeDriverArb = fc.constantFrom("postgres", "mysql", "sqlite", "oracle").map((dialect) => ({
  name: "never-connects",
  dialect,
  interleavedStreams: false,
  connect: () => Promise.reject(new Error("not used")),
}));

/** Options, structured or not, and the replica passwords they carry. */
const optionsArb: fc.Arbitrary<{ options: unknown; secrets: string[] }> = fc.record({
  name: fc.oneof(
    fc.constant(undefined),
    fc.constant(null).map(() => uniqueName("bad_input_name")),
    fc.constantFrom("", "   ", "\t"),
    oddValueArb,
  ),
  driver: fc.oneof(
    fc.constant(undefined),
    fc.constantFrom(...driverNames, "oracle", "POSTGRES-JS", "__proto__", "constructor"),
    fakeDriverArb,
    fc.constant({ connect: 1 }),
    oddValueArb,
  ),
  pool: poolArb,
  replicas: fc.oneof(
    fc.constant({ entries: undefined as unknown, secrets: [] as string[] }),
    oddValueArb.map((entries) => ({ entries, secrets: [] as string[] })),
    fc.array(replicaArb, { maxLength: 3 }).map((list) => ({
      entries: list.map((item) => item.entry) as unknown,
      secrets: list.flatMap((item) => item.secrets),
    })),
  ),
  routing: routingArb,
  onQuery: fc.oneof(fc.constant(undefined), fc.constant(() => {}), oddValueArb),
  connectionScope: fc.oneof(
    fc.constant(undefined),
    fc.constantFrom("instance", "context", "Instance", ""),
    oddValueArb,
  ),
  extra: fc.oneof(
    fc.constant({}),
    fc.dictionary(fc.string({ maxLength: 8 }), oddValueArb, { maxKeys: 2 }),
    fc.constantFrom({ pools: {} }, { debug: true }, { password: "x" }),
  ),
}, { requiredKeys: [] }).map(({ extra, replicas, ...rest }) => {
  const options: Record<string, unknown> = { ...rest, ...extra };
  if (replicas !== undefined) options.replicas = replicas.entries;
  return { options, secrets: replicas?.secrets ?? [] };
});

/** Builds an instance or asserts a ConfigError; an instance is checked for secrets and closed. */
async function constructs(url: unknown, options: unknown, secrets: readonly string[], context: string): Promise<void> {
  let db: Database | undefined;
  try {
    db = new Database(url as string, options as DatabaseOptions);
  } catch (error) {
    assertConfigError(error, context);
    assertHidden(error, secrets, context);
    return;
  }
  try {
    assertHidden(db, secrets, context);
  } finally {
    await db.close();
  }
}

describe("bad input: database URLs", () => {
  test("the leak check finds a planted password in a message, a stack, a cause or an inspection", () => {
    const secret = "pw-planted%41";
    const planted: unknown[] = [
      new ConfigError(`bad ${secret}`),
      new ConfigError("bad", { cause: new Error(`inner ${secret}`) }),
      Object.assign(new ConfigError("bad"), { detail: secret }),
      { url: secret },
    ];
    for (const value of planted) assert.throws(() => assertHidden(value, [secret], "planted"), /planted/);
    assert.deepEqual(secretForms("pw-a b/c?d#e", "pw-a b/c?d#e"), [
      "pw-a b/c?d#e",
      "pw-a%20b%2Fc%3Fd%23e",
    ]);
  });

  test("any string or value as the URL builds an instance or throws a ConfigError, never anything else", async () => {
    const anyUrl = fc.oneof(
      fc.string(),
      fc.string({ unit: "binary" }),
      fc.string({ unit: "grapheme" }),
      fc.webUrl({ withQueryParameters: true, withFragments: true }),
      fc.tuple(fc.constantFrom(...dialectSchemes), fc.string({ unit: "binary" })).map(([s, rest]) => `${s}:${rest}`),
      fc.anything(),
    );
    await fc.assert(
      fc.asyncProperty(anyUrl, async (url) => {
        let parsed: DatabaseUrl | undefined;
        try {
          parsed = parseDatabaseUrl(url as string);
        } catch (error) {
          assertConfigError(error, `parseDatabaseUrl(${inspect(url)})`);
        }
        if (parsed !== undefined) assert.equal(typeof String(parsed), "string");
        await constructs(url, undefined, [], `new Database(${inspect(url)})`);
      }),
      { numRuns: 400 },
    );
  });

  test("URL-shaped text with a password: parses or throws a ConfigError; no error or rendering shows it", async () => {
    await fc.assert(
      fc.asyncProperty(urlCaseArb, async ({ url, secrets }) => {
        const context = `URL ${JSON.stringify(url)}`;
        let parsed: DatabaseUrl | undefined;
        try {
          parsed = parseDatabaseUrl(url);
        } catch (error) {
          assertConfigError(error, context);
          assertHidden(error, secrets, context);
        }
        if (parsed !== undefined) {
          assertHidden(parsed, secrets, context);
          assertHidden({ ...parsed }, secrets, context);
        }
        await constructs(url, undefined, secrets, context);
      }),
      { numRuns: 1000 },
    );
  });

  test("well-formed URLs: each part decodes to what was written, and the printed form parses to the same parts", () => {
    const serverUrl = fc.record({
      scheme: fc.constantFrom("postgres", "postgresql", "mysql", "mariadb"),
      user: fc.string({ unit: "grapheme", maxLength: 8 }),
      password: fc.string({ unit: "grapheme", maxLength: 12 }),
      host: fc.oneof(
        fc.constantFrom("localhost", "127.0.0.1"),
        fc.domain(),
        fc.ipV4(),
        // Roost parses with the runtime's WHATWG URL; Bun 1.4's refuses some valid IPv6 forms
        // (0:0::0:0:0.0.0.0, which Node and Deno accept), so only what the runtime itself parses.
        fc.ipV6().filter((ip) => URL.canParse(`http://[${ip}]/`)),
      ),
      port: fc.option(fc.integer({ min: 1, max: 65535 }), { nil: undefined }),
      // "." and ".." have a test of their own.
      database: fc.string({ unit: "grapheme", maxLength: 10 }).filter((name) => name !== "." && name !== ".."),
      timeout: fc.option(fc.integer({ min: 0, max: 999_999 }), { nil: undefined }),
      text: fc.option(fc.string({ unit: "grapheme", maxLength: 8 }), { nil: undefined }),
    });
    fc.assert(
      fc.property(serverUrl, ({ scheme, user, password, host, port, database, timeout, text }) => {
        const dialect = scheme.startsWith("m") ? "mysql" : "postgres";
        const options: Record<string, string | number> = {};
        if (timeout !== undefined) options.connect_timeout = timeout;
        if (text !== undefined) options[dialect === "postgres" ? "application_name" : "charset"] = text;
        const query = Object.entries(options).map(([k, v]) => `${k}=${encodeURIComponent(String(v))}`).join("&");
        const userinfo = user === "" && password === ""
          ? ""
          : `${encodeURIComponent(user)}${password === "" ? "" : `:${encodeURIComponent(password)}`}@`;
        const hostText = host.includes(":") ? `[${host}]` : host;
        const url = `${scheme}://${userinfo}${hostText}${port === undefined ? "" : `:${port}`}/${
          encodeURIComponent(database)
        }${query ? `?${query}` : ""}`;
        const parsed = parseDatabaseUrl(url);
        const expectedHost = host.includes(":") ? new URL(`http://[${host}]/`).hostname.slice(1, -1) : host;
        assert.deepEqual({ ...parsed }, {
          dialect,
          scheme: `${scheme}:`,
          host: expectedHost,
          port: port ?? (dialect === "postgres" ? 5432 : 3306),
          user,
          database,
          options,
        }, url);
        assert.equal(parsed.password(), password, url);
        assert.deepEqual({ ...parseDatabaseUrl(String(parsed)) }, { ...parsed }, `reparsing ${String(parsed)}`);
      }),
      { numRuns: 300 },
    );
  });

  test("a database name '.' or '..' (percent-encoded or not) is kept, not dropped by URL path normalisation", () => {
    // libpq reads postgresql://h/%2E%2E as the database "..": a legal (quoted) name on Postgres and MySQL.
    for (const [path, database] of [["/.", "."], ["/..", ".."], ["/%2E", "."], ["/%2e%2E", ".."]]) {
      for (const scheme of ["postgres", "mysql"]) {
        const url = `${scheme}://app@db.example${path}`;
        let parsed: DatabaseUrl | undefined;
        try {
          parsed = parseDatabaseUrl(url);
        } catch (error) {
          assertConfigError(error, url); // refusing it would be fine too
        }
        if (parsed !== undefined) assert.equal(parsed.database, database, url);
      }
    }
  });

  test("a '+' in the user, password, database name or SQLite path is a plus (RFC 3986, libpq), not a space", () => {
    // RFC 3986 lets userinfo and path segments hold sub-delims ("+" among them) unencoded; only
    // application/x-www-form-urlencoded query strings read "+" as a space.
    const url = parseDatabaseUrl("postgres://app+1:pw+secret@db.example/shop+eu");
    assert.deepEqual([url.user, url.password(), url.database], ["app+1", "pw+secret", "shop+eu"]);
    assert.equal(parseDatabaseUrl("sqlite:data/a+b.db").database, "data/a+b.db");
    assert.equal(parseDatabaseUrl("sqlite:///var/lib/a+b.db").database, "/var/lib/a+b.db");
    // Property: each part written with only what RFC 3986 requires encoded decodes to itself.
    const minimal = (text: string, alsoRaw: string) =>
      [...text].map((ch) =>
        /^[A-Za-z0-9\-._~!$&'()*+,;=]$/.test(ch) || alsoRaw.includes(ch) ? ch : encodeURIComponent(ch)
      )
        .join("");
    const part = fc.string({ unit: fc.constantFrom(..."ab+ %:@!$&'()*,;=~é"), maxLength: 8 });
    fc.assert(
      fc.property(part, part, part, (user, password, database) => {
        const text = `mysql://${minimal(user, "")}:${minimal(password, ":")}@h/${minimal(database, ":@")}`;
        const parsed = parseDatabaseUrl(text);
        assert.deepEqual([parsed.user, parsed.password(), parsed.database], [user, password, database], text);
        const file = parseDatabaseUrl(`sqlite:${minimal(`${database}x`, ":@/")}`);
        assert.equal(file.database, `${database}x`);
      }),
      { numRuns: 300 },
    );
  });
});

describe("bad input: Database options", () => {
  test("fc.anything() as options builds an instance or throws a ConfigError", async () => {
    const urls = ["sqlite::memory:", `sqlite:${uniqueName("never_opened")}.db`, "postgres://app@127.0.0.1:1/db"];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...urls), fc.anything({ withBigInt: true, withDate: true, withMap: true }), (
        url,
        options,
      ) => constructs(url, options, [], `options ${inspect(options)}`)),
      { numRuns: 300 },
    );
  });

  test("structured odd options (pool, routing, replicas, name, driver, scope, hook, unknown keys): instance or ConfigError, never a password", async () => {
    await fc.assert(
      fc.asyncProperty(
        goodUrlArb,
        optionsArb,
        ({ url, secrets }, { options, secrets: replicaSecrets }) =>
          constructs(url, options, [...secrets, ...replicaSecrets], `${url} with ${inspect(options, { depth: 5 })}`),
      ),
      { numRuns: 400 },
    );
  });

  test("each option given each odd JavaScript value (symbol, bigint, function, null-prototype object …)", async () => {
    const odd: unknown[] = [Symbol("odd"), 10n, () => 1, NaN, -0, Infinity, new Date(0), Object.create(null), [], null];
    const places: string[][] = [
      ["name"],
      ["driver"],
      ["onQuery"],
      ["connectionScope"],
      ["replicas"],
      ["pool"],
      ["routing"],
      ...poolKeys.map((key) => ["pool", key]),
      ...routingKeys.map((key) => ["routing", key]),
    ];
    const failures: string[] = [];
    for (const value of odd) {
      for (const [key, inner] of places) {
        const options = inner === undefined ? { [key]: value } : { [key]: { [inner]: value } };
        const context = `{ ${key}${inner ? `: { ${inner}` : ""}: ${inspect(value)} }`;
        await constructs("sqlite::memory:", options, [], context).catch((error) => failures.push(error.message));
      }
    }
    assert.deepEqual(failures, []);
  });
});

describe("the Worker entry (edge.ts), without the driver registry", () => {
  test("takes a driver object; a name or no driver is a ConfigError saying which object to import", async () => {
    const run = await runScript("tests/support/fixtures/edge_entry.ts");
    assert.equal(run.code, 0, run.stderr);
    const outcome = JSON.parse(run.stdout);
    assert.deepEqual(outcome.object, { ok: true });
    for (
      const [form, exported, module] of [
        ["name", "postgresJs", "postgres-js"],
        ["none", "mysql2", "mysql2"],
      ] as const
    ) {
      assert.equal(outcome[form].error, "ConfigError", form);
      assert.match(outcome[form].message, /a bundle holds only the drivers it imports, so pass the driver object/);
      assert.ok(
        outcome[form].message.includes(`import { ${exported} } from "@roost/db/drivers/${module}"`),
        outcome[form].message,
      );
    }
    assert.deepEqual(outcome.sqlite.error, "ConfigError");
    assert.match(outcome.sqlite.message, /^no sqlite driver runs on /);
  });

  test("the driver it names for each dialect is the registry's first driver that runs in a Worker", () => {
    for (const dialect of ["postgres", "mysql", "sqlite"] as const) {
      assert.equal(bundledDrivers[dialect]?.name, availableDrivers(dialect, "workerd")[0], dialect);
    }
  });

  test("mod.ts installs the registry: a driver name resolves", () => {
    const db = new Database("postgres://app@127.0.0.1:1/app", { driver: "postgres-js" });
    void db.close();
  });
});
