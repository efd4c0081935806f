/**
 * Secrets stay secret. The password of a database URL (and a replica's own)
 * appears in no error message, stack, `String(error)`, inspection or cause,
 * in no `String(db)`, `JSON.stringify(db)` or inspection of an instance or
 * its handles, in no `db.stats()`, in nothing the `onQuery` hook receives
 * and in no console output; and a query's parameter values appear in none of
 * them either unless `debugParameters` asks for them. Every server target
 * runs successful and failing queries, failing transactions and failing
 * connections (closed port, wrong password, unknown user) against the real
 * servers, and every rendering is searched for the secrets, raw and
 * percent-encoded. MySQL gets users of this file's own, so the password is
 * really sent and checked; Postgres trusts any password. Instances that never
 * connect (a parsed URL, a Database, one with replicas) are checked too.
 * This file is the home of "no secret shows"; a ConfigError for bad input
 * that must not show its password is checked with the input, in
 * tests/unit/options.test.ts.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { inspect } from "node:util";
import {
  ClosedError,
  ConnectionError,
  Database,
  type DatabaseOptions,
  type Driver,
  parseDatabaseUrl,
  PoolTimeoutError,
  QueryError,
  type QueryEvent,
  RegistryError,
  sql,
  TransactionError,
} from "../../mod.ts";
import { assertHidden, signal, uniqueName, uniqueTable } from "../support/support.ts";
import { matches, serverPlaces, type Target, targets } from "../support/targets.ts";

type SqlQuery = ReturnType<typeof sql>;

/** A random run of letters and digits that nothing else prints. */
function randomCore(): string {
  return crypto.randomUUID().replaceAll("-", "").slice(0, 16);
}

/** A text that must never be printed, under the name failures use for it. */
interface Needle {
  name: string;
  value: string;
}

/** The needles of a password: raw, percent-encoded, and its random core alone (any other encoding of it). */
function passwordNeedles(name: string, password: string, core: string): Needle[] {
  return [
    { name, value: password },
    { name: `${name} (percent-encoded)`, value: encodeURIComponent(password) },
    { name: `${name} (its random part)`, value: core },
  ];
}

const primaryCore = randomCore();
const replicaCore = randomCore();
const wrongCore = randomCore();
const paramCore = randomCore();
/** Characters a URL must percent-encode, so the raw and the encoded password differ. */
const password = `Roost-pw-${primaryCore}:/@%`;
const replicaPassword = `Roost-rpw-${replicaCore}:/@%`;
const wrongPassword = `Roost-wrong-${wrongCore}:/@%`;
/** A parameter value servers like to quote in their messages. */
const secret = `param-secret-${paramCore}`;

const passwords: Needle[] = [
  ...passwordNeedles("the password", password, primaryCore),
  ...passwordNeedles("the replica's password", replicaPassword, replicaCore),
  ...passwordNeedles("the wrong password", wrongPassword, wrongCore),
];
const parameters: Needle[] = [
  { name: "the parameter value", value: secret },
  { name: "the parameter value (its random part)", value: paramCore },
];

type Inspector = (value: unknown, options?: Record<string, unknown>) => string;
const hosts = globalThis as { Deno?: { inspect: Inspector }; Bun?: { inspect: Inspector } };

/**
 * Everything a test showed: each value recorded is rendered every way a
 * program, a logger or a debugger could, and the renderings are searched.
 */
class Exposure {
  readonly #seen: { where: string; text: string }[] = [];
  /** How many values were recorded. */
  recorded = 0;

  /** Renders `value` (an error with its whole cause chain) and keeps every rendering. */
  record(where: string, value: unknown): void {
    this.recorded++;
    this.#render(where, value, new Set());
  }

  /** Keeps a text as it is (console output). */
  text(where: string, text: string): void {
    this.#seen.push({ where, text });
  }

