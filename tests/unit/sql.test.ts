/** The sql tag compiles to each dialect's placeholders and quoting. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { compile, QueryError, sql } from "../../mod.ts";

describe("sql tag", () => {
  test("values become numbered or positional placeholders, never text", () => {
    const evil = "'; drop table users; --";
    const query = sql`select * from t where a = ${1} and b = ${evil}`;
    assert.deepEqual(compile(query, "postgres"), {
      text: "select * from t where a = $1 and b = $2",
      params: [1, evil],
    });
    assert.deepEqual(compile(query, "mysql"), { text: "select * from t where a = ? and b = ?", params: [1, evil] });
    assert.deepEqual(compile(query, "sqlite"), { text: "select * from t where a = ? and b = ?", params: [1, evil] });
  });

  test("nested fragments, join and identifiers number their parameters in order", () => {
    const where = sql`x = ${"x"} and y in (${sql.join([1, 2, 3])})`;
    const query = sql`select ${sql.ident("s", "t")}.* from ${sql.ident("s", "t")} where ${where} and z = ${true}`;
    assert.deepEqual(compile(query, "postgres"), {
      text: 'select "s"."t".* from "s"."t" where x = $1 and y in ($2, $3, $4) and z = $5',
      params: ["x", 1, 2, 3, true],
    });
    assert.equal(compile(sql`select ${sql.ident("a`b")}`, "mysql").text, "select `a``b`");
    assert.equal(compile(sql`select ${sql.ident('a"b')}`, "sqlite").text, 'select "a""b"');
    assert.deepEqual(compile(sql.join([sql`a`, sql`b`], sql` or `), "postgres"), { text: "a or b", params: [] });
    assert.deepEqual(compile(sql.join([]), "mysql"), { text: "", params: [] });
  });

  test("helpers reject what they cannot quote safely", () => {
    assert.throws(() => sql.ident(), QueryError);
    assert.throws(() => sql.ident(""), QueryError);
    // @ts-expect-error: not a string
    assert.throws(() => sql.unsafe(1), QueryError);
  });
});
