/**
 * Which statements count as changing their session's settings
 * (src/session_statements.ts): the pooled connection they ran on is closed
 * when given back. Read from the first keywords only.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  mysqlChangesSession,
  postgresChangesSession,
  rememberedJudgement,
  rememberedLength,
  rememberedTexts,
} from "../../src/session_statements.ts";

describe("statements that change their session", () => {
  test("Postgres: SET, RESET and DISCARD, but not SET LOCAL, SET TRANSACTION or SET CONSTRAINTS", () => {
    for (
      const text of [
        "SET search_path TO tenant_1",
        "set statement_timeout = 0",
        "  \n\tSet TimeZone = 'UTC'",
        "-- a note\nSET application_name = 'x'",
        "/* a note */ SET ROLE app",
        "SET SESSION AUTHORIZATION app",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
        "RESET ALL",
        "reset search_path",
        "DISCARD ALL",
      ]
    ) assert.equal(postgresChangesSession(text), true, text);
    for (
      const text of [
        "SET LOCAL search_path TO tenant_1",
        "set local statement_timeout = 0",
        "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "SET CONSTRAINTS ALL DEFERRED",
        "select 1",
        "settings",
        "update t set n = 1",
        "delete from t",
        "use test",
        "RELEASE SAVEPOINT s",
        "/* SET search_path */ select 1",
        "",
      ]
    ) assert.equal(postgresChangesSession(text), false, text);
  });

  test("Postgres: set_config for the session (false, or a parameter), not for the transaction (a literal true)", () => {
    for (
      const text of [
        "select set_config('app.tenant', '42', false)",
        "SELECT pg_catalog.set_config('app.tenant', $1, false)",
        "select set_config('app.tenant', $1, $2)",
        "select set_config('app.tenant', $1, 'off')",
        "select 1, set_config('a.b', 'c', true), set_config('a.c', 'd', false)",
        "select set_config('a.b', concat('x', 'y'), false)",
        "select set_config('a.b', 'it''s, (really)', false)",
        "select SET_CONFIG ( 'a.b' , 'c' , FALSE )",
        "select set_config('a.b', 'c')", // too few arguments: Postgres refuses it, marking costs nothing
      ]
    ) assert.equal(postgresChangesSession(text), true, text);
    for (
      const text of [
        "SELECT set_config('a.b', 'c', true)",
        "select set_config('request.jwt.claims', $1, true)",
        "select set_config('a.b', concat($1, ','), TRUE)",
        "select set_config('a.b', 'it''s, (really)', 't')",
        "select set_config('a.b', 'c', 'on'::boolean)",
        "select current_setting('app.tenant')",
        "select 'set_config' as name",
      ]
    ) assert.equal(postgresChangesSession(text), false, text);
  });

  test("MySQL: a user variable assigned inside a statement", () => {
    for (
      const text of [
        "select @tenant := 42",
        "SELECT @`my var` := 1, n FROM t",
        "select n into @n from t limit 1",
        "SELECT 1 INTO @a, @b",
      ]
    ) assert.equal(mysqlChangesSession(text), true, text);
    for (
      const text of [
        "select @tenant",
        "insert into t values (1)",
        "select * from t where email = 'a@b.example'",
        "select 1 into outfile '/tmp/x'",
      ]
    ) assert.equal(mysqlChangesSession(text), false, text);
  });

  test("set_config and user-variable checks read long statements in linear time", () => {
    const started = performance.now();
    const long = "x, ".repeat(20_000);
    assert.equal(postgresChangesSession(`select set_config('a', '${"(".repeat(5_000)}', ${long} false)`), true);
    assert.equal(postgresChangesSession(`select ${"set_config(".repeat(2_000)}`), true);
    assert.equal(postgresChangesSession(`select ${long} 1`), false);
    assert.equal(mysqlChangesSession(`select ${"@".repeat(10_000)} 1`), false);
    assert.equal(mysqlChangesSession(`select ${"@a ".repeat(10_000)}, 1`), false);
    assert.equal(mysqlChangesSession(`select ${"@a ".repeat(10_000)} := 1`), true);
    assert.ok(performance.now() - started < 5_000);
  });

  test("long runs of whitespace and comments before the keyword are read in linear time", () => {
    // Before: `(?:\s+)*` split a run of spaces every possible way before failing, so 26 leading spaces (an indented
    // template) took 0.7 s a statement and each space more doubled it; a lazy block comment could run on into the
    // next one, the same way. Runs of thousands here would never end.
    const started = performance.now();
    for (
      const lead of [" ".repeat(10_000), "\n  \t".repeat(3_000), "/* a */ ".repeat(2_000), "-- a\n".repeat(2_000)]
    ) {
      for (const changes of [postgresChangesSession, mysqlChangesSession]) {
        assert.equal(changes(`${lead}select 1`), false);
        assert.equal(changes(`${lead}SET @x = 1`), true);
      }
    }
    // A generous bound: linear reading takes milliseconds on any machine; the old pattern, longer than anyone waits.
    assert.ok(performance.now() - started < 5_000);
  });

  test("MySQL: SET of a session or user variable and USE, but not SET TRANSACTION", () => {
    for (
      const text of [
        "SET @tenant = 1",
        "SET SESSION sql_mode = 'ANSI'",
        "set names utf8mb4",
        "SET autocommit = 0",
        "SET SESSION TRANSACTION READ WRITE",
        "USE other",
        "  use `other`",
      ]
    ) assert.equal(mysqlChangesSession(text), true, text);
    for (
      const text of [
        "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
        "select @tenant",
        "update t set n = 1",
        "RESET QUERY CACHE",
        "DISCARD ALL",
        "",
      ]
    ) assert.equal(mysqlChangesSession(text), false, text);
  });

  test("a remembered judgement answers as the dialect's, reading each text once until it has seen too many", () => {
    const read: string[] = [];
    const judge = rememberedJudgement((text) => {
      read.push(text);
      return postgresChangesSession(text);
    });
    const texts = ["SET search_path TO t", "select 1", "select set_config('a', $1, false)", "SET LOCAL a = 1"];
    for (let round = 0; round < 3; round++) {
      for (const text of texts) assert.equal(judge(text), postgresChangesSession(text), text);
    }
    assert.deepEqual(read, texts);
    // A text too long to keep is read every time, and answered right.
    const long = `SET application_name = '${"x".repeat(rememberedLength)}'`;
    assert.equal(judge(long), true);
    assert.equal(judge(long), true);
    assert.equal(read.filter((text) => text === long).length, 2);
    // Past rememberedTexts texts, everything is forgotten and read again, still answered right.
    for (let i = 0; i < rememberedTexts; i++) judge(`select ${i}`);
    read.length = 0;
    assert.equal(judge("SET search_path TO t"), true);
    assert.deepEqual(read, ["SET search_path TO t"]);
  });
});