  #render(where: string, value: unknown, visited: Set<unknown>): void {
    if (typeof value === "object" && value !== null) {
      if (visited.has(value)) return;
      visited.add(value);
    }
    const add = (how: string, render: () => string | undefined) => {
      try {
        this.#seen.push({ where: `${where} (${how})`, text: render() ?? "" });
      } catch {
        // A value that cannot be rendered this way shows nothing this way.
      }
    };
    add("String", () => String(value));
    add("JSON.stringify", () => JSON.stringify(value));
    add("util.inspect", () => inspect(value, { depth: Infinity, showHidden: true }));
    add(
      "util.inspect, no custom inspect",
      () => inspect(value, { depth: Infinity, showHidden: true, customInspect: false }),
    );
    if (hosts.Deno) add("Deno.inspect", () => hosts.Deno!.inspect(value, { depth: Infinity, showHidden: true }));
    if (hosts.Bun) add("Bun.inspect", () => hosts.Bun!.inspect(value, { depth: 100 }));
    if (value instanceof Error) {
      add("message", () => value.message);
      add("stack", () => value.stack);
      for (const key of Object.getOwnPropertyNames(value)) {
        const field = (value as unknown as Record<string, unknown>)[key];
        if (typeof field === "string") add(`.${key}`, () => field);
      }
      if (value.cause !== undefined) this.#render(`${where}.cause`, value.cause, visited);
      if (value instanceof AggregateError) {
        value.errors.forEach((inner, i) => this.#render(`${where}.errors[${i}]`, inner, visited));
      }
    }
  }

  /** Each rendering that shows one of `needles` (the first it shows), with the text around it. */
  leaks(needles: readonly Needle[]): string[] {
    const leaks: string[] = [];
    for (const { where, text } of this.#seen) {
      const needle = needles.find(({ value }) => text.includes(value));
      if (needle === undefined) continue;
      const at = text.indexOf(needle.value);
      const around = `${text.slice(Math.max(0, at - 80), at)}<<${needle.name}>>${
        text.slice(at + needle.value.length, at + needle.value.length + 40)
      }`;
      leaks.push(`${needle.name} in ${where}: …${around.replaceAll("\n", "⏎")}…`);
    }
    return leaks;
  }

  /** Fails listing (the first few of) the renderings that show one of `needles`. */
  assertNone(needles: readonly Needle[], what: string): void {
    const leaks = this.leaks(needles);
    if (leaks.length === 0) return;
    const shown = leaks.length > 8 ? [...leaks.slice(0, 8), `… and ${leaks.length - 8} more`] : leaks;
    assert.fail(`${what}: ${leaks.length} leak(s):\n  ${shown.join("\n  ")}`);
  }
}

const consoleMethods = ["log", "info", "warn", "error", "debug", "trace"] as const;

/** Records everything printed through `console` into `exposure` (still printing it); returns the undo. */
function captureConsole(exposure: Exposure): () => void {
  const saved = consoleMethods.map((method) => [method, console[method]] as const);
  for (const [method, original] of saved) {
    console[method] = (...args: unknown[]) => {
      exposure.text(
        `console.${method}`,
        args.map((arg) => typeof arg === "string" ? arg : inspect(arg, { depth: Infinity, showHidden: true })).join(
          " ",
        ),
      );
      original.apply(console, args);
    };
  }
  return () => {
    for (const [method, original] of saved) console[method] = original;
  };
}

/** The rejection of `run`; fails when it resolves. */
async function rejection(what: string, run: () => Promise<unknown>): Promise<unknown> {
  try {
    await run();
  } catch (error) {
    return error;
  }
  assert.fail(`${what}: expected an error, but it succeeded`);
}

/** The rejection of `run`, or undefined when it resolves. */
function failureOf(run: () => Promise<unknown>): Promise<unknown> {
  return run().then(() => undefined, (error: unknown) => error);
}

/** `url` with this user and password (percent-encoded), or the same server on another port. */
function withCredentials(url: string, user: string, pass: string, port?: number): string {
  const parsed = new URL(url);
  const host = port === undefined ? parsed.host : `${parsed.hostname}:${port}`;
  return `${parsed.protocol}//${encodeURIComponent(user)}:${
    encodeURIComponent(pass)
  }@${host}${parsed.pathname}${parsed.search}`;
}

const parametersOf = (error: unknown) => error instanceof QueryError ? error.parameters : undefined;

const slow = { timeout: 30_000 };

/** The table every test of a target writes to; `m` takes only 'calm' or 'tense', `n` only non-negative numbers. */
function createTable(target: Target, table: SqlQuery, mood: SqlQuery): SqlQuery[] {
  if (target.dialect === "postgres") {
    return [
      sql`create type ${mood} as enum ('calm', 'tense')`,
      sql`create table ${table} (k text primary key, n integer check (n >= 0), d date, m ${mood})`,
    ];
  }
  if (target.dialect === "mysql") {
    return [
      sql`create table ${table} (k varchar(191) primary key, n integer check (n >= 0), d date, m enum('calm', 'tense'), v varchar(8))`,
    ];
  }
  return [
    sql`create table ${table} (k text primary key, n integer check (n >= 0), m text check (m in ('calm', 'tense'))) strict`,
  ];
}

/** A failing query with the secret as a parameter; `quoted` when the server's message would quote the value. */
interface ParameterCase {
  what: string;
  query: SqlQuery;
  params: unknown[];
  quoted: boolean;
  /** A statement run first on the same connection, and one that undoes it after. */
  setup?: SqlQuery;
  teardown?: SqlQuery;
}

function parameterCases(target: Target, table: SqlQuery): ParameterCase[] {
  const json = `{"k": "${secret}"`;
  if (target.dialect === "postgres") {
    return [
      { what: "an integer cast", query: sql`select ${secret}::int`, params: [secret], quoted: true },
      { what: "a date cast", query: sql`select ${secret}::date`, params: [secret], quoted: true },
      {
        what: "an enum column",
        query: sql`insert into ${table} (k, m) values (${"enum-row"}, ${secret})`,
        params: ["enum-row", secret],
        quoted: true,
      },
      { what: "a time zone", query: sql`select now() at time zone ${secret}`, params: [secret], quoted: true },
      {
        what: "a unique violation (the server's detail quotes the key)",
        query: sql`insert into ${table} (k, n) values (${secret}, ${1})`,
        params: [secret, 1],
        quoted: false,
      },
      {
        what: "a check violation (the server's detail quotes the row)",
        query: sql`insert into ${table} (k, n) values (${`${secret}-check`}, ${-1})`,
        params: [`${secret}-check`, -1],
        quoted: false,
      },
      {
        what: "malformed JSON (the server's context quotes it)",
        query: sql`select ${json}::text::jsonb`,
        params: [json],
        quoted: false,
      },
      {
        what: "an integer cast with log_parameter_max_length_on_error = -1 (the server's context quotes parameters)",
        setup: sql`set log_parameter_max_length_on_error = -1`,
        teardown: sql`reset log_parameter_max_length_on_error`,
        query: sql`select ${secret}::int`,
        params: [secret],
        quoted: true,
      },
    ];
  }
  if (target.dialect === "mysql") {
    return [
      {
        what: "a duplicate entry",
        query: sql`insert into ${table} (k, n) values (${secret}, ${1})`,
        params: [secret, 1],
        quoted: true,
      },
      {
        what: "a string in an integer column (strict mode)",
        query: sql`insert into ${table} (k, n) values (${"int-row"}, ${secret})`,
        params: ["int-row", secret],
        quoted: true,
      },
      {
        what: "a string in a date column",
        query: sql`insert into ${table} (k, d) values (${"date-row"}, ${secret})`,
        params: ["date-row", secret],
        quoted: true,
      },
      {
        what: "a cast that truncates in insert … select",
        query: sql`insert into ${table} (k, n) select ${"cast-row"}, cast(${secret} as unsigned)`,
        params: ["cast-row", secret],
        quoted: true,
      },
      {
        what: "an enum column",
        query: sql`insert into ${table} (k, m) values (${"enum-row"}, ${secret})`,
        params: ["enum-row", secret],
        quoted: false,
      },
      {
        what: "a check violation",
        query: sql`insert into ${table} (k, n) values (${`${secret}-check`}, ${-1})`,
        params: [`${secret}-check`, -1],
        quoted: false,
      },
      {
        what: "a value too long",
        query: sql`insert into ${table} (k, v) values (${"long-row"}, ${secret})`,
        params: ["long-row", secret],
        quoted: false,
      },
      { what: "an unknown time zone", query: sql`set time_zone = ${secret}`, params: [secret], quoted: true },
      { what: "a bad sql_mode", query: sql`set sql_mode = ${secret}`, params: [secret], quoted: true },
    ];
  }
  return [
    {
      what: "a unique violation",
      query: sql`insert into ${table} (k, n) values (${secret}, ${1})`,
      params: [secret, 1],
      quoted: false,
    },
    {
      what: "a check violation",
      query: sql`insert into ${table} (k, m) values (${`${secret}-check`}, ${secret})`,
      params: [`${secret}-check`, secret],
      quoted: false,
    },
    {
      what: "a string in an integer column of a strict table",
      query: sql`insert into ${table} (k, n) values (${"int-row"}, ${secret})`,
      params: ["int-row", secret],
      quoted: false,
    },
    { what: "malformed JSON", query: sql`select json(${json}) as j`, params: [json], quoted: false },
  ];
}

/** A unique violation on every dialect: the row keyed by the secret exists from the start. */
const duplicateOf = (table: SqlQuery) => sql`insert into ${table} (k, n) values (${secret}, ${1})`;

for (const target of targets()) {
  // A server takes credentials (a URL with a password, replicas); PGlite, in this process, none.
  const server = matches(target, { places: serverPlaces });

  describe(`secrets ${target.label}`, () => {
    const table = uniqueTable("secrets");
    const mood = uniqueTable("mood");
    const primaryUser = uniqueName("roost_sec_p");
    const replicaUser = uniqueName("roost_sec_r");
    const missing = uniqueTable("none");
    /** Everything printed through console while this target's tests run. */
    const printed = new Exposure();
    let restoreConsole = () => {};
    let admin: Database;
    /** The URL with this file's user and password, and the replica's with its own. */
    let primaryUrl = target.url;
    let replicaUrl = target.url;
    const opened: Database[] = [];

    function open(url: string, options: DatabaseOptions = {}): { db: Database; events: QueryEvent[] } {
      const events: QueryEvent[] = [];
      const db = new Database(url, {
        driver: target.driver,
        pool: { acquireTimeout: 10_000 },
        onQuery: (event) => events.push(event),
        ...options,
      });
      opened.push(db);
      return { db, events };
    }

    /** Records the instance, its stats and its events, then closes it and records it again. */
    async function recordAndClose(exposure: Exposure, db: Database, events: readonly QueryEvent[]): Promise<void> {
      exposure.record("String/JSON/inspect of db", db);
      exposure.record("db.url", db.url);
      exposure.record("db.stats()", db.stats());
      exposure.record("db.toJSON()", db.toJSON());
      events.forEach((event, i) => {
        exposure.record(`onQuery event ${i}`, event);
        if (event.error !== undefined) exposure.record(`onQuery event ${i}.error`, event.error);
      });
      await db.close();
      exposure.record("db after close", db);
    }

    /** Creates the table in `db` itself when each instance has a database of its own (SQLite in memory). */
    async function prepare(db: Database): Promise<void> {
      if (!target.url.includes(":memory:")) return;
      for (const statement of createTable(target, table, mood)) await db.execute(statement);
      await db.execute(sql`insert into ${table} (k, n) values (${secret}, ${1})`);
    }

    before(async () => {
      restoreConsole = captureConsole(printed);
      admin = target.open();
      if (target.dialect === "mysql") {
        const database = decodeURIComponent(new URL(target.url).pathname.slice(1));
        for (const [user, pass] of [[primaryUser, password], [replicaUser, replicaPassword]]) {
          for (const host of ["%", "localhost"]) {
            await admin.execute(
              sql`create user ${sql.unsafe(`'${user}'@'${host}'`)} identified by ${sql.unsafe(`'${pass}'`)}`,
            );
            await admin.execute(
              sql`grant all on ${sql.unsafe(`\`${database}\`.*`)} to ${sql.unsafe(`'${user}'@'${host}'`)}`,
            );
          }
        }
      }
      if (server) {
        primaryUrl = withCredentials(target.url, target.dialect === "mysql" ? primaryUser : "postgres", password);
        replicaUrl = withCredentials(
          target.url,
          target.dialect === "mysql" ? replicaUser : "postgres",
          replicaPassword,
        );
      }
      for (const statement of createTable(target, table, mood)) await admin.execute(statement);
      await admin.execute(sql`insert into ${table} (k, n) values (${secret}, ${1})`);
    });

    after(async () => {
      restoreConsole();
      await Promise.allSettled(opened.map((db) => db.close()));
      try {
        await admin.execute(sql`drop table if exists ${table}`);
        if (target.dialect === "postgres") await admin.execute(sql`drop type if exists ${mood}`);
        if (target.dialect === "mysql") {
          for (const user of [primaryUser, replicaUser]) {
            for (const host of ["%", "localhost"]) {
              await admin.execute(sql`drop user if exists ${sql.unsafe(`'${user}'@'${host}'`)}`);
            }
          }
        }
      } finally {
        await admin.close();
      }
    });

    if (server) {
      test("queries, handles, String/JSON/inspect, stats and onQuery events never show a password", slow, async () => {
        const exposure = new Exposure();
        const { db, events } = open(primaryUrl, { replicas: [replicaUrl], routing: { reads: "replicas" } });
        exposure.record("db before connecting", db);
        await db.connect();
        const key = uniqueName("ok");
        await db.execute(sql`insert into ${table} (k, n) values (${key}, ${1})`);
        await db.executeMany(sql`insert into ${table} (k, n) values (${""}, ${0})`, [[`${key}-a`, 2], [`${key}-b`, 3]]);
        assert.equal(Number(await db.fetchVal(sql`select count(*) from ${table} where k like ${`${key}%`}`)), 3);
        await db.fetchAll(sql`select k, n from ${table}`);
        await db.fetchOne(sql`select k from ${table} where k = ${key}`);
        let streamed = 0;
        for await (const _row of db.iterate(sql`select k from ${table}`)) streamed++;
        assert.ok(streamed >= 4, "iterate streamed the rows");
        await db.connection(async (conn) => {
          exposure.record("connection handle", conn);
          await conn.fetchVal(sql`select 1`);
          await conn.transaction(async (tx) => {
            exposure.record("transaction handle of a connection", tx);
            await tx.execute(sql`update ${table} set n = n + 1 where k = ${key}`);
          });
        });
        await db.transaction(async (tx) => {
          exposure.record("transaction handle", tx);
          await tx.execute(sql`update ${table} set n = n + 1 where k = ${key}`);
          await tx.transaction(async (savepoint) => {
            exposure.record("savepoint handle", savepoint);
            await savepoint.fetchVal(sql`select n from ${table} where k = ${key}`);
          });
        });
        const begun = await db.begin();
        exposure.record("db.begin() handle", begun);
        await begun.execute(sql`update ${table} set n = n + 1 where k = ${key}`);
        await begun.commit();
        exposure.record("db.begin() handle after commit", begun);
        await db.replica(async (replica) => {
          exposure.record("replica scope", replica);
          await replica.fetchAll(sql`select k from ${table} where k = ${key}`);
        });
        await db.primary(async (primary) => {
          exposure.record("primary scope", primary);
          await primary.fetchVal(sql`select n from ${table} where k = ${key}`);
        });
        await db.context(async (scope) => {
          exposure.record("context scope", scope);
          await scope.fetchVal(sql`select 1`);
        });
        assert.ok(
          events.some((event) => event.served === "replica" && event.error === undefined),
          "the replica served",
        );
        assert.ok(events.every((event) => event.error === undefined), "every query succeeded");
        assert.ok(String(db).includes("***") && JSON.stringify(db).includes("***"), "the password shows as ***");
        await recordAndClose(exposure, db, events);
        exposure.assertNone(passwords, "successful queries");
        exposure.assertNone(parameters, "successful queries (parameters)");
        printed.assertNone(passwords, "console output");
      });

      test("failing queries and transactions: errors, causes and events never show a password", slow, async () => {
        const exposure = new Exposure();
        const { db, events } = open(primaryUrl, { replicas: [replicaUrl], name: uniqueName("secrets") });
        const errors: [string, unknown][] = [
          ["a syntax error", await rejection("a syntax error", () => db.execute(sql`selec 1`))],
          ["a unique violation", await rejection("a unique violation", () => db.execute(duplicateOf(table)))],
          [
            "a wrong type",
            await rejection(
              "a wrong type",
              () => db.execute(sql`insert into ${table} (k, n) values (${uniqueName("wrong")}, ${"not a number"})`),
            ),
          ],
          ["an unknown table", await rejection("an unknown table", () => db.fetchAll(sql`select * from ${missing}`))],
          [
            "a failing statement in a replica scope",
            await rejection("replica", () => db.replica((replica) => replica.fetchAll(sql`select * from ${missing}`))),
          ],
          [
            "a write in a replica scope",
            await rejection("replica write", () => db.replica((replica) => replica.fetchAll(duplicateOf(table)))),
          ],
          [
            "a transaction whose callback rethrows a failed statement",
            await rejection("transaction", () =>
              db.transaction(async (tx) => {
                await tx.execute(sql`update ${table} set n = n where k = ${secret}`);
                await tx.execute(duplicateOf(table));
              })),
          ],
        ];
        // A transaction whose failed statement is caught: Postgres refuses the commit with a TransactionError.
        let inner: unknown;
        const commit = await db.transaction(async (tx) => {
          inner = await rejection("in a transaction", () => tx.execute(duplicateOf(table)));
        }).then(() => undefined, (error: unknown) => error);
        errors.push(["a failed statement in a transaction", inner]);
        if (target.dialect === "postgres") {
          assert.ok(commit instanceof TransactionError, `the commit after a failed statement: ${commit}`);
          errors.push(["the refused commit", commit]);
        }
        const begun = await db.begin();
        errors.push([
          "a failed statement in begin()",
          await rejection("begin", () => begun.execute(duplicateOf(table))),
        ]);
        await begun.rollback();
        errors.push(["a handle used after rollback", await rejection("ended", () => begun.fetchVal(sql`select 1`))]);
        exposure.record("db.begin() handle after rollback", begun);
        errors.push([
          "a taken name",
          await rejection(
            "name",
            () =>
              Promise.resolve().then(() => new Database(primaryUrl, { name: db.toJSON().name, driver: target.driver })),
          ),
        ]);
        for (const [what, error] of errors) {
          assert.ok(error instanceof Error, `${what}: ${error}`);
          exposure.record(what, error);
        }
        assert.ok(errors.find(([what]) => what === "a taken name")?.[1] instanceof RegistryError);

        // A pool that stays busy, and an instance used after close.
        const busy = open(primaryUrl, { pool: { max: 1, acquireTimeout: 200 } });
        const held = signal();
        const release = signal();
        const holding = busy.db.connection(async () => {
          held.resolve();
          await release.promise;
        });
        await held.promise;
        const timeout = await rejection("pool timeout", () => busy.db.fetchVal(sql`select 1`));
        release.resolve();
        await holding;
        assert.ok(timeout instanceof PoolTimeoutError, `a busy pool: ${timeout}`);
        exposure.record("a pool timeout", timeout);
        await recordAndClose(exposure, busy.db, busy.events);
        const closed = await rejection("closed", () => busy.db.fetchVal(sql`select 1`));
        assert.ok(closed instanceof ClosedError, `a closed instance: ${closed}`);
        exposure.record("a closed instance", closed);

        assert.ok(events.filter((event) => event.error !== undefined).length >= 5, "the hook saw the failures");
        await recordAndClose(exposure, db, events);
        exposure.assertNone(passwords, "failing queries");
        printed.assertNone(passwords, "console output");
      });

      test("failed connections never show a password: closed port, wrong password, unknown user", slow, async () => {
        const exposure = new Exposure();
        const closedPort = withCredentials(
          primaryUrl,
          target.dialect === "mysql" ? primaryUser : "postgres",
          password,
          1,
        );
        const attempts: [string, string][] = [
          ["a closed port", closedPort],
          ["a closed port (replica's password)", withCredentials(replicaUrl, replicaUser, replicaPassword, 1)],
          ["an unknown user", withCredentials(target.url, uniqueName("roost_sec_nobody"), wrongPassword)],
        ];
        if (target.dialect === "mysql") {
          attempts.push(["a wrong password", withCredentials(target.url, primaryUser, wrongPassword)]);
        }
        if (target.dialect === "postgres") {
          const url = new URL(withCredentials(target.url, "postgres", password));
          url.pathname = `/${uniqueName("nodb")}`;
          attempts.push(["an unknown database", url.toString()]);
        }
        for (const [what, url] of attempts) {
          const { db, events } = open(url);
          const connecting = await rejection(what, () => db.connect());
          const querying = await rejection(what, () => db.fetchVal(sql`select ${secret}`));
          for (const error of [connecting, querying]) {
            assert.ok(error instanceof ConnectionError, `${what}: expected a ConnectionError, got ${error}`);
            exposure.record(what, error);
          }
          if (what === "a wrong password") assert.match(String((connecting as Error).message), /denied/i, what);
          await recordAndClose(exposure, db, events);
        }

        // A replica, with its own password, that cannot be reached: reads fall back to the primary.
        const down = withCredentials(
          replicaUrl,
          target.dialect === "mysql" ? replicaUser : "postgres",
          replicaPassword,
          1,
        );
        const fallback = open(primaryUrl, { replicas: [down], routing: { reads: "replicas", recheckAfter: 60_000 } });
        assert.equal(Number(await fallback.db.fetchVal(sql`select 1`)), 1);
        assert.ok(fallback.events.some((event) => event.served === "replica" && event.error !== undefined));
        const stats = fallback.db.stats();
        assert.equal(stats.replicas[0].healthy, false);
        assert.ok(stats.replicas[0].lastError, "the replica's last error is kept");
        await recordAndClose(exposure, fallback.db, fallback.events);
        const strict = open(primaryUrl, {
          replicas: [down],
          routing: { reads: "replicas", fallback: "error", recheckAfter: 60_000 },
        });
        for (let i = 0; i < 2; i++) {
          const error = await rejection("no replica", () => strict.db.fetchVal(sql`select 1`));
          assert.ok(error instanceof ConnectionError, `no healthy replica: ${error}`);
          exposure.record(`no healthy replica (${i})`, error);
        }
        await recordAndClose(exposure, strict.db, strict.events);
        exposure.assertNone(passwords, "failed connections");
        exposure.assertNone(parameters, "failed connections (parameters)");
        printed.assertNone(passwords, "console output");
      });
    }

    test("a failing query's parameter values appear in no error, cause, event or console output", slow, async () => {
      const url = server ? primaryUrl : target.url;
      const { db, events } = open(url, server ? { replicas: [replicaUrl] } : {});
      await prepare(db);
      const failures: string[] = [];
      for (const c of parameterCases(target, table)) {
        const exposure = new Exposure();
        const error = c.setup === undefined
          ? await failureOf(() => db.fetchAll(c.query))
          : await db.connection(async (conn) => {
            await conn.execute(c.setup!);
            try {
              return await failureOf(() => conn.fetchAll(c.query));
            } finally {
              if (c.teardown) await conn.execute(c.teardown);
            }
          });
        try {
          assert.ok(error instanceof QueryError, `expected a QueryError, got ${error ?? "no error"}`);
          exposure.record(c.what, error);
          const event = events.findLast((e) => e.error !== undefined);
          assert.ok(event !== undefined && event.error === error, "the hook saw the error");
          exposure.record(`${c.what}: onQuery event`, event);
          exposure.assertNone(parameters, "the error or its event");
          assert.equal(parametersOf(error), undefined, "error.parameters without debugParameters");
          assert.ok(!("parameters" in event), "event.parameters without debugParameters");
          if (c.quoted) assert.ok(error.message.includes("…"), `the quoted value is redacted to …: ${error.message}`);
        } catch (failure) {
          failures.push(`${c.what}: ${failure instanceof Error ? failure.message : String(failure)}`);
        }
      }

      // The same value through the other ways a query runs.
      const exposure = new Exposure();
      const first = events.length;
      const ways: [string, () => Promise<unknown>][] = [
        [
          "executeMany",
          () =>
            db.executeMany(sql`insert into ${table} (k, n) values (${""}, ${0})`, [[`${secret}-many`, 1], [secret, 1]]),
        ],
        ["a connection scope", () => db.connection((conn) => conn.execute(duplicateOf(table)))],
        ["a transaction", () => db.transaction((tx) => tx.execute(duplicateOf(table)))],
        ["iterate", async () => {
          for await (const _ of db.iterate(duplicateOf(table))) break;
        }],
        [
          "a replica scope",
          () => db.replica((replica) => replica.fetchAll(sql`select * from ${table} where n = ${secret}`)),
        ],
      ];
      if (target.dialect === "postgres") {
        ways.push(["iterate, integer cast", async () => {
          for await (const _ of db.iterate(sql`select ${secret}::int`)) break;
        }]);
        ways.push(["a transaction whose commit is refused", () =>
          db.transaction(async (tx) => {
            await tx.fetchAll(sql`select ${secret}::int`).catch(() => {});
          })]);
      }
      for (const [what, run] of ways) {
        // Some of these succeed on some dialects (MySQL and SQLite compare a string with a number): nothing to see then.
        const error = await failureOf(run);
        if (error !== undefined) exposure.record(what, error);
      }
      await recordAndClose(exposure, db, events.slice(first));
      try {
        exposure.assertNone(parameters, "executeMany, scopes, iterate and transactions");
      } catch (failure) {
        failures.push(failure instanceof Error ? failure.message : String(failure));
      }
      try {
        printed.assertNone(parameters, "console output");
      } catch (failure) {
        failures.push(failure instanceof Error ? failure.message : String(failure));
      }
      if (failures.length > 0) assert.fail(`${failures.length} case(s) failed:\n${failures.join("\n")}`);
    });

    test(
      "debugParameters: the failed query's error and every event carry the parameters, Postgres messages unredacted",
      slow,
      async () => {
        const { db, events } = open(server ? primaryUrl : target.url, { debugParameters: true });
        await prepare(db);
        const failures: string[] = [];
        const check = (what: string, fn: () => void) => {
          try {
            fn();
          } catch (failure) {
            failures.push(`${what}: ${failure instanceof Error ? failure.message : String(failure)}`);
          }
        };
        const key = uniqueName("debug");
        await db.execute(sql`insert into ${table} (k, n) values (${key}, ${7})`);
        check("a successful query's event", () => assert.deepEqual(events.at(-1)?.parameters, [key, 7]));
        for (const c of parameterCases(target, table).filter((c) => c.setup === undefined)) {
          const error = await failureOf(() => db.fetchAll(c.query));
          check(c.what, () => {
            assert.ok(error instanceof QueryError, `expected a QueryError, got ${error ?? "no error"}`);
            assert.deepEqual(parametersOf(error), c.params, "error.parameters");
            const event = events.at(-1);
            assert.equal(event?.error, error, "the last event is the failure");
            assert.deepEqual(event?.parameters, c.params, "event.parameters");
            // MySQL's drivers redact the values MySQL quotes whatever the option (docs/errors.md): they are on error.parameters.
            if (c.quoted && target.dialect !== "mysql") {
              assert.ok(error.message.includes(secret), `the message keeps the value: ${error.message}`);
            }
          });
        }
        const many = await failureOf(
          () => db.executeMany(sql`insert into ${table} (k, n) values (${""}, ${0})`, [[`${key}-x`, 1], [secret, 1]]),
        );
        check("executeMany", () => {
          assert.ok(many instanceof QueryError, `expected a QueryError, got ${many ?? "no error"}`);
          const event = events.at(-1);
          assert.ok(JSON.stringify(event?.parameters ?? null).includes(secret), "the event carries every set's values");
        });
        await db.close();
        if (failures.length > 0) assert.fail(`${failures.length} check(s) failed:\n${failures.join("\n")}`);
      },
    );
  });
}

/** Checks of instances that never connect: their printed, logged and serialised forms. */
describe("database URLs", () => {
  const urlPassword = "s3cr3t-P@ss:w/rd";
  const encoded = encodeURIComponent(urlPassword);
  const assertNoSecret = (value: unknown) => assertHidden(value, [urlPassword, encoded], "password leaked");

  test("a parsed URL and a Database never show the password when printed, logged or serialised", () => {
    const url = parseDatabaseUrl(`postgres://app:${encoded}@host/db`);
    assertNoSecret(url);
    assert.equal(String(url), "postgres://app:***@host:5432/db");
    // This test never connects; the stand-in driver only satisfies the constructor.
    const driver: Driver = {
      name: "never-connects",
      dialect: "postgres",
      interleavedStreams: false,
      connect: () => Promise.reject(new Error("not used")),
    };
    const db = new Database(`postgres://app:${encoded}@host/db`, { driver });
    assertNoSecret(db);
    assert.ok(String(db).includes("***"));
  });
});

describe("routing options", () => {
  test("a replica's password appears nowhere: String, JSON, inspect, stats", async () => {
    const db = new Database("postgres://app:primary-pw@127.0.0.1:1/app", {
      replicas: ["postgres://app:replica-pw@127.0.0.1:1/app"],
    });
    const { inspect } = await import("node:util");
    for (const text of [String(db), JSON.stringify(db), inspect(db), JSON.stringify(db.stats())]) {
      assert.ok(!text.includes("primary-pw") && !text.includes("replica-pw"), text);
    }
    assert.equal(db.toJSON().replicas.length, 1);
    await db.close();
  });
});

describe("secrets: the harness", () => {
  test("finds a planted password in an error's cause, an event and console output", () => {
    const exposure = new Exposure();
    exposure.record("an error", new Error("outer", { cause: new Error(`inner ${encodeURIComponent(password)}`) }));
    exposure.record("an event", { sql: "select 1", error: Object.assign(new Error("x"), { detail: secret }) });
    const restore = captureConsole(exposure);
    try {
      console.debug("%s", wrongCore);
    } finally {
      restore();
    }
    const failure = exposure.leaks([...passwords, ...parameters]).join("\n");
    assert.match(failure, /the password \(percent-encoded\) in an error\.cause/);
    assert.match(failure, /the parameter value in an event/);
    assert.match(failure, /the wrong password \(its random part\) in console\.debug/);
  });
});
